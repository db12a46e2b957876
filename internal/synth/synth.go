// Package synth builds a synthetic vigil data directory for benchmarks and
// browser tests: a multi-location medspa organisation's configuration and
// a store holding up to a year of its daily scans, written through the real
// store API so that finding lifecycles, history and the evidence log are
// what vigil itself would have written. Nothing it describes is ever
// scanned: the 10.x ranges are data only and the configuration has no
// schedules.
package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/accounts"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

// Version is the generator's version. It is part of every cache key:
// bump it whenever a change makes the data generated for the same Options
// different.
const Version = "1"

// Options size the dataset. The zero value of a field takes the
// benchmark's default (see Defaults).
type Options struct {
	Locations int // sites (300)
	Assets    int // hosts over all sites (15,000)
	Days      int // daily scans per site (365)
	// FullScans is how many of each site's latest scans keep their full
	// observation set (3); older scans keep their findings and history
	// only. See docs/benchmarks.md for why.
	FullScans int
	// StaffPerLocation is the people per site, each with an EMR and an
	// M365 account (10).
	StaffPerLocation int
	Seed             uint64
	// End is the day after the last scan day, at 00:00 UTC (default: the
	// Monday of the current week, so a cache lasts a week).
	End time.Time
	// Progress receives one line per ten simulated days; nil is silent.
	Progress io.Writer `json:"-"`
}

// Defaults are the benchmark's sizes (issue 6).
var Defaults = Options{Locations: 300, Assets: 15000, Days: 365, FullScans: 3, StaffPerLocation: 10, Seed: 1}

func (o Options) withDefaults(now time.Time) Options {
	d := Defaults
	if o.Locations <= 0 {
		o.Locations = d.Locations
	}
	if o.Assets <= 0 {
		o.Assets = d.Assets
	}
	if o.Days <= 0 {
		o.Days = d.Days
	}
	if o.FullScans <= 0 {
		o.FullScans = d.FullScans
	}
	o.FullScans = min(o.FullScans, o.Days)
	if o.StaffPerLocation <= 0 {
		o.StaffPerLocation = d.StaffPerLocation
	}
	if o.Seed == 0 {
		o.Seed = d.Seed
	}
	if o.End.IsZero() {
		day := now.UTC().Truncate(24 * time.Hour)
		o.End = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7)) // Monday
	}
	o.End = o.End.UTC().Truncate(24 * time.Hour)
	return o
}

// Files in a generated directory.
const (
	ConfigFile   = "vigil.yaml"
	DataDir      = "data"
	ManifestFile = "synth.json"
)

// Manifest describes a generated directory; it is written last, so a
// directory without one is incomplete.
type Manifest struct {
	Version string  `json:"version"`
	Options Options `json:"options"`
	// LocationIDs are the sites, in configuration order.
	LocationIDs  []string `json:"location_ids"`
	Assets       int      `json:"assets"`
	Accounts     int      `json:"accounts"`
	Scans        int      `json:"scans"`
	Observations int      `json:"observations"`
	// Findings counts distinct findings ever seen; Open those open at the end.
	Findings     int            `json:"findings"`
	Open         int            `json:"open"`
	Events       map[string]int `json:"events"`
	Decisions    int            `json:"decisions"`
	Attestations int            `json:"attestations"`
	// Matrix names a location whose latest scan has reachability probes.
	Matrix   string        `json:"matrix_location"`
	Took     time.Duration `json:"took_ns"`
	TookText string        `json:"took"`
	// StoreTime is the part of Took spent inside store calls.
	StoreTime time.Duration `json:"store_ns"`
	DBBytes   int64         `json:"db_bytes"`
}

// ReadManifest reads dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return &m, nil
}

// Key is the cache key of opts: the generator version and a digest of the
// sizes, seed and end date.
func Key(opts Options) string {
	opts = opts.withDefaults(time.Now())
	b, _ := json.Marshal(opts)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("v%s-%dloc-%dd-%s", Version, opts.Locations, opts.Days, hex.EncodeToString(sum[:6]))
}

// Cached returns the directory under cacheDir holding the dataset for
// opts, generating it first unless an earlier run left it complete.
// reused says which. Callers that write (vigil serve does) should work on
// a copy: see CopyDir.
func Cached(ctx context.Context, cacheDir string, opts Options) (dir string, reused bool, err error) {
	dir = filepath.Join(cacheDir, Key(opts))
	if _, err := ReadManifest(dir); err == nil {
		return dir, true, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-"+Key(opts)+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up after a failure
	if _, err := Generate(ctx, tmp, opts); err != nil {
		return "", false, err
	}
	os.RemoveAll(dir) // an incomplete leftover
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, err
	}
	return dir, false, nil
}

// CopyDir copies a generated directory (regular files only) to dst.
func CopyDir(dst, src string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o700)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".lock") {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		info, err := in.Stat()
		if err != nil {
			return err
		}
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// clock is the store's clock during generation: the simulated time of
// the write in progress.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// potential is a finding the generated assets give rise to, and the days
// on which scans see it.
type potential struct {
	f         observe.Finding
	intervals [][2]int // [from, to) days the finding is present
}

func (p *potential) activeOn(day int) bool {
	for _, iv := range p.intervals {
		if day >= iv[0] && day < iv[1] {
			return true
		}
	}
	return false
}

// lifecycle draws the days a finding is present: about half exist before
// the first scan, a third are never fixed, the rest are fixed after two
// months on average and three in ten of those come back.
func lifecycle(r *rand.Rand, days int) [][2]int {
	start := 0
	if !chance(r, 0.5) {
		start = r.IntN(days)
	}
	var out [][2]int
	for start < days {
		length := days
		if !chance(r, 0.35) {
			length = 1 + int(r.ExpFloat64()*60)
		}
		end := min(start+length, days)
		out = append(out, [2]int{start, end})
		if end >= days || !chance(r, 0.3) {
			break
		}
		start = end + 1 + int(r.ExpFloat64()*20)
	}
	return out
}

// Generate writes a configuration, identity exports and a store with the
// dataset opts describes into dir (which should be empty), and returns its
// manifest, also written to dir/synth.json.
func Generate(ctx context.Context, dir string, opts Options) (*Manifest, error) {
	began := time.Now()
	opts = opts.withDefaults(began)
	if opts.Assets < opts.Locations {
		return nil, fmt.Errorf("synth: %d assets for %d locations: want at least one per location", opts.Assets, opts.Locations)
	}
	if opts.Locations > 300*5 {
		return nil, fmt.Errorf("synth: at most 1500 locations fit the 10.x address plan")
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	first := opts.End.AddDate(0, 0, -opts.Days)
	locs := makeLocations(r, opts.Locations, opts.Assets)
	accts := makeAccounts(r, locs, opts.StaffPerLocation, opts.End)
	if err := writeExports(filepath.Join(dir, "exports"), accts); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	if err := writeConfig(cfgPath, locs); err != nil {
		return nil, err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("synth: the generated configuration does not load: %w", err)
	}
	engine, err := rules.Load(rules.Options{})
	if err != nil {
		return nil, err
	}

	// Every finding the assets give rise to, judged by the real rules
	// over the full observation set as of the last day, and the days
	// each is present.
	last := opts.End.Add(-22 * time.Hour) // 02:00 on the last day
	byLoc := make([][]*potential, len(locs))
	m := &Manifest{Version: Version, Options: opts, Assets: opts.Assets, Accounts: len(accts), Events: map[string]int{}}
	for i, l := range locs {
		m.LocationIDs = append(m.LocationIDs, l.ID)
		obs := l.observations(last, nil)
		loc, _ := cfg.Location(l.ID)
		fs := engine.Evaluate(obs, last)
		_, seg := engine.Segmentation(scanrun.PolicyOf(cfg, loc), obs, last)
		for _, f := range append(fs, seg...) {
			if f.ID == "" {
				f.ID = observe.FindingID(f.Rule, f.Location, f.Target)
			}
			byLoc[i] = append(byLoc[i], &potential{f: f, intervals: lifecycle(r, opts.Days)})
		}
	}
	orgObs := append(accountObservations(accts, last), packageObservations(r, last)...)
	orgObs = accounts.Enrich(orgObs, nil, accounts.SettingsFrom(cfg), last)
	var org []*potential
	for _, f := range engine.Evaluate(orgObs, last) {
		if f.ID == "" {
			f.ID = observe.FindingID(f.Rule, f.Location, f.Target)
		}
		org = append(org, &potential{f: f, intervals: lifecycle(r, opts.Days)})
	}

	dataDir := filepath.Join(dir, DataDir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	key, err := evidence.LoadOrCreateKey(dataDir)
	if err != nil {
		return nil, err
	}
	clk := &clock{t: first}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, store.DefaultFileName), sqlite.WithClock(clk.now), sqlite.WithEvidenceKey(key))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	w := &writer{st: st, clk: clk, m: m}

	// Locations scan in the order of their nightly start.
	order := make([]int, len(locs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(locs[a].Jitter - locs[b].Jitter) })
	decided := map[string]bool{}
	for day := 0; day < opts.Days; day++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		date := first.AddDate(0, 0, day)
		full := day >= opts.Days-opts.FullScans
		for _, i := range order {
			l := locs[i]
			if chance(r, 0.003) && day < opts.Days-opts.FullScans { // the sensor was off that night
				continue
			}
			start := date.Add(2*time.Hour + l.Jitter)
			finish := start.Add(3*time.Minute + time.Duration(r.IntN(300))*time.Second)
			scan := observe.Scan{ID: scanID(start, l.ID), StartedAt: start, FinishedAt: finish, Version: "synth-" + Version,
				Locations: []string{l.ID}, Complete: true, Vantages: map[string][]string{l.ID: {"front-desk", "guest"}}}
			if chance(r, 0.01) && !full {
				scan.Complete = false
				scan.Errors = []string{fmt.Sprintf("location %s: nmap: 3 hosts timed out after 5m0s", l.ID)}
			}
			var seen []observe.Finding
			targets := map[string]bool{}
			all := map[string]bool{}
			for _, p := range byLoc[i] {
				all[p.f.Target] = true
				if p.activeOn(day) {
					seen = append(seen, p.f)
					targets[p.f.Target] = true
				}
			}
			var obs []observe.Observation
			if full {
				obs = l.observations(start.Add(time.Minute), func(t string) bool { return targets[t] || !all[t] })
			}
			if err := w.scan(ctx, scan, obs, seen); err != nil {
				return nil, err
			}
		}
		// The organisation job: identity and software sources, at 03:00.
		start := date.Add(3 * time.Hour)
		scan := observe.Scan{ID: scanID(start, "_org"), StartedAt: start, FinishedAt: start.Add(40 * time.Second), Version: "synth-" + Version,
			Complete: true, Sources: []string{"csv:emr", "csv:m365", "osv-scanner"}}
		var seen []observe.Finding
		for _, p := range org {
			if p.activeOn(day) {
				seen = append(seen, p.f)
			}
		}
		var obs []observe.Observation
		if full {
			obs = accountObservations(accts, start.Add(10*time.Second))
			obs = append(obs, packageObservations(r, start.Add(20*time.Second))...)
		}
		if err := w.scan(ctx, scan, obs, seen); err != nil {
			return nil, err
		}

		// People's decisions, during the working day: a few open
		// findings accepted or marked false positive each week.
		if err := w.decide(ctx, r, date.Add(15*time.Hour), byLoc, org, day, opts.Days, decided); err != nil {
			return nil, err
		}
		if day%10 == 9 || day == opts.Days-1 {
			fmt.Fprintf(progress, "synth: day %d/%d: %d scans, %d finding events, %s (store %s)\n", day+1, opts.Days, m.Scans,
				sumEvents(m.Events), time.Since(began).Round(time.Second), w.storeTime.Round(time.Second))
		}
	}
	if err := w.administrative(ctx, r, first, opts, locs, byLoc); err != nil {
		return nil, err
	}

	// What the store says now.
	clk.set(opts.End)
	fs, err := st.Findings(ctx, store.FindingFilter{})
	if err != nil {
		return nil, err
	}
	m.Findings = len(fs)
	for _, f := range fs {
		if f.Status == observe.StatusOpen {
			m.Open++
		}
	}
	if len(locs) > 0 {
		m.Matrix = locs[0].ID
		for _, l := range locs {
			if l.Firewall != "strict" {
				m.Matrix = l.ID
				break
			}
		}
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	if info, err := os.Stat(filepath.Join(dataDir, store.DefaultFileName)); err == nil {
		m.DBBytes = info.Size()
	}
	m.Took = time.Since(began)
	m.TookText = m.Took.Round(time.Second).String()
	m.StoreTime = w.storeTime
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

func sumEvents(ev map[string]int) int {
	n := 0
	for _, v := range ev {
		n += v
	}
	return n
}

// scanID is shaped like scanrun.NewScanID's, with a suffix derived from the
// location so that the dataset is reproducible.
func scanID(start time.Time, loc string) string {
	h := sha256.Sum256([]byte(start.String() + loc))
	return start.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(h[:4])
}

// writer writes through the store API, keeping the clock and the counts.
type writer struct {
	st        *sqlite.Store
	clk       *clock
	m         *Manifest
	storeTime time.Duration
}

func (w *writer) scan(ctx context.Context, scan observe.Scan, obs []observe.Observation, seen []observe.Finding) error {
	t := time.Now()
	defer func() { w.storeTime += time.Since(t) }()
	w.clk.set(scan.StartedAt)
	if err := w.st.BeginScan(ctx, scan); err != nil {
		return err
	}
	if len(obs) > 0 {
		w.clk.set(scan.StartedAt.Add(time.Minute))
		if err := w.st.AddObservations(ctx, scan.ID, obs); err != nil {
			return err
		}
		w.m.Observations += len(obs)
	}
	w.clk.set(scan.FinishedAt)
	current, resolved, err := w.st.FinishScan(ctx, scan, seen)
	if err != nil {
		return err
	}
	w.m.Scans++
	w.m.Events["seen/opened/reopened"] += len(current)
	w.m.Events[string(store.EventResolved)] += len(resolved)
	return nil
}

var reasons = []string{
	"Vendor-managed device; the vendor's remote support needs it until the Q3 replacement",
	"Compensating control: the port is only reachable over the clinic VPN with MFA",
	"Kiosk account used by the check-in tablet; scheduled for replacement",
	"Printer firmware cannot disable it; device isolated on its own VLAN",
	"Scanner false positive: the service answers with a decoy banner",
	"Legacy imaging workstation, replacement ordered",
}

var people = []string{"dana.ross@lumen.example (practice manager)", "it-admin@lumen.example", "msp-tech@lumen.example", "compliance@lumen.example"}

// decide records, on average twice a week, a person's decision on an
// open finding: accepted (three in four) or false positive, for 60 to
// 300 days, so some decisions expire within the year and the findings
// reopen.
func (w *writer) decide(ctx context.Context, r *rand.Rand, at time.Time, byLoc [][]*potential, org []*potential, day, days int, decided map[string]bool) error {
	n := 0
	if chance(r, 2.0/7) {
		n = 1
	}
	if day == days-1 {
		n = 3 // recent ones for the dashboard to show
	}
	for ; n > 0; n-- {
		var p *potential
		if chance(r, 0.2) && len(org) > 0 {
			p = org[r.IntN(len(org))]
		} else if ps := byLoc[r.IntN(len(byLoc))]; len(ps) > 0 {
			p = ps[r.IntN(len(ps))]
		}
		if p == nil || decided[p.f.ID] || !p.activeOn(day) {
			continue
		}
		status := observe.StatusAccepted
		if chance(r, 0.25) {
			status = observe.StatusFalsePositive
		}
		d := observe.Decision{Status: status, By: people[r.IntN(len(people))], Reason: reasons[r.IntN(len(reasons))],
			At: at, Expires: at.AddDate(0, 0, 60+r.IntN(240)).Truncate(24 * time.Hour)}
		t := time.Now()
		w.clk.set(at)
		_, err := w.st.DecideFinding(ctx, p.f.ID, d)
		w.storeTime += time.Since(t)
		if err != nil {
			return fmt.Errorf("synth: decide %s: %w", p.f.ID, err)
		}
		decided[p.f.ID] = true
		w.m.Decisions++
		w.m.Events[string(status)]++
	}
	return nil
}

// administrative records the attestations and risk-register decisions a
// compliance officer would have made over the year.
func (w *writer) administrative(ctx context.Context, r *rand.Rand, first time.Time, opts Options, locs []*location, byLoc [][]*potential) error {
	type att struct {
		kind, loc, result, subject string
		day                        int
	}
	atts := []att{
		{kind: "risk-analysis-review", day: 20},
		{kind: "assigned-security-responsibility", day: 2, subject: "compliance@lumen.example"},
		{kind: "workforce-training", day: 45},
		{kind: "security-reminders", day: opts.Days - 40},
		{kind: "sanction-policy", day: 60},
		{kind: "incident-response-plan", day: 90},
		{kind: "baa-inventory", day: 120, subject: "EMR vendor"},
		{kind: "contingency-plan", day: 150},
		{kind: "restore-drill", day: opts.Days - 30, result: "pass"},
		{kind: "edr-coverage", day: opts.Days - 20},
	}
	for i, l := range locs {
		if i >= 5 {
			break
		}
		atts = append(atts, att{kind: "facility-security-plan", loc: l.ID, day: 30 + i*40})
	}
	for _, a := range atts {
		day := min(max(a.day, 0), opts.Days-1)
		at := first.AddDate(0, 0, day).Add(16 * time.Hour)
		w.clk.set(at.Add(time.Hour))
		rec := observe.Attestation{Kind: a.kind, Location: a.loc, At: at, By: people[3], Owner: people[3], Subject: a.subject,
			Result: a.result, Note: "Recorded from the synthetic compliance calendar"}
		if _, err := w.st.AddAttestation(ctx, rec); err != nil {
			return fmt.Errorf("synth: attestation %s: %w", a.kind, err)
		}
		w.m.Attestations++
	}
	// Risk register: the first few locations' highest findings get an
	// owner and a due date.
	n := 0
	for _, ps := range byLoc {
		for _, p := range ps {
			if n >= 4 || p.f.Severity.Rank() < observe.High.Rank() {
				continue
			}
			at := opts.End.AddDate(0, 0, -10+n)
			w.clk.set(at)
			t := observe.RiskTreatment{Risk: p.f.Rule + "@" + p.f.Location, By: people[3], Owner: people[1], Treatment: observe.TreatMitigate,
				Due: at.AddDate(0, 0, 30), Reason: "Scheduled with the MSP for the next maintenance window"}
			if _, err := w.st.AddRiskTreatment(ctx, t, nil); err != nil {
				return fmt.Errorf("synth: risk treatment %s: %w", t.Risk, err)
			}
			n++
		}
	}
	_ = r
	return nil
}
