package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
)

func evidenceKey(t testing.TB, dir string) *evidence.Key {
	t.Helper()
	k, err := evidence.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func exportT(t testing.TB, s Backend, k *evidence.Key) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := evidence.Export(context.Background(), &buf, s.Evidence(), k, evidence.ExportOptions{}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

func verifyT(b []byte) (*evidence.Summary, error) {
	return evidence.VerifyArchive(context.Background(), bytes.NewReader(b), int64(len(b)), evidence.VerifyOptions{})
}

// kinds lists the log's entries as "seq kind subject".
func kinds(t *testing.T, s Backend) []string {
	t.Helper()
	var out []string
	err := s.Evidence().EvidenceEntries(context.Background(), 1, 1<<62, "", func(e *evidence.Entry) error {
		out = append(out, string(e.Kind)+" "+e.Subject)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func serviceObs(n int) []observe.Observation {
	obs := make([]observe.Observation, n)
	for i := range obs {
		obs[i] = observe.Observation{Kind: observe.KindService, Location: "downtown", Segment: "clinical", Vantage: "guest",
			Host: "10.10.2.5", Port: 3389 + i, Proto: "tcp", Source: "nmap", At: at(0),
			Attrs: map[string]any{"service": "ms-wbt-server", "banner": "caf\xe9"}}
	}
	obs[0].Attrs = nil
	return obs
}

// populate runs two scans and a person's decision through the store.
func populate(t *testing.T, s Backend) {
	t.Helper()
	ctx := context.Background()
	s1 := observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}
	if err := s.BeginScan(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if err := s.AddObservations(ctx, "s1", serviceObs(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddObservations(ctx, "s1", serviceObs(2)); err != nil {
		t.Fatal(err)
	}
	finishT(t, s, s1, rdp, telnet)
	finishT(t, s, observe.Scan{ID: "s2", StartedAt: at(24), FinishedAt: at(24), Locations: []string{"downtown"}, Complete: true}, rdp)
	if _, err := s.DecideFinding(ctx, rdp.ID, observe.Decision{Status: observe.StatusAccepted, By: "dr. lee", Reason: "guest Wi-Fi is isolated by the ISP router", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
}

func testEvidenceLogsEveryWrite(t *testing.T, h *Harness) {
	dir := t.TempDir()
	k := evidenceKey(t, dir)
	s := h.open(t, h.New(t), WithEvidenceKey(k), WithClock(func() time.Time { return at(48) }))
	populate(t, s)

	want := []string{
		"key " + k.Fingerprint(),
		"observations s1", "observations s1",
		"scan s1", "finding-event " + rdp.ID, "finding-event " + telnet.ID,
		"scan s2", "finding-event " + rdp.ID, "finding-event " + telnet.ID, // seen, resolved
		"acceptance " + rdp.ID,
	}
	if got := kinds(t, s); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every append batch ends with a checkpoint.
	var cps []int64
	s.Evidence().EvidenceCheckpoints(context.Background(), 1, 100, func(c *evidence.Checkpoint) error {
		cps = append(cps, c.Seq)
		return nil
	})
	if want := []int64{2, 3, 6, 9, 10}; !equalInts(cps, want) {
		t.Errorf("checkpoints at %v, want %v", cps, want)
	}
	// The payloads say what happened.
	var events []string
	s.Evidence().EvidenceEntries(context.Background(), 8, 10, "", func(e *evidence.Entry) error {
		var p map[string]any
		json.Unmarshal(e.Payload, &p)
		events = append(events, p["event"].(string)+" "+p["status"].(string)+" "+p["target"].(string))
		return nil
	})
	if want := []string{"seen open 10.10.2.5:3389", "resolved resolved 10.10.2.9:23", "accepted accepted 10.10.2.5:3389"}; strings.Join(events, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", events, want)
	}

	sum, err := verifyT(exportT(t, s, k))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if sum.Entries != 10 || sum.Observations != 5 || sum.Checkpoints != 5 {
		t.Errorf("summary %s", sum)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The database itself refuses to change or remove what was logged.
func testEvidenceTablesAreAppendOnly(t *testing.T, h *Harness) {
	dir := t.TempDir()
	s := h.open(t, h.New(t), WithEvidenceKey(evidenceKey(t, dir)))
	populate(t, s)
	ctx := context.Background()
	for _, stmt := range []string{
		`UPDATE evidence_log SET payload = '{}' WHERE seq = 3`,
		`UPDATE evidence_log SET seq = seq + 100`,
		`DELETE FROM evidence_log WHERE seq = 10`,
		`DELETE FROM evidence_log`,
		h.sql(`INSERT OR REPLACE INTO evidence_log SELECT * FROM evidence_log WHERE seq = 4`,
			`INSERT INTO evidence_log SELECT * FROM evidence_log WHERE seq = 4 ON CONFLICT (seq) DO UPDATE SET payload = '{}'`),
		`INSERT INTO evidence_log (seq, at, kind, subject, payload, payload_digest, prev_hash, hash)
			VALUES (12, 'x', 'scan', '', '{}', 'x', 'x', 'x')`, // skips 11
		`INSERT INTO evidence_log (seq, at, kind, subject, payload, payload_digest, prev_hash, hash)
			VALUES (11, 'x', 'scan', '', '{}', 'x', 'not the hash of entry 10', 'x')`,
		`UPDATE evidence_checkpoints SET signature = '00'`,
		`DELETE FROM evidence_checkpoints WHERE seq = 10`,
		h.sql(`INSERT OR REPLACE INTO evidence_checkpoints SELECT * FROM evidence_checkpoints WHERE seq = 10`,
			`INSERT INTO evidence_checkpoints SELECT * FROM evidence_checkpoints WHERE seq = 10 ON CONFLICT (seq) DO UPDATE SET signature = '00'`),
		`INSERT INTO evidence_checkpoints (seq, hash, at, public_key, signature) VALUES (4, 'not entry 4''s hash', 'x', 'x', 'x')`,
	} {
		_, err := s.SQL().ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s\n  = %v, want refused as append-only", strings.Join(strings.Fields(stmt), " "), err)
		}
	}
	if sum, err := verifyT(exportT(t, s, evidenceKey(t, dir))); err != nil || sum.Entries != 10 {
		t.Errorf("after the refused statements: %v, %v", sum, err)
	}
}

// Someone with the database file can drop the triggers; the export then
// shows what they changed.
func testEvidenceTamperedInDatabaseIsNamed(t *testing.T, h *Harness) {
	cases := []struct {
		name  string
		stmts []string
		want  string
	}{
		{"entry payload edited", []string{
			h.sql(`DROP TRIGGER evidence_log_no_update`, `DROP TRIGGER evidence_log_append_only ON evidence_log`),
			`UPDATE evidence_log SET payload = replace(payload, 'accepted', 'false-positive') WHERE seq = 10`,
		}, "entry 10: payload does not match its payload_digest"},
		{"entry deleted", []string{
			h.sql(`DROP TRIGGER evidence_log_no_delete`, `DROP TRIGGER evidence_log_append_only ON evidence_log`),
			h.sql(`DROP TRIGGER evidence_checkpoints_no_delete`, `DROP TRIGGER evidence_checkpoints_append_only ON evidence_checkpoints`),
			`DELETE FROM evidence_checkpoints WHERE seq = 6`,
			`DELETE FROM evidence_log WHERE seq = 6`,
		}, "entry 6: missing at its place: entry 7 follows entry 5"},
		{"observation edited (no trigger guards it)", []string{
			`UPDATE observations SET port = 3390 WHERE scan_id = 's1' AND seq = 0`,
		}, "observation 0 of scan s1 (entry 2): does not match its digest"},
		{"observation deleted", []string{
			`DELETE FROM observations WHERE scan_id = 's1' AND seq = 4`,
		}, "observation 4 of scan s1 (entry 3): missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k := evidenceKey(t, dir)
			s := h.open(t, h.New(t), WithEvidenceKey(k))
			populate(t, s)
			for _, stmt := range tc.stmts {
				if _, err := s.SQL().Exec(stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			_, err := verifyT(exportT(t, s, k))
			var te *evidence.TamperError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("verify = %v\nwant a TamperError with %q", err, tc.want)
			}
		})
	}
}

// A write that rolls back leaves no entry behind.
func testEvidenceRollsBackWithTheWrite(t *testing.T, h *Harness) {
	dir := t.TempDir()
	k := evidenceKey(t, dir)
	s := h.open(t, h.New(t), WithEvidenceKey(k))
	populate(t, s)
	ctx := context.Background()
	boom := errors.New("boom")
	s.SetBeforeCommit(func(context.Context) error { return boom })
	scan := observe.Scan{ID: "s3", StartedAt: at(30), FinishedAt: at(30), Locations: []string{"downtown"}, Complete: true}
	if _, _, err := s.FinishScan(ctx, scan, []observe.Finding{rdp, ftp}); !errors.Is(err, boom) {
		t.Fatalf("FinishScan = %v", err)
	}
	if _, err := s.DecideFinding(ctx, rdp.ID, observe.Decision{Status: observe.StatusFalsePositive, By: "x", Reason: "y", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, boom) {
		t.Fatalf("DecideFinding = %v", err)
	}
	s.SetBeforeCommit(nil)
	if head, _ := s.Evidence().EvidenceHead(ctx); head != 10 {
		t.Errorf("head after rolled-back writes = %d, want 10", head)
	}
	finishT(t, s, scan, rdp, ftp)
	if sum, err := verifyT(exportT(t, s, k)); err != nil || sum.Entries != 13 {
		t.Errorf("after the retried scan: %v, %v", sum, err)
	}
}

// A store opened without a key (a test, an older caller) still chains the
// log; the first writer with a key signs all of it.
func testEvidenceWithoutKeyThenWithKey(t *testing.T, h *Harness) {
	dir := t.TempDir()
	path := h.New(t)
	s, err := h.Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	populate(t, s)
	s.Close()
	k := evidenceKey(t, dir)

	ro := h.open(t, path, ReadOnly(), WithEvidenceKey(k))
	sum, err := verifyT(exportT(t, ro, k))
	if err != nil || sum.Checkpoints != 0 || sum.Entries != 9 {
		t.Fatalf("unsigned log: %v, %v", sum, err)
	}
	ro.Close()

	s = h.open(t, path, WithEvidenceKey(k))
	finishT(t, s, observe.Scan{ID: "s3", StartedAt: at(30), FinishedAt: at(30)}, ftp)
	sum, err = verifyT(exportT(t, s, k))
	if err != nil || sum.Entries != 12 || sum.LastCheckpoint != 12 || len(sum.KeyChanges) != 1 || sum.KeyChanges[0].Seq != 10 {
		t.Fatalf("after a signed write: %v, %v", sum, err)
	}
}
