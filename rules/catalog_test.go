package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The reference tables (shared/reference/controls.md) list these standards
// and implementation specifications of 164.308, 164.310, 164.312, 164.314
// and 164.316; a report that leaves one out misleads an auditor.
var securityRule = map[string]string{
	"164.308(a)(1)(i)": "S", "164.308(a)(1)(ii)(A)": "R", "164.308(a)(1)(ii)(B)": "R", "164.308(a)(1)(ii)(C)": "R",
	"164.308(a)(1)(ii)(D)": "R", "164.308(a)(2)": "R", "164.308(a)(3)(i)": "S", "164.308(a)(3)(ii)(A)": "A",
	"164.308(a)(3)(ii)(B)": "A", "164.308(a)(3)(ii)(C)": "A", "164.308(a)(4)(i)": "S", "164.308(a)(4)(ii)(A)": "R",
	"164.308(a)(4)(ii)(B)": "A", "164.308(a)(4)(ii)(C)": "A", "164.308(a)(5)(i)": "S", "164.308(a)(5)(ii)(A)": "A",
	"164.308(a)(5)(ii)(B)": "A", "164.308(a)(5)(ii)(C)": "A", "164.308(a)(5)(ii)(D)": "A", "164.308(a)(6)(i)": "S",
	"164.308(a)(6)(ii)": "R", "164.308(a)(7)(i)": "S", "164.308(a)(7)(ii)(A)": "R", "164.308(a)(7)(ii)(B)": "R",
	"164.308(a)(7)(ii)(C)": "R", "164.308(a)(7)(ii)(D)": "A", "164.308(a)(7)(ii)(E)": "A", "164.308(a)(8)": "R",
	"164.308(b)(1)": "S", "164.308(b)(3)": "R",
	"164.310(a)(1)": "S", "164.310(a)(2)(i)": "A", "164.310(a)(2)(ii)": "A", "164.310(a)(2)(iii)": "A",
	"164.310(a)(2)(iv)": "A", "164.310(b)": "R", "164.310(c)": "R", "164.310(d)(1)": "S", "164.310(d)(2)(i)": "R",
	"164.310(d)(2)(ii)": "R", "164.310(d)(2)(iii)": "A", "164.310(d)(2)(iv)": "A",
	"164.312(a)(1)": "S", "164.312(a)(2)(i)": "R", "164.312(a)(2)(ii)": "R", "164.312(a)(2)(iii)": "A",
	"164.312(a)(2)(iv)": "A", "164.312(b)": "R", "164.312(c)(1)": "S", "164.312(c)(2)": "A", "164.312(d)": "R",
	"164.312(e)(1)": "S", "164.312(e)(2)(i)": "A", "164.312(e)(2)(ii)": "A",
	"164.314(a)(1)": "S", "164.314(a)(2)(i)": "R", "164.314(a)(2)(ii)": "R", "164.314(a)(2)(iii)": "R",
	"164.314(b)(1)": "S", "164.314(b)(2)": "R",
	"164.316(a)": "R", "164.316(b)(1)": "S", "164.316(b)(2)(i)": "R", "164.316(b)(2)(ii)": "R", "164.316(b)(2)(iii)": "R",
}

func TestCatalogSecurityRuleComplete(t *testing.T) {
	c, err := LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if c.Version == "" {
		t.Error("catalog has no version")
	}
	hipaa := 0
	for _, k := range c.Controls {
		if k.Framework != FrameworkHIPAA {
			continue
		}
		hipaa++
		want, ok := securityRule[strings.TrimPrefix(k.ID, "hipaa:")]
		if !ok {
			t.Errorf("%s is not in the reference tables", k.ID)
			continue
		}
		if k.ROrA != want {
			t.Errorf("%s: r_or_a %s, the reference says %s", k.ID, k.ROrA, want)
		}
	}
	if hipaa != len(securityRule) {
		t.Errorf("catalog has %d HIPAA controls, the reference %d", hipaa, len(securityRule))
	}
	count := map[string]int{}
	for _, k := range c.Controls {
		count[k.Framework]++
	}
	if count[FrameworkCPG] != 20 || count[FrameworkInsurance] < 15 || count[FrameworkState] != 4 {
		t.Errorf("framework counts %v: want 20 CPGs, at least 15 insurance questions, 4 state overlays", count)
	}
}

func TestCatalogStandardsAndStates(t *testing.T) {
	c, err := LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Specifications("hipaa:164.312(e)(1)"); strings.Join(got, " ") != "hipaa:164.312(e)(2)(i) hipaa:164.312(e)(2)(ii)" {
		t.Errorf("specifications of 164.312(e)(1): %v", got)
	}
	for _, tc := range []struct {
		id, state string
		applies   bool
	}{
		{"state:ca-cmia", "CA", true},
		{"state:ca-cmia", "ca", true},
		{"state:ca-cmia", "TX", false},
		{"state:ca-cmia", "", false},
		{"state:tx-hb300", "TX", true},
		{"hipaa:164.312(d)", "", true},
		{"insurance:mfa-email", "NY", true},
	} {
		k, ok := c.Control(tc.id)
		if !ok {
			t.Fatalf("catalog lacks %s", tc.id)
		}
		if got := k.AppliesIn(tc.state); got != tc.applies {
			t.Errorf("%s in %q: applies %v, want %v", tc.id, tc.state, got, tc.applies)
		}
	}
	for _, kind := range []string{"risk-analysis-review", "workforce-training", "sanction-policy", "incident-response-plan",
		"baa-inventory", "restore-drill", "contingency-plan", "assigned-security-responsibility"} {
		if a, ok := c.AttestationKind(kind); !ok || a.ValidDays <= 0 {
			t.Errorf("attestation kind %s missing or without validity", kind)
		}
	}
}

func TestCatalogRejectsBadEntries(t *testing.T) {
	good := `version: "2026.11"
attestation_kinds:
  - {kind: sanction-policy, title: T, valid_days: 365}
controls:
  - {id: "hipaa:164.308(a)(1)(i)", citation: "45 CFR 164.308(a)(1)(i)", framework: hipaa, title: S, r_or_a: S, evidenced_by: specifications}
  - {id: "hipaa:164.308(a)(1)(ii)(C)", citation: "45 CFR 164.308(a)(1)(ii)(C)", framework: hipaa, title: T, r_or_a: R, standard: "hipaa:164.308(a)(1)(i)", evidenced_by: attestation, attestations: [sanction-policy]}
`
	if _, err := ParseCatalog([]byte(good)); err != nil {
		t.Fatalf("good catalog rejected: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"version", `"2026.11"`, `1`, "version"},
		{"evidenced_by", "evidenced_by: attestation", "evidenced_by: scans", `evidenced_by "scans"`},
		{"unknown kind", "[sanction-policy]}", "[training]}", `attestation kind "training" is not in attestation_kinds`},
		{"attestation without kind", ", attestations: [sanction-policy]}", "}", "needs the attestation kinds"},
		{"citation", `citation: "45 CFR 164.308(a)(1)(ii)(C)"`, `citation: "45 CFR 164.308(a)(1)(ii)(D)"`, "does not match the id"},
		{"r_or_a", "r_or_a: R,", "r_or_a: X,", `r_or_a "X"`},
		{"standard", `standard: "hipaa:164.308(a)(1)(i)"`, `standard: "hipaa:164.308(a)(2)"`, "is not a standard"},
		{"lonely standard", `standard: "hipaa:164.308(a)(1)(i)", `, "", "no control names it as its standard"},
		{"state without states", `framework: hipaa, title: T, r_or_a: R, standard: "hipaa:164.308(a)(1)(i)"`, `framework: hipaa, title: T, r_or_a: R, standard: "hipaa:164.308(a)(1)(i)", states: [CA]`, "only state overlays list states"},
		{"unknown field", "title: T,", "title: T, evidence: x,", "evidence"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, tc.from, tc.to, 1)
			if doc == good {
				t.Fatalf("replacement %q did not apply", tc.from)
			}
			_, err := ParseCatalog([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// Every technical safeguard a scan can evidence is cited by a shipped rule,
// and no shipped rule cites a control only an attestation can satisfy.
func TestEmbeddedPackLintsClean(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range e.Lint() {
		t.Error(i)
	}
	evidenced := 0
	for _, k := range e.Catalog().Controls {
		if strings.HasPrefix(k.ID, "hipaa:164.312(") && k.EvidencedBy.Rules() {
			evidenced++
		}
	}
	if evidenced < 8 {
		t.Errorf("only %d technical safeguards are marked scan-evidenced", evidenced)
	}
}

func TestLintNamesDisabledRules(t *testing.T) {
	// svc.smb-signing-not-required, tls.deprecated-protocol and tls.sslv3
	// are the rules evidencing integrity controls in transit.
	e, err := Load(Options{Disable: []string{"svc.smb-signing-not-required", "tls.deprecated-protocol", "tls.sslv3"}})
	if err != nil {
		t.Fatal(err)
	}
	issues := e.Lint()
	if len(issues) != 2 {
		t.Fatalf("want two issues, got %v", issues)
	}
	// tls.deprecated-protocol is also the only rule citing 164.312(c)(1).
	for i, want := range []struct{ control, rules string }{
		{"hipaa:164.312(c)(1)", "tls.deprecated-protocol)"},
		{"hipaa:164.312(e)(2)(i)", "svc.smb-signing-not-required, tls.deprecated-protocol, tls.sslv3)"},
	} {
		got := issues[i]
		if got.Level != LintWarning || got.Control != want.control || !strings.HasSuffix(got.Msg, "rules.disable drops "+want.rules) {
			t.Errorf("issue %d: %s", i, got)
		}
	}
}

func TestLintUserRules(t *testing.T) {
	dir := t.TempDir()
	rule := "rules:\n  - id: my.no-logoff\n    category: administrative\n    severity: low\n    title: T\n    remediation: R\n" +
		"    controls: [\"hipaa:164.312(a)(2)(iii)\", \"hipaa:164.312(d)\"]\n    match: obs.kind == \"check\" && obs.check == \"idle\"\n"
	if err := os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Load(Options{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	issues := e.Lint()
	if len(issues) != 1 {
		t.Fatalf("want one issue, got %v", issues)
	}
	want := "warning: " + filepath.Join(dir, "mine.yaml") + ":2: rule my.no-logoff: hipaa:164.312(a)(2)(iii): the catalog"
	if s := issues[0].String(); !strings.HasPrefix(s, want) || !strings.Contains(s, "by attestation") {
		t.Errorf("issue %q, want it to start %q", s, want)
	}
}

// Without the shipped pack, nothing evidences the technical safeguards: an
// error for each, naming no disabled rule.
func TestLintErrorsWhenPackLacksEvidence(t *testing.T) {
	dir := t.TempDir()
	rule := "rules:\n  - id: my.mfa\n    category: missing-mfa\n    severity: high\n    title: T\n    remediation: R\n" +
		"    controls: [\"hipaa:164.312(d)\"]\n    match: obs.kind == \"account\" && obs.mfa == \"false\"\n"
	if err := os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Load(Options{Dirs: []string{dir}, NoDefaults: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range e.Lint() {
		if i.Level != LintError || strings.Contains(i.Msg, "rules.disable") {
			t.Errorf("issue: %s", i)
		}
		got = append(got, i.Control)
	}
	want := []string{"hipaa:164.312(a)(1)", "hipaa:164.312(a)(2)(i)", "hipaa:164.312(b)", "hipaa:164.312(c)(1)",
		"hipaa:164.312(c)(2)", "hipaa:164.312(e)(1)", "hipaa:164.312(e)(2)(i)", "hipaa:164.312(e)(2)(ii)"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("unevidenced: %v\nwant        %v", got, want)
	}
}
