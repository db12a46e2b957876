package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// AlertArgs is one alert cycle of a tenant. At most one is waiting per
// slot: a cycle asked for while one runs takes the other slot, so that
// what was stored meanwhile is looked at once it ends, and requests that
// arrive while one waits fold into it.
type AlertArgs struct {
	Tenant string `json:"tenant" river:"unique"`
	Slot   int    `json:"slot" river:"unique"`
	Reason string `json:"reason"`
}

// Kind implements river.JobArgs.
func (AlertArgs) Kind() string { return KindAlert }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (AlertArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: alertQueue, MaxAttempts: MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true,
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled}}}
}

// followUpDelay is how long after a request a follow-up cycle (one asked
// for while another runs) becomes due. Each cycle reads the whole
// posture: with hundreds of agents finishing scans, cycles back to back
// would take a core; a follow-up a few seconds out takes in every scan
// stored meanwhile at once.
const followUpDelay = 5 * time.Second

// requestCycle queues an alert cycle for tenant unless one is waiting.
func (q *Queue) requestCycle(ctx context.Context, tenant, reason string) error {
	for slot := range 2 {
		var opts *river.InsertOpts
		if slot == 1 {
			opts = &river.InsertOpts{ScheduledAt: time.Now().Add(followUpDelay)}
		}
		res, err := q.client.Insert(ctx, AlertArgs{Tenant: tenant, Slot: slot, Reason: reason}, opts)
		if err != nil {
			return err
		}
		if !res.UniqueSkippedAsDuplicate || res.Job.State != rivertype.JobStateRunning {
			return nil
		}
	}
	return nil // both slots taken, one of them waiting: it will see this
}

// alertWorker runs a tenant's alert cycle under the tenant's alert lock,
// so that replicas never run two at once (and never send an alert twice).
type alertWorker struct {
	river.WorkerDefaults[AlertArgs]
	q *Queue
}

// Work implements river.Worker.
func (w *alertWorker) Work(ctx context.Context, job *river.Job[AlertArgs]) error {
	t, ok := w.q.tenant(job.Args.Tenant)
	if !ok || t.Alerter == nil {
		return fmt.Errorf("alert cycle: %w %q", ErrUnknownTenant, job.Args.Tenant)
	}
	release, ok, err := w.q.locks.tryLock(ctx, "alerts/"+job.Args.Tenant)
	if err != nil {
		return fmt.Errorf("alert cycle: lock: %w", err)
	}
	if !ok {
		return river.JobSnooze(busyWait) // the other cycle ends first
	}
	defer release()
	t.Alerter.Cycle(ctx, job.Args.Reason)
	return nil
}

// decode reads a job row's arguments.
func decode[T any](row *rivertype.JobRow) (T, error) {
	var a T
	err := json.Unmarshal(row.EncodedArgs, &a)
	return a, err
}
