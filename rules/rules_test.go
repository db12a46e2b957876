package rules

import (
	"os"
	"path/filepath"
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
