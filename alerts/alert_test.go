package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

func finding(rule, loc, target string, sev observe.Severity, st observe.Status) observe.Finding {
	return observe.Finding{ID: observe.FindingID(rule, loc, target), Rule: rule, Category: "exposed-service", Severity: sev,
		Title: rule + " on " + target, Location: loc, Target: target, Status: st, FirstSeen: t0.Add(-48 * time.Hour)}
}

func TestFromScan(t *testing.T) {
	open, resolved := observe.StatusOpen, observe.StatusResolved
	prev := []observe.Finding{
		finding("rdp-exposed", "downtown", "10.0.0.5:3389", observe.Critical, open),          // still open: no alert
		finding("telnet-open", "downtown", "10.0.0.6:23", observe.High, resolved),            // reopened
		finding("smb-guest", "uptown", "10.1.0.9:445", observe.High, observe.StatusAccepted), // accepted before and after
	}
	cur := []observe.Finding{
		prev[0],
		finding("telnet-open", "downtown", "10.0.0.6:23", observe.High, open),
		finding("vnc-noauth", "uptown", "10.1.0.7:5900", observe.Critical, open), // new
		finding("tls-old", "uptown", "10.1.0.8:443", observe.Medium, open),       // below high
		finding("ftp-anon", "uptown", "10.1.0.10:21", observe.High, observe.StatusFalsePositive),
		prev[2],
	}
	got := FromScan(prev, cur, t0, Options{DashboardURL: "https://vigil.example.com/"})
	if len(got) != 2 {
		t.Fatalf("got %d alerts, want 2 (new vnc, reopened telnet): %+v", len(got), got)
	}
	vnc, telnet := got[0], got[1] // critical first
	if vnc.Kind != NewFinding || vnc.Rule != "vnc-noauth" || vnc.Severity != observe.Critical || vnc.Location != "uptown" {
		t.Errorf("first alert: %+v", vnc)
	}
	if len(vnc.Links) != 1 || vnc.Links[0].URL != "https://vigil.example.com/findings/"+vnc.FindingID {
		t.Errorf("links: %+v", vnc.Links)
	}
	if telnet.Rule != "telnet-open" || !strings.HasPrefix(telnet.Details, "Reopened high finding at downtown") {
		t.Errorf("reopened: %+v", telnet)
	}

	// Same inputs, same keys: the ledger can drop a repeat.
	again := FromScan(prev, cur, t0, Options{})
	if again[0].Key != vnc.Key || again[1].Key != telnet.Key {
		t.Error("keys are not stable")
	}
	// Reopened a second time, later: a new key, so it alerts again.
	later := FromScan(prev, cur, t0.Add(24*time.Hour), Options{})
	if later[1].Key == telnet.Key {
		t.Error("a finding reopened again kept the old key")
	}
	if later[0].Key != vnc.Key {
		t.Error("a new finding's key depends on the scan time")
	}

	// The threshold is an option.
	if n := len(FromScan(prev, cur, t0, Options{MinSeverity: observe.Medium})); n != 3 {
		t.Errorf("min medium: %d alerts, want 3", n)
	}
	if n := len(FromScan(nil, cur, t0, Options{MinSeverity: observe.Critical})); n != 2 {
		t.Errorf("no previous scan, min critical: %d alerts, want 2", n)
	}
}

func status(id, loc string, v controls.Verdict) controls.ControlStatus {
	return controls.ControlStatus{Control: rules.Control{ID: id, Title: "Title of " + id}, Location: loc, Status: v}
}

func TestFromControls(t *testing.T) {
	org := func(id string, by ...controls.ControlStatus) controls.ControlStatus {
		return controls.ControlStatus{Control: rules.Control{ID: id}, Status: controls.Gap, ByLocation: by}
	}
	prev := []controls.ControlStatus{
		status("hipaa:164.312(d)", "downtown", controls.Satisfied),
		status("hipaa:164.308(a)(5)", "downtown", controls.Satisfied),
		status("hipaa:164.312(e)(1)", "downtown", controls.Gap),
		status("cpg:2.A", "downtown", controls.Satisfied),
		org("insurance:mfa-email", status("insurance:mfa-email", "uptown", controls.Satisfied)),
	}
	gap := status("hipaa:164.312(d)", "downtown", controls.Gap)
	gap.Reasons = []string{"An open finding cites it."}
	gap.Open = []controls.FindingRef{{Rule: "rdp-no-mfa", Target: "10.0.0.5:3389"}}
	cur := []controls.ControlStatus{
		gap,
		status("hipaa:164.308(a)(5)", "downtown", controls.AttestationExpired),
		status("hipaa:164.312(e)(1)", "downtown", controls.Gap), // was already a gap
		status("cpg:2.A", "downtown", controls.NotAssessed),     // unknown is not worse enough
		org("insurance:mfa-email", status("insurance:mfa-email", "uptown", controls.Gap)),
	}
	got := FromControls(prev, cur, t0, Options{})
	if len(got) != 3 {
		t.Fatalf("got %d alerts, want 3: %+v", len(got), got)
	}
	bySev := map[string]Alert{}
	for _, a := range got {
		if a.Kind != ControlRegressed || a.From != "satisfied" {
			t.Errorf("alert: %+v", a)
		}
		bySev[a.Control] = a
	}
	if a := bySev["hipaa:164.312(d)"]; a.Severity != observe.High || a.To != "gap" || !strings.Contains(a.Details, "rdp-no-mfa on 10.0.0.5:3389") {
		t.Errorf("gap alert: %+v", a)
	}
	if a := bySev["hipaa:164.308(a)(5)"]; a.Severity != observe.Medium || a.To != "attestation-expired" {
		t.Errorf("attestation alert: %+v", a)
	}
	if a := bySev["insurance:mfa-email"]; a.Location != "uptown" {
		t.Errorf("organisation roll-up should name the location: %+v", a)
	}
}

func TestFromReminders(t *testing.T) {
	rems := []attest.Reminder{
		{Kind: "training", Title: "Security awareness training", Location: "downtown", Expires: t0.Add(-3 * 24 * time.Hour), Days: -3, State: "expired"},
		{Kind: "risk-analysis", Title: "Risk analysis review", Expires: t0.Add(20 * 24 * time.Hour), Days: 20, State: "expiring"},
		{Kind: "baa", Title: "Business associate agreement", Location: "uptown", Expires: t0.Add(5 * 24 * time.Hour), Days: 5, State: "expiring"},
		{Kind: "sanctions", Title: "Sanction policy", State: "missing"},
	}
	got := FromReminders(rems, t0, Options{})
	if len(got) != 3 {
		t.Fatalf("got %d alerts, want 3 (missing is control status's business): %+v", len(got), got)
	}
	kinds := map[string]Alert{}
	for _, a := range got {
		kinds[a.Attestation] = a
	}
	if a := kinds["training"]; a.Kind != AttestationExpired || a.Severity != observe.High || !strings.Contains(a.Title, "expired 3 days ago (downtown)") {
		t.Errorf("expired: %+v", a)
	}
	if a := kinds["risk-analysis"]; a.Kind != AttestationExpiring || a.Severity != observe.Medium || !strings.Contains(a.Title, "(organisation)") {
		t.Errorf("expiring: %+v", a)
	}
	if a := kinds["baa"]; a.Severity != observe.High {
		t.Errorf("expiring within a week should be high: %+v", a)
	}
	// A reminder repeats when it enters the last week, not every day.
	r := rems[1]
	r.Days = 19
	if FromReminders([]attest.Reminder{r}, t0, Options{})[0].Key != kinds["risk-analysis"].Key {
		t.Error("the next day's reminder has a new key")
	}
	r.Days = 7
	if FromReminders([]attest.Reminder{r}, t0, Options{})[0].Key == kinds["risk-analysis"].Key {
		t.Error("the last-week reminder reuses the first key")
	}
}

func TestFromRemindersNewHires(t *testing.T) {
	rems := []attest.Reminder{
		{Kind: "training", Title: "Security awareness training", Location: "austin", Expires: t0.Add(-2 * 24 * time.Hour), Days: -2, State: "missing",
			Person: "ana@glow.example", Control: "state:tx-181.101", Citation: "Tex. Health & Safety Code 181.101"},
		{Kind: "training", Title: "Security awareness training", Location: "austin", Expires: t0.Add(-2 * 24 * time.Hour), Days: -2, State: "missing",
			Person: "ben@glow.example", Control: "state:tx-181.101"},
		{Kind: "training", Title: "Security awareness training", Location: "austin", Expires: t0.Add(10 * 24 * time.Hour), Days: 10, State: "expiring",
			Person: "cy@glow.example"},
	}
	got := FromReminders(rems, t0, Options{})
	if len(got) != 3 {
		t.Fatalf("got %d alerts: %+v", len(got), got)
	}
	if got[0].Key == got[1].Key {
		t.Error("two people overdue share a key: the second would never alert")
	}
	a := got[0]
	if a.Kind != AttestationExpired || a.Control != "state:tx-181.101" || !strings.Contains(a.Title, "overdue by 2 days (ana@glow.example, austin)") ||
		!strings.Contains(a.Details, "181.101") {
		t.Errorf("overdue new hire: %+v", a)
	}
	if got[2].Kind != AttestationExpiring || !strings.Contains(got[2].Title, "due in 10 days (cy@glow.example, austin)") {
		t.Errorf("new hire due: %+v", got[2])
	}
}
