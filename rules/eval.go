package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"

	"github.com/vigilhq/vigil/observe"
)

func newEnv() (*cel.Env, error) {
	env, err := cel.NewEnv(cel.Variable("obs", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	return env, nil
}

func (e *Engine) program(expr string) (cel.Program, error) {
	prg, _, err := e.compileExpr(expr)
	return prg, err
}

// compileExpr compiles a match expression and says which observation kinds
// it can match: nil means any.
func (e *Engine) compileExpr(expr string) (cel.Program, []observe.Kind, error) {
	ast, iss := e.env.Compile(expr)
	if iss.Err() != nil {
		return nil, nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, nil, fmt.Errorf("expression must be true or false, it returns %s", ast.OutputType())
	}
	prg, err := e.env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	return prg, kindsOf(ast.NativeRep().Expr()), err
}

// kindsOf finds the kinds an expression is limited to: one of the terms of
// its top-level && chain is obs.kind == "K" (or obs.kind in ["K", ...]), or
// each side of an || is so limited. Anything else (a negation, a kind
// compared with a field) means any kind: the index only skips
// rules that provably cannot match, it never changes a result.
func kindsOf(x celast.Expr) []observe.Kind {
	if x.Kind() != celast.CallKind {
		return nil
	}
	c := x.AsCall()
	isKind := func(a celast.Expr) bool {
		if a.Kind() != celast.SelectKind {
			return false
		}
		sel := a.AsSelect()
		return sel.FieldName() == "kind" && !sel.IsTestOnly() &&
			sel.Operand().Kind() == celast.IdentKind && sel.Operand().AsIdent() == "obs"
	}
	str := func(a celast.Expr) (string, bool) {
		if a.Kind() != celast.LiteralKind {
			return "", false
		}
		s, ok := a.AsLiteral().Value().(string)
		return s, ok
	}
	args := c.Args()
	switch c.FunctionName() {
	case operators.LogicalAnd:
		for _, a := range args {
			if k := kindsOf(a); k != nil {
				return k
			}
		}
	case operators.LogicalOr:
		// Either side may hold: the union, if both sides are limited.
		var out []observe.Kind
		for _, a := range args {
			k := kindsOf(a)
			if k == nil {
				return nil
			}
			for _, x := range k {
				if !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
		}
		return out
	case operators.Equals:
		if len(args) == 2 {
			for i := 0; i < 2; i++ {
				if s, ok := str(args[1-i]); ok && isKind(args[i]) {
					return []observe.Kind{observe.Kind(s)}
				}
			}
		}
	case operators.In:
		if len(args) == 2 && isKind(args[0]) && args[1].Kind() == celast.ListKind {
			var out []observe.Kind
			for _, el := range args[1].AsList().Elements() {
				s, ok := str(el)
				if !ok {
					return nil
				}
				out = append(out, observe.Kind(s))
			}
			return out
		}
	}
	return nil
}

// Activation is the map a rule expression sees as `obs`: the observation's
// common fields plus its attributes (docs/observations.md).
func Activation(o observe.Observation) map[string]any {
	defaults := kindDefaults[o.Kind]
	m := make(map[string]any, len(defaults)+len(o.Attrs)+16)
	for k, v := range defaults {
		m[k] = v
	}
	for k, v := range o.Attrs {
		m[k] = v
	}
	m["kind"] = string(o.Kind)
	m["location"] = o.Location
	m["segment"] = o.Segment
	m["segment_role"] = o.SegmentRole
	m["vantage"] = o.Vantage
	m["vantage_role"] = o.VantageRole
	m["internet_facing"] = o.InternetFacing
	m["host"] = o.Host
	m["port"] = o.Port
	m["proto"] = o.Proto
	m["source"] = o.Source
	m["target"] = o.Target()
	m["exposure"] = Exposure(o)
	return m
}

// kindDefaults gives every documented attribute of a kind a zero value, so
// that rules can say obs.tunnel != "ssl" without has() guards.
var kindDefaults = map[observe.Kind]map[string]any{
	observe.KindHost: {"hostname": "", "mac": "", "mac_vendor": "", "os": ""},
	observe.KindService: {"service": "", "product": "", "version": "", "extrainfo": "",
		"tunnel": "", "cpe": []string{}, "state": ""},
	observe.KindTLS: {"tls_versions": []string{}, "weak_ciphers": []string{}, "server_name": "",
		"cert_subject": "", "cert_issuer": "", "cert_not_before": "", "cert_not_after": "",
		"cert_days_left": 0, "cert_expired": false, "cert_not_yet_valid": false,
		"cert_expiring_soon": false, "cert_self_signed": false, "cert_untrusted": false,
		"cert_hostname_mismatch": false, "cert_key_type": "", "cert_key_bits": 0,
		"cert_sig_alg": "", "cert_sha1": false, "cert_sha256": ""},
	observe.KindSSH: {"banner": "", "host_key_type": "", "host_key_sha256": "", "auth_methods": []string{},
		"no_auth": false},
	observe.KindReach: {"state": "", "service": "", "to_location": ""},
	observe.KindCheck: {"check": "", "name": "", "engine": "", "extracted": []string{},
		"details": "", "template_severity": ""},
	// Accounts: what collectors report (collectors.Account) and what
	// package accounts derives from it.
	observe.KindAccount: {"system": "", "source_type": "", "username": "", "email": "", "display_name": "",
		"enabled": false, "mfa": "unknown", "mfa_enforced": "unknown", "mfa_methods": []string{},
		"last_login": "", "last_login_known": false, "created": "", "locations": []string{}, "role": "",
		"is_admin": false, "admin_roles": []string{}, "password_never_expires": false, "password_last_set": "",
		"person": "", "person_systems": []string{}, "mfa_systems": []string{}, "mfa_note": "",
		"days_since_login": -1, "age_days": -1, "stale": false, "unused": false, "shared_name": false,
		"shared_pattern": "", "multi_location": false, "on_roster": "unknown", "leaver": false,
		"leaver_reason": "", "remote_access": false, "roster_match": ""},
	// Telegraf metrics (docs/telegraf.md): the certificate facts are those
	// of an x509_cert metric, absent from others.
	observe.KindMetric: {"measurement": "", "tags": map[string]string{}, "fields": map[string]any{},
		"cert_type": "", "cert_expired": false, "cert_days_left": 0, "cert_not_yet_valid": false,
		"cert_subject": "", "cert_issuer": "", "cert_not_after": "", "verification": "", "result": ""},
	observe.KindPackage: {"file": "", "ecosystem": "", "package": "", "version": "", "vulns": []string{},
		"aliases": []string{}, "severity": "unknown", "cvss": 0.0, "fixed_versions": []string{}, "summary": "",
		"service": "", "product": "", "image_path": "", "binary_packages": []string{}, "match_basis": ""},
}

// Exposure says where an observation shows a service is reachable from, in
// the terms rules judge by: "internet" (on a public address), "guest" or
// "iot" (seen from such a segment), or "" (inside the location's own
// networks, which segmentation rules judge instead).
func Exposure(o observe.Observation) string {
	switch {
	case o.InternetFacing:
		return "internet"
	case o.VantageRole == "guest" || o.VantageRole == "iot":
		return o.VantageRole
	}
	return ""
}

// seenFrom names the vantage for evidence.
func seenFrom(o observe.Observation) string {
	switch {
	case o.Vantage != "":
		return o.Vantage
	default:
		return "sensor"
	}
}

// vars is what an expression is evaluated against: obs bound to the
// observation, once for all rules.
func vars(o *observe.Observation) interpreter.Activation {
	a, _ := interpreter.NewActivation(map[string]any{"obs": obsVal{o: o, defaults: kindDefaults[o.Kind]}})
	return a
}

func truthy(p cel.Program, vars interpreter.Activation) bool {
	out, _, err := p.Eval(vars)
	if err != nil {
		// A missing key (a rule about TLS looking at a service) is a
		// non-match, not a failure.
		return false
	}
	return out == types.True
}

// Evaluate runs every rule over the observations and returns the findings,
// one per (rule, location, target), sorted by severity then id. Evidence is
// taken from the first observation that matched; later matches add their
// source. Times are set to now; the store replaces them with the finding's
// history.
func (e *Engine) Evaluate(obs []observe.Observation, now time.Time) []observe.Finding {
	byID := map[string]*observe.Finding{}
	var order []string
	byKind := map[observe.Kind][]*Rule{}
	for i := range obs {
		o := &obs[i]
		rs, ok := byKind[o.Kind]
		if !ok {
			for _, r := range e.rules {
				if r.match != nil && (r.kinds == nil || slices.Contains(r.kinds, o.Kind)) {
					rs = append(rs, r)
				}
			}
			byKind[o.Kind] = rs
		}
		if len(rs) == 0 {
			continue
		}
		act := vars(o)
		for _, r := range rs {
			if !truthy(r.match, act) {
				continue
			}
			sev := r.Severity
			for i, p := range r.esc {
				if truthy(p, act) && r.Escalate[i].Severity.Rank() > sev.Rank() {
					sev = r.Escalate[i].Severity
				}
			}
			target := o.Target()
			id := observe.FindingID(r.ID, o.Location, target)
			if f, ok := byID[id]; ok {
				if sev.Rank() > f.Severity.Rank() {
					f.Severity = sev
				}
				addSource(f.Evidence, o.Source)
				continue
			}
			byID[id] = &observe.Finding{
				ID:          id,
				Rule:        r.ID,
				Category:    r.Category,
				Severity:    sev,
				Title:       r.Title,
				Location:    o.Location,
				Target:      target,
				Controls:    append([]string(nil), r.Controls...),
				Evidence:    evidence(*o),
				Remediation: r.Remediation,
				Vantage:     o.Vantage,
				FirstSeen:   now,
				LastSeen:    now,
				Status:      observe.StatusOpen,
			}
			order = append(order, id)
		}
	}
	// Sort pointers, not the findings themselves: moving whole findings
	// costs more than comparing them once there are tens of thousands.
	ptrs := make([]*observe.Finding, len(order))
	for i, id := range order {
		ptrs[i] = byID[id]
	}
	slices.SortStableFunc(ptrs, func(a, b *observe.Finding) int {
		if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
			return rb - ra
		}
		if c := strings.Compare(a.Location, b.Location); c != 0 {
			return c
		}
		if c := strings.Compare(a.Target, b.Target); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	out := make([]observe.Finding, len(ptrs))
	for i, f := range ptrs {
		out[i] = *f
	}
	return out
}

func evidence(o observe.Observation) map[string]any {
	ev := make(map[string]any, len(o.Attrs)+5)
	for k, v := range o.Attrs {
		if empty(v) || o.Kind == observe.KindAccount && unset(v) {
			continue
		}
		ev[k] = v
	}
	ev["seen_from"] = seenFrom(o)
	if o.Segment != "" {
		ev["segment"] = o.Segment
	}
	ev["observed_at"] = o.At.UTC().Format(time.RFC3339)
	ev["sources"] = []string{o.Source}
	if o.InternetFacing {
		ev["internet_facing"] = true
	}
	return ev
}

// empty reports values that say nothing as evidence: "", and empty lists.
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []string:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// unset reports the "no" values of an account's derived facts (false, -1,
// unknown), which would bury the one fact a finding is about.
func unset(v any) bool {
	switch x := v.(type) {
	case bool:
		return !x
	case int:
		return x < 0
	case string:
		return x == "unknown"
	case map[string]string:
		return len(x) == 0
	}
	return false
}

func addSource(ev map[string]any, src string) {
	s, _ := ev["sources"].([]string)
	for _, x := range s {
		if x == src {
			return
		}
	}
	ev["sources"] = append(s, src)
}
