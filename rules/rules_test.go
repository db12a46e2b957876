package rules

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
)

func TestEmbeddedPackLoads(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatalf("embedded pack does not load: %v", err)
	}
	if len(e.Rules()) < 25 {
		t.Errorf("only %d rules loaded", len(e.Rules()))
	}
	for _, r := range e.Rules() {
		hipaa := false
		for _, c := range r.Controls {
			hipaa = hipaa || strings.HasPrefix(c, "hipaa:")
		}
		if !hipaa {
			t.Errorf("rule %s cites no HIPAA Security Rule section", r.ID)
		}
	}
}

// The pack's unit tests: every expected finding appears, nothing else does.
func TestPackBehaviour(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.RunEmbeddedTests()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 5 {
		t.Fatalf("only %d rule tests ran", len(res))
	}
	files := map[string]bool{}
	for _, r := range res {
		files[r.File] = true
	}
	for _, f := range []string{"rules/pack/tests/identity_tests.yaml", "rules/pack/software.yaml"} {
		if !files[f] {
			t.Errorf("the tests in %s did not run (ran: %v)", f, files)
		}
	}
	for _, r := range res {
		for _, f := range r.Failures {
			t.Errorf("%s: %s", r.Name, f)
		}
	}
}

func TestCatalogCoversSecurityRule(t *testing.T) {
	c, err := LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"hipaa:164.308(a)(1)(ii)(A)", "hipaa:164.310(d)(2)(iii)", "hipaa:164.312(e)(2)(ii)", "hipaa:164.314(a)(2)(i)", "hipaa:164.316(b)(2)(i)", "cpg:E-3", "cpg:X-7", "insurance:rdp-exposed", "state:tx-hb300"} {
		if _, ok := c.Control(id); !ok {
			t.Errorf("catalog lacks %s", id)
		}
	}
}

func TestBadRulesRejectedWithFileAndLine(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"bad cel", "rules:\n  - id: x.bad\n    category: weak-tls\n    severity: high\n    title: T\n    remediation: R\n    controls: [\"hipaa:164.312(e)(1)\"]\n    match: obs.kind ==\n",
			"bad.yaml:8: rule x.bad: match does not compile"},
		{"unknown control", "rules:\n  - id: x.bad\n    category: weak-tls\n    severity: high\n    title: T\n    remediation: R\n    controls: [\"hipaa:999\"]\n    match: \"true\"\n",
			"bad.yaml:7: rule x.bad: unknown control \"hipaa:999\""},
		{"bad category", "rules:\n  - id: x.bad\n    category: scary\n    severity: high\n    title: T\n    remediation: R\n    controls: [\"hipaa:164.312(e)(1)\"]\n    match: \"true\"\n",
			"bad.yaml:3: rule x.bad: unknown category \"scary\""},
		{"non-bool", "rules:\n  - id: x.bad\n    category: weak-tls\n    severity: high\n    title: T\n    remediation: R\n    controls: [\"hipaa:164.312(e)(1)\"]\n    match: \"1 + 2\"\n",
			"must be true or false"},
		{"duplicate of pack", "rules:\n  - id: tls.weak-key\n    category: weak-tls\n    severity: high\n    title: T\n    remediation: R\n    controls: [\"hipaa:164.312(e)(1)\"]\n    match: \"true\"\n",
			"duplicate rule id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bad.yaml")
			os.WriteFile(path, []byte(tc.body), 0o644)
			_, err := Load(Options{Dirs: []string{dir}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "bad.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestFindingIDsStableAndDeduplicated(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	obs := []observe.Observation{
		{Kind: observe.KindService, Location: "a", Host: "10.0.0.1", Port: 23, Source: "nmap", Attrs: map[string]any{"service": "telnet"}},
		{Kind: observe.KindCheck, Location: "a", Host: "10.0.0.1", Port: 23, Source: "nuclei", Attrs: map[string]any{"check": "vigil-telnet-banner", "engine": "nuclei"}},
	}
	fs := e.Evaluate(obs, time.Now())
	if len(fs) != 1 {
		t.Fatalf("want one telnet finding from two observations, got %d", len(fs))
	}
	if fs[0].ID != observe.FindingID("svc.telnet-plaintext", "a", "10.0.0.1:23") {
		t.Errorf("finding id not derived from rule+location+target")
	}
	if src := fs[0].Evidence["sources"].([]string); len(src) != 2 {
		t.Errorf("evidence sources = %v, want nmap and nuclei", src)
	}
}

func BenchmarkEvaluate(b *testing.B) {
	e, err := Load(Options{})
	if err != nil {
		b.Fatal(err)
	}
	var obs []observe.Observation
	for i := 0; i < 1000; i++ {
		obs = append(obs, observe.Observation{Kind: observe.KindService, Location: "a", Host: "10.0.0.1", Port: i + 1, VantageRole: "guest", Source: "nmap", Attrs: map[string]any{"service": "http", "product": "nginx"}})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Evaluate(obs, time.Now())
	}
}

func TestKindIndex(t *testing.T) {
	e, err := Load(Options{NoDefaults: true})
	if err != nil {
		t.Fatal(err)
	}
	for expr, want := range map[string][]observe.Kind{
		`obs.kind == "account" && obs.enabled`:               {observe.KindAccount},
		`obs.enabled && "tls" == obs.kind`:                   {observe.KindTLS},
		`obs.kind in ["service", "check"] && obs.port == 22`: {observe.KindService, observe.KindCheck},
		`obs.kind == "account" || obs.port == 22`:            nil,
		`!(obs.kind == "account")`:                           nil,
		`obs.port == 22`:                                     nil,
		`obs.kind == obs.other`:                              nil,
	} {
		_, got, err := e.compileExpr(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("kindsOf(%s) = %v, want %v", expr, got, want)
		}
	}
	// Every shipped rule names its kind, so the index skips it for the
	// others; a rule that does not still runs on everything.
	full, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range full.Rules() {
		if r.Native == "" && r.kinds == nil {
			t.Errorf("%s (%s:%d): match does not start from obs.kind, so it runs on every observation", r.ID, r.File, r.Line)
		}
	}
}

// obsVal must give rules exactly what Activation describes.
func TestObsValMatchesActivation(t *testing.T) {
	for _, o := range []observe.Observation{
		{Kind: observe.KindService, Location: "dt", Segment: "servers", Vantage: "guest", VantageRole: "guest", Host: "10.0.0.5", Port: 443, Proto: "tcp", Source: "nmap", Attrs: map[string]any{"service": "https", "port": 1}},
		{Kind: observe.KindAccount, Source: "csv:emr", Attrs: map[string]any{"system": "emr", "username": "jane", "enabled": true}},
		{Kind: "unknown-kind", Host: "10.0.0.9"},
	} {
		act := Activation(o)
		v := obsVal{o: &o, defaults: kindDefaults[o.Kind]}
		for k, want := range act {
			got, ok := v.lookup(k)
			if !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: obs.%s = %v (%v), Activation has %v", o.Kind, k, got, ok, want)
			}
		}
		if _, ok := v.lookup("no-such-key"); ok {
			t.Errorf("%s: a missing key was found", o.Kind)
		}
	}
}
