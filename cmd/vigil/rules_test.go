package main

import (
	"strings"
	"testing"
)

func TestRulesLintCatalogCoverage(t *testing.T) {
	out, stderr, code := vigil(t, "rules", "lint")
	if code != 0 || !strings.Contains(out, "(version 20") || strings.Contains(out, "warning") {
		t.Errorf("rules lint: exit %d\n%s%s", code, out, stderr)
	}

	// A configuration that drops every rule evidencing integrity controls in
	// transit leaves 164.312(e)(2)(i) unassessable: a warning, which
	// --strict turns into a failure.
	cfg := writeConfig(t, "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]\n"+
		"rules: {disable: [svc.smb-signing-not-required, tls.deprecated-protocol, tls.sslv3]}\n")
	out, stderr, code = vigil(t, "rules", "lint", "--config", cfg)
	want := "warning: hipaa:164.312(e)(2)(i): the catalog says scans evidence it, but no loaded rule cites it"
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "0 error(s), 2 warning(s)") {
		t.Errorf("rules lint --config: exit %d\n%s%s", code, out, stderr)
	}
	for _, args := range [][]string{
		{"rules", "lint", "--strict", "--config", cfg},
		{"rules", "--strict", "--config", cfg, "lint"},
	} {
		if out, stderr, code := vigil(t, args...); code != exitFindings || !strings.Contains(out, want) {
			t.Errorf("vigil %v: exit %d, want %d\n%s%s", args, code, exitFindings, out, stderr)
		}
	}
}
