package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store/sqlite"
)

// vigil report writes each kind from a store, logs who generated what with
// the output's SHA-256, and refuses bad flags with exit 2.
func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, []byte("organization: Glow Aesthetics\ndata_dir: .\nlocations:\n  - id: downtown\n    name: Downtown Clinic\n    state: CA\n"+
		"    segments:\n      - {name: front-desk, cidr: 10.10.1.0/24, role: front-desk}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC()
	sc := observe.Scan{ID: "s1", StartedAt: at, FinishedAt: at.Add(time.Minute), Locations: []string{"downtown"}, Complete: true}
	if err := st.BeginScan(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.FinishScan(ctx, sc, []observe.Finding{{Rule: "net.remote-access-exposed", Category: "exposed-service",
		Severity: observe.High, Title: "RDP", Location: "downtown", Target: "10.10.1.5:3389", Controls: []string{"insurance:rdp-exposed"}}}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	for _, tc := range []struct{ kind, out, want string }{
		{"ocr", "ocr.pdf", "%PDF-"},
		{"insurance", "ins.csv", "insurance:rdp-exposed"},
		{"diligence", "dd.html", "<!DOCTYPE html>"},
		{"ocr", "ocr.json", `"kind": "ocr"`},
	} {
		var stdout, stderr bytes.Buffer
		out := filepath.Join(dir, tc.out)
		if code := run([]string{"report", "--config", cfg, "--kind", tc.kind, "--output", out}, &stdout, &stderr); code != exitOK {
			t.Fatalf("%s: exit %d: %s", tc.out, code, stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %v, lacks %q", tc.out, err, tc.want)
		}
		if log := stderr.String(); !strings.Contains(log, `msg="report generated"`) || !strings.Contains(log, "sha256=") || !strings.Contains(log, "user=") {
			t.Errorf("%s: audit line = %q", tc.out, log)
		}
	}
	for _, args := range [][]string{
		{"--config", cfg, "--kind", "soc2", "--output", filepath.Join(dir, "x.html")},
		{"--config", cfg, "--kind", "ocr"},
		{"--config", cfg, "--kind", "ocr", "--output", filepath.Join(dir, "x.html"), "--as-of", "March"},
		{"--config", cfg, "--kind", "ocr", "--output", filepath.Join(dir, "x.docx"), "--format", "docx"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"report"}, args...), &stdout, &stderr); code != exitError {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
