package rules

import (
	"fmt"
	"sort"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

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
	ast, iss := e.env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("expression must be true or false, it returns %s", ast.OutputType())
	}
	return e.env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}

// Activation is the map a rule expression sees as `obs`: the observation's
// common fields plus its attributes (docs/observations.md).
func Activation(o observe.Observation) map[string]any {
	m := make(map[string]any, len(o.Attrs)+16)
	for k, v := range kindDefaults[o.Kind] {
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

func truthy(p cel.Program, act map[string]any) bool {
	out, _, err := p.Eval(map[string]any{"obs": act})
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
	for _, o := range obs {
		act := Activation(o)
		for _, r := range e.rules {
			if r.match == nil || !truthy(r.match, act) {
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
				Evidence:    evidence(o),
				Remediation: r.Remediation,
				Vantage:     o.Vantage,
				FirstSeen:   now,
				LastSeen:    now,
				Status:      observe.StatusOpen,
			}
			order = append(order, id)
		}
	}
	out := make([]observe.Finding, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := out[i].Severity.Rank(), out[j].Severity.Rank(); a != b {
			return a > b
		}
		if out[i].Location != out[j].Location {
			return out[i].Location < out[j].Location
		}
		if out[i].Target != out[j].Target {
			return out[i].Target < out[j].Target
		}
		return out[i].Rule < out[j].Rule
	})
	return out
}

func evidence(o observe.Observation) map[string]any {
	ev := make(map[string]any, len(o.Attrs)+5)
	for k, v := range o.Attrs {
		if !empty(v) {
			ev[k] = v
		}
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

func addSource(ev map[string]any, src string) {
	s, _ := ev["sources"].([]string)
	for _, x := range s {
		if x == src {
			return
		}
	}
	ev["sources"] = append(s, src)
}
