package reports

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store/sqlite"
)

// The fixed dataset: Glow Aesthetics, two clinics, three scans over two
// months, an accepted finding, a resolved one, attestations (one expired)
// and a register decision, all on a fixed clock. asOf is the pack's date;
// the test store also holds a later scan and decisions (addLater) that the
// pack must not see.
var (
	day0     = time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)
	asOf     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	genTime  = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	seedKey  = bytes.Repeat([]byte{7}, 32)
	fixtureV = "test"
)

func fixtureConfig() *config.Config {
	seg := func(name, role, cidr string) config.Segment {
		return config.Segment{Name: name, Role: role, CIDR: cidr, Prefixes: []netip.Prefix{netip.MustParsePrefix(cidr)}}
	}
	return &config.Config{Organization: "Glow Aesthetics",
		Identity: []config.IdentitySource{{Type: "csv", System: "m365"}},
		Locations: []config.Location{
			{ID: "downtown", Name: "Downtown Clinic", State: "CA", Segments: []config.Segment{seg("front-desk", "front-desk", "10.10.1.0/24"),
				seg("clinical", "clinical", "10.10.2.0/24"), seg("guest", "guest", "10.10.9.0/24")}},
			{ID: "uptown", Name: "Uptown Clinic", State: "TX", Segments: []config.Segment{seg("front-desk", "front-desk", "10.20.1.0/24"),
				seg("servers", "servers", "10.20.2.0/24")}},
		}}
}

// fixtureStore is the seeded store and its moving clock.
type fixtureStore struct {
	*sqlite.Store
	now    *time.Time
	engine *rules.Engine
	cfg    *config.Config
}

func (fs *fixtureStore) at(t time.Time) { *fs.now = t }

var (
	fRDP = observe.Finding{Rule: "net.remote-access-exposed", Category: "exposed-service", Severity: observe.High,
		Title: "Remote Desktop reachable from the guest network", Location: "downtown", Target: "10.10.2.5:3389", Vantage: "guest",
		Controls: []string{"hipaa:164.312(a)(1)", "hipaa:164.312(d)", "hipaa:164.312(e)(1)", "hipaa:164.308(a)(1)(ii)(B)", "cpg:E-3", "cpg:X-7",
			"insurance:rdp-exposed", "insurance:mfa-remote"}, Evidence: map[string]any{"service": "ms-wbt-server", "seen_from": "guest"}}
	fDB = observe.Finding{Rule: "net.database-exposed", Category: "exposed-service", Severity: observe.High,
		Title: "PostgreSQL reachable from the front desk", Location: "uptown", Target: "10.20.2.10:5432", Vantage: "front-desk",
		Controls: []string{"hipaa:164.312(a)(1)", "hipaa:164.312(e)(1)", "hipaa:164.312(e)(2)(ii)", "hipaa:164.308(a)(1)(ii)(B)", "cpg:X-7",
			"insurance:segmentation"}, Evidence: map[string]any{"service": "postgresql"}}
	fMFA = observe.Finding{Rule: "id.remote-without-mfa", Category: "missing-mfa", Severity: observe.High,
		Title: "Email account signs in without MFA", Target: "m365:frontdesk@glow.example", Vantage: "csv:m365",
		Controls: []string{"hipaa:164.312(d)", "cpg:E-3", "insurance:mfa-email", "insurance:mfa-remote"}, Evidence: map[string]any{"mfa": false}}
	fSMB = observe.Finding{Rule: "net.file-sharing-exposed", Category: "exposed-service", Severity: observe.Medium,
		Title: "SMB file sharing reachable from the front desk", Location: "uptown", Target: "10.20.1.7:445", Vantage: "front-desk",
		Controls: []string{"hipaa:164.312(a)(1)", "hipaa:164.312(e)(1)", "cpg:X-7", "insurance:segmentation"}, Evidence: map[string]any{"service": "microsoft-ds"}}
)

func withID(f observe.Finding) observe.Finding {
	f.ID = observe.FindingID(f.Rule, f.Location, f.Target)
	return f
}

// seedFixture builds the store of the fixed dataset.
func seedFixture(t testing.TB) *fixtureStore {
	t.Helper()
	ctx := context.Background()
	key, err := evidence.NewKey(bytes.NewReader(seedKey))
	if err != nil {
		t.Fatal(err)
	}
	now := day0
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), sqlite.WithClock(func() time.Time { return now }), sqlite.WithEvidenceKey(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	engine, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fixtureStore{Store: st, now: &now, engine: engine, cfg: fixtureConfig()}

	fs.scan(t, "scan-2026-01-05", day0, fRDP, fDB, fMFA, fSMB)
	fs.attest(t, observe.Attestation{Kind: "edr-coverage", At: time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC), By: "Sam Ortiz",
		Note: "Defender for Business on all endpoints"}, day0.Add(time.Hour))
	fs.attest(t, observe.Attestation{Kind: "workforce-training", At: time.Date(2026, 1, 20, 15, 0, 0, 0, time.UTC), By: "Dr. Lee",
		Note: "annual HIPAA security training, sign-in sheet", Document: strings.Repeat("ab", 32)}, time.Date(2026, 1, 20, 16, 0, 0, 0, time.UTC))
	fs.attest(t, observe.Attestation{Kind: "risk-analysis-review", At: time.Date(2026, 1, 25, 10, 0, 0, 0, time.UTC), By: "Dr. Lee",
		Owner: "Dr. Lee"}, time.Date(2026, 1, 25, 11, 0, 0, 0, time.UTC))
	fs.attest(t, observe.Attestation{Kind: "restore-drill", Location: "uptown", At: time.Date(2026, 1, 28, 10, 0, 0, 0, time.UTC),
		By: "Sam Ortiz", Result: "pass", Note: "EMR database restored from the offline copy in 40 minutes"}, time.Date(2026, 1, 28, 12, 0, 0, 0, time.UTC))

	s2 := time.Date(2026, 2, 4, 2, 0, 0, 0, time.UTC)
	fs.scan(t, "scan-2026-02-04", s2, fRDP, fDB, fMFA) // SMB no longer answers: resolved

	fs.at(time.Date(2026, 2, 6, 14, 0, 0, 0, time.UTC))
	if _, err := st.DecideFinding(ctx, withID(fDB).ID, observe.Decision{Status: observe.StatusAccepted, By: "Dr. Lee",
		Reason: "vendor-managed EMR database; firewall limits it to the front-desk PCs", Expires: time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	fs.at(time.Date(2026, 2, 7, 9, 0, 0, 0, time.UTC))
	if _, err := st.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: "net.remote-access-exposed@downtown", By: "Dr. Lee", Owner: "Sam Ortiz",
		Treatment: observe.TreatMitigate, Due: time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), Reason: "close RDP; use the VPN with MFA"}, nil); err != nil {
		t.Fatal(err)
	}
	fs.scan(t, "scan-2026-02-25", time.Date(2026, 2, 25, 2, 0, 0, 0, time.UTC), fRDP, fDB, fMFA)
	return fs
}

// addLater records what happened after asOf: a scan that no longer sees
// the RDP exposure, a new EDR attestation, and a new register decision.
func (fs *fixtureStore) addLater(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	fs.scan(t, "scan-2026-03-10", time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC), fDB, fMFA)
	fs.attest(t, observe.Attestation{Kind: "edr-coverage", At: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), By: "Sam Ortiz"},
		time.Date(2026, 3, 11, 1, 0, 0, 0, time.UTC))
	fs.at(time.Date(2026, 3, 12, 9, 0, 0, 0, time.UTC))
	if _, err := fs.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: "id.remote-without-mfa@organisation", By: "Dr. Lee", Owner: "Dr. Lee",
		Treatment: observe.TreatMitigate, Reason: "enforce MFA in M365"}, nil); err != nil {
		t.Fatal(err)
	}
}

// scan records one complete scan of both locations and the identity
// source, at t, that saw fs.
func (fs *fixtureStore) scan(t testing.TB, id string, at time.Time, found ...observe.Finding) {
	t.Helper()
	ctx := context.Background()
	fs.at(at)
	sc := observe.Scan{ID: id, StartedAt: at, FinishedAt: at.Add(20 * time.Minute), Version: fixtureV, Locations: []string{"downtown", "uptown"},
		Complete: true, Sources: []string{"csv:m365"},
		Vantages: map[string][]string{"downtown": {"front-desk", "guest"}, "uptown": {"front-desk"}}}
	if err := fs.BeginScan(ctx, sc); err != nil {
		t.Fatal(err)
	}
	var obs []observe.Observation
	for _, f := range found {
		if f.Location == "" {
			continue
		}
		host, port, _ := strings.Cut(f.Target, ":")
		var p int
		fmt.Sscan(port, &p)
		obs = append(obs, observe.Observation{Kind: observe.KindService, Location: f.Location, Host: host, Port: p, Proto: "tcp",
			Source: "nmap", At: at.Add(time.Minute), Vantage: f.Vantage, Attrs: map[string]any{"state": "open"}})
	}
	if len(obs) > 0 {
		if err := fs.AddObservations(ctx, id, obs); err != nil {
			t.Fatal(err)
		}
	}
	fs.at(sc.FinishedAt)
	if _, _, err := fs.FinishScan(ctx, sc, found); err != nil {
		t.Fatal(err)
	}
}

func (fs *fixtureStore) attest(t testing.TB, a observe.Attestation, recorded time.Time) {
	t.Helper()
	fs.at(recorded)
	if _, err := fs.AddAttestation(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// facts gathers the fixture's facts as of at.
func (fs *fixtureStore) facts(t testing.TB, at time.Time, prev *PackState) *Facts {
	t.Helper()
	f, err := Build(context.Background(), fs.Store, BuildInput{
		Posture:  posture.Input{Config: fs.cfg, Catalog: fs.engine.Catalog(), Rules: fs.engine.Rules(), Now: at},
		Evidence: fs.Evidence(), Previous: prev, Generated: genTime, Version: fixtureV})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Attestation ids carry random bytes, and so the hashes of the evidence
// entries after them: golden files mask both.
var (
	attIDRE = regexp.MustCompile(`att-\d{8}T\d{6}Z-[0-9a-f]{8}`)
	hashRE  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	shortRE = regexp.MustCompile(`(#\d+ )[0-9a-f]{12}\b`)
)

func normalize(s string) string {
	s = attIDRE.ReplaceAllString(s, "att-ID")
	s = hashRE.ReplaceAllString(s, "HASH")
	return shortRE.ReplaceAllString(s, "${1}HASH")
}

// dumpDocument is a document as plain text, one line per value: what the
// golden files compare (every format renders the same content).
func dumpDocument(d *Document) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n%s | %s\nas of %s | generated %s | vigil %s\n", d.Title, d.Organization, d.Subtitle,
		d.AsOf.UTC().Format(time.RFC3339), d.Generated.UTC().Format(time.RFC3339), d.Version)
	for i, s := range d.Sections {
		fmt.Fprintf(&b, "\n## %d. %s\n", i+1, s.Title)
		for _, bl := range s.Blocks {
			switch bl := bl.(type) {
			case *Paragraph:
				fmt.Fprintf(&b, "%s\n", bl.Text)
			case *KeyValues:
				for _, kv := range bl.Items {
					fmt.Fprintf(&b, "- %s: %s%s\n", kv.Key, kv.Value, toneMark(kv.Tone))
				}
			case *Table:
				fmt.Fprintf(&b, "table %s", bl.Name)
				if bl.Caption != "" {
					fmt.Fprintf(&b, " (%s)", bl.Caption)
				}
				b.WriteString("\n")
				var head []string
				for _, c := range bl.Columns {
					head = append(head, c.Title)
				}
				fmt.Fprintf(&b, "| %s |\n", strings.Join(head, " | "))
				for _, rows := range [][][]Cell{bl.Rows, bl.More} {
					for _, r := range rows {
						var cells []string
						for _, c := range r {
							cells = append(cells, strings.ReplaceAll(c.Text, "\n", " / ")+toneMark(c.Tone))
						}
						fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
					}
				}
				if len(bl.Rows) == 0 {
					fmt.Fprintf(&b, "(empty: %s)\n", bl.Empty)
				}
			case *BarChart:
				fmt.Fprintf(&b, "chart %s: %s\n", bl.Title, strings.Join(bl.Labels, ", "))
				for _, s := range bl.Series {
					fmt.Fprintf(&b, "  %s: %v\n", s.Name, s.Values)
				}
				fmt.Fprintf(&b, "  %s\n", bl.Note)
			}
		}
	}
	return normalize(b.String())
}

func toneMark(t Tone) string {
	if t == ToneNone {
		return ""
	}
	return " {" + string(t) + "}"
}
