package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The demo's sources are written out whole: the exports and roster with
// dates relative to now, the SBOM, and an OSV database with every
// ecosystem the lab's services and SBOM need (Debian for the daemons'
// banners), so `make demo` ends with a complete scan.
func TestWriteSources(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	yaml, err := writeSources(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"emr-users.csv", "m365-users.csv", "staff.csv"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "NOW-") {
			t.Errorf("%s still has NOW-N placeholders", f)
		}
		if !strings.Contains(yaml, f) {
			t.Errorf("the config does not name %s:\n%s", f, yaml)
		}
	}
	for _, eco := range []string{"Debian", "npm", "Go"} {
		if _, err := os.Stat(filepath.Join(dir, "osv-db", "osv-scanner", eco, "all.zip")); err != nil {
			t.Errorf("the demo's OSV database lacks %s: %v", eco, err)
		}
	}
}
