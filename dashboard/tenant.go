package dashboard

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/users"
)

// tenant is one organisation and its current posture view. The view is
// replaced, never changed, so handlers read it without locks.
type tenant struct {
	Tenant
	s *server

	mu       sync.Mutex
	cur      *view
	building bool
	dirty    bool
	ready    chan struct{} // closed when the first view exists
	lastErr  error
	started  int64 // builds started
	finished int64 // number of the last build that ended
	// nextAt is the earliest start of the next rebuild (a pause after
	// the last). urgent skips the pause once, and hurry ends one under
	// way: a change made through the dashboard, whose page waits for it.
	nextAt time.Time
	urgent bool
	hurry  chan struct{}
}

// invalidate marks the view stale and starts a rebuild unless one is
// running; a running one is followed by exactly one more (single flight).
func (t *tenant) invalidate() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.building {
		t.dirty = true
		return
	}
	select {
	case <-t.s.done:
		return
	default:
	}
	t.building = true
	t.s.wg.Add(1)
	go t.rebuildLoop()
}

func (t *tenant) rebuildLoop() {
	defer t.s.wg.Done()
	for {
		// Scans stored one after another (agents finishing scans all
		// day) would have a rebuild start after each: the next waits
		// as long as the last took (1 to 30 seconds), so rebuilding
		// takes at most about half a core and every scan stored
		// meanwhile is taken in by one rebuild.
		for {
			t.mu.Lock()
			wait := time.Until(t.nextAt)
			if t.urgent {
				wait, t.urgent = 0, false
			}
			t.mu.Unlock()
			if wait <= 0 {
				break
			}
			select {
			case <-t.s.done:
				t.mu.Lock()
				t.building = false
				t.mu.Unlock()
				return
			case <-t.hurry:
			case <-time.After(wait):
			}
		}
		t.mu.Lock()
		t.started++
		n := t.started
		t.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		start := time.Now()
		v, err := buildView(ctx, t, t.s.now())
		cancel()
		took := time.Since(start)
		t.mu.Lock()
		t.nextAt = time.Now().Add(min(max(took, rebuildGapMin), rebuildGapMax))
		if err != nil {
			t.lastErr = err
			t.s.log.Error("dashboard: posture not rebuilt; serving the previous one", "tenant", string(t.ID), "err", err)
		} else {
			t.cur, t.lastErr = v, nil
			t.s.log.Debug("dashboard: posture rebuilt", "tenant", string(t.ID), "findings", len(v.snap.Findings), "took", time.Since(start))
			select {
			case <-t.ready:
			default:
				close(t.ready)
			}
		}
		t.finished = n
		again := t.dirty
		t.dirty = false
		select {
		case <-t.s.done:
			again = false
		default:
		}
		if !again {
			t.building = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

// Bounds of the pause between one rebuild's end and the next's start.
const (
	rebuildGapMin = time.Second
	rebuildGapMax = 30 * time.Second
)

// view returns the current view, waiting for the first one; a view older
// than the maximum age is served while a newer one is built.
func (t *tenant) view(ctx context.Context) (*view, error) {
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		t.mu.Lock()
		err := t.lastErr
		t.mu.Unlock()
		return nil, fmt.Errorf("tenant %s: posture not ready: %v", t.ID, err)
	}
	t.mu.Lock()
	v := t.cur
	t.mu.Unlock()
	if t.s.now().Sub(v.built) > t.s.maxAge {
		t.invalidate()
	}
	return v, nil
}

// view is one snapshot of a tenant's posture with everything pages need
// precomputed once: per-location aggregates, indexes, trend samples.
type view struct {
	built  time.Time
	snap   *posture.Snapshot
	byID   map[string]*observe.Finding
	sorted []*observe.Finding // severity, then location, then id
	locs   []locationSummary  // config order
	locIdx map[string]int
	// trend: open findings per location ("" = all) at each sample time.
	trendAt   []time.Time
	trendOpen map[string][]int
	byCat     map[string]map[observe.Category]int // location ("" all) → open by category
	controls  map[string]*controls.ControlStatus
	people    []person
	identScan *observe.Scan
	docs      attest.Documents

	details sync.Map // location id → *locationDetail, built on first view
	// pageCache holds rendered page content and JSON by key
	// (respondCached); it goes with the snapshot.
	pageCache sync.Map
	cached    atomic.Int64
	mapOnce   sync.Once
	findings  map[string]observe.Finding // by id, for tracing
}

// findingsMap returns the findings by id (copies, as tracing wants them).
func (v *view) findingsMap() map[string]observe.Finding {
	v.mapOnce.Do(func() { v.findings = v.snap.FindingsByID() })
	return v.findings
}

// locationSummary is one portfolio row.
type locationSummary struct {
	ID, Name, State string
	Open            map[observe.Severity]int
	OpenTotal       int
	Satisfied       int
	Gap             int
	Unmet           int // attestation missing or expired
	NotAssessed     int
	OpenMonthAgo    int
	Trend           int // OpenTotal - OpenMonthAgo
	LastScan        time.Time
	Assets          int
}

// trendWeeks is how many weekly samples the posture chart shows.
const trendWeeks = 13

// postureInput is what the tenant's posture is computed from at now, with
// the staff roster (nil when none is configured or it cannot be read).
func (t *tenant) postureInput(ctx context.Context, now time.Time) (posture.Input, *csvidentity.Roster) {
	in := posture.Input{Config: t.Config, Catalog: t.Catalog, Rules: t.Rules.Rules(), Now: now}
	if t.Config.Roster == "" {
		return in, nil
	}
	ro, _, err := csvidentity.LoadRoster(ctx, t.Config.Roster)
	if err != nil {
		t.s.log.Warn("dashboard: roster not read; new-hire deadlines and leavers are not judged", "tenant", string(t.ID), "err", err)
		return in, nil
	}
	for _, m := range ro.Staff {
		in.People = append(in.People, attest.Person{Email: m.Email, Username: m.Username, Name: m.Name,
			Locations: m.Locations, Hired: m.StartDate, Left: m.EndDate})
	}
	return in, ro
}

func buildView(ctx context.Context, t *tenant, now time.Time) (*view, error) {
	in, roster := t.postureInput(ctx, now)
	snap, err := posture.Load(ctx, t.Store, in)
	if err != nil {
		return nil, err
	}
	v := &view{built: now, snap: snap, byID: make(map[string]*observe.Finding, len(snap.Findings)),
		locIdx: map[string]int{}, controls: map[string]*controls.ControlStatus{}, docs: t.Documents}
	for i := range snap.Findings {
		f := &snap.Findings[i]
		v.byID[f.ID] = f
		v.sorted = append(v.sorted, f)
	}
	sort.Slice(v.sorted, func(i, j int) bool {
		a, b := v.sorted[i], v.sorted[j]
		if ra, rb := statusRank(a.Status), statusRank(b.Status); ra != rb {
			return ra < rb
		}
		if a.Severity.Rank() != b.Severity.Rank() {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		if a.Location != b.Location {
			return a.Location < b.Location
		}
		return a.ID < b.ID
	})
	for i := range snap.Controls {
		v.controls[snap.Controls[i].Control.ID] = &snap.Controls[i]
	}

	// Per-location aggregates.
	for _, l := range t.Config.Locations {
		v.locIdx[l.ID] = len(v.locs)
		v.locs = append(v.locs, locationSummary{ID: l.ID, Name: l.Name, State: l.State, Open: map[observe.Severity]int{}})
	}
	v.byCat = map[string]map[observe.Category]int{"": {}}
	for _, f := range v.sorted {
		if f.Status != observe.StatusOpen {
			continue
		}
		v.byCat[""][f.Category]++
		if i, ok := v.locIdx[f.Location]; ok {
			v.locs[i].Open[f.Severity]++
			v.locs[i].OpenTotal++
			if v.byCat[f.Location] == nil {
				v.byCat[f.Location] = map[observe.Category]int{}
			}
			v.byCat[f.Location][f.Category]++
		}
	}
	for _, c := range snap.Controls {
		for _, bl := range c.ByLocation {
			i, ok := v.locIdx[bl.Location]
			if !ok {
				continue
			}
			switch bl.Status {
			case controls.Satisfied:
				v.locs[i].Satisfied++
			case controls.Gap:
				v.locs[i].Gap++
			case controls.NotAssessed:
				v.locs[i].NotAssessed++
			default:
				v.locs[i].Unmet++
			}
		}
	}
	for _, sc := range snap.Scans {
		for _, l := range sc.Locations {
			if i, ok := v.locIdx[l]; ok && sc.FinishedAt.After(v.locs[i].LastScan) {
				v.locs[i].LastScan = sc.FinishedAt
			}
		}
	}
	if err := v.trend(ctx, t.Store, now); err != nil {
		return nil, err
	}
	for i := range v.locs {
		if s := v.trendOpen[v.locs[i].ID]; len(s) > 0 {
			// The sample 4 weeks before the last (now) is "a month ago".
			ago := s[max(0, len(s)-5)]
			v.locs[i].OpenMonthAgo = ago
			v.locs[i].Trend = v.locs[i].OpenTotal - ago
		}
	}
	if err := v.identities(ctx, t, roster); err != nil {
		return nil, err
	}
	return v, nil
}

// statusRank orders statuses for the default findings list: open first.
func statusRank(s observe.Status) int {
	switch s {
	case observe.StatusOpen:
		return 0
	case observe.StatusAccepted:
		return 1
	case observe.StatusFalsePositive:
		return 2
	}
	return 3
}

// statusEvents change a finding's status; "seen" events do not, and are
// by far the most numerous, so the trend never reads them.
var statusEvents = []store.Event{store.EventOpened, store.EventResolved, store.EventReopened,
	store.EventAccepted, store.EventFalsePositive, store.EventExpired}

// trend replays status-changing events to count the open findings of
// every location at weekly samples ending now.
func (v *view) trend(ctx context.Context, st Store, now time.Time) error {
	since := now.AddDate(0, 0, -7*(trendWeeks-1))
	evs, err := st.Events(ctx, store.EventFilter{Events: statusEvents})
	if err != nil {
		return fmt.Errorf("trend: %w", err)
	}
	v.trendAt = make([]time.Time, trendWeeks)
	for i := range v.trendAt {
		v.trendAt[i] = since.AddDate(0, 0, 7*i)
	}
	v.trendAt[trendWeeks-1] = now
	byFinding := map[string][]store.FindingEvent{}
	for _, e := range evs {
		byFinding[e.FindingID] = append(byFinding[e.FindingID], e)
	}
	v.trendOpen = map[string][]int{"": make([]int, trendWeeks)}
	for id, es := range byFinding {
		f := v.byID[id]
		if f == nil {
			continue
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].At.Before(es[j].At) })
		series := v.trendOpen[f.Location]
		if series == nil {
			series = make([]int, trendWeeks)
			v.trendOpen[f.Location] = series
		}
		k := 0
		open := false
		for i, at := range v.trendAt {
			for k < len(es) && !es[k].At.After(at) {
				switch es[k].Event {
				case store.EventOpened, store.EventReopened, store.EventExpired:
					open = true
				default:
					open = false
				}
				k++
			}
			if i == trendWeeks-1 {
				open = f.Status == observe.StatusOpen // as of now, expiries included
			}
			if open {
				series[i]++
				v.trendOpen[""][i]++
			}
		}
	}
	return nil
}

// newTenant checks a Tenant and fills its defaults.
func newTenant(s *server, tc Tenant) (*tenant, error) {
	if err := tc.ID.Validate(); err != nil {
		return nil, err
	}
	if tc.Config == nil || tc.Store == nil {
		return nil, fmt.Errorf("tenant %s: Config and Store are required", tc.ID)
	}
	if tc.Name == "" {
		tc.Name = tc.Config.Organization
	}
	var err error
	if tc.Catalog == nil {
		if tc.Catalog, err = rules.LoadCatalog(); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", tc.ID, err)
		}
	}
	if tc.Rules == nil {
		if tc.Rules, err = rules.Load(rules.Options{Dirs: tc.Config.Rules.Dirs, Disable: tc.Config.Rules.Disable}); err != nil {
			return nil, fmt.Errorf("tenant %s: rules: %w", tc.ID, err)
		}
	}
	if tc.Documents.Dir == "" {
		dir := tc.Config.DataDir
		if dir == "" {
			dir = "vigil-data"
		}
		tc.Documents.Dir = filepath.Join(dir, "documents")
	}
	return &tenant{Tenant: tc, s: s, ready: make(chan struct{}), hurry: make(chan struct{}, 1)}, nil
}

// location returns the configured location with id.
func (t *tenant) location(id string) (*config.Location, bool) {
	for i := range t.Config.Locations {
		if t.Config.Locations[i].ID == id {
			return &t.Config.Locations[i], true
		}
	}
	return nil, false
}

// errNotReady is returned while no snapshot exists yet.
var errNotReady = errors.New("posture not ready")

// visibleLocations are the tenant's location ids the principal may see,
// in configuration order.
func (t *tenant) visibleLocations(p users.Principal) []string {
	var out []string
	sc := p.Scope()
	for _, l := range t.Config.Locations {
		if sc.AllowsLocation(l.ID) {
			out = append(out, l.ID)
		}
	}
	return slices.Clip(out)
}

// refresh rebuilds the view after a change made through the dashboard and
// waits (at most 10 seconds) for a build that started after the change,
// so the page the browser is sent to shows it.
func (t *tenant) refresh(ctx context.Context) {
	t.mu.Lock()
	want := t.started + 1
	t.urgent = true
	t.mu.Unlock()
	select {
	case t.hurry <- struct{}{}:
	default:
	}
	t.invalidate()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		done := t.finished >= want
		t.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-tick.C:
		}
	}
}
