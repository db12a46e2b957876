package attest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/rules"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func daysAgo(n int) time.Time { return now.AddDate(0, 0, -n) }

func catalog(t *testing.T) *rules.Catalog {
	t.Helper()
	cat, err := rules.LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func rec(kind string, at time.Time) Record {
	return Record{ID: kind, Kind: kind, At: at, By: "owner@glow.example", RecordedAt: now}
}

func TestExpiryAndValidation(t *testing.T) {
	cat := catalog(t)
	r := rec("sanction-policy", daysAgo(10))
	if got, want := Expiry(r, cat), daysAgo(10).AddDate(0, 0, 365); !got.Equal(want) {
		t.Errorf("expiry from valid_days = %s, want %s", got, want)
	}
	r.ExpiresAt = daysAgo(-30)
	if got := Expiry(r, cat); !got.Equal(daysAgo(-30)) {
		t.Errorf("explicit expiry = %s", got)
	}
	if err := Validate(r, cat, now); err != nil {
		t.Errorf("valid record refused: %v", err)
	}
	bad := Record{Kind: "coffee-break", At: daysAgo(-3), ExpiresAt: daysAgo(-1)}
	err := Validate(bad, cat, now)
	for _, want := range []string{`kind "coffee-break" is not an attestation kind`, "is in the future", "by or owner is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
	bad = rec("sanction-policy", daysAgo(5))
	bad.ExpiresAt = daysAgo(6)
	if err := Validate(bad, cat, now); err == nil || !strings.Contains(err.Error(), "is not after the date") {
		t.Errorf("expiry before date: %v", err)
	}
}

// An attestation makes an attestation-evidenced control satisfied while it
// is current, expired after; a failed drill counts for nothing.
func TestControlStatusFromAttestations(t *testing.T) {
	cat := catalog(t)
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	loc := config.Location{ID: "downtown", State: "CA"}
	status := func(records ...Record) controls.Verdict {
		t.Helper()
		in := controls.Input{Catalog: cat, Rules: eng.Rules(), Attestations: Source(records, cat), Now: now}
		for _, s := range controls.Status(in, loc) {
			if s.Control.ID == "hipaa:164.308(a)(1)(ii)(C)" { // sanction policy
				return s.Status
			}
		}
		t.Fatal("no status for the sanction policy")
		return ""
	}
	if got := status(); got != controls.AttestationMissing {
		t.Errorf("nothing recorded: %s", got)
	}
	if got := status(rec("sanction-policy", daysAgo(100))); got != controls.Satisfied {
		t.Errorf("current: %s", got)
	}
	if got := status(rec("sanction-policy", daysAgo(400))); got != controls.AttestationExpired {
		t.Errorf("400 days old: %s", got)
	}
	failed := rec("sanction-policy", daysAgo(10))
	failed.Result = "fail"
	if got := status(failed); got != controls.AttestationMissing {
		t.Errorf("failed result: %s", got)
	}
}

func TestDue(t *testing.T) {
	cat := catalog(t)
	records := []Record{
		rec("sanction-policy", daysAgo(350)),      // expires in 15 days
		rec("risk-analysis-review", daysAgo(370)), // expired 5 days ago
		rec("risk-analysis-review", daysAgo(400)), // older: superseded
	}
	drill := rec("restore-drill", daysAgo(1))
	drill.Result = "fail"
	records = append(records, drill)
	got := Due(records, cat, []string{"sanction-policy", "risk-analysis-review", "restore-drill"}, 30*24*time.Hour, now)
	if len(got) != 3 {
		t.Fatalf("due = %+v", got)
	}
	if got[0].Kind != "risk-analysis-review" || got[0].State != "expired" || got[0].Days != -5 {
		t.Errorf("first = %+v, want the expired risk analysis review, 5 days ago", got[0])
	}
	if got[1].Kind != "restore-drill" || got[1].State != "missing" {
		t.Errorf("second = %+v, want the restore drill missing (the only one failed)", got[1])
	}
	if got[2].Kind != "sanction-policy" || got[2].State != "expiring" || got[2].Days != 15 {
		t.Errorf("third = %+v, want the sanction policy expiring in 15 days", got[2])
	}
	if due := Due([]Record{rec("sanction-policy", daysAgo(10))}, cat, []string{"sanction-policy"}, 30*24*time.Hour, now); len(due) != 0 {
		t.Errorf("a fresh attestation is due: %+v", due)
	}
}

func TestDocumentsAreContentAddressed(t *testing.T) {
	d := Documents{Dir: t.TempDir()}
	sum, err := d.Put(bytes.NewReader([]byte("sign-in sheet, 2026-03-02")))
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.Put(bytes.NewReader([]byte("sign-in sheet, 2026-03-02")))
	if err != nil || again != sum {
		t.Fatalf("second put = %s, %v; want %s", again, err, sum)
	}
	b, err := d.Open(sum)
	if err != nil || string(b) != "sign-in sheet, 2026-03-02" {
		t.Fatalf("open = %q, %v", b, err)
	}
	// Someone edits the stored file: Open notices.
	p := filepath.Join(d.Dir, "sha256", sum[:2], sum)
	os.Chmod(p, 0o600)
	os.WriteFile(p, []byte("sign-in sheet, 2026-03-03"), 0o600)
	if _, err := d.Open(sum); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Errorf("tampered document: %v", err)
	}
	if _, err := d.Open("../../etc/passwd"); err == nil {
		t.Error("a path was accepted as a document id")
	}
}
