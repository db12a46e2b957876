package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/collectors/software"
)

// vigil scan --only software reads the inventory offline against a local
// OSV database and reports each vulnerable package as FILE:PACKAGE@VERSION,
// without nmap and without touching any location.
func TestScanOnlySoftware(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "osv")
	if err := software.BuildDB("../../collectors/software/testdata/osv", db); err != nil {
		t.Fatal(err)
	}
	sbom, _ := filepath.Abs("../../collectors/software/testdata/inputs/sbom/kiosk.cdx.json")
	cfg := writeConfig(t, fmt.Sprintf(`organization: T
data_dir: %q
osv_db: %q
locations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
software: [{path: %q}]
`, filepath.Join(dir, "data"), db, sbom))
	out, stderr, code := vigil(t, "scan", "--config", cfg, "--only", "software", "--format", "json", "--fail-on", "critical")
	// x/crypto's advisory is critical: exit 1 at --fail-on critical.
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "I!") || strings.Contains(stderr, "Loaded") {
		t.Errorf("library progress leaked onto stderr without --verbose:\n%s", stderr)
	}
	var rep struct {
		Scan struct {
			Locations []string `json:"locations"`
			Sources   []string `json:"sources"`
		} `json:"scan"`
		Findings []struct {
			Rule, Category, Target, Location string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []string
	for _, f := range rep.Findings {
		if f.Category != "vulnerable-software" || f.Location != "" {
			t.Errorf("finding %+v: want vulnerable-software, organisation-wide", f)
		}
		got = append(got, f.Rule+" "+f.Target)
	}
	sort.Strings(got)
	// lodash 4.17.21 is the fixed version: no finding.
	want := []string{
		"sw.vulnerable-package " + sbom + ":golang.org/x/crypto@v0.14.0",
		"sw.vulnerable-package " + sbom + ":minimist@1.2.5",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(rep.Scan.Locations) != 0 || !slices.Equal(rep.Scan.Sources, []string{"osv-scanner"}) {
		t.Errorf("scan locations %v sources %v: want none and osv-scanner", rep.Scan.Locations, rep.Scan.Sources)
	}

	// The scan's writes are in the evidence log, checkpointed with the
	// data directory's key: an export verifies offline.
	archive := filepath.Join(dir, "evidence.tar")
	if _, stderr, code := vigil(t, "evidence", "export", "--config", cfg, "--output", archive); code != 0 {
		t.Fatalf("evidence export: exit %d\n%s", code, stderr)
	}
	out, stderr, code = vigil(t, "evidence", "verify", archive)
	if code != 0 || !strings.Contains(out, "verified") || strings.Contains(out, " 0 checkpoints") {
		t.Errorf("evidence verify: exit %d, want 0 with signed checkpoints\n%s%s", code, out, stderr)
	}
}
