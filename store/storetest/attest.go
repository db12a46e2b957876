package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/internal/sqlstore"
)

func attestation(kind, loc string, day time.Time) observe.Attestation {
	return observe.Attestation{
		Kind: kind, Location: loc, At: day, By: "dr. lee", Note: "sign-in sheet attached",
		Owner: "office manager", Subject: "front desk staff", Result: "pass",
		Document: strings.Repeat("ab", 32),
	}
}

func addT(t *testing.T, s Backend, r observe.Attestation) observe.Attestation {
	t.Helper()
	got, err := s.AddAttestation(context.Background(), r)
	if err != nil {
		t.Fatalf("AddAttestation: %v", err)
	}
	return got
}

func testAttestationsRoundTrip(t *testing.T, h *Harness) {
	path := h.New(t)
	s := h.open(t, path, WithClock(func() time.Time { return at(48) }))
	ctx := context.Background()

	day := time.Date(2025, 2, 20, 0, 0, 0, 0, time.FixedZone("CST", -6*3600))
	training := attestation("workforce-training", "austin", day)
	training.ExpiresAt = day.AddDate(0, 6, 0)
	a := addT(t, s, training)
	b := addT(t, s, attestation("restore-drill", "", day.AddDate(0, 0, 3)))
	if a.ID == "" || a.ID == b.ID || !a.RecordedAt.Equal(at(48)) {
		t.Errorf("assigned id %q (other %q), recorded %s; want distinct ids recorded at %s", a.ID, b.ID, a.RecordedAt, at(48))
	}

	// A fresh open reads back what AddAttestation returned.
	s.Close()
	s = h.open(t, path)
	got, err := s.Attestations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []observe.Attestation{a, b}; !reflect.DeepEqual(got, want) {
		t.Errorf("Attestations =\n  %+v\nwant\n  %+v", got, want)
	}
	if !got[0].At.Equal(day) || got[1].ExpiresAt.IsZero() != true {
		t.Errorf("dates: at %s (want %s), second expiry %s (want none)", got[0].At, day, got[1].ExpiresAt)
	}

	// A correction replaces the record in Attestations; the original stays.
	fixed := attestation("restore-drill", "", day.AddDate(0, 0, 3))
	fixed.Result = "fail"
	c, err := s.CorrectAttestation(ctx, b.ID, fixed)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Attestations(ctx)
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != c.ID || got[1].Result != "fail" {
		t.Errorf("after correcting %s: %+v", b.ID, got)
	}
	var n int
	s.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM attestations`).Scan(&n)
	if n != 3 {
		t.Errorf("%d rows, want 3: a correction keeps the original", n)
	}
	if _, err := s.CorrectAttestation(ctx, b.ID, fixed); !errors.Is(err, sqlstore.ErrSuperseded) {
		t.Errorf("correcting a superseded record: %v, want ErrSuperseded", err)
	}
	if _, err := s.CorrectAttestation(ctx, "att-nope", fixed); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("correcting an unknown id: %v, want ErrNotFound", err)
	}
}

// The database refuses to change or remove an attestation.
func testAttestationsAreAppendOnly(t *testing.T, h *Harness) {
	s := h.fresh(t)
	r := addT(t, s, attestation("workforce-training", "", at(0)))
	ctx := context.Background()
	for _, stmt := range []string{
		`UPDATE attestations SET at = '2030-01-01T00:00:00.000000000Z'`,
		`UPDATE attestations SET result = 'pass' WHERE id = '` + r.ID + `'`,
		`DELETE FROM attestations`,
		h.sql(`INSERT OR REPLACE INTO attestations SELECT * FROM attestations`,
			`INSERT INTO attestations SELECT * FROM attestations ON CONFLICT (id) DO UPDATE SET note = 'x'`),
	} {
		_, err := s.SQL().ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s\n  = %v, want refused as append-only", stmt, err)
		}
	}
	if got, err := s.Attestations(ctx); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], r) {
		t.Errorf("after the refused statements: %+v, %v", got, err)
	}
}

// Attestations are in the evidence log, in the transaction that stores
// them, and an export with them verifies.
func testAttestationsInEvidenceLog(t *testing.T, h *Harness) {
	dir := t.TempDir()
	k := evidenceKey(t, dir)
	s := h.open(t, h.New(t), WithEvidenceKey(k), WithClock(func() time.Time { return at(48) }))
	populate(t, s)
	ctx := context.Background()
	a := addT(t, s, attestation("workforce-training", "downtown", at(-24)))
	c, err := s.CorrectAttestation(ctx, a.ID, attestation("workforce-training", "downtown", at(-48)))
	if err != nil {
		t.Fatal(err)
	}

	log := kinds(t, s)
	if want := []string{"attestation " + a.ID, "attestation " + c.ID}; len(log) != 12 || !reflect.DeepEqual(log[10:], want) {
		t.Errorf("log ends %q, want %q", log[max(0, len(log)-2):], want)
	}
	var p map[string]any
	s.Evidence().EvidenceEntries(ctx, 12, 12, evidence.KindAttestation, func(e *evidence.Entry) error {
		return json.Unmarshal(e.Payload, &p)
	})
	if p["id"] != c.ID || p["supersedes"] != a.ID || p["kind"] != "workforce-training" || p["by"] != "dr. lee" ||
		p["document"] != strings.Repeat("ab", 32) || p["at"] != "2025-02-27T02:00:00.123456789Z" {
		t.Errorf("payload %v", p)
	}

	sum, err := verifyT(exportT(t, s, k))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if sum.Entries != 12 || sum.LastCheckpoint != 12 {
		t.Errorf("summary %s: want 12 entries, the last checkpointed", sum)
	}

	// A refused attestation leaves neither a row nor an entry.
	if _, err := s.CorrectAttestation(ctx, "att-nope", attestation("workforce-training", "", at(0))); err == nil {
		t.Fatal("correction of an unknown id stored")
	}
	if got := kinds(t, s); len(got) != 12 {
		t.Errorf("log has %d entries after a refused write, want 12", len(got))
	}
}
