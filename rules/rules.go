// Package rules turns observations into findings. Rules are data: YAML files
// (an embedded default pack plus user directories), each with a CEL match
// expression compiled once at load and the controls in the catalog it
// evidences.
package rules

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"gopkg.in/yaml.v3"

	"github.com/vigilhq/vigil/observe"
)

//go:embed pack/*.yaml pack/tests/*.yaml catalog/controls.yaml
var embedded embed.FS

// Rule is one loaded rule: its metadata, where it came from, and its
// compiled expressions.
type Rule struct {
	observe.RuleMeta `yaml:",inline"`
	// Match is the CEL expression over `obs` that selects observations.
	Match string `yaml:"match"`
	// Native names a Go evaluator (e.g. "segmentation") for judgements
	// over many observations at once; such a rule has no match.
	Native string `yaml:"native"`
	// Escalate raises the severity when a further condition holds
	// (e.g. the service is on an internet-facing address).
	Escalate []Escalation `yaml:"escalate"`
	// File and Line locate the rule's definition.
	File string `yaml:"-"`
	Line int    `yaml:"-"`

	match cel.Program
	kinds []observe.Kind // the kinds match can be true for; nil: any
	esc   []cel.Program
}

// Kinds returns the observation kinds the rule's match can be true for;
// nil means any kind, or a native evaluator (which judges many
// observations of a location at once).
func (r *Rule) Kinds() []observe.Kind { return slices.Clone(r.kinds) }

// Escalation raises a rule's severity when When holds.
type Escalation struct {
	When     string           `yaml:"when"`
	Severity observe.Severity `yaml:"severity"`
}

type ruleFile struct {
	Rules []yaml.Node `yaml:"rules"`
	Tests []yaml.Node `yaml:"tests"`
}

// LoadError is a rule that could not be loaded, with its position.
type LoadError struct {
	File string
	Line int
	Rule string
	Msg  string
}

func (e *LoadError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += fmt.Sprintf(":%d", e.Line)
	}
	if e.Rule != "" {
		s += ": rule " + e.Rule
	}
	return s + ": " + e.Msg
}

var idPattern = regexp.MustCompile(`^[a-z0-9]+(\.[a-z0-9-]+)+$`)

// Engine holds the loaded rules and the control catalog they cite.
type Engine struct {
	rules    []*Rule
	byID     map[string]*Rule
	disabled []*Rule // dropped by Options.Disable, for lint to name
	catalog  *Catalog
	env      *cel.Env
}

// Options selects what an Engine loads besides the embedded pack.
type Options struct {
	// Dirs are user rule directories; every *.yaml file in them is loaded.
	Dirs []string
	// Disable lists rule ids that are dropped after loading.
	Disable []string
	// NoDefaults skips the embedded pack (for `vigil rules test DIR`).
	NoDefaults bool
}

// Load compiles the embedded rule pack and the rules in opts.Dirs. Any rule
// that does not parse, cites an unknown control or whose expression does not
// compile is reported with its file and line; all such errors are returned
// together.
func Load(opts Options) (*Engine, error) {
	cat, err := LoadCatalog()
	if err != nil {
		return nil, err
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	e := &Engine{byID: map[string]*Rule{}, catalog: cat, env: env}
	var errs []error
	if !opts.NoDefaults {
		files, _ := fs.Glob(embedded, "pack/*.yaml")
		for _, f := range files {
			data, _ := embedded.ReadFile(f)
			errs = append(errs, e.addFile("rules/"+f, data)...)
		}
	}
	for _, dir := range opts.Dirs {
		files, err := ruleFiles(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("rules %s: %w", f, err))
				continue
			}
			errs = append(errs, e.addFile(f, data)...)
		}
	}
	for _, id := range opts.Disable {
		if _, ok := e.byID[id]; !ok {
			errs = append(errs, fmt.Errorf("rules.disable: unknown rule id %q", id))
			continue
		}
		e.disabled = append(e.disabled, e.byID[id])
		delete(e.byID, id)
		e.rules = slices.DeleteFunc(e.rules, func(r *Rule) bool { return r.ID == id })
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

// ruleFiles lists the rule files in dir (or dir itself if it is a file).
func ruleFiles(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rules directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return []string{dir}, nil
	}
	var out []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		out = append(out, m...)
	}
	sort.Strings(out)
	return out, nil
}

func (e *Engine) addFile(name string, data []byte) []error {
	var f ruleFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return []error{&LoadError{File: name, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var errs []error
	for i := range f.Rules {
		n := &f.Rules[i]
		r := &Rule{File: name, Line: n.Line}
		if err := n.Decode(r); err != nil {
			errs = append(errs, &LoadError{File: name, Line: n.Line, Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
			continue
		}
		if err := e.compile(r, n); err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := e.byID[r.ID]; dup {
			errs = append(errs, &LoadError{File: name, Line: n.Line, Rule: r.ID, Msg: fmt.Sprintf("duplicate rule id (first defined at %s:%d)", prev.File, prev.Line)})
			continue
		}
		e.byID[r.ID] = r
		e.rules = append(e.rules, r)
	}
	return errs
}

// keyLine returns the line of key inside the mapping node n.
func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

func (e *Engine) compile(r *Rule, n *yaml.Node) error {
	fail := func(key, format string, args ...any) error {
		return &LoadError{File: r.File, Line: keyLine(n, key), Rule: r.ID, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !idPattern.MatchString(r.ID):
		return fail("id", "id %q must look like area.name (lower-case, dots and dashes), e.g. net.rdp-exposed", r.ID)
	case !r.Category.Valid():
		return fail("category", "unknown category %q (one of %v)", r.Category, observe.Categories)
	case !r.Severity.Valid():
		return fail("severity", "unknown severity %q (critical, high, medium, low, info)", r.Severity)
	case strings.TrimSpace(r.Title) == "":
		return fail("title", "title is required")
	case strings.TrimSpace(r.Remediation) == "":
		return fail("remediation", "remediation is required: tell the reader what to do")
	case len(r.Controls) == 0:
		return fail("controls", "cite at least one control (e.g. hipaa:164.312(e)(1))")
	case r.Native != "" && !slices.Contains(NativeEvaluators, r.Native):
		return fail("native", "unknown native evaluator %q (known: %s)", r.Native, strings.Join(NativeEvaluators, ", "))
	case r.Native == "" && strings.TrimSpace(r.Match) == "":
		return fail("match", "match expression is required")
	case r.Native != "" && r.Match != "":
		return fail("match", "a native rule has no match expression")
	}
	for _, c := range r.Controls {
		if _, ok := e.catalog.byID[c]; !ok {
			return fail("controls", "unknown control %q: not in the control catalog", c)
		}
	}
	if r.Native != "" {
		return nil
	}
	prg, kinds, err := e.compileExpr(r.Match)
	if err != nil {
		return fail("match", "match does not compile: %v", err)
	}
	r.match, r.kinds = prg, kinds
	for _, es := range r.Escalate {
		if !es.Severity.Valid() {
			return fail("escalate", "unknown severity %q", es.Severity)
		}
		p, err := e.program(es.When)
		if err != nil {
			return fail("escalate", "escalate.when %q does not compile: %v", es.When, err)
		}
		r.esc = append(r.esc, p)
	}
	return nil
}

// Rules returns every loaded rule, sorted by id.
func (e *Engine) Rules() []*Rule {
	out := slices.Clone(e.rules)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Rule returns the rule with the given id.
func (e *Engine) Rule(id string) (*Rule, bool) {
	r, ok := e.byID[id]
	return r, ok
}

// Catalog returns the control catalog the rules were checked against.
func (e *Engine) Catalog() *Catalog { return e.catalog }
