package controls

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

var (
	downtown = config.Location{ID: "downtown", State: "CA"}
	uptown   = config.Location{ID: "uptown", State: "TX"}
)

// base loads the shipped catalog and rule pack: the statuses a user sees
// come from them, not from a toy catalog.
func base(t *testing.T) Input {
	t.Helper()
	e, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return Input{Catalog: e.Catalog(), Rules: e.Rules(), Now: now}
}

// scan is a complete network scan of locs that also read sources in full.
func scan(id string, ago time.Duration, locs []string, sources ...string) observe.Scan {
	at := now.Add(-ago)
	return observe.Scan{ID: id, StartedAt: at.Add(-time.Hour), FinishedAt: at, Locations: locs, Complete: true, Sources: sources}
}

// finding is an open finding of a shipped rule, citing what the rule cites.
func finding(t *testing.T, in Input, rule, loc, target string) observe.Finding {
	t.Helper()
	for _, r := range in.Rules {
		if r.ID == rule {
			return observe.Finding{ID: observe.FindingID(rule, loc, target), Rule: rule, Category: r.Category, Severity: r.Severity,
				Location: loc, Target: target, Controls: r.Controls, Status: observe.StatusOpen}
		}
	}
	t.Fatalf("no rule %s", rule)
	return observe.Finding{}
}

func get(t *testing.T, ss []ControlStatus, id string) ControlStatus {
	t.Helper()
	for _, s := range ss {
		if s.Control.ID == id {
			return s
		}
	}
	t.Fatalf("no status for %s", id)
	return ControlStatus{}
}

func has(ss []ControlStatus, id string) bool {
	return slices.ContainsFunc(ss, func(s ControlStatus) bool { return s.Control.ID == id })
}

func reasons(s ControlStatus) string { return strings.Join(s.Reasons, "; ") }

// Encryption in transit (164.312(e)(2)(ii)) is evidenced only by network
// rules (TLS, plaintext protocols, exposed databases).
const encryption = "hipaa:164.312(e)(2)(ii)"

func TestRuleEvidence(t *testing.T) {
	in := base(t)
	in0 := in
	tests := []struct {
		name     string
		scans    []observe.Scan
		findings func() []observe.Finding
		want     Verdict
		reason   string
	}{
		{name: "complete recent scan, nothing open", scans: []observe.Scan{scan("s1", 24*time.Hour, []string{"downtown"})},
			want: Satisfied, reason: "rules found nothing open (latest scan s1, 2026-11-19T12:00:00Z)"},
		{name: "an open finding", scans: []observe.Scan{scan("s1", 24*time.Hour, []string{"downtown"})},
			findings: func() []observe.Finding {
				return []observe.Finding{finding(t, in0, "svc.telnet-plaintext", "downtown", "10.10.1.5:23")}
			},
			want: Gap, reason: "1 finding open: svc.telnet-plaintext at 10.10.1.5:23"},
		{name: "an open finding and no scan", findings: func() []observe.Finding {
			return []observe.Finding{finding(t, in0, "tls.weak-key", "downtown", "10.10.1.5:443")}
		}, want: Gap},
		{name: "another location's finding", scans: []observe.Scan{scan("s1", 24*time.Hour, []string{"downtown"})},
			findings: func() []observe.Finding {
				return []observe.Finding{finding(t, in0, "svc.telnet-plaintext", "uptown", "10.20.1.5:23")}
			}, want: Satisfied},
		{name: "accepted finding", scans: []observe.Scan{scan("s1", 24*time.Hour, []string{"downtown"})},
			findings: func() []observe.Finding {
				f := finding(t, in0, "svc.telnet-plaintext", "downtown", "10.10.1.5:23")
				f.Status = observe.StatusAccepted
				return []observe.Finding{f}
			}, want: Satisfied, reason: "1 finding accepted as a risk"},
		{name: "no scan", want: NotAssessed, reason: "no complete scan in the last 30 days ran"},
		{name: "incomplete scan", scans: []observe.Scan{func() observe.Scan {
			s := scan("s1", time.Hour, []string{"downtown"})
			s.Complete = false
			return s
		}()}, want: NotAssessed},
		{name: "scan too old", scans: []observe.Scan{scan("s1", 31*24*time.Hour, []string{"downtown"})}, want: NotAssessed},
		{name: "scan of another location", scans: []observe.Scan{scan("s1", time.Hour, []string{"uptown"})}, want: NotAssessed},
		{name: "segmentation-only scan", scans: []observe.Scan{func() observe.Scan {
			s := scan("s1", time.Hour, []string{"downtown"})
			s.Categories = []observe.Category{"flat-network"}
			return s
		}()}, want: NotAssessed},
		{name: "unfinished scan", scans: []observe.Scan{{ID: "telegraf-20261120", StartedAt: now.Add(-time.Hour), Locations: []string{"downtown"}, Complete: true}},
			want: NotAssessed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := in0
			in.Scans = tc.scans
			if tc.findings != nil {
				in.Findings = tc.findings()
			}
			s := get(t, Status(in, downtown), encryption)
			if s.Status != tc.want || !strings.Contains(reasons(s), tc.reason) {
				t.Errorf("status %s (%s), want %s with %q", s.Status, reasons(s), tc.want, tc.reason)
			}
			if s.Status == Satisfied && (len(s.Evaluated) == 0 || len(s.NotRun) > 0 || s.Evaluated[0].Scan != "s1") {
				t.Errorf("satisfied without the evidence listed: evaluated %v, not run %v", s.Evaluated, s.NotRun)
			}
		})
	}
}

// Person or entity authentication is cited by identity rules too: a network
// scan alone does not evidence it, and an identity source's findings (no
// location) are gaps at every location.
func TestIdentityEvidenceIsOrganisationWide(t *testing.T) {
	in := base(t)
	const auth = "hipaa:164.312(d)"
	in.Scans = []observe.Scan{scan("net", time.Hour, []string{"downtown", "uptown"})}
	s := get(t, Status(in, downtown), auth)
	if s.Status != NotAssessed || !slices.Contains(s.NotRun, "id.no-mfa") || slices.Contains(s.NotRun, "cred.ftp-anonymous") {
		t.Errorf("network scan only: %s, not run %v", s.Status, s.NotRun)
	}
	// An identity-only scan (vigil scan --only identity) records no locations.
	in.Scans = append(in.Scans, observe.Scan{ID: "id", FinishedAt: now.Add(-time.Minute), Sources: []string{"csv:emr"}})
	s = get(t, Status(in, downtown), auth)
	if s.Status != Satisfied {
		t.Errorf("network and identity scans: %s (%s)", s.Status, reasons(s))
	}
	in.Findings = []observe.Finding{finding(t, in, "id.no-mfa", "", "emr:frontdesk")}
	for _, loc := range []config.Location{downtown, uptown} {
		s = get(t, Status(in, loc), auth)
		if s.Status != Gap || len(s.Open) != 1 || s.Open[0].Target != "emr:frontdesk" {
			t.Errorf("%s: an organisation-wide finding: %s, open %v", loc.ID, s.Status, s.Open)
		}
	}
}

func TestNoRuleCitesIt(t *testing.T) {
	in := base(t)
	in.Scans = []observe.Scan{scan("s1", time.Hour, []string{"downtown"}, "csv:emr", "osv-scanner")}
	s := get(t, Status(in, downtown), "cpg:E-2")
	if s.Status != NotAssessed || !strings.Contains(reasons(s), "no loaded rule cites this control") {
		t.Errorf("email security: %s (%s)", s.Status, reasons(s))
	}
}

func TestStateOverlays(t *testing.T) {
	in := base(t)
	ca, tx := Status(in, downtown), Status(in, uptown)
	if !has(ca, "state:ca-cmia") || has(ca, "state:tx-hb300") {
		t.Error("a CA location gets the CMIA overlay and not the Texas one")
	}
	if has(tx, "state:ca-cmia") || !has(tx, "state:tx-hb300") {
		t.Error("a TX location gets the Texas overlay and not the CMIA one")
	}
	if has(Status(in, config.Location{ID: "nowhere"}), "state:ca-cmia") {
		t.Error("a location without a state gets a state overlay")
	}
	if !has(tx, "hipaa:164.312(d)") || !has(tx, "insurance:mfa-email") {
		t.Error("HIPAA and insurance controls apply everywhere")
	}
	// A lower-case state in the config still selects its overlay.
	if !has(Status(in, config.Location{ID: "x", State: "ma"}), "state:ma-201cmr17") {
		t.Error("state: ma does not select the Massachusetts overlay")
	}
}

// fakeAttestations is an AttestationSource that records what was asked.
type fakeAttestations struct {
	recs  []Attestation
	asked []string
}

func (f *fakeAttestations) Attestations(kind string) []Attestation {
	f.asked = append(f.asked, kind)
	var out []Attestation
	for _, a := range f.recs {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

func TestAttestationEvidence(t *testing.T) {
	const sanction = "hipaa:164.308(a)(1)(ii)(C)" // sanction-policy, valid 365 days
	day := 24 * time.Hour
	tests := []struct {
		name   string
		recs   []Attestation
		want   Verdict
		reason string
	}{
		{name: "none recorded", want: AttestationMissing, reason: "no attestation recorded: record one of sanction-policy"},
		{name: "organisation-wide, current", recs: []Attestation{{Kind: "sanction-policy", At: now.Add(-10 * day), By: "owner"}},
			want: Satisfied, reason: "attested (sanction-policy) on 2026-11-10, valid until 2027-11-10"},
		{name: "this location's", recs: []Attestation{{Kind: "sanction-policy", Location: "downtown", At: now.Add(-10 * day)}}, want: Satisfied},
		{name: "another location's", recs: []Attestation{{Kind: "sanction-policy", Location: "uptown", At: now.Add(-10 * day)}}, want: AttestationMissing},
		{name: "expired by the kind's validity", recs: []Attestation{{Kind: "sanction-policy", At: now.Add(-400 * day)}},
			want: AttestationExpired, reason: "the latest attestation (sanction-policy, 2025-10-16) has expired"},
		{name: "expired by its own date", recs: []Attestation{{Kind: "sanction-policy", At: now.Add(-10 * day), ExpiresAt: now.Add(-day)}},
			want: AttestationExpired},
		{name: "renewed", recs: []Attestation{{Kind: "sanction-policy", At: now.Add(-400 * day)}, {Kind: "sanction-policy", At: now.Add(-3 * day)}},
			want: Satisfied},
		{name: "another kind", recs: []Attestation{{Kind: "workforce-training", At: now.Add(-day)}}, want: AttestationMissing},
		{name: "dated in the future", recs: []Attestation{{Kind: "sanction-policy", At: now.Add(day)}}, want: AttestationMissing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base(t)
			src := &fakeAttestations{recs: tc.recs}
			in.Attestations = src
			s := get(t, Status(in, downtown), sanction)
			if s.Status != tc.want || !strings.Contains(reasons(s), tc.reason) {
				t.Errorf("status %s (%s), want %s with %q", s.Status, reasons(s), tc.want, tc.reason)
			}
			if s.Status == Satisfied && (s.Attestation == nil || s.Attestation.Kind != "sanction-policy") {
				t.Errorf("satisfied without naming the attestation: %+v", s.Attestation)
			}
			if !slices.Contains(src.asked, "sanction-policy") {
				t.Errorf("the source was never asked for sanction-policy (asked %v)", src.asked)
			}
		})
	}
	// nil: none recorded.
	in := base(t)
	if s := get(t, Status(in, downtown), sanction); s.Status != AttestationMissing {
		t.Errorf("nil source: %s", s.Status)
	}
}

// Audit controls (164.312(b)) need both a clean scan and an attestation;
// a standard needs its specifications.
func TestBothAndStandards(t *testing.T) {
	in := base(t)
	in.Scans = []observe.Scan{scan("s1", time.Hour, []string{"downtown"}, "csv:emr")}
	if s := get(t, Status(in, downtown), "hipaa:164.312(b)"); s.Status != AttestationMissing {
		t.Errorf("audit controls with a clean scan and no attestation: %s", s.Status)
	}
	in.Attestations = AttestationList{{Kind: "audit-logging", At: now.Add(-time.Hour)}}
	if s := get(t, Status(in, downtown), "hipaa:164.312(b)"); s.Status != Satisfied {
		t.Errorf("audit controls with both: %s (%s)", s.Status, reasons(s))
	}
	in.Scans = nil
	if s := get(t, Status(in, downtown), "hipaa:164.312(b)"); s.Status != NotAssessed {
		t.Errorf("audit controls attested but never scanned: %s", s.Status)
	}

	in.Scans = []observe.Scan{scan("s1", time.Hour, []string{"downtown"}, "csv:emr")}
	ss := Status(in, downtown)
	// Transmission security: own rules plus (e)(2)(i) and (e)(2)(ii), all scanned.
	if s := get(t, ss, "hipaa:164.312(e)(1)"); s.Status != Satisfied || len(s.Specifications) != 2 {
		t.Errorf("transmission security: %s, specifications %v", s.Status, s.Specifications)
	}
	// Access control: its emergency access, logoff and encryption
	// specifications are attested, and nobody has.
	s := get(t, ss, "hipaa:164.312(a)(1)")
	if s.Status != AttestationMissing || !strings.Contains(reasons(s), "specification hipaa:164.312(a)(2)(ii) (Emergency access procedure): attestation-missing") {
		t.Errorf("access control: %s (%s)", s.Status, reasons(s))
	}
	// A standard with nothing of its own takes its specifications' worst.
	in.Findings = []observe.Finding{finding(t, in, "id.stale-account", "", "emr:old")}
	s = get(t, Status(in, downtown), "hipaa:164.308(a)(3)(i)")
	if s.Status != Gap || !strings.Contains(reasons(s), "specification hipaa:164.308(a)(3)(ii)(C) (Termination procedures): gap (addressable") {
		t.Errorf("workforce security: %s (%s)", s.Status, reasons(s))
	}
}

func TestAddressableSetting(t *testing.T) {
	in := base(t)
	in.Scans = []observe.Scan{scan("s1", time.Hour, []string{"downtown"})}
	in.Findings = []observe.Finding{finding(t, in, "svc.ftp-plaintext", "downtown", "10.10.1.9:21")}

	s := get(t, Status(in, downtown), encryption) // addressable
	if !s.Addressable || s.Label() != "gap (addressable: document why not implemented or the alternative)" {
		t.Errorf("addressable gap: %q", s.Label())
	}
	if r := get(t, Status(in, downtown), "hipaa:164.312(e)(1)"); r.Addressable || r.Label() != "gap" {
		t.Errorf("a standard is never addressable: %q", r.Label())
	}
	in.Settings.AddressableAsRequired = true
	s = get(t, Status(in, downtown), encryption)
	if s.Addressable || s.Label() != "gap" {
		t.Errorf("addressable_as_required: %q", s.Label())
	}
	// Satisfied or unknown needs no qualification either way.
	in.Settings.AddressableAsRequired = false
	in.Findings = nil
	if s := get(t, Status(in, downtown), encryption); s.Label() != "satisfied" {
		t.Errorf("addressable, satisfied: %q", s.Label())
	}
}

func TestOrganizationRollUp(t *testing.T) {
	in := base(t)
	in.Scans = []observe.Scan{scan("s1", time.Hour, []string{"downtown", "uptown"})}
	in.Findings = []observe.Finding{finding(t, in, "svc.telnet-plaintext", "uptown", "10.20.1.5:23")}
	org := Organization(in, []config.Location{downtown, uptown})

	s := get(t, org, encryption)
	if s.Location != "" || s.Status != Gap || len(s.ByLocation) != 2 {
		t.Fatalf("roll-up: location %q, %s, %d locations", s.Location, s.Status, len(s.ByLocation))
	}
	if s.ByLocation[0].Location != "downtown" || s.ByLocation[0].Status != Satisfied || s.ByLocation[1].Status != Gap {
		t.Errorf("breakdown: %s %s, %s %s", s.ByLocation[0].Location, s.ByLocation[0].Status, s.ByLocation[1].Location, s.ByLocation[1].Status)
	}
	if got := reasons(s); got != "gap at uptown; satisfied at downtown" {
		t.Errorf("roll-up reasons: %q", got)
	}
	if len(s.Open) != 1 || s.Open[0].Location != "uptown" {
		t.Errorf("roll-up open findings: %v", s.Open)
	}
	// State overlays roll up over their states' locations only.
	if c := get(t, org, "state:ca-cmia"); len(c.ByLocation) != 1 || c.ByLocation[0].Location != "downtown" {
		t.Errorf("CMIA rolled up over %d locations", len(c.ByLocation))
	}
	if has(org, "state:ny-shield") {
		t.Error("an overlay for a state with no location is in the roll-up")
	}
	// An organisation-wide finding counts once, wherever it shows.
	in.Findings = append(in.Findings, finding(t, in, "id.shared-login", "", "emr:frontdesk"))
	org = Organization(in, []config.Location{downtown, uptown})
	if u := get(t, org, "hipaa:164.312(a)(2)(i)"); u.Status != Gap || len(u.Open) != 1 {
		t.Errorf("unique user identification: %s, %d open", u.Status, len(u.Open))
	}
	// Every verdict a user can see is one of the five, with a reason.
	for _, s := range org {
		if !slices.Contains(Verdicts, s.Status) || len(s.Reasons) == 0 {
			t.Errorf("%s: status %q, reasons %v", s.Control.ID, s.Status, s.Reasons)
		}
		for _, l := range s.ByLocation {
			if len(l.Reasons) == 0 || l.CatalogVersion != in.Catalog.Version {
				t.Errorf("%s at %s: reasons %v, catalog %q", s.Control.ID, l.Location, l.Reasons, l.CatalogVersion)
			}
		}
	}
	if _, err := json.Marshal(org); err != nil {
		t.Error(err)
	}
}

// Without scans or attestations nothing is satisfied: vigil never claims a
// control without evidence.
func TestNothingSatisfiedWithoutEvidence(t *testing.T) {
	in := base(t)
	for _, s := range Organization(in, []config.Location{downtown, uptown}) {
		if s.Status == Satisfied {
			t.Errorf("%s satisfied with no scan and no attestation", s.Control.ID)
		}
	}
	for _, s := range Organization(in, nil) {
		if s.Status == Satisfied || s.Location != "" {
			t.Errorf("%s (no locations): %s at %q", s.Control.ID, s.Status, s.Location)
		}
	}
}

func TestVerdictOrder(t *testing.T) {
	for i := 1; i < len(Verdicts); i++ {
		if !Verdicts[i].Worse(Verdicts[i-1]) || Verdicts[i-1].Worse(Verdicts[i]) {
			t.Errorf("%s should be worse than %s", Verdicts[i], Verdicts[i-1])
		}
	}
}

func BenchmarkOrganization(b *testing.B) {
	e, err := rules.Load(rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Catalog: e.Catalog(), Rules: e.Rules(), Now: now}
	var locs []config.Location
	var ids []string
	for i := range 100 {
		id := "site-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		locs = append(locs, config.Location{ID: id, State: []string{"CA", "TX", "NY", "MA"}[i%4]})
		ids = append(ids, id)
	}
	for i := range 200 {
		in.Scans = append(in.Scans, scan("s", time.Duration(i)*time.Hour, ids, "csv:emr"))
	}
	for i := range 5000 {
		r := e.Rules()[i%len(e.Rules())]
		in.Findings = append(in.Findings, observe.Finding{ID: string(rune(i)), Rule: r.ID, Location: ids[i%len(ids)], Controls: r.Controls, Status: observe.StatusOpen})
	}
	b.ResetTimer()
	for b.Loop() {
		Organization(in, locs)
	}
}

// A person past a state's new-hire training deadline makes the overlay that
// sets it attestation-missing at their location, named in the reason; the
// organisation roll-up says where.
func TestOverdueTraining(t *testing.T) {
	const tx = "state:tx-hb300"
	day := 24 * time.Hour
	training := &fakeAttestations{recs: []Attestation{{Kind: "workforce-training", At: now.Add(-30 * day), By: "owner"}}}
	late := func(person, loc, control string, dueAgo time.Duration) OverdueTraining {
		d := now.Add(-dueAgo).Truncate(day)
		return OverdueTraining{Control: control, Location: loc, Person: person, Hired: d.Add(-90 * day), Deadline: d,
			Citation: "Tex. Health & Safety Code §181.101(b)"}
	}
	for _, tc := range []struct {
		name    string
		overdue []OverdueTraining
		want    Verdict // the TX overlay's worst part is the attestation, else not-assessed (no rule cites it)
		reason  string
		named   int
	}{
		{name: "nobody overdue", want: NotAssessed},
		{name: "one overdue", overdue: []OverdueTraining{late("ana@glow.example", "uptown", tx, 10*day)},
			want: AttestationMissing, named: 1,
			reason: "new-hire training overdue at uptown (Tex. Health & Safety Code §181.101(b): within 90 days of hire): ana@glow.example (hired 2026-08-12, due 2026-11-10); record workforce-training"},
		{name: "another location's", overdue: []OverdueTraining{late("ana@glow.example", "elsewhere", tx, 10*day)}, want: NotAssessed},
		{name: "another control's", overdue: []OverdueTraining{late("ana@glow.example", "uptown", "state:ca-cmia", 10*day)}, want: NotAssessed},
		{name: "deadline is today", overdue: []OverdueTraining{late("ana@glow.example", "uptown", tx, 0)}, want: NotAssessed},
		{name: "seven overdue", want: AttestationMissing, named: 7, reason: "and 2 more", overdue: []OverdueTraining{
			late("a@x", "uptown", tx, 2*day), late("b@x", "uptown", tx, 3*day), late("c@x", "uptown", tx, 4*day), late("d@x", "uptown", tx, 5*day),
			late("e@x", "uptown", tx, 6*day), late("f@x", "uptown", tx, 7*day), late("g@x", "uptown", tx, 8*day)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base(t)
			in.Attestations, in.OverdueTraining = training, tc.overdue
			s := get(t, Status(in, uptown), tx)
			if s.Status != tc.want || !strings.Contains(reasons(s), tc.reason) || len(s.OverdueTraining) != tc.named {
				t.Errorf("status %s (%s), %d named; want %s with %q, %d named", s.Status, reasons(s), len(s.OverdueTraining), tc.want, tc.reason, tc.named)
			}
			org := get(t, Organization(in, []config.Location{downtown, uptown}), tx)
			if org.Status != tc.want || (tc.want == AttestationMissing && !strings.Contains(reasons(org), "attestation-missing at uptown")) {
				t.Errorf("roll-up %s (%s)", org.Status, reasons(org))
			}
		})
	}
}
