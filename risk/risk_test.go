package risk

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)

func day(n int) time.Time { return t0.AddDate(0, 0, n) }

// Table I-2 of NIST SP 800-30 Rev. 1, row by row (likelihood very high
// first), as printed.
func TestCombineIsTableI2(t *testing.T) {
	table := map[Level]string{
		VeryHigh: "VL L M H VH",
		High:     "VL L M H VH",
		Moderate: "VL L M M H",
		Low:      "VL L L L M",
		VeryLow:  "VL VL VL L L",
	}
	for likelihood, row := range table {
		for i, want := range strings.Fields(row) {
			w, err := ParseLevel(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := Combine(likelihood, Levels[i]); got != w {
				t.Errorf("Combine(%s, %s) = %s, want %s", likelihood, Levels[i], got, w)
			}
		}
	}
	if Combine(0, High) != 0 {
		t.Error("an unrated likelihood gave a rated risk")
	}
	for _, s := range []string{"Very High", "very_high", "VH", "medium"} {
		if _, err := ParseLevel(s); err != nil {
			t.Errorf("ParseLevel(%q): %v", s, err)
		}
	}
	if _, err := ParseLevel("extreme"); err == nil {
		t.Error("ParseLevel accepted extreme")
	}
	if VeryHigh.Score() != 10 || Moderate.Score() != 5 || VeryLow.Score() != 0 || VeryHigh.Label() != "Very High" {
		t.Error("semi-quantitative values or labels are not 800-30's")
	}
}

func labConfig() *config.Config {
	c := &config.Config{Locations: []config.Location{{ID: "downtown", State: "CA", Segments: []config.Segment{
		{Name: "front-desk", Role: "front-desk", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.1.0/24")}},
		{Name: "clinical", Role: "clinical", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.2.0/24")}},
		{Name: "guest", Role: "guest", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.10.9.0/24")}},
	}}}}
	return c
}

func finding(rule, cat string, sev observe.Severity, loc, target, vantage string, first time.Time) observe.Finding {
	return observe.Finding{ID: observe.FindingID(rule, loc, target), Rule: rule, Category: observe.Category(cat), Severity: sev,
		Title: rule, Location: loc, Target: target, Vantage: vantage, Controls: []string{"hipaa:164.312(a)(1)"},
		Evidence: map[string]any{}, FirstSeen: first, LastSeen: first, Status: observe.StatusOpen}
}

func TestRegisterRatesAndTreats(t *testing.T) {
	rdpGuest := finding("net.remote-access-exposed", "exposed-service", observe.High, "downtown", "10.10.2.5:3389", "guest", day(0))
	rdpGuest2 := finding("net.remote-access-exposed", "exposed-service", observe.High, "downtown", "10.10.2.6:3389", "guest", day(3))
	public := finding("net.file-sharing-exposed", "exposed-service", observe.Critical, "downtown", "203.0.113.10:445", "", day(0))
	public.Evidence["internet_facing"] = true
	tls := finding("tls.v1.0-accepted", "weak-tls", observe.Low, "downtown", "10.10.1.7:443", "front-desk", day(0))
	mfa := finding("id.no-mfa", "missing-mfa", observe.Medium, "", "m365:jane", "m365", day(0))
	gone := finding("net.telnet-open", "plaintext-protocol", observe.Medium, "downtown", "10.10.1.9:23", "front-desk", day(0))
	gone.Status = observe.StatusResolved

	reg := Register(Input{Config: labConfig(), Findings: []observe.Finding{rdpGuest, rdpGuest2, public, tls, mfa, gone}, Now: day(10)})
	get := func(id string) *Risk {
		r, ok := Find(reg, id)
		if !ok {
			t.Fatalf("no risk %s in %v", id, ids(reg))
		}
		return r
	}
	// Grouped by rule and location; organisation-wide findings under OrgScope.
	if len(reg) != 5 {
		t.Fatalf("register = %v, want 5 risks", ids(reg))
	}
	rdp := get("net.remote-access-exposed@downtown")
	if len(rdp.Findings) != 2 || rdp.Open != 2 || !rdp.FirstDetected.Equal(day(0)) {
		t.Errorf("rdp risk: %d findings, %d open, first %s", len(rdp.Findings), rdp.Open, rdp.FirstDetected)
	}
	// From the guest network (likelihood high) onto the clinical segment (impact high).
	if rdp.Likelihood != High || rdp.Impact != High || rdp.Level != High {
		t.Errorf("rdp risk rated %s x %s = %s, want high x high = high; %v", rdp.Likelihood, rdp.Impact, rdp.Level, rdp.Rationale)
	}
	if !rdp.DueDefault || !rdp.Due.Equal(day(30)) || rdp.Owner != "" {
		t.Errorf("rdp due %s (default %v), want 30 days after detection", rdp.Due, rdp.DueDefault)
	}
	if pub := get("net.file-sharing-exposed@downtown"); pub.Likelihood != VeryHigh || pub.Level != VeryHigh || !pub.Overdue {
		t.Errorf("public SMB rated %s/%s, overdue %v; want very high and overdue after 7 days", pub.Likelihood, pub.Level, pub.Overdue)
	}
	if w := get("tls.v1.0-accepted@downtown"); w.Level != Low {
		t.Errorf("TLS 1.0 on the front desk rated %s, want low", w.Level)
	}
	if m := get("id.no-mfa@" + OrgScope); m.Likelihood != High || m.Impact != Moderate || m.Level != Moderate {
		t.Errorf("missing MFA rated %s x %s = %s", m.Likelihood, m.Impact, m.Level)
	}
	if g := get("net.telnet-open@downtown"); g.Status != StatusClosed || g.Resolved != 1 {
		t.Errorf("resolved-only risk is %s", g.Status)
	}
	if reg[0].Level != VeryHigh || reg[len(reg)-1].Status != StatusClosed {
		t.Errorf("order: %v", ids(reg))
	}

	// A person's decisions: owner, due date, an override with its reason,
	// then an acceptance that runs out.
	treat := []observe.RiskTreatment{{Risk: rdp.ID, By: "dr. lee", Owner: "it@glow", Treatment: observe.TreatMitigate,
		Due: day(20), Impact: "very-high", Reason: "the EMR server"}}
	reg = Register(Input{Config: labConfig(), Findings: []observe.Finding{rdpGuest, rdpGuest2}, Treatments: treat, Now: day(21)})
	rdp = get(rdp.ID)
	if rdp.Owner != "it@glow" || rdp.Impact != VeryHigh || rdp.Level != VeryHigh || rdp.DueDefault || !rdp.Overdue {
		t.Errorf("after treatment: owner %q impact %s level %s due-default %v overdue %v", rdp.Owner, rdp.Impact, rdp.Level, rdp.DueDefault, rdp.Overdue)
	}
	if !strings.Contains(strings.Join(rdp.Rationale, "\n"), "impact set to very-high by dr. lee") {
		t.Errorf("override not explained: %v", rdp.Rationale)
	}

	acc1, acc2 := rdpGuest, rdpGuest2
	for _, f := range []*observe.Finding{&acc1, &acc2} {
		f.Status = observe.StatusAccepted
		f.Decision = &observe.Decision{Status: observe.StatusAccepted, By: "dr. lee", Reason: "closing", Expires: day(40), Risk: rdp.ID}
	}
	treat = []observe.RiskTreatment{{Risk: rdp.ID, By: "dr. lee", Treatment: observe.TreatAccept, Reason: "closing", Expires: day(40)}}
	reg = Register(Input{Config: labConfig(), Findings: []observe.Finding{acc1, acc2}, Treatments: treat, Now: day(30)})
	if r := get(rdp.ID); r.Status != StatusAccepted || r.Overdue {
		t.Errorf("accepted risk is %s (overdue %v)", r.Status, r.Overdue)
	}
	// A new target after the acceptance is not covered.
	third := finding("net.remote-access-exposed", "exposed-service", observe.High, "downtown", "10.10.2.7:3389", "guest", day(31))
	reg = Register(Input{Config: labConfig(), Findings: []observe.Finding{acc1, acc2, third}, Treatments: treat, Now: day(32)})
	if r := get(rdp.ID); r.Status != StatusOpen || len(r.Notes) == 0 {
		t.Errorf("acceptance covering 2 of 3 findings: %s %v", r.Status, r.Notes)
	}
	// On expiry the risk and its findings are open again.
	reg = Register(Input{Config: labConfig(), Findings: []observe.Finding{acc1, acc2}, Treatments: treat, Now: day(40)})
	if r := get(rdp.ID); r.Status != StatusOpen || r.Open != 2 || !strings.Contains(strings.Join(r.Notes, ""), "expired") {
		t.Errorf("expired acceptance: %s, %d open, notes %v", r.Status, r.Open, r.Notes)
	}
}

func TestControlRisks(t *testing.T) {
	cat, err := rules.LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	k, ok := cat.Control("hipaa:164.308(a)(5)(i)")
	if !ok {
		t.Fatal("catalog lacks the training standard")
	}
	st := []controls.ControlStatus{
		{Control: k, Status: controls.AttestationMissing, Reasons: []string{"no training recorded"},
			ByLocation: []controls.ControlStatus{{Location: "downtown", Status: controls.AttestationMissing}, {Location: "uptown", Status: controls.Satisfied}}},
		{Control: k, Status: controls.NotAssessed},
	}
	reg := Register(Input{Controls: st, Catalog: cat, Now: day(0)})
	if len(reg) != 1 {
		t.Fatalf("register = %v, want one control risk (not-assessed is not a risk)", ids(reg))
	}
	r := reg[0]
	if r.ID != "attestation:workforce-training" || r.Status != StatusOpen || r.Impact != High || len(r.Locations) != 1 || r.Locations[0] != "downtown" ||
		!strings.Contains(r.Title, "Security awareness training") {
		t.Errorf("control risk = %+v", r)
	}
	// A standard whose own record is current but a specification is not
	// is no risk of its own kind: the specification's risk covers it.
	attested := st[0]
	attested.Attestation = &controls.Attestation{Kind: "workforce-training", At: day(-10), ExpiresAt: day(300)}
	if reg := Register(Input{Controls: []controls.ControlStatus{attested}, Catalog: cat, Now: day(0)}); len(reg) != 0 {
		t.Errorf("attested standard made risks %v", ids(reg))
	}
	// Every control the same missing record leaves unmet is one risk.
	ins, ok := cat.Control("insurance:training")
	if !ok {
		t.Fatal("catalog lacks insurance:training")
	}
	st = append(st, controls.ControlStatus{Control: ins, Status: controls.AttestationExpired})
	reg = Register(Input{Controls: st, Catalog: cat, Now: day(0)})
	if len(reg) != 1 || strings.Join(reg[0].Controls, " ") != "hipaa:164.308(a)(5)(i) insurance:training" {
		t.Errorf("register = %v, controls %v", ids(reg), reg[0].Controls)
	}
}

// The chain from a risk to the observations behind its finding, through a
// real store: detected by one scan, resolved by a later one, each step
// dated and pointing at evidence-log entries.
func TestTraceRisk(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), sqlite.WithClock(func() time.Time { return day(1) }))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	loc := []string{"downtown"}
	rdp := finding("net.remote-access-exposed", "exposed-service", observe.High, "downtown", "10.10.2.5:3389", "guest", time.Time{})
	rdp.FirstSeen, rdp.LastSeen, rdp.Status = time.Time{}, time.Time{}, ""
	obs := []observe.Observation{
		{Kind: observe.KindService, Location: "downtown", Vantage: "guest", Host: "10.10.2.5", Port: 3389, Proto: "tcp", Source: "nmap", At: day(0), Attrs: map[string]any{"service": "ms-wbt-server"}},
		{Kind: observe.KindService, Location: "downtown", Vantage: "guest", Host: "10.10.2.6", Port: 22, Proto: "tcp", Source: "nmap", At: day(0), Attrs: map[string]any{"service": "ssh"}},
	}
	for i, sc := range []struct {
		id  string
		obs []observe.Observation
		fs  []observe.Finding
	}{{"s1", obs, []observe.Finding{rdp}}, {"s2", obs, []observe.Finding{rdp}}, {"s3", obs[1:], nil}} {
		scan := observe.Scan{ID: sc.id, StartedAt: day(i * 7), FinishedAt: day(i * 7), Locations: loc, Complete: true,
			Vantages: map[string][]string{"downtown": {"guest"}}}
		if err := st.BeginScan(ctx, scan); err != nil {
			t.Fatal(err)
		}
		if err := st.AddObservations(ctx, sc.id, sc.obs); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.FinishScan(ctx, scan, sc.fs); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.Findings(ctx, store.FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]observe.Finding{}
	for _, f := range all {
		byID[f.ID] = f
	}
	if _, err := st.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: FindingRiskID(&rdp), By: "dr. lee", Owner: "it@glow", Treatment: observe.TreatMitigate}, nil); err != nil {
		t.Fatal(err)
	}
	reg := Register(Input{Config: labConfig(), Findings: all, Now: day(20)})
	r, _ := Find(reg, FindingRiskID(&rdp))
	tr, err := TraceRisk(ctx, st, *r, byID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Findings) != 1 || len(tr.Treatments) != 1 || len(tr.Evidence) != 1 {
		t.Fatalf("trace: %d findings, %d treatments, %d evidence", len(tr.Findings), len(tr.Treatments), len(tr.Evidence))
	}
	ft := tr.Findings[0]
	if !ft.Detected.Equal(day(0)) || ft.DetectedScan != "s1" || !ft.Remediated.Equal(day(14)) || ft.VerifiedScan != "s3" ||
		ft.TimeToRemediate != 14*24*time.Hour {
		t.Errorf("dates: detected %s by %s, remediated %s verified by %s, ttr %s", ft.Detected, ft.DetectedScan, ft.Remediated, ft.VerifiedScan, ft.TimeToRemediate)
	}
	// The observations: the RDP service in the first and the last scan that
	// saw it, not the SSH one.
	if len(ft.Observed) != 2 || ft.Observed[0].Scan != "s1" || ft.Observed[1].Scan != "s2" {
		t.Fatalf("observed = %+v", ft.Observed)
	}
	for _, s := range ft.Observed {
		if len(s.Observations) != 1 || s.Observations[0].Port != 3389 {
			t.Errorf("scan %s quoted %+v", s.Scan, s.Observations)
		}
	}
	kinds := map[string]int{}
	for _, e := range ft.Evidence {
		kinds[e.Kind]++
	}
	if kinds["observations"] < 2 || kinds["scan"] != 3 || kinds["finding-event"] != 3 {
		t.Errorf("evidence by kind = %v", kinds)
	}
	if _, err := json.Marshal(tr); err != nil {
		t.Errorf("trace does not encode: %v", err)
	}

	// Time to remediate from the same store.
	events, err := st.Events(ctx, store.EventFilter{Events: RemediationEvents})
	if err != nil {
		t.Fatal(err)
	}
	byCat, byLoc := TimeToRemediate(all, events, day(20))
	if len(byCat) != 1 || byCat[0].Key != "exposed-service" || byCat[0].Remediated != 1 || byCat[0].Verified != 1 || byCat[0].Median != 14*24*time.Hour {
		t.Errorf("by category = %+v", byCat)
	}
	if len(byLoc) != 1 || byLoc[0].Key != "downtown" {
		t.Errorf("by location = %+v", byLoc)
	}
}

func TestTimeToRemediateWindows(t *testing.T) {
	a := finding("r", "weak-tls", observe.Low, "downtown", "10.0.0.1:443", "", day(0))
	b := finding("r", "weak-tls", observe.Low, "uptown", "10.0.0.2:443", "", day(0))
	c := finding("s", "missing-mfa", observe.High, "", "m365:x", "m365", day(0))
	ev := func(f observe.Finding, e store.Event, d int, scan string) store.FindingEvent {
		return store.FindingEvent{FindingID: f.ID, Event: e, At: day(d), ScanID: scan}
	}
	events := []store.FindingEvent{
		ev(a, store.EventOpened, 0, "s"), ev(a, store.EventResolved, 2, "s"), // 2 days, verified
		ev(a, store.EventReopened, 10, "s"), ev(a, store.EventResolved, 20, ""), // 10 days, a person said fixed
		ev(b, store.EventOpened, 0, "s"), ev(b, store.EventResolved, 4, "s"),
		ev(c, store.EventOpened, 5, "s"), // still open
	}
	byCat, byLoc := TimeToRemediate([]observe.Finding{a, b, c}, events, day(30))
	tls := byCat[1]
	if tls.Key != "weak-tls" || tls.Remediated != 3 || tls.Verified != 2 || tls.Median != 4*24*time.Hour || tls.Max != 10*24*time.Hour {
		t.Errorf("weak-tls = %+v", tls)
	}
	if m := byCat[0]; m.Key != "missing-mfa" || m.Open != 1 || m.OldestOpen != 25*24*time.Hour || m.Remediated != 0 {
		t.Errorf("missing-mfa = %+v", m)
	}
	if len(byLoc) != 3 || byLoc[1].Key != OrgScope {
		t.Errorf("by location = %+v", byLoc)
	}
	if Days(36*time.Hour) != 1.5 {
		t.Errorf("Days(36h) = %v", Days(36*time.Hour))
	}
}

func ids(rs []Risk) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID+" "+string(r.Status)+" "+r.Level.String())
	}
	return out
}
