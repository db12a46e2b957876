package posture

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store/sqlite"
)

// One snapshot joins the store's findings, decisions, scans and
// attestations into control status and the register, as of a moment: an
// acceptance that expired after the store last wrote counts as open.
func TestLoadJoinsStoreIntoStatusAndRegister(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), sqlite.WithClock(func() time.Time { return t0.Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	engine, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat := engine.Catalog()
	cfg := &config.Config{Organization: "Glow", Locations: []config.Location{{ID: "downtown", State: "TX",
		Segments: []config.Segment{{Name: "servers", Role: "servers", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.2.0/24")}}}}}}

	rdp := observe.Finding{Rule: "net.remote-access-exposed", Category: "exposed-service", Severity: observe.High, Title: "RDP",
		Location: "downtown", Target: "10.0.2.5:3389", Controls: []string{"hipaa:164.312(e)(1)"}}
	scan := observe.Scan{ID: "s1", StartedAt: t0, FinishedAt: t0, Locations: []string{"downtown"}, Complete: true}
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	cur, _, err := st.FinishScan(ctx, scan, []observe.Finding{rdp})
	if err != nil {
		t.Fatal(err)
	}
	// Accepted until yesterday-ish: still "accepted" in the store.
	if _, err := st.DecideFinding(ctx, cur[0].ID, observe.Decision{Status: observe.StatusAccepted, By: "dr. lee",
		Reason: "vendor access", Expires: t0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddAttestation(ctx, observe.Attestation{Kind: "risk-analysis-review", At: t0, By: "dr. lee"}); err != nil {
		t.Fatal(err)
	}

	snap, err := Load(ctx, st, Input{Config: cfg, Catalog: cat, Rules: engine.Rules(), Now: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if f := snap.FindingsByID()[cur[0].ID]; f.Status != observe.StatusOpen {
		t.Errorf("expired acceptance reads as %s, want open", f.Status)
	}
	if c, ok := snap.Control("hipaa:164.312(e)(1)"); !ok || c.Status != controls.Gap {
		t.Errorf("transmission security = %+v, want a gap from the reopened finding", c)
	}
	if c, ok := snap.Control("hipaa:164.308(a)(1)(ii)(A)"); !ok || c.Status != controls.Satisfied {
		t.Errorf("risk analysis with a current review = %v", c.Status)
	}
	r, ok := risk.Find(snap.Register, "net.remote-access-exposed@downtown")
	if !ok || r.Status != risk.StatusOpen || r.Impact != risk.High {
		t.Fatalf("register entry = %+v", r)
	}
	if _, ok := risk.Find(snap.Register, "attestation:risk-analysis-review"); ok {
		t.Error("a current risk-analysis review still produced a risk")
	}
	if _, ok := risk.Find(snap.Register, "attestation:workforce-training"); !ok {
		t.Error("missing training produced no risk")
	}
	// Training is due (never recorded) and so is the risk-analysis review next year, not yet.
	var missing bool
	for _, d := range snap.Due {
		if d.Kind == "workforce-training" && d.State == "missing" {
			missing = true
		}
		if d.Kind == "risk-analysis-review" {
			t.Errorf("a fresh review is due: %+v", d)
		}
	}
	if !missing {
		t.Errorf("due = %+v, want workforce-training missing", snap.Due)
	}
	if n := snap.ControlCounts("downtown")[controls.Gap]; n == 0 {
		t.Error("no gap counted at downtown")
	}
}
