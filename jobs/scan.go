package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/robfig/cron/v3"

	"github.com/vigilhq/vigil/daemon"
)

// Job kinds, as stored in River's table.
const (
	KindScan  = "vigil_scan"
	KindAlert = "vigil_alert_cycle"
)

// busyWait is how long a job that must not be dropped waits for its
// location (or tenant's alerts) to be free before trying again.
const busyWait = 2 * time.Second

// alertQueue is where every tenant's alert cycles wait.
const alertQueue = "alerts"

// scanQueue is where a tenant's scans wait: one queue per tenant, so that
// each has its own bound on parallel scans (scan.max_parallel).
func scanQueue(tenant string) string { return "scan_" + tenant }

// ScanArgs is one scan of one location of a tenant (or its
// organisation-wide sources, daemon.Organization). A scheduled run is
// inserted once whoever enqueues it: tenant, location and due time are
// its unique key.
type ScanArgs struct {
	Tenant   string `json:"tenant" river:"unique"`
	Location string `json:"location" river:"unique"`
	Trigger  string `json:"trigger"`
	Schedule string `json:"schedule,omitempty"`
	// Due is when the schedule (with the location's jitter) fell due, or
	// when a manual scan was asked for.
	Due time.Time `json:"due" river:"unique"`
}

// Kind implements river.JobArgs.
func (ScanArgs) Kind() string { return KindScan }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (a ScanArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: scanQueue(a.Tenant), MaxAttempts: MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

func (a ScanArgs) job() daemon.Job {
	return daemon.Job{Location: a.Location, Trigger: daemon.Trigger(a.Trigger), Schedule: a.Schedule, Due: a.Due}
}

func scanArgs(tenant string, j daemon.Job) ScanArgs {
	return ScanArgs{Tenant: tenant, Location: j.Location, Trigger: string(j.Trigger), Schedule: j.Schedule, Due: j.Due.UTC()}
}

// scanWorker runs a scan job with the tenant's scheduler, holding the
// location's lock so that no location is scanned twice at once by any
// replica.
type scanWorker struct {
	river.WorkerDefaults[ScanArgs]
	q *Queue
}

// Timeout implements river.Worker: scans may run for hours.
func (w *scanWorker) Timeout(*river.Job[ScanArgs]) time.Duration { return w.q.opts.JobTimeout }

// Work implements river.Worker.
func (w *scanWorker) Work(ctx context.Context, job *river.Job[ScanArgs]) error {
	a := job.Args
	t, ok := w.q.tenant(a.Tenant)
	if !ok {
		return fmt.Errorf("scan of %q: %w %q", a.Location, ErrUnknownTenant, a.Tenant)
	}
	release, ok, err := w.q.locks.tryLock(ctx, "scan/"+a.Tenant+"/"+a.Location)
	if err != nil {
		return fmt.Errorf("scan of %q: location lock: %w", a.Location, err)
	}
	if !ok {
		if job.Attempt > 1 || a.Trigger != string(daemon.TriggerSchedule) {
			// A job rescued from a replica that died, or one a person
			// asked for, waits for the location rather than being lost.
			return river.JobSnooze(busyWait)
		}
		t.Scheduler.Skipped(a.job(), "the previous one is still running on another replica")
		return river.JobCancel(fmt.Errorf("location %q: %w (on another replica)", a.Location, daemon.ErrBusy))
	}
	defer release()
	err = t.Scheduler.Run(ctx, a.job())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, daemon.ErrNotRunning):
		// This replica is shutting down: another (or the next start)
		// takes the job.
		return river.JobSnooze(time.Second)
	case errors.Is(ctx.Err(), context.Canceled):
		// Stopped with the replica: stored as incomplete, and run again.
		return err
	default:
		// The scan failed, was incomplete or timed out, and is stored:
		// the next scheduled one tries again, not this job.
		return river.JobCancel(err)
	}
}

// tenantQueue is one tenant's daemon.Queue.
type tenantQueue struct {
	q      *Queue
	tenant string
}

// Schedule implements daemon.Queue: the tenant's periodic jobs replace
// the ones it had. Every replica adds them; only the elected leader
// enqueues.
func (t tenantQueue) Schedule(periodic []daemon.Periodic) error {
	q := t.q
	q.mu.Lock()
	defer q.mu.Unlock()
	bundle := q.client.PeriodicJobs()
	bundle.RemoveMany(q.periodic[t.tenant])
	var jobs []*river.PeriodicJob
	for _, p := range periodic {
		ds := &dueSchedule{sched: p.Schedule}
		job := p.Job
		jobs = append(jobs, river.NewPeriodicJob(ds, func() (river.JobArgs, *river.InsertOpts) {
			j := job
			j.Due = ds.due()
			return scanArgs(t.tenant, j), nil
		}, nil))
	}
	q.periodic[t.tenant] = bundle.AddMany(jobs)
	return nil
}

// Enqueue implements daemon.Queue.
func (t tenantQueue) Enqueue(ctx context.Context, job daemon.Job) error {
	busy, err := t.q.busy(ctx, t.tenant, job.Location)
	if err != nil {
		return err
	}
	if busy {
		return fmt.Errorf("location %q: %w", job.Location, daemon.ErrBusy)
	}
	if _, err := t.q.client.Insert(ctx, scanArgs(t.tenant, job), nil); err != nil {
		return fmt.Errorf("scan of %q not queued: %w", job.Location, err)
	}
	return nil
}

// waiting are the states of a job not yet finished.
var waiting = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled}

// busy reports whether a scan of the location is queued or running, on
// any replica, now (not scheduled for later).
func (q *Queue) busy(ctx context.Context, tenant, location string) (bool, error) {
	params := river.NewJobListParams().Kinds(KindScan).Queues(scanQueue(tenant)).States(waiting...).First(1000)
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return false, fmt.Errorf("job queue: %w", err)
	}
	now := time.Now()
	for _, row := range res.Jobs {
		a, err := decode[ScanArgs](row)
		if err != nil || a.Location != location {
			continue
		}
		if row.State == rivertype.JobStateRunning || !row.ScheduledAt.After(now) {
			return true, nil
		}
	}
	return false, nil
}

// dueSchedule is a periodic job's schedule that remembers the last time
// it gave River: the constructor River calls at that time names it as
// the job's due time, so the same run has the same unique key on every
// replica.
type dueSchedule struct {
	sched cron.Schedule
	mu    sync.Mutex
	next  time.Time
}

// Next implements river.PeriodicSchedule.
func (d *dueSchedule) Next(t time.Time) time.Time {
	n := d.sched.Next(t)
	d.mu.Lock()
	d.next = n
	d.mu.Unlock()
	return n
}

func (d *dueSchedule) due() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.next
}
