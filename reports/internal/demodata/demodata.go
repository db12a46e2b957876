// Package demodata seeds a realistic store for the reports' samples and
// benchmark: a medspa group of N clinics scanned weekly for a year, with
// exposures that come and go, an organisation-wide MFA gap, attestations
// (some lapsed), accepted findings and register decisions, written through
// the real store API on a fixed clock so that history and the evidence
// log are what vigil itself would write. Nothing is ever scanned: the
// 10.x ranges are data only.
package demodata

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

// Options size the dataset.
type Options struct {
	Locations int
	// Weeks of weekly scans, ending at End.
	Weeks int
	End   time.Time
	Seed  uint64
}

// Dataset is the seeded store and its configuration.
type Dataset struct {
	Config *config.Config
	Store  *sqlite.Store
	Engine *rules.Engine
	// ConfigPath is the YAML written beside the store.
	ConfigPath string
}

var names = []string{"Downtown", "Uptown", "Riverside", "Lakeview", "Harbor", "Midtown", "Westfield", "Eastgate", "Northpoint", "Southpark",
	"Hillcrest", "Bayside", "Oakwood", "Pinecrest", "Brookside"}
var states = []string{"CA", "TX", "NY", "FL", "MA", "CA", "TX"}

// exposures are the rules whose findings come and go at each clinic, with
// the host they land on (segment index, host octet, port).
var exposures = []struct {
	rule, seg  string
	host, port int
	odds       float64 // chance per clinic of ever having it
}{
	{"net.remote-access-exposed", "clinical", 5, 3389, 0.5},
	{"net.database-exposed", "servers", 10, 5432, 0.35},
	{"net.file-sharing-exposed", "front-desk", 7, 445, 0.6},
	{"net.iot-protocol-exposed", "guest", 30, 1883, 0.3},
	{"svc.ssh-password-auth", "servers", 11, 22, 0.4},
}

// Seed writes the dataset under dir (vigil.yaml and vigil.db).
func Seed(ctx context.Context, dir string, o Options) (*Dataset, error) {
	if o.Locations <= 0 {
		o.Locations = 6
	}
	if o.Weeks <= 0 {
		o.Weeks = 52
	}
	if o.End.IsZero() {
		o.End = time.Date(2026, 3, 30, 2, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 7))
	engine, err := rules.Load(rules.Options{})
	if err != nil {
		return nil, err
	}
	cfg, yaml := organisation(o.Locations)
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	key, err := evidence.NewKey(strings.NewReader(strings.Repeat("vigil-demo-key!!", 4)))
	if err != nil {
		return nil, err
	}
	start := o.End.AddDate(0, 0, -7*(o.Weeks-1))
	now := start
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"), sqlite.WithClock(func() time.Time { return now }), sqlite.WithEvidenceKey(key))
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Config: cfg, Store: st, Engine: engine, ConfigPath: path}

	// Each clinic's exposure windows, in weeks: [from, to).
	type window struct {
		f        observe.Finding
		from, to int
	}
	var windows []window
	for _, l := range cfg.Locations {
		for _, e := range exposures {
			if rng.Float64() >= e.odds {
				continue
			}
			r, ok := engine.Rule(e.rule)
			if !ok {
				return nil, fmt.Errorf("demodata: no rule %s", e.rule)
			}
			seg, _ := l.Segment(e.seg)
			if seg == nil {
				seg = &l.Segments[0]
			}
			addr := seg.Prefixes[0].Addr().As4()
			addr[3] = byte(e.host)
			f := finding(r, l.ID, fmt.Sprintf("%s:%d", netip.AddrFrom4(addr), e.port), "front-desk")
			from := rng.IntN(o.Weeks)
			to := from + 1 + rng.IntN(12)
			if rng.Float64() < 0.3 {
				to = o.Weeks + 1 // still open
			}
			windows = append(windows, window{f, from, to})
		}
	}
	mfa, _ := engine.Rule("id.remote-without-mfa")
	admin, _ := engine.Rule("id.admin-without-mfa")
	windows = append(windows, window{finding(mfa, "", "m365:frontdesk@glow.example", "csv:m365"), 0, o.Weeks + 1},
		window{finding(admin, "", "m365:it-admin@glow.example", "csv:m365"), 2, 20})

	var locIDs []string
	vantages := map[string][]string{}
	for _, l := range cfg.Locations {
		locIDs = append(locIDs, l.ID)
		vantages[l.ID] = []string{"front-desk", "guest"}
	}
	for w := 0; w < o.Weeks; w++ {
		at := start.AddDate(0, 0, 7*w)
		now = at
		sc := observe.Scan{ID: fmt.Sprintf("scan-%s", at.Format("2006-01-02")), StartedAt: at, FinishedAt: at.Add(40 * time.Minute),
			Version: "demo", Locations: locIDs, Complete: true, Sources: []string{"csv:m365"}, Vantages: vantages}
		if err := st.BeginScan(ctx, sc); err != nil {
			return nil, err
		}
		var found []observe.Finding
		for _, win := range windows {
			if w >= win.from && w < win.to {
				found = append(found, win.f)
			}
		}
		now = sc.FinishedAt
		if _, _, err := st.FinishScan(ctx, sc, found); err != nil {
			return nil, err
		}
		// People act between scans.
		now = at.Add(3 * 24 * time.Hour)
		switch w {
		case 1:
			err = attestAll(ctx, st, now, "risk-analysis-review", "assigned-security-responsibility", "sanction-policy", "policies-procedures", "baa-inventory")
		case 4:
			err = attestAll(ctx, st, now, "edr-coverage", "incident-response-plan")
		case o.Weeks / 2:
			err = attestAll(ctx, st, now, "workforce-training", "contingency-plan", "encryption-at-rest", "asset-inventory")
		case o.Weeks - 6:
			for _, l := range cfg.Locations[:max(1, len(cfg.Locations)/2)] {
				if _, err = st.AddAttestation(ctx, observe.Attestation{Kind: "restore-drill", Location: l.ID, At: now, By: "Sam Ortiz",
					Result: "pass", Note: "EMR database restored from the offline copy"}); err != nil {
					break
				}
			}
			if err == nil {
				err = attestAll(ctx, st, now, "log-monitoring", "security-reminders", "activity-review", "risk-analysis-review")
			}
		case o.Weeks - 3:
			err = decide(ctx, st, cfg, now)
		}
		if err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func finding(r *rules.Rule, loc, target, vantage string) observe.Finding {
	return observe.Finding{Rule: r.ID, Category: r.Category, Severity: r.Severity, Title: r.Title, Location: loc, Target: target,
		Controls: r.Controls, Remediation: r.Remediation, Vantage: vantage, Evidence: map[string]any{"seen_from": vantage}}
}

func attestAll(ctx context.Context, st *sqlite.Store, at time.Time, kinds ...string) error {
	for _, k := range kinds {
		if _, err := st.AddAttestation(ctx, observe.Attestation{Kind: k, At: at, By: "Dr. Lee", Owner: "Dr. Lee"}); err != nil {
			return err
		}
	}
	return nil
}

// decide records the register decisions: owners for the MFA risk and the
// first clinic's exposures, and an accepted database exposure.
func decide(ctx context.Context, st *sqlite.Store, cfg *config.Config, now time.Time) error {
	if _, err := st.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: "id.remote-without-mfa@organisation", By: "Dr. Lee", Owner: "Sam Ortiz",
		Treatment: observe.TreatMitigate, Due: now.AddDate(0, 0, 30), Reason: "enforce MFA for all M365 accounts"}, nil); err != nil {
		return err
	}
	open, err := st.Findings(ctx, storeFilterOpen())
	if err != nil {
		return err
	}
	accepted := false
	for _, f := range open {
		switch {
		case f.Rule == "net.database-exposed" && !accepted:
			accepted = true
			if _, err := st.DecideFinding(ctx, f.ID, observe.Decision{Status: observe.StatusAccepted, By: "Dr. Lee",
				Reason: "vendor-managed EMR database; firewall limits it to the front-desk PCs", Expires: now.AddDate(0, 4, 0)}); err != nil {
				return err
			}
		case f.Location == cfg.Locations[0].ID:
			if _, err := st.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: f.Rule + "@" + f.Location, By: "Dr. Lee", Owner: "Sam Ortiz",
				Treatment: observe.TreatMitigate, Reason: "close it at the firewall"}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// organisation is the configuration of n clinics, and its YAML.
func organisation(n int) (*config.Config, string) {
	cfg := &config.Config{Organization: "Glow Aesthetics Group", Identity: []config.IdentitySource{{Type: "csv", System: "m365", Path: "users.csv"}}}
	var y strings.Builder
	y.WriteString("# Sample organisation for docs/samples (reports/internal/demodata). Data only: no schedules.\norganization: Glow Aesthetics Group\ndata_dir: .\nlocations:\n")
	for i := range n {
		name := names[i%len(names)]
		if i >= len(names) {
			name = fmt.Sprintf("%s %d", name, i/len(names)+1)
		}
		id := strings.ToLower(strings.ReplaceAll(name, " ", "-"))
		l := config.Location{ID: id, Name: name + " Clinic", State: states[i%len(states)]}
		fmt.Fprintf(&y, "  - id: %s\n    name: %s\n    state: %s\n    segments:\n", l.ID, l.Name, l.State)
		for j, s := range []struct{ name, role string }{{"front-desk", "front-desk"}, {"clinical", "clinical"}, {"servers", "servers"}, {"guest", "guest"}} {
			cidr := fmt.Sprintf("10.%d.%d.0/24", 10+i/20, (i%20)*10+j+1)
			l.Segments = append(l.Segments, config.Segment{Name: s.name, Role: s.role, CIDR: cidr, Prefixes: []netip.Prefix{netip.MustParsePrefix(cidr)}})
			fmt.Fprintf(&y, "      - {name: %s, cidr: %s, role: %s}\n", s.name, cidr, s.role)
		}
		cfg.Locations = append(cfg.Locations, l)
	}
	y.WriteString("identity:\n  - {type: csv, system: m365, path: users.csv}\n")
	return cfg, y.String()
}

func storeFilterOpen() store.FindingFilter {
	return store.FindingFilter{Statuses: []observe.Status{observe.StatusOpen}}
}
