package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// record is every run of every replica: which due slot of which location
// ran, how often, and whether one location ever ran twice at once.
type record struct {
	mu       sync.Mutex
	runs     map[string]int // location|due -> runs
	replica  map[string]string
	running  map[string]int
	overlap  []string
	manual   int
	finished int
}

func newRecord() *record {
	return &record{runs: map[string]int{}, replica: map[string]string{}, running: map[string]int{}}
}

// runner is a daemon.Runner that takes hold to scan (returning early,
// as a cancelled scan does, when ctx is done) and records what ran.
type runner struct {
	rec     *record
	replica string
	hold    time.Duration
	started chan daemon.Job // optional: told when a job starts
}

func (r *runner) RunJob(ctx context.Context, job daemon.Job, progress daemon.ProgressFunc) error {
	rec := r.rec
	rec.mu.Lock()
	if rec.running[job.Location]++; rec.running[job.Location] > 1 {
		rec.overlap = append(rec.overlap, job.Location)
	}
	rec.mu.Unlock()
	defer func() {
		rec.mu.Lock()
		rec.running[job.Location]--
		rec.mu.Unlock()
	}()
	if r.started != nil {
		select {
		case r.started <- job:
		default:
		}
	}
	progress("scan", 0, 0)
	select {
	case <-time.After(r.hold):
	case <-ctx.Done():
		return fmt.Errorf("%w: interrupted", daemon.ErrIncomplete)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if job.Trigger == daemon.TriggerManual {
		rec.manual++
	} else {
		k := job.Location + "|" + job.Due.UTC().Format(time.RFC3339Nano)
		rec.runs[k]++
		rec.replica[k] = r.replica
	}
	rec.finished++
	return nil
}

func (rec *record) snapshot() (runs map[string]int, manual, finished int, overlap []string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	runs = map[string]int{}
	for k, v := range rec.runs {
		runs[k] = v
	}
	return runs, rec.manual, rec.finished, append([]string(nil), rec.overlap...)
}

// replica is one queue with one tenant "t" scheduled on it.
type replica struct {
	q     *Queue
	sched *daemon.Scheduler
}

func startReplica(t *testing.T, opts Options, r daemon.Runner, locs ...string) *replica {
	t.Helper()
	ctx := context.Background()
	opts.Tenants = map[string]int{"t": 2}
	q, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := daemon.New(daemon.Options{Queue: q.For("t"), MaxJitter: -1})
	q.Serve("t", Tenant{Scheduler: s})
	plan := daemon.Plan{Schedules: []config.Schedule{{Cron: "@every 1s", Locations: []string{"*"}}}, Locations: locs, Runner: r}
	if err := s.Start(plan); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rep := &replica{q: q, sched: s}
	t.Cleanup(func() { rep.stop(t) })
	return rep
}

func (r *replica) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.q.Stop(ctx, 5*time.Second, 5*time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	_ = r.sched.Shutdown(ctx)
	_ = r.q.Close()
}

// waitFor polls cond until it holds, failing after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backends are the queue's two databases.
func backends(t *testing.T) map[string]func(t *testing.T) Options {
	return map[string]func(t *testing.T) Options{
		"sqlite":   func(t *testing.T) Options { return Options{SQLite: filepath.Join(t.TempDir(), FileName)} },
		"postgres": func(t *testing.T) Options { return Options{Postgres: pgtest.URL(t)} },
	}
}

// One replica: the schedule's runs are enqueued by the leader and run
// once each with their due time, one at a time per location; a manual
// scan is queued too, and refused while the location is busy; the
// scheduler's statistics and progress count the jobs it ran.
func TestScheduledAndManualScans(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			rec := newRecord()
			started := make(chan daemon.Job, 16)
			rep := startReplica(t, opts(t), &runner{rec: rec, replica: "r1", hold: 300 * time.Millisecond, started: started}, "a")
			waitFor(t, 60*time.Second, "three scheduled runs", func() bool { runs, _, _, _ := rec.snapshot(); return len(runs) >= 3 })

			// While a run holds the location, a manual scan is refused.
			var busyErr error
			waitFor(t, 30*time.Second, "a manual scan refused while one runs", func() bool {
				if len(rep.sched.Running()) == 0 {
					return false
				}
				busyErr = rep.sched.ScanNow("a")
				return errors.Is(busyErr, daemon.ErrBusy)
			})
			// And queued once it is free.
			waitFor(t, 30*time.Second, "a manual scan queued", func() bool {
				return len(rep.sched.Running()) == 0 && rep.sched.ScanNow("a") == nil
			})
			waitFor(t, 30*time.Second, "the manual scan run", func() bool { _, m, _, _ := rec.snapshot(); return m >= 1 })

			runs, _, finished, overlap := rec.snapshot()
			for k, n := range runs {
				if n != 1 {
					t.Errorf("due slot %s ran %d times, want once", k, n)
				}
			}
			if len(overlap) > 0 {
				t.Errorf("locations scanned twice at once: %v", overlap)
			}
			st := rep.sched.Stats()["a"]
			if st.Succeeded < int64(finished) || st.Started < st.Succeeded {
				t.Errorf("stats = %+v; want at least %d succeeded", st, finished)
			}
			if p := rep.sched.Planned(); len(p) != 1 || p[0].Next.IsZero() {
				t.Errorf("Planned = %+v; want location a with its next time", p)
			}
		})
	}
}

// Two replicas on one PostgreSQL database: every due slot of every
// location runs exactly once across them, no location ever runs on both
// at once, and a replica stopped mid-scan leaves its job to the other,
// which completes it.
func TestReplicasShareTheSchedule(t *testing.T) {
	url := pgtest.URL(t)
	rec := newRecord()
	opts := func(id string) Options {
		return Options{Postgres: url, ID: id, JobTimeout: 10 * time.Second, RescueAfter: 15 * time.Second}
	}
	startedA := make(chan daemon.Job, 64)
	a := startReplica(t, opts("replica-a"), &runner{rec: rec, replica: "a", hold: 400 * time.Millisecond, started: startedA}, "x", "y")
	b := startReplica(t, opts("replica-b"), &runner{rec: rec, replica: "b", hold: 400 * time.Millisecond}, "x", "y")
	waitFor(t, 90*time.Second, "eight scheduled runs", func() bool { runs, _, _, _ := rec.snapshot(); return len(runs) >= 8 })

	// Stop replica a while it scans (its scan is cancelled, as at the end
	// of a grace period): the job is tried again, and done, by b.
	for len(startedA) > 0 {
		<-startedA
	}
	var interrupted daemon.Job
	select {
	case interrupted = <-startedA:
	case <-time.After(60 * time.Second):
		t.Fatal("replica a never started another scan")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.q.Stop(ctx, 0, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	key := interrupted.Location + "|" + interrupted.Due.UTC().Format(time.RFC3339Nano)
	waitFor(t, 90*time.Second, "the interrupted job completed by replica b", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.runs[key] == 1 && rec.replica[key] == "b"
	})

	runs, _, _, overlap := rec.snapshot()
	for k, n := range runs {
		if n != 1 {
			t.Errorf("due slot %s ran %d times, want once", k, n)
		}
	}
	if len(overlap) > 0 {
		t.Errorf("locations scanned twice at once: %v", overlap)
	}
	// River's table agrees: one row per due slot.
	res, err := b.q.client.JobList(context.Background(), river.NewJobListParams().Kinds(KindScan).First(10000))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int{}
	for _, row := range res.Jobs {
		args, _ := decode[ScanArgs](row)
		rows[args.Location+"|"+args.Due.UTC().Format(time.RFC3339Nano)]++
		if row.State == rivertype.JobStateDiscarded {
			t.Errorf("job %d discarded: %v", row.ID, row.Errors)
		}
	}
	for k, n := range rows {
		if n != 1 {
			t.Errorf("due slot %s has %d job rows, want 1", k, n)
		}
	}
}

// Alert cycles asked for while one waits fold into it: one row per
// tenant, whoever asks.
func TestAlertCyclesFold(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			o := opts(t)
			o.Tenants = map[string]int{"t": 1}
			q, err := Open(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			for range 5 {
				q.AlertCycles("t")("scan")
			}
			res, err := q.client.JobList(context.Background(), river.NewJobListParams().Kinds(KindAlert).States(waiting...))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Jobs) != 1 {
				t.Errorf("%d alert cycles waiting, want 1", len(res.Jobs))
			}
		})
	}
}
