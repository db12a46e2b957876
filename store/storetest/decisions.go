package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// An acceptance lasts until its expiry; then the finding is open again,
// whether a scan comes first (FinishScan expires it) or the daemon's timer
// does (ExpireDecisions), and its history says whose decision ran out.
func testAcceptanceExpiryReopens(t *testing.T, h *Harness) {
	ctx := context.Background()
	now := at(1)
	s := h.fresh(t, WithClock(func() time.Time { return now }))
	downtown := []string{"downtown"}
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: downtown, Complete: true}, rdp, telnet)

	accept := observe.Decision{Status: observe.StatusAccepted, By: "dr. lee", Reason: "guest Wi-Fi isolated by the ISP router", Expires: at(48)}
	got, err := s.DecideFinding(ctx, rdp.ID, accept)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != observe.StatusAccepted || got.Decision == nil || got.Decision.By != "dr. lee" || !got.Decision.Expires.Equal(at(48)) {
		t.Fatalf("after accepting: %+v decision %+v", got.Status, got.Decision)
	}
	fp := observe.Decision{Status: observe.StatusFalsePositive, By: "it@glow", Reason: "telnet is a honeypot", Expires: at(200)}
	if _, err := s.DecideFinding(ctx, telnet.ID, fp); err != nil {
		t.Fatal(err)
	}

	// Before expiry a scan that sees it leaves it accepted; StatusAt agrees.
	finishT(t, s, observe.Scan{ID: "s2", StartedAt: at(24), FinishedAt: at(24), Locations: downtown, Complete: true}, rdp, telnet)
	f := byID(t, s)[rdp.ID]
	if f.Status != observe.StatusAccepted || f.StatusAt(at(24)) != observe.StatusAccepted {
		t.Fatalf("before expiry: %s", f.Status)
	}
	// Read before any writer expired it, the finding already counts as open.
	if f.StatusAt(at(49)) != observe.StatusOpen {
		t.Errorf("StatusAt after expiry = %s, want open", f.StatusAt(at(49)))
	}

	// The scan after expiry reopens it first, then sees it: open, seen.
	finishT(t, s, observe.Scan{ID: "s3", StartedAt: at(50), FinishedAt: at(50), Locations: downtown, Complete: true}, rdp, telnet)
	all := byID(t, s)
	if f := all[rdp.ID]; f.Status != observe.StatusOpen || f.Decision != nil {
		t.Fatalf("after expiry and a scan: %s decision %+v, want open without decision", f.Status, f.Decision)
	}
	if f := all[telnet.ID]; f.Status != observe.StatusFalsePositive {
		t.Errorf("the false positive, not yet expired, is %s", f.Status)
	}
	hist, err := s.FindingHistory(ctx, rdp.ID)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range hist {
		events = append(events, string(e.Event))
	}
	if want := "opened accepted seen decision-expired seen"; strings.Join(events, " ") != want {
		t.Errorf("history = %q, want %q", strings.Join(events, " "), want)
	}
	if n := hist[3].Note; !strings.Contains(n, "dr. lee") || !strings.Contains(n, "isolated") {
		t.Errorf("expiry note %q does not say whose decision ran out", n)
	}

	// Without a scan, ExpireDecisions reopens on the day.
	reopened, err := s.ExpireDecisions(ctx, at(199))
	if err != nil || len(reopened) != 0 {
		t.Fatalf("ExpireDecisions before expiry = %v, %v", ids(reopened), err)
	}
	reopened, err = s.ExpireDecisions(ctx, at(200))
	if err != nil || len(reopened) != 1 || reopened[0].ID != telnet.ID || reopened[0].Status != observe.StatusOpen {
		t.Fatalf("ExpireDecisions at expiry = %v, %v", ids(reopened), err)
	}
	// An expired decision that a complete scan no longer sees is open, then
	// resolved by that scan like any open finding.
	finishT(t, s, observe.Scan{ID: "s4", StartedAt: at(201), FinishedAt: at(201), Locations: downtown, Complete: true}, rdp)
	if f := byID(t, s)[telnet.ID]; f.Status != observe.StatusResolved {
		t.Errorf("expired false positive not seen by a complete scan: %s, want resolved", f.Status)
	}

	// Every decision and expiry is in the evidence log, about its finding.
	refs, err := s.EvidenceRefs(ctx, []string{rdp.ID, telnet.ID})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range refs {
		kinds[r.Kind]++
	}
	if kinds[string(evidence.KindAcceptance)] != 2 || kinds[string(evidence.KindFindingEvent)] < 6 {
		t.Errorf("evidence entries by kind = %v", kinds)
	}
	expired, err := s.Events(ctx, store.EventFilter{Events: []store.Event{store.EventExpired}})
	if err != nil || len(expired) != 2 {
		t.Errorf("decision-expired events = %v, %v", expired, err)
	}
}

// Accepting a risk records the treatment and accepts its findings in one
// transaction; the register keeps every treatment, the newest counting,
// and refuses to change or delete any.
func testRiskTreatments(t *testing.T, h *Harness) {
	ctx := context.Background()
	now := at(1)
	s := h.fresh(t, WithClock(func() time.Time { return now }))
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}, rdp, telnet)

	const risk = "net.rdp-reachable-from-guest@downtown"
	if _, err := s.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: risk, By: "owner", Owner: "it@glow", Treatment: observe.TreatMitigate,
		Due: at(24 * 30)}, nil); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		t      observe.RiskTreatment
		accept []string
	}{
		"accept without reason":   {observe.RiskTreatment{Risk: risk, By: "owner", Treatment: observe.TreatAccept, Expires: at(100)}, nil},
		"accept without expiry":   {observe.RiskTreatment{Risk: risk, By: "owner", Treatment: observe.TreatAccept, Reason: "r"}, nil},
		"accept expired":          {observe.RiskTreatment{Risk: risk, By: "owner", Treatment: observe.TreatAccept, Reason: "r", Expires: at(0)}, nil},
		"nobody":                  {observe.RiskTreatment{Risk: risk, Treatment: observe.TreatMitigate}, nil},
		"unknown treatment":       {observe.RiskTreatment{Risk: risk, By: "owner", Treatment: "ignore"}, nil},
		"mitigate accepting":      {observe.RiskTreatment{Risk: risk, By: "owner", Treatment: observe.TreatMitigate}, []string{rdp.ID}},
		"accept unknown findings": {observe.RiskTreatment{Risk: risk, By: "owner", Treatment: observe.TreatAccept, Reason: "r", Expires: at(100)}, []string{"nope"}},
	} {
		if _, err := s.AddRiskTreatment(ctx, tc.t, tc.accept); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if h, _ := s.RiskHistory(ctx, risk); len(h) != 1 {
		t.Fatalf("refused treatments were stored: %d entries", len(h))
	}
	if f := byID(t, s)[rdp.ID]; f.Status != observe.StatusOpen {
		t.Fatalf("a refused acceptance changed the finding: %s", f.Status)
	}

	now = at(2)
	acc, err := s.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: risk, By: "dr. lee", Owner: "it@glow", Treatment: observe.TreatAccept,
		Reason: "clinic closes in March", Expires: at(24 * 60)}, []string{rdp.ID})
	if err != nil {
		t.Fatal(err)
	}
	f := byID(t, s)[rdp.ID]
	if f.Status != observe.StatusAccepted || f.Decision == nil || f.Decision.Risk != risk || !f.Decision.Expires.Equal(at(24*60)) {
		t.Fatalf("finding after the risk's acceptance: %s %+v", f.Status, f.Decision)
	}
	cur, err := s.RiskTreatments(ctx)
	if err != nil || len(cur) != 1 || cur[0].ID != acc.ID || cur[0].Treatment != observe.TreatAccept {
		t.Fatalf("RiskTreatments = %+v, %v", cur, err)
	}
	hist, _ := s.RiskHistory(ctx, risk)
	if len(hist) != 2 || hist[0].Treatment != observe.TreatMitigate || !hist[0].Due.Equal(at(24*30)) {
		t.Fatalf("RiskHistory = %+v", hist)
	}
	refs, err := s.EvidenceRefs(ctx, []string{risk})
	if err != nil || len(refs) != 2 || refs[0].Kind != string(evidence.KindRisk) {
		t.Errorf("risk evidence = %+v, %v", refs, err)
	}
	for _, stmt := range []string{
		`UPDATE risk_treatments SET reason = 'forgotten'`,
		`DELETE FROM risk_treatments`,
		h.sql(`INSERT OR REPLACE INTO risk_treatments (id, risk_id, by_name, recorded_at) VALUES ('`+acc.ID+`', 'x', 'y', 'z')`,
			`INSERT INTO risk_treatments (id, risk_id, by_name, recorded_at) VALUES ('`+acc.ID+`', 'x', 'y', 'z') ON CONFLICT (id) DO UPDATE SET reason = 'x'`),
	} {
		if _, err := s.SQL().ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s = %v, want refused as append-only", stmt, err)
		}
	}
}

func testDecisionsNeedAWriter(t *testing.T, h *Harness) {
	path := h.New(t)
	w := h.open(t, path)
	finishT(t, w, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}, rdp)
	r := h.open(t, path, ReadOnly())
	_, err := r.AddRiskTreatment(context.Background(), observe.RiskTreatment{Risk: "x", By: "y", Treatment: observe.TreatMitigate}, nil)
	if err == nil || errors.Is(err, store.ErrInvalidDecision) {
		t.Errorf("read-only AddRiskTreatment = %v, want a write refused", err)
	}
}
