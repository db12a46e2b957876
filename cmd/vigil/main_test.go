package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/pgtest"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-cli-test")
	if err != nil {
		panic(err)
	}
	vigilBin = filepath.Join(dir, "vigil")
	out, err := exec.Command("go", "build", "-o", vigilBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	pgtest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

func vigil(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("vigil %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigExits2WithFileAndLine(t *testing.T) {
	cfg := writeConfig(t, "organization: T\nlocations:\n  - id: a\n    segments:\n      - {name: s, cidr: 10.0.0.0/33, role: lobby}\n")
	_, stderr, code := vigil(t, "scan", "--config", cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
	}
	for _, want := range []string{"vigil.yaml:5: locations[0].segments[0].cidr: invalid CIDR", "unknown role \"lobby\""} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	cfg := writeConfig(t, "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]\n")
	cases := [][]string{
		{"scan"},
		{"scan", "--config", cfg, "--format", "pdf"},
		{"scan", "--config", cfg, "--fail-on", "scary"},
		{"scan", "--config", cfg, "--location", "nowhere"},
		{"scan", "--config", cfg, "--baseline", filepath.Join(t.TempDir(), "missing.json")},
		{"scan", "--config", cfg, "--vantage", "gust"},
		{"scan", "--config", cfg, "--output", "/nonexistent-dir/out.json"},
		{"frobnicate"},
	}
	for _, args := range cases {
		_, stderr, code := vigil(t, args...)
		if code != 2 || strings.TrimSpace(stderr) == "" {
			t.Errorf("vigil %v: exit %d, stderr %q; want 2 with a reason", args, code, stderr)
		}
	}
}

func TestHelpHasExample(t *testing.T) {
	_, stderr, code := vigil(t, "scan", "--help")
	if code != 0 || !strings.Contains(stderr, "Example:") || !strings.Contains(stderr, "--fail-on") {
		t.Errorf("scan --help: exit %d\n%s", code, stderr)
	}
	out, _, code := vigil(t, "help")
	if code != 0 || !strings.Contains(out, "scan") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

func TestDryRunSendsNothingAndShowsPlan(t *testing.T) {
	if _, err := exec.LookPath("nmap"); err != nil {
		t.Skip("nmap not installed: apt-get install nmap")
	}
	cfg := writeConfig(t, "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}], ports: '22,443'}]\n")
	out, stderr, code := vigil(t, "scan", "--config", cfg, "--dry-run")
	if code != 0 || !strings.Contains(out, "127.0.0.1/32") || !strings.Contains(out, "-p ") {
		t.Fatalf("dry-run: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg), "vigil-data")); err == nil {
		t.Error("dry-run created the data directory")
	}
}

func TestRulesTestAndLint(t *testing.T) {
	out, _, code := vigil(t, "rules", "test")
	if code != 0 || !strings.Contains(out, "0 failed") {
		t.Errorf("rules test: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("rules:\n  - id: my.bad\n    category: weak-tls\n    severity: high\n    title: T\n    remediation: R\n    controls: [\"hipaa:164.312(e)(1)\"]\n    match: obs.kind ==\n"), 0o644)
	_, stderr, code := vigil(t, "rules", "lint", dir)
	if code == 0 || !strings.Contains(stderr, "bad.yaml:8") {
		t.Errorf("rules lint on a bad rule: exit %d\n%s", code, stderr)
	}
}

// Ctrl-C during a scan: vigil stops promptly, stores the scan as
// incomplete, exits 2, and the database stays consistent and unlocked.
func TestInterruptKeepsStoreConsistent(t *testing.T) {
	if _, err := exec.LookPath("nmap"); err != nil {
		t.Skip("nmap not installed: apt-get install nmap")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	// Every TCP port of loopback with version detection: long enough to
	// interrupt, and only ever this machine's loopback.
	cfg := writeConfig(t, "organization: T\ndata_dir: data\nlocations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}], ports: '1-65535'}]\nscan: {rate: 2000}\n")
	cmd := exec.Command(vigilBin, "scan", "--config", cfg, "--format", "json", "--quiet")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("vigil did not exit within 30s of Ctrl-C")
	}
	t.Logf("exited %v after SIGINT", time.Since(sent).Round(time.Millisecond))
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("exit %d after Ctrl-C, want 2; stderr:\n%s", code, e.String())
	}
	var out struct {
		Scan struct {
			ID       string `json:"id"`
			Complete bool   `json:"complete"`
		} `json:"scan"`
	}
	if err := json.Unmarshal(o.Bytes(), &out); err != nil {
		t.Fatalf("interrupted scan printed no JSON report: %v\n%s", err, o.String())
	}
	if out.Scan.Complete {
		t.Error("interrupted scan reported complete")
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(filepath.Dir(cfg), "data", "vigil.db"))
	if err != nil {
		t.Fatalf("store after Ctrl-C: %v", err)
	}
	defer st.Close()
	scans, err := st.Scans(context.Background(), 10)
	if err != nil || len(scans) != 1 || scans[0].ID != out.Scan.ID || scans[0].Complete || scans[0].FinishedAt.IsZero() {
		t.Fatalf("stored scans = %+v, %v; want the one incomplete, finished scan", scans, err)
	}
	if _, err := st.Findings(context.Background(), store.FindingFilter{}); err != nil {
		t.Fatal(err)
	}
}
