package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/pgtest"
)

// A practice that outgrows its SQLite file moves to PostgreSQL with one
// command and keeps working there: the same findings, the same decisions,
// an evidence log that still verifies, and scans that now land in
// PostgreSQL.
func TestDBMoveToPostgres(t *testing.T) {
	pg := pgtest.URL(t)
	dir := t.TempDir()
	recent := time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly)
	emr := filepath.Join(dir, "emr.csv")
	if err := os.WriteFile(emr, []byte("username,email,enabled,mfa,last_login,is_admin\nadmin,it@glow.example,true,false,"+recent+",true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf("organization: Glow\ndata_dir: %q\nlocations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]\nidentity: [{type: csv, system: emr, path: %q}]\n",
		filepath.Join(dir, "data"), emr))
	if _, stderr, code := vigil(t, "scan", "--config", cfg, "--only", "identity", "--quiet"); code == 2 {
		t.Fatalf("scan: %s", stderr)
	}
	before, _, _ := vigil(t, "findings", "list", "--config", cfg, "--format", "json")
	if _, stderr, code := vigil(t, "findings", "accept", "", "--config", cfg); code != 2 {
		t.Errorf("accept without an id: exit %d %s", code, stderr)
	}

	if _, stderr, code := vigil(t, "db", "move", "--config", cfg); code != 2 || !strings.Contains(stderr, "--to is required") {
		t.Errorf("move without --to: exit %d %s", code, stderr)
	}
	out, stderr, code := vigil(t, "db", "move", "--config", cfg, "--to", pg)
	if code != 0 || !strings.Contains(out, "moved") || !strings.Contains(stderr, "evidence_log") {
		t.Fatalf("db move: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out+stderr, "password") {
		t.Errorf("move output mentions a password:\n%s%s", out, stderr)
	}
	after, stderr, code := vigil(t, "findings", "list", "--config", cfg, "--db", pg, "--format", "json")
	if code != 0 || after != before {
		t.Fatalf("findings on PostgreSQL differ (exit %d, %s):\n%s\nwant\n%s", code, stderr, after, before)
	}
	if out, _, code := vigil(t, "db", "migrate", "--db", pg); code != 0 || !strings.Contains(out, "schema v") {
		t.Errorf("db migrate: exit %d %s", code, out)
	}
	// Moving again into the same database is refused: it is not empty.
	if _, stderr, code := vigil(t, "db", "move", "--config", cfg, "--to", pg); code != 2 || !strings.Contains(stderr, "not empty") {
		t.Errorf("second move: exit %d %s", code, stderr)
	}
	// vigil keeps working on PostgreSQL: a scan, a decision, an export that verifies.
	if _, stderr, code := vigil(t, "scan", "--config", cfg, "--only", "identity", "--quiet", "--db", pg); code == 2 {
		t.Fatalf("scan on PostgreSQL: %s", stderr)
	}
	if out, stderr, code := vigil(t, "risk", "accept", "id.admin-without-mfa@organisation", "--config", cfg, "--db", pg,
		"--by", "Dr. Lee", "--reason", "vendor fix due", "--for", "30"); code != 0 {
		t.Fatalf("risk accept on PostgreSQL: exit %d %s%s", code, out, stderr)
	}
	archive := filepath.Join(dir, "evidence.tar")
	if _, stderr, code := vigil(t, "evidence", "export", "--config", cfg, "--db", pg, "--output", archive); code != 0 {
		t.Fatalf("export from PostgreSQL: %s", stderr)
	}
	if out, stderr, code := vigil(t, "evidence", "verify", archive); code != 0 || !strings.Contains(out, "verified") {
		t.Errorf("verify: exit %d %s%s", code, out, stderr)
	}
}
