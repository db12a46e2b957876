package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func attestConfig(t *testing.T) (cfg, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "data")
	return writeConfig(t, fmt.Sprintf(`organization: T
data_dir: %q
locations: [{id: austin, state: TX, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
`, dataDir)), dataDir
}

func daysAgo(n int) string { return time.Now().UTC().AddDate(0, 0, -n).Format(time.DateOnly) }

type dueItem struct {
	Kind, Location, State string
	Days                  int
}

func due(t *testing.T, cfg string) ([]dueItem, int) {
	t.Helper()
	out, stderr, code := vigil(t, "attest", "due", "--config", cfg, "--format", "json")
	if code == 2 {
		t.Fatalf("attest due: exit 2\n%s", stderr)
	}
	var items []dueItem
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return items, code
}

// add → list → due: a person records what no scan sees, the document is
// kept by its hash, and `due` says what is still to do.
func TestAttestAddListDue(t *testing.T) {
	cfg, dataDir := attestConfig(t)
	doc := filepath.Join(t.TempDir(), "sign-in.pdf")
	body := []byte("%PDF-1.4 sign-in sheet, 12 names")
	if err := os.WriteFile(doc, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := vigil(t, "attest", "add", "--config", cfg, "--kind", "workforce-training", "--date", daysAgo(10),
		"--by", "Dana Ruiz", "--location", "austin", "--subject", "new hires", "--document", doc)
	if code != 0 || !strings.HasPrefix(out, "recorded att-") || !strings.Contains(out, "workforce-training at austin") {
		t.Fatalf("attest add: exit %d\n%s%s", code, out, stderr)
	}
	// 360 days ago, valid 365 days: expiring in 5.
	if _, stderr, code := vigil(t, "attest", "add", "--config", cfg, "--kind", "restore-drill", "--date", daysAgo(360),
		"--by", "it vendor", "--result", "pass"); code != 0 {
		t.Fatalf("attest add restore-drill: exit %d\n%s", code, stderr)
	}

	out, stderr, code = vigil(t, "attest", "list", "--config", cfg, "--format", "json")
	if code != 0 {
		t.Fatalf("attest list: exit %d\n%s", code, stderr)
	}
	var list []struct {
		ID, Kind, Location, By, Subject, Document string
		Counts                                    bool
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	sum := sha256.Sum256(body)
	if len(list) != 2 || list[1].Kind != "workforce-training" || list[1].Location != "austin" || list[1].By != "Dana Ruiz" ||
		list[1].Document != hex.EncodeToString(sum[:]) || !list[1].Counts || list[0].Kind != "restore-drill" {
		t.Fatalf("list = %+v", list)
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, "documents", "sha256", list[1].Document[:2], list[1].Document)); err != nil || string(b) != string(body) {
		t.Errorf("stored document: %q, %v", b, err)
	}
	if out, _, _ := vigil(t, "attest", "list", "--config", cfg); !strings.Contains(out, "workforce-training") || !strings.Contains(out, "sha256:"+list[1].Document[:12]) {
		t.Errorf("text list:\n%s", out)
	}

	items, code := due(t, cfg)
	if code != 1 {
		t.Errorf("due with kinds missing: exit %d, want 1", code)
	}
	var missing []string
	for _, it := range items {
		switch {
		case it.State == "missing":
			missing = append(missing, it.Kind)
		case it.Kind == "restore-drill":
			if it.State != "expiring" || it.Days < 4 || it.Days > 5 {
				t.Errorf("restore-drill %+v, want expiring in 5 days", it)
			}
		default:
			t.Errorf("unexpected %+v", it)
		}
	}
	if slices.Contains(missing, "workforce-training") || slices.Contains(missing, "restore-drill") || !slices.Contains(missing, "risk-analysis-review") {
		t.Errorf("missing %v", missing)
	}
	// Massachusetts' WISP is not asked of a Texas location.
	if slices.Contains(missing, "wisp") {
		t.Errorf("missing includes wisp for a TX-only organisation: %v", missing)
	}

	// Once every kind is recorded only the expiring drill is listed: exit 0.
	for _, kind := range missing {
		if _, stderr, code := vigil(t, "attest", "add", "--config", cfg, "--kind", kind, "--date", daysAgo(1), "--owner", "Dana Ruiz"); code != 0 {
			t.Fatalf("attest add %s: exit %d\n%s", kind, code, stderr)
		}
	}
	if items, code := due(t, cfg); code != 0 || len(items) != 1 || items[0].Kind != "restore-drill" {
		t.Errorf("due after recording every kind: exit %d, %+v; want 0 and the expiring drill", code, items)
	}
	// An expired record at a location: exit 1.
	if _, stderr, code := vigil(t, "attest", "add", "--config", cfg, "--kind", "sanction-policy", "--date", daysAgo(400),
		"--by", "Dana Ruiz", "--location", "austin"); code != 0 {
		t.Fatalf("attest add: exit %d\n%s", code, stderr)
	}
	out, _, code = vigil(t, "attest", "due", "--config", cfg)
	if code != 1 || !strings.Contains(out, "expired") || !strings.Contains(out, "sanction-policy") {
		t.Errorf("due with an expired record: exit %d\n%s", code, out)
	}

	// The attestations are in the evidence log, and it still verifies.
	archive := filepath.Join(t.TempDir(), "evidence.zip")
	if _, stderr, code := vigil(t, "evidence", "export", "--config", cfg, "--output", archive); code != 0 {
		t.Fatalf("evidence export: exit %d\n%s", code, stderr)
	}
	out, stderr, code = vigil(t, "evidence", "verify", archive)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Errorf("evidence verify: exit %d\n%s%s", code, out, stderr)
	}
}

// Bad input exits 2 with a message that says what to do, and records nothing.
func TestAttestAddRefusesBadInput(t *testing.T) {
	cfg, _ := attestConfig(t)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown kind", []string{"--kind", "coffee-break", "--date", daysAgo(1), "--by", "x"},
			[]string{`kind "coffee-break" is not an attestation kind`, "workforce-training", "restore-drill"}},
		{"future date", []string{"--kind", "restore-drill", "--date", time.Now().AddDate(0, 0, 7).Format(time.DateOnly), "--by", "x"},
			[]string{"is in the future"}},
		{"bad date", []string{"--kind", "restore-drill", "--date", "03/02/2026", "--by", "x"}, []string{"--date", "YYYY-MM-DD"}},
		{"unknown location", []string{"--kind", "restore-drill", "--date", daysAgo(1), "--by", "x", "--location", "dallas"},
			[]string{`"dallas"`, "austin"}},
		{"nobody", []string{"--kind", "restore-drill", "--date", daysAgo(1)}, []string{"by or owner is required"}},
		{"missing document", []string{"--kind", "restore-drill", "--date", daysAgo(1), "--by", "x", "--document", "/nonexistent/x.pdf"},
			[]string{"--document"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := vigil(t, append([]string{"attest", "add", "--config", cfg}, tc.args...)...)
			if code != 2 || out != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
	out, _, code := vigil(t, "attest", "list", "--config", cfg, "--format", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("after refused adds: exit %d, %s", code, out)
	}
	if _, _, code := vigil(t, "attest", "due", "--config", cfg, "--within", "soon"); code != 2 {
		t.Errorf("--within soon: exit %d, want 2", code)
	}
	if _, stderr, code := vigil(t, "attest", "add", "--help"); code != 0 || !strings.Contains(stderr, "Example:") {
		t.Errorf("--help: exit %d\n%s", code, stderr)
	}
}

// With a roster that has hire dates, `due` names each new hire at a Texas
// location past (or near) the 90-day training deadline with no training
// record naming them, and exits 1 while one is overdue.
func TestAttestDueNewHires(t *testing.T) {
	dir := t.TempDir()
	roster := filepath.Join(dir, "staff.csv")
	if err := os.WriteFile(roster, []byte("email,username,hire_date,location,end_date\n"+
		"ana@glow.example,ana,"+daysAgo(100)+",austin,\n"+ // overdue by 10 days
		"bo@glow.example,bo,"+daysAgo(70)+",austin,\n"+ // due in 20 days
		"cy@glow.example,cy,"+daysAgo(100)+",sf,\n"+ // California: no statutory deadline
		"dee@glow.example,dee,"+daysAgo(100)+",austin,"+daysAgo(2)+"\n"+ // left
		"eve@glow.example,eve,"+daysAgo(100)+",austin,\n"+ // trained on day 40
		"bad@glow.example,bad,31/12/2025,austin,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`organization: T
data_dir: %q
roster: %q
locations:
  - {id: austin, state: TX, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}
  - {id: sf, state: CA, segments: [{name: s, cidr: 127.0.0.2/32, role: servers}]}
`, filepath.Join(dir, "data"), roster))
	if _, stderr, code := vigil(t, "attest", "add", "--config", cfg, "--kind", "workforce-training", "--date", daysAgo(60),
		"--by", "Dana Ruiz", "--subject", "Eve Ng <EVE@glow.example>; zed"); code != 0 {
		t.Fatalf("attest add: exit %d\n%s", code, stderr)
	}
	type person struct {
		State, Person, Location, Kind, Control, Citation string
		Days                                             int
	}
	people := func() ([]person, int, string) {
		out, stderr, code := vigil(t, "attest", "due", "--config", cfg, "--format", "json")
		if code == 2 {
			t.Fatalf("attest due: exit 2\n%s", stderr)
		}
		var all, got []person
		if err := json.Unmarshal([]byte(out), &all); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, p := range all {
			if p.Person != "" {
				got = append(got, p)
			}
		}
		return got, code, stderr
	}
	got, code, stderr := people()
	if code != 1 || len(got) != 2 ||
		got[0] != (person{"missing", "ana@glow.example", "austin", "workforce-training", "state:tx-hb300", "Tex. Health & Safety Code §181.101(b)", -10}) ||
		got[1].Person != "bo@glow.example" || got[1].State != "expiring" || got[1].Days < 19 || got[1].Days > 20 {
		t.Errorf("exit %d, people %+v; want ana missing (10 days late), bo expiring in 20 days", code, got)
	}
	if !strings.Contains(stderr, "staff.csv:7: start_date") {
		t.Errorf("the bad roster row is not reported with its line: %q", stderr)
	}
	out, _, _ := vigil(t, "attest", "due", "--config", cfg)
	if !strings.Contains(out, "NEW HIRE") || !strings.Contains(out, "ana@glow.example") || !strings.Contains(out, "§181.101(b)") {
		t.Errorf("text output does not name the overdue new hire:\n%s", out)
	}

	// Ana's training, recorded late with her name, clears her.
	if _, stderr, code := vigil(t, "attest", "add", "--config", cfg, "--kind", "workforce-training", "--date", daysAgo(1),
		"--by", "Dana Ruiz", "--location", "austin", "--subject", "ana"); code != 0 {
		t.Fatalf("attest add: exit %d\n%s", code, stderr)
	}
	if got, _, _ := people(); len(got) != 1 || got[0].Person != "bo@glow.example" {
		t.Errorf("after ana's training: %+v, want only bo", got)
	}

	// An unreadable roster stops the command: nobody's deadline could be checked.
	os.Remove(roster)
	if _, stderr, code := vigil(t, "attest", "due", "--config", cfg); code != 2 || !strings.Contains(stderr, "roster") {
		t.Errorf("missing roster: exit %d, %q; want 2 naming the roster", code, stderr)
	}
}
