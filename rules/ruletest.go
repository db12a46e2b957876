package rules

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilhq/vigil/observe"
)

// TestFile is a rule unit-test file, in the spirit of `promtool test rules`:
// observations in, the findings expected out.
type TestFile struct {
	Tests []TestCase `yaml:"tests"`
}

// TestCase is one named test: given these observations, exactly these
// (rule, target) findings are expected among the rules it names.
type TestCase struct {
	Name         string            `yaml:"name"`
	Observations []TestObservation `yaml:"observations"`
	// Expect lists the findings that must be produced.
	Expect []Expected `yaml:"expect"`
	// ExpectNone lists rule ids that must not fire; "*" means no rule at all.
	ExpectNone []string `yaml:"expect_none"`
}

// TestObservation is an observation written flat: the common fields plus
// attributes.
type TestObservation map[string]any

// Expected is one expected finding.
type Expected struct {
	Rule     string           `yaml:"rule"`
	Target   string           `yaml:"target"`
	Severity observe.Severity `yaml:"severity"`
}

// ToObservation converts the flat form used in test files.
func (t TestObservation) ToObservation() observe.Observation {
	o := observe.Observation{Attrs: map[string]any{}, Location: "test", At: time.Unix(0, 0).UTC()}
	for k, v := range t {
		s, _ := v.(string)
		switch k {
		case "kind":
			o.Kind = observe.Kind(s)
		case "location":
			o.Location = s
		case "segment":
			o.Segment = s
		case "segment_role":
			o.SegmentRole = s
		case "vantage":
			o.Vantage = s
		case "vantage_role":
			o.VantageRole = s
		case "internet_facing":
			o.InternetFacing, _ = v.(bool)
		case "host":
			o.Host = s
		case "port":
			o.Port, _ = v.(int)
		case "proto":
			o.Proto = s
		case "source":
			o.Source = s
		default:
			o.Attrs[k] = normalize(v)
		}
	}
	return o
}

// normalize turns YAML lists of strings into []string, as the scanner
// produces them.
func normalize(v any) any {
	if l, ok := v.([]any); ok {
		out := make([]string, 0, len(l))
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return v
}

// TestResult is the outcome of one test case.
type TestResult struct {
	File, Name string
	Failures   []string
}

// RunTestFile runs the test cases in path against the engine.
func (e *Engine) RunTestFile(path string) ([]TestResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return e.RunTests(path, data)
}

// RunTests runs test cases held in memory; name is used in results.
func (e *Engine) RunTests(name string, data []byte) ([]TestResult, error) {
	var tf TestFile
	if err := yaml.Unmarshal(data, &tf); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []TestResult
	for _, tc := range tf.Tests {
		res := TestResult{File: name, Name: tc.Name}
		obs := make([]observe.Observation, len(tc.Observations))
		for i, o := range tc.Observations {
			obs[i] = o.ToObservation()
		}
		got := e.Evaluate(obs, time.Unix(0, 0))
		for _, x := range tc.Expect {
			if _, ok := e.byID[x.Rule]; !ok {
				res.Failures = append(res.Failures, fmt.Sprintf("expects unknown rule %q", x.Rule))
				continue
			}
			i := slices.IndexFunc(got, func(f observe.Finding) bool {
				return f.Rule == x.Rule && (x.Target == "" || f.Target == x.Target)
			})
			switch {
			case i < 0:
				res.Failures = append(res.Failures, fmt.Sprintf("expected %s on %s, got %s", x.Rule, x.Target, summarize(got)))
			case x.Severity != "" && got[i].Severity != x.Severity:
				res.Failures = append(res.Failures, fmt.Sprintf("%s on %s: severity %s, want %s", x.Rule, x.Target, got[i].Severity, x.Severity))
			}
		}
		for _, none := range tc.ExpectNone {
			for _, f := range got {
				if none == "*" && !slices.ContainsFunc(tc.Expect, func(x Expected) bool { return x.Rule == f.Rule }) || f.Rule == none {
					res.Failures = append(res.Failures, fmt.Sprintf("unexpected %s on %s", f.Rule, f.Target))
				}
			}
		}
		out = append(out, res)
	}
	return out, nil
}

func summarize(fs []observe.Finding) string {
	if len(fs) == 0 {
		return "no findings"
	}
	var s []string
	for _, f := range fs {
		s = append(s, f.Rule+"@"+f.Target)
	}
	return strings.Join(s, ", ")
}

// RunEmbeddedTests runs the unit tests shipped with the embedded pack: the
// files in pack/tests and the tests: sections of the rule files.
func (e *Engine) RunEmbeddedTests() ([]TestResult, error) {
	files, _ := fs.Glob(embedded, "pack/tests/*.yaml")
	packs, _ := fs.Glob(embedded, "pack/*.yaml")
	files = append(files, packs...)
	var out []TestResult
	for _, f := range files {
		data, _ := embedded.ReadFile(f)
		res, err := e.RunTests("rules/"+f, data)
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
	}
	return out, nil
}
