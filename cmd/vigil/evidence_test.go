package main

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

// evidenceStore writes a scan with observations, its findings and an
// acceptance into the data directory's store, signed with its key.
func evidenceStore(t *testing.T) (cfg, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "vigil-data")
	cfg = writeConfig(t, "organization: Glow Aesthetics\ndata_dir: "+dataDir+
		"\nlocations: [{id: downtown, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]\n")
	key, err := evidence.LoadOrCreateKey(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, store.DefaultFileName), sqlite.WithEvidenceKey(key))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	scan := observe.Scan{ID: "s1", StartedAt: at, FinishedAt: at.Add(time.Minute), Locations: []string{"downtown"}, Complete: true}
	f := observe.Finding{Rule: "net.rdp-reachable-from-guest", Category: "exposed-service", Severity: observe.High,
		Location: "downtown", Target: "127.0.0.1:3389", Title: "RDP"}
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	obs := []observe.Observation{{Kind: observe.KindService, Location: "downtown", Host: "127.0.0.1", Port: 3389, Proto: "tcp", Source: "nmap", At: at}}
	if err := st.AddObservations(ctx, "s1", obs); err != nil {
		t.Fatal(err)
	}
	cur, _, err := st.FinishScan(ctx, scan, []observe.Finding{f})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DecideFinding(ctx, cur[0].ID, observe.Decision{Status: observe.StatusAccepted, By: "owner", Reason: "isolated by the ISP router", Expires: time.Now().AddDate(0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	return cfg, dataDir
}

func TestEvidenceExportVerifyTamper(t *testing.T) {
	cfg, dataDir := evidenceStore(t)
	out := filepath.Join(t.TempDir(), "evidence.zip")

	stdout, stderr, code := vigil(t, "evidence", "export", "--config", cfg, "--output", out)
	if code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	pub := regexp.MustCompile(`public key: (ed25519:[0-9a-f]{64})`).FindStringSubmatch(stdout)
	if pub == nil || !strings.Contains(stdout, "wrote "+out+": 5 entries (seq 1-5)") {
		t.Fatalf("export stdout:\n%s", stdout)
	}
	if !strings.Contains(stderr, `msg="evidence exported"`) || !strings.Contains(stderr, "entries=5") {
		t.Errorf("export is not logged:\n%s", stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("archive %v, mode %v: want private to the owner", err, fi.Mode())
	}

	stdout, stderr, code = vigil(t, "evidence", "verify", out, "--key", pub[1])
	if code != 0 || !strings.Contains(stdout, "verified: 5 entries, seq 1-5") || !strings.Contains(stdout, "1 observations") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	keyFile := filepath.Join(t.TempDir(), "auditor.pub")
	os.WriteFile(keyFile, []byte(pub[1]+"\n"), 0o644)
	if _, _, code := vigil(t, "evidence", "verify", "--key", keyFile, out); code != 0 {
		t.Errorf("verify --key FILE: exit %d", code)
	}
	other, _ := evidence.NewKey(nil)
	stdout, _, code = vigil(t, "evidence", "verify", out, "--key", evidence.FormatPublicKey(other.Public()))
	if code != 1 || !strings.Contains(stdout, "not the pinned key") {
		t.Errorf("verify with another pinned key: exit %d\n%s", code, stdout)
	}

	// Edit one byte of the acceptance's payload (entry 5).
	tampered := filepath.Join(t.TempDir(), "tampered.zip")
	rewriteZip(t, out, tampered, func(name string, b []byte) []byte {
		if name != evidence.EntriesFile {
			return b
		}
		return bytes.Replace(b, []byte("isolated by"), []byte("isolated bY"), 1)
	})
	stdout, stderr, code = vigil(t, "evidence", "verify", tampered)
	if code != 1 || !strings.Contains(stdout, "NOT VERIFIED") || !strings.Contains(stdout, "entry 5: payload does not match its payload_digest") {
		t.Errorf("verify tampered: exit %d\n%s\n%s", code, stdout, stderr)
	}

	garbage := filepath.Join(t.TempDir(), "garbage.zip")
	os.WriteFile(garbage, []byte("not an archive"), 0o644)
	for _, args := range [][]string{
		{"evidence", "verify", garbage},
		{"evidence", "verify", filepath.Join(t.TempDir(), "missing.zip")},
		{"evidence", "verify"},
		{"evidence", "export", "--config", cfg},
		{"evidence", "export", "--config", cfg, "--output", out, "--since", "last tuesday"},
		{"evidence", "frobnicate"},
	} {
		if _, stderr, code := vigil(t, args...); code != 2 || strings.TrimSpace(stderr) == "" {
			t.Errorf("vigil %v: exit %d, stderr %q; want 2 with a reason", args, code, stderr)
		}
	}

	// An export of a database someone edited (triggers dropped) says so.
	db, err := sql.Open("sqlite", filepath.Join(dataDir, store.DefaultFileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`DROP TRIGGER evidence_log_no_update`, `UPDATE evidence_log SET subject = 'someone-else' WHERE seq = 4`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	_, stderr, code = vigil(t, "evidence", "export", "--config", cfg, "--output", out)
	if code != 1 || !strings.Contains(stderr, "does not verify: entry 4: hash does not match its contents") {
		t.Errorf("export of a tampered database: exit %d\n%s", code, stderr)
	}
}

func TestEvidenceHelpHasExample(t *testing.T) {
	for _, verb := range []string{"export", "verify"} {
		_, stderr, code := vigil(t, "evidence", verb, "--help")
		if code != 0 || !strings.Contains(stderr, "Example:") || !strings.Contains(stderr, "Exit codes:") {
			t.Errorf("evidence %s --help: exit %d\n%s", verb, code, stderr)
		}
	}
}

// rewriteZip copies the zip at src to dst through edit.
func rewriteZip(t *testing.T, src, dst string, edit func(name string, b []byte) []byte) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(f.Name)
		w.Write(edit(f.Name, b))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
