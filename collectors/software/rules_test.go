package software

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

// The tests shipped inside rules/pack/software.yaml (the embedded pack's
// own test run covers only rules/pack/tests).
func TestRulePackTests(t *testing.T) {
	e, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.RunTestFile("../../rules/pack/software.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 3 {
		t.Fatalf("%d tests ran", len(res))
	}
	for _, r := range res {
		for _, f := range r.Failures {
			t.Errorf("%s: %s", r.Name, f)
		}
	}
}

// What a scan reports: the collector's observations through the rules.
func TestFindings(t *testing.T) {
	s := newScanner(testSite(t), testDB(t), "web", "sbom", "images")
	obs, err := s.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	public := svc("203.0.113.10", 22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u2", "protocol 2.0")
	public.InternetFacing = true
	more, err := s.MatchServices(context.Background(), []observe.Observation{public,
		svc("10.10.3.4", 22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", "protocol 2.0")})
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range e.Evaluate(append(obs, more...), time.Unix(0, 0)) {
		if f.Category != "vulnerable-software" {
			continue
		}
		got = append(got, f.Rule+" "+f.Target+" "+string(f.Severity))
		if f.Rule == "sw.vulnerable-service" && !slices.Equal(f.Evidence["aliases"].([]string), []string{"CVE-2024-6387"}) {
			t.Errorf("evidence %v", f.Evidence)
		}
	}
	want := []string{
		"sw.vulnerable-package sbom/kiosk.cdx.json:minimist@1.2.5 critical",
		"sw.vulnerable-service 203.0.113.10:22 critical",
		"sw.vulnerable-package images/kiosk.tar:openssh@1:9.2p1-2 high",
		"sw.vulnerable-package sbom/booking.spdx.json:werkzeug@2.2.2 high",
		"sw.vulnerable-package web/package-lock.json:lodash@4.17.20 high",
		"sw.vulnerable-package sbom/kiosk.cdx.json:golang.org/x/crypto@v0.14.0 medium",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings\n%q\nwant\n%q", got, want)
	}
}
