package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
)

// fakeRunner records how many jobs of each location run at once.
type fakeRunner struct {
	// run is the job's body; nil returns at once.
	run func(ctx context.Context, job Job) error

	mu      sync.Mutex
	now     map[string]int
	peak    map[string]int
	total   int
	peakAll int
	jobs    []Job
}

func (f *fakeRunner) RunJob(ctx context.Context, job Job, progress ProgressFunc) error {
	f.mu.Lock()
	if f.now == nil {
		f.now, f.peak = map[string]int{}, map[string]int{}
	}
	f.now[job.Location]++
	f.total++
	f.peak[job.Location] = max(f.peak[job.Location], f.now[job.Location])
	f.peakAll = max(f.peakAll, f.total)
	f.jobs = append(f.jobs, job)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now[job.Location]--
		f.total--
		f.mu.Unlock()
	}()
	progress("nmap", 1, 3)
	if f.run != nil {
		return f.run(ctx, job)
	}
	return nil
}

func (f *fakeRunner) peaks() (perLocation map[string]int, all int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps(f.peak), f.peakAll
}

func maps(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// blocker is a job body that runs until released or cancelled.
type blocker struct {
	release   chan struct{}
	cancelled atomic.Int32
}

func newBlocker() *blocker { return &blocker{release: make(chan struct{})} }

func (b *blocker) run(ctx context.Context, _ Job) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		b.cancelled.Add(1)
		return fmt.Errorf("%w: interrupted", ErrIncomplete)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func started(t *testing.T, s *Scheduler, plan Plan) {
	t.Helper()
	if err := s.Start(plan); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
}

// Many "scan now" requests for one location at once: exactly one runs;
// the others are told the location is busy. Run with -race.
func TestScanNowConcurrentTriggersNeverOverlap(t *testing.T) {
	b := newBlocker()
	r := &fakeRunner{run: b.run}
	s := New(Options{MaxParallel: 4})
	started(t, s, Plan{Locations: []string{"downtown", "uptown"}, Runner: r})

	var ok, busy atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.ScanNow("downtown"); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			default:
				t.Errorf("ScanNow: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || busy.Load() != 49 {
		t.Fatalf("accepted %d, busy %d: want 1 and 49", ok.Load(), busy.Load())
	}
	if err := s.ScanNow("uptown"); err != nil {
		t.Errorf("another location is not blocked by downtown's scan: %v", err)
	}
	if err := s.ScanNow("westside"); !errors.Is(err, ErrUnknownLocation) {
		t.Errorf("ScanNow(unknown) = %v, want ErrUnknownLocation", err)
	}
	waitFor(t, "both running", func() bool { return len(s.Running()) == 2 && s.Running()[0].Running() && s.Running()[1].Running() })
	p := s.Running()[0]
	if p.Location != "downtown" || p.Trigger != TriggerManual || p.Phase != "nmap" || p.Done != 1 || p.Total != 3 {
		t.Errorf("progress %+v: want downtown, manual, nmap 1/3", p)
	}
	close(b.release)
	waitFor(t, "scans to finish", func() bool { return len(s.Running()) == 0 })
	if err := s.ScanNow("downtown"); err != nil {
		t.Errorf("after the scan finished, ScanNow = %v", err)
	}
	if peak, _ := r.peaks(); peak["downtown"] != 1 {
		t.Errorf("downtown ran %d at once", peak["downtown"])
	}
	// Manual conflicts are the caller's answer, not skipped schedule runs.
	if st := s.Stats()["downtown"]; st.Skipped != 0 {
		t.Errorf("skipped %d: a refused scan-now is not a skipped scheduled run", st.Skipped)
	}
}

// A schedule that falls due while the previous run of its location is
// still going skips that run and counts it, instead of piling up runs.
func TestScheduledRunSkippedWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a few cron seconds")
	}
	b := newBlocker()
	r := &fakeRunner{run: b.run}
	s := New(Options{MaxJitter: -1})
	started(t, s, Plan{Schedules: []config.Schedule{{Cron: "@every 1s", Locations: []string{"*"}}}, Locations: []string{"a"}, Runner: r})
	waitFor(t, "two skipped runs", func() bool { return s.Stats()["a"].Skipped >= 2 })
	close(b.release)
	waitFor(t, "the run to finish", func() bool { return s.Stats()["a"].Succeeded >= 1 })
	peak, _ := r.peaks()
	st := s.Stats()["a"]
	if peak["a"] != 1 {
		t.Errorf("location a ran %d scans at once", peak["a"])
	}
	if st.Started < 1 || st.Skipped < 2 || st.Failed != 0 {
		t.Errorf("stats %+v: want one started, two or more skipped, none failed", st)
	}
	if got := r.jobs[0]; got.Trigger != TriggerSchedule || got.Schedule != "@every 1s" || got.Due.IsZero() {
		t.Errorf("job %+v: want a scheduled job with its schedule and due time", got)
	}
}

// MaxParallel bounds the scans running at once; the rest wait for a
// worker and show as queued.
func TestWorkerPoolBound(t *testing.T) {
	b := newBlocker()
	r := &fakeRunner{run: b.run}
	s := New(Options{MaxParallel: 2})
	locs := []string{"a", "b", "c", "d", "e"}
	started(t, s, Plan{Locations: locs, Runner: r})
	for _, l := range locs {
		if err := s.ScanNow(l); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two running", func() bool {
		n := 0
		for _, p := range s.Running() {
			if p.Running() {
				n++
			}
		}
		return n == 2
	})
	time.Sleep(50 * time.Millisecond)
	var running, queued int
	for _, p := range s.Running() {
		if p.Running() {
			running++
		} else {
			queued++
			if p.Phase != "queued" {
				t.Errorf("queued job %s in phase %q", p.Location, p.Phase)
			}
		}
	}
	if running != 2 || queued != 3 {
		t.Errorf("%d running, %d queued: want 2 and 3", running, queued)
	}
	// A queued location is busy too: no second copy waits behind it.
	if err := s.ScanNow("e"); !errors.Is(err, ErrBusy) {
		t.Errorf("ScanNow(queued location) = %v, want ErrBusy", err)
	}
	close(b.release)
	waitFor(t, "all done", func() bool { return len(s.Running()) == 0 })
	if _, all := r.peaks(); all != 2 {
		t.Errorf("peak parallel scans %d, want 2", all)
	}
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

const twoLocations = `organization: T
locations:
  - {id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}
  - {id: b, segments: [{name: s, cidr: 127.0.0.2/32, role: servers}]}
`

// A reload with a broken file keeps the running schedules and logs every
// problem with its line; a good one replaces them without touching a
// running scan.
func TestReloadBrokenConfigKeepsSchedules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	writeTestFile(t, path, twoLocations+"schedules: [{cron: \"0 2 * * *\", locations: [\"*\"]}]\n")
	b := newBlocker()
	r := &fakeRunner{run: b.run}
	load := func(context.Context) (Plan, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return Plan{}, err
		}
		p := Plan{Schedules: cfg.Schedules, Runner: r}
		for _, l := range cfg.Locations {
			p.Locations = append(p.Locations, l.ID)
		}
		return p, nil
	}
	var logs syncBuffer
	s := New(Options{Load: load, Logger: newTestLogger(&logs)})
	plan, err := load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	started(t, s, plan)
	before := schedulesOf(s.Planned())
	if want := []string{"0 2 * * * a", "0 2 * * * b"}; !slices.Equal(before, want) {
		t.Fatalf("planned %v, want %v", before, want)
	}
	if err := s.ScanNow("a"); err != nil {
		t.Fatal(err)
	}

	writeTestFile(t, path, twoLocations+"schedules: [{cron: \"0 25 * * *\", locations: [\"*\"]}]\n")
	sig := make(chan os.Signal)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.ReloadOn(ctx, sig)
	sig <- os.Interrupt // any signal value: the caller chose which to watch
	waitFor(t, "the failed reload", func() bool { _, failed, _ := s.ReloadStatus(); return failed == 1 })
	if got := schedulesOf(s.Planned()); !slices.Equal(got, before) {
		t.Errorf("after a broken reload the schedules are %v, want the old %v", got, before)
	}
	if out := logs.String(); !strings.Contains(out, "vigil.yaml:5: schedules[0].cron") || !strings.Contains(out, "keeping the running configuration") {
		t.Errorf("log does not name the problem with file and line:\n%s", out)
	}
	if s.Ready() != nil {
		t.Errorf("not ready after a failed reload: %v", s.Ready())
	}

	writeTestFile(t, path, twoLocations+"schedules: [{cron: \"30 3 * * *\", locations: [b]}]\n")
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := schedulesOf(s.Planned()), []string{"30 3 * * * b"}; !slices.Equal(got, want) {
		t.Errorf("after a good reload: %v, want %v", got, want)
	}
	if ok, _, last := s.ReloadStatus(); ok != 1 || last != "" {
		t.Errorf("reload status %d ok, last error %q", ok, last)
	}
	// The scan of a, started before the reload, is still running.
	if p := s.Running(); len(p) != 1 || p[0].Location != "a" {
		t.Errorf("running %+v: the reload disturbed the running scan", p)
	}
	close(b.release)
	waitFor(t, "the scan of a", func() bool { return s.Stats()["a"].Succeeded == 1 })
}

func schedulesOf(ps []PlannedJob) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Schedule+" "+p.Location)
		if p.Next.IsZero() {
			out = append(out, "no next time for "+p.Location)
		}
	}
	return out
}

// Shutdown lets a scan that finishes within the grace period finish.
func TestShutdownWaitsForRunningScans(t *testing.T) {
	r := &fakeRunner{run: func(ctx context.Context, _ Job) error {
		select {
		case <-time.After(200 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	s := New(Options{})
	if err := s.Start(Plan{Locations: []string{"a"}, Runner: r}); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanNow("a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", func() bool { p := s.Running(); return len(p) == 1 && p[0].Running() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats()["a"]; st.Succeeded != 1 || st.Failed != 0 {
		t.Errorf("stats %+v: the scan should have finished within the grace period", st)
	}
	if err := s.ScanNow("a"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("ScanNow after shutdown = %v, want ErrNotRunning", err)
	}
	if s.Ready() == nil {
		t.Error("ready after shutdown")
	}
}

// After the grace period, running scans are cancelled (and store what they
// have); queued ones never start.
func TestShutdownCancelsAfterGrace(t *testing.T) {
	b := newBlocker()
	r := &fakeRunner{run: b.run}
	s := New(Options{MaxParallel: 1})
	if err := s.Start(Plan{Locations: []string{"a", "b"}, Runner: r}); err != nil {
		t.Fatal(err)
	}
	_ = s.ScanNow("a")
	_ = s.ScanNow("b") // one of the two waits for the other's worker
	var first, second string
	waitFor(t, "one running, one queued", func() bool {
		p := s.Running()
		if len(p) != 2 || p[0].Running() == p[1].Running() {
			return false
		}
		first, second = p[0].Location, p[1].Location
		if p[1].Running() {
			first, second = second, first
		}
		return true
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("shutdown took %s: it did not wait for the grace period", took)
	}
	if b.cancelled.Load() != 1 {
		t.Errorf("%d scans saw cancellation, want 1", b.cancelled.Load())
	}
	st := s.Stats()
	if st[first].Failed != 1 || !strings.Contains(st[first].LastError, "interrupted") {
		t.Errorf("%s: %+v: want one failed (interrupted) scan", first, st[first])
	}
	if st[second].Started != 0 {
		t.Errorf("%s started after shutdown began: %+v", second, st[second])
	}
	if len(s.Running()) != 0 {
		t.Errorf("still active after shutdown: %+v", s.Running())
	}
}

// A scan that ignores cancellation does not hang shutdown for ever.
func TestShutdownGivesUpOnStuckScan(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	r := &fakeRunner{run: func(context.Context, Job) error { <-stuck; return nil }}
	s := New(Options{CancelWait: 50 * time.Millisecond})
	if err := s.Start(Plan{Locations: []string{"a"}, Runner: r}); err != nil {
		t.Fatal(err)
	}
	_ = s.ScanNow("a")
	waitFor(t, "running", func() bool { p := s.Running(); return len(p) == 1 && p[0].Running() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "a") {
		t.Errorf("Shutdown = %v, want an error naming the stuck scan", err)
	}
}

// A panicking runner fails its scan and frees the location.
func TestRunnerPanicFreesLocation(t *testing.T) {
	r := &fakeRunner{run: func(context.Context, Job) error { panic("boom") }}
	s := New(Options{})
	started(t, s, Plan{Locations: []string{"a"}, Runner: r})
	_ = s.ScanNow("a")
	waitFor(t, "failure", func() bool { return s.Stats()["a"].Failed == 1 })
	waitFor(t, "location free", func() bool { return s.ScanNow("a") == nil })
}

func TestPlanJobs(t *testing.T) {
	locs := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name  string
		plan  Plan
		wantJ []string
	}{
		{"star expands to every location and the organisation",
			Plan{Schedules: []config.Schedule{{Cron: "@daily", Locations: []string{"*"}}}, Locations: locs, Organization: true},
			[]string{"@daily a", "@daily b", "@daily c", "@daily _org"}},
		{"the organisation follows only the star schedules",
			Plan{Schedules: []config.Schedule{{Cron: "@hourly", Locations: []string{"b"}}, {Cron: "@daily", Locations: []string{"*", "a"}}}, Locations: locs, Organization: true},
			[]string{"@hourly b", "@daily a", "@daily b", "@daily c", "@daily _org"}},
		{"without a star schedule, the organisation follows every schedule",
			Plan{Schedules: []config.Schedule{{Cron: "@hourly", Locations: []string{"b"}}}, Locations: locs, Organization: true},
			[]string{"@hourly b", "@hourly _org"}},
		{"network off: only the organisation",
			Plan{Schedules: []config.Schedule{{Cron: "@daily", Locations: []string{"a"}}}, Organization: true},
			[]string{"@daily _org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, j := range tc.plan.Jobs() {
				got = append(got, j.Schedule+" "+j.Location)
			}
			if !slices.Equal(got, tc.wantJ) {
				t.Errorf("jobs %v, want %v", got, tc.wantJ)
			}
		})
	}
}
