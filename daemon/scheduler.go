// Package daemon runs vigil as a service: a Scheduler turns the
// configuration's cron schedules into jittered per-location scan jobs and
// runs them in a bounded pool, one at a time per location, reloading the
// configuration on request and draining on shutdown. When a job runs is
// decided here; how it runs is a Runner's business. With a Queue (package
// jobs, on River) the jobs run wherever a replica takes them: the schedule
// is handed to the queue's elected leader, and Run executes what the queue
// hands back here.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/telemetry"
)

// Organization is the Job.Location of the organisation-wide job, which
// reads the identity, software and telegraf sources once for every
// location. Location ids are [a-z0-9-]+, so it cannot clash with one.
const Organization = telemetry.OrgLocation

// Trigger says why a job runs.
type Trigger string

// Triggers.
const (
	TriggerSchedule Trigger = "schedule" // a cron schedule fell due
	TriggerManual   Trigger = "manual"   // ScanNow
)

// Job is one scan of one location (or of the organisation-wide sources).
type Job struct {
	// Location is a location id, or Organization.
	Location string
	Trigger  Trigger
	// Schedule is the cron expression that made the job due; empty for a
	// manual scan.
	Schedule string
	// Due is when the job was triggered (the schedule's time plus jitter).
	Due time.Time
}

// ProgressFunc lets a Runner say which phase a job is in ("nmap",
// "checks", "source csv:emr", "rules") and how far along it is; total is 0
// when unknown.
type ProgressFunc func(phase string, done, total int)

// Runner runs one job to the end: scan the location, evaluate the rules,
// store the scan. It must honour ctx: when ctx is cancelled it stops the
// scan and records what it has as incomplete before returning. An error
// means the scan failed or is incomplete; the scheduler counts it.
type Runner interface {
	RunJob(ctx context.Context, job Job, progress ProgressFunc) error
}

// Plan is what the scheduler schedules, taken from one loaded
// configuration, and the Runner that runs the jobs of that configuration.
type Plan struct {
	Schedules []config.Schedule
	// Locations are the ids whose own scans are scheduled (the network
	// part); empty when the network part is off.
	Locations []string
	// Organization schedules the organisation-wide job too (there are
	// sources to read): with every schedule that lists "*", or with every
	// schedule when none does.
	Organization bool
	Runner       Runner
	// Applied, when set, is called once the plan is in force: at Start,
	// or when a Reload swaps it in (not when the reload is refused). The
	// daemon uses it to switch its alert channels with the schedules.
	Applied func()
}

// PlannedJob is one (schedule, location) pair the scheduler has set up.
type PlannedJob struct {
	Location string
	Schedule string
	// Jitter is how long after the schedule's times this location starts.
	Jitter time.Duration
	// Next is the next time the job falls due (zero before Start).
	Next time.Time

	// bound is the schedule's own jitter (schedules[].jitter); nil when
	// it sets none.
	bound *time.Duration
}

// Jobs expands the plan into its (schedule, location) pairs, in
// configuration order, without duplicates.
func (p Plan) Jobs() []PlannedJob {
	anyStar := slices.ContainsFunc(p.Schedules, func(s config.Schedule) bool { return slices.Contains(s.Locations, "*") })
	var out []PlannedJob
	for _, s := range p.Schedules {
		star := slices.Contains(s.Locations, "*")
		seen := map[string]bool{}
		var bound *time.Duration
		if s.Jitter != nil {
			bound = &s.Jitter.Duration
		}
		add := func(loc string) {
			if !seen[loc] {
				seen[loc] = true
				out = append(out, PlannedJob{Location: loc, Schedule: s.Cron, bound: bound})
			}
		}
		for _, l := range p.Locations {
			if star || slices.Contains(s.Locations, l) {
				add(l)
			}
		}
		if p.Organization && (star || !anyStar) {
			add(Organization)
		}
	}
	return out
}

// has reports whether loc is a job key of the plan.
func (p Plan) has(loc string) bool {
	return slices.Contains(p.Locations, loc) || (p.Organization && loc == Organization)
}

// Periodic is one (schedule, location) pair as a queue schedules it:
// Schedule falls due at the schedule's times plus the location's jitter
// (the same times the local clock would use), and Job is what to enqueue.
type Periodic struct {
	Job      Job
	Schedule cron.Schedule
}

// Queue takes a scheduler's jobs when several replicas share the work:
// the scheduler then only decides when (Schedule) and tracks what runs
// here (Run); the queue decides where. Package jobs implements it on
// River.
type Queue interface {
	// Schedule replaces the scheduler's periodic jobs.
	Schedule(periodic []Periodic) error
	// Enqueue queues one job now (ScanNow). It returns an error wrapping
	// ErrBusy when the location already has a scan queued or running on
	// any replica.
	Enqueue(ctx context.Context, job Job) error
}

// LoadFunc loads and validates the configuration again and builds the
// plan for it. An error leaves the running plan in place; when it is (or
// wraps) config.Errors, each problem is logged with its file and line.
type LoadFunc func(ctx context.Context) (Plan, error)

// Defaults.
const (
	DefaultMaxParallel = 2
	DefaultMaxJitter   = 5 * time.Minute
	DefaultCancelWait  = 30 * time.Second
)

// Errors callers branch on.
var (
	// ErrBusy: the location already has a scan running or waiting for a
	// worker.
	ErrBusy = errors.New("a scan of this location is already running")
	// ErrUnknownLocation: the location is not scheduled by the running
	// configuration.
	ErrUnknownLocation = errors.New("unknown location")
	// ErrNotRunning: the scheduler has not started or is shutting down.
	ErrNotRunning = errors.New("scheduler is not running")
)

// Options configures New.
type Options struct {
	// Load reloads the configuration (Reload, SIGHUP). Nil makes Reload
	// fail.
	Load LoadFunc
	// MaxParallel bounds how many scans run at once; zero means
	// DefaultMaxParallel.
	MaxParallel int
	// MaxJitter bounds how long after a schedule's time a location's scan
	// starts (at most 10% of the schedule's interval too), for schedules
	// that set no jitter of their own. Zero means DefaultMaxJitter;
	// negative turns jitter off.
	MaxJitter time.Duration
	// OverrideJitter applies MaxJitter to every schedule, also those that
	// set their own (vigil serve --max-jitter).
	OverrideJitter bool
	// CancelWait bounds how long Shutdown waits for cancelled scans to
	// record what they have and return; zero means DefaultCancelWait.
	CancelWait time.Duration
	// TimeZone the cron expressions are read in; nil means time.Local.
	TimeZone *time.Location
	// Logger receives the scheduler's structured logs; nil discards.
	Logger *slog.Logger
	// Now is the clock for progress and statistics; nil means time.Now.
	Now func() time.Time
	// Queue, when set, runs the jobs instead of the local clock and pool:
	// the schedules go to Queue.Schedule, ScanNow to Queue.Enqueue, and
	// the queue's workers call Run. MaxParallel is then the queue's
	// business.
	Queue Queue
}

// Progress is the state of a queued or running job.
type Progress struct {
	Location string    `json:"location"`
	Trigger  Trigger   `json:"trigger"`
	Schedule string    `json:"schedule,omitempty"`
	Queued   time.Time `json:"queued"`
	// Started is zero while the job waits for a worker.
	Started time.Time `json:"started,omitzero"`
	Phase   string    `json:"phase"`
	Done    int       `json:"done"`
	Total   int       `json:"total"`
}

// Running reports whether the job has a worker.
func (p Progress) Running() bool { return !p.Started.IsZero() }

// LocationStats counts the jobs of one location since the daemon started.
type LocationStats struct {
	Started   int64 `json:"started"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	// Skipped counts due runs dropped because the previous one of the
	// same location was still queued or running.
	Skipped      int64     `json:"skipped"`
	LastStarted  time.Time `json:"last_started,omitzero"`
	LastFinished time.Time `json:"last_finished,omitzero"`
	LastOK       bool      `json:"last_ok"`
	LastError    string    `json:"last_error,omitempty"`
}

type state int

const (
	stateNew state = iota
	stateRunning
	stateStopping
	stateStopped
)

// active is a queued or running job.
type active struct {
	progress Progress
	cancel   context.CancelFunc // set once running
}

// Scheduler schedules the jobs of a Plan on cron, one at a time per
// location, at most MaxParallel at once. Create it with New, then Start.
// All methods are safe for concurrent use.
type Scheduler struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	sem      chan struct{}
	stopping chan struct{} // closed by Shutdown: queued jobs give up
	runCtx   context.Context
	cancel   context.CancelFunc // cancels every running job
	wg       sync.WaitGroup     // every job goroutine
	reloadMu sync.Mutex         // one reload at a time

	mu       sync.Mutex
	state    state
	cron     *cron.Cron
	plan     Plan
	entries  []entry
	active   map[string]*active
	stats    map[string]*LocationStats
	reloads  int64
	failures int64
	lastLoad time.Time
	loadErr  string
}

type entry struct {
	id    cron.EntryID
	job   PlannedJob
	sched cron.Schedule // jittered
}

// New returns a scheduler that has not started.
func New(opts Options) *Scheduler {
	if opts.MaxParallel <= 0 {
		opts.MaxParallel = DefaultMaxParallel
	}
	if opts.MaxJitter == 0 {
		opts.MaxJitter = DefaultMaxJitter
	}
	if opts.CancelWait <= 0 {
		opts.CancelWait = DefaultCancelWait
	}
	if opts.TimeZone == nil {
		opts.TimeZone = time.Local
	}
	s := &Scheduler{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		sem:      make(chan struct{}, opts.MaxParallel),
		stopping: make(chan struct{}),
		active:   map[string]*active{},
		stats:    map[string]*LocationStats{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	// Scans outlive the request or signal that started the daemon: only
	// Shutdown cancels them.
	s.runCtx, s.cancel = context.WithCancel(context.Background())
	s.cron = cron.New(cron.WithLocation(opts.TimeZone), cron.WithLogger(cronLogger{s.log}))
	return s
}

// Start schedules the jobs of plan and starts the clock.
func (s *Scheduler) Start(plan Plan) error {
	if plan.Runner == nil {
		return errors.New("daemon: plan has no runner")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return errors.New("daemon: scheduler already started")
	}
	s.swap(plan)
	s.state = stateRunning
	s.lastLoad = s.now()
	if plan.Applied != nil {
		plan.Applied()
	}
	s.cron.Start()
	s.log.Info("scheduler started", "jobs", len(s.entries), "max_parallel", s.opts.MaxParallel)
	return nil
}

// swap replaces the cron entries with those of plan. s.mu is held.
func (s *Scheduler) swap(plan Plan) {
	for _, e := range s.entries {
		s.cron.Remove(e.id)
	}
	s.entries = s.entries[:0]
	s.plan = plan
	runner := plan.Runner
	var periodic []Periodic
	for _, pj := range plan.Jobs() {
		sched, err := cronParser.Parse(pj.Schedule)
		if err != nil { // config.Load validated it; a plan built by hand may not be
			s.log.Error("schedule not understood: skipped", "schedule", pj.Schedule, "location", pj.Location, "error", err)
			continue
		}
		bound := s.opts.MaxJitter
		if pj.bound != nil && !s.opts.OverrideJitter {
			if bound = *pj.bound; bound == 0 {
				bound = -1 // jitter: 0s is none
			}
		}
		pj.Jitter = Jitter(pj.Location, sched, bound)
		job := Job{Location: pj.Location, Trigger: TriggerSchedule, Schedule: pj.Schedule}
		js := jittered{sched, pj.Jitter}
		if s.opts.Queue != nil {
			periodic = append(periodic, Periodic{Job: job, Schedule: zoned{js, s.opts.TimeZone}})
			s.entries = append(s.entries, entry{job: pj, sched: js})
			continue
		}
		id := s.cron.Schedule(js, cron.FuncJob(func() {
			j := job
			j.Due = s.now()
			_ = s.trigger(j, runner)
		}))
		s.entries = append(s.entries, entry{id: id, job: pj, sched: js})
	}
	if s.opts.Queue != nil {
		if err := s.opts.Queue.Schedule(periodic); err != nil {
			s.log.Error("schedules not handed to the job queue", "error", err)
		}
	}
}

// zoned reads its schedule in a time zone whatever the zone of the time
// it is asked about (a queue's clock may be in UTC).
type zoned struct {
	cron.Schedule
	tz *time.Location
}

// Next implements cron.Schedule.
func (z zoned) Next(t time.Time) time.Time { return z.Schedule.Next(t.In(z.tz)) }

// cronParser reads schedules as config does: five fields or a descriptor
// (@daily, @every 1h).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Reload loads the configuration again with Options.Load. On success the
// schedules are replaced; running and queued scans carry on with the
// configuration that started them. On failure the running plan stays and
// every reason is logged.
func (s *Scheduler) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.opts.Load == nil {
		return errors.New("daemon: no loader: cannot reload")
	}
	plan, err := s.opts.Load(ctx)
	if err == nil && plan.Runner == nil {
		err = errors.New("daemon: plan has no runner")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures++
		s.loadErr = err.Error()
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				s.log.Error("configuration problem", "problem", e.Error())
			}
		}
		s.log.Error("reload failed: keeping the running configuration", "error", err)
		return err
	}
	if s.state != stateRunning {
		return ErrNotRunning
	}
	s.swap(plan)
	if plan.Applied != nil {
		plan.Applied()
	}
	s.reloads++
	s.loadErr = ""
	s.lastLoad = s.now()
	s.log.Info("configuration reloaded", "jobs", len(s.entries), "running", len(s.active))
	return nil
}

// ReloadOn calls Reload for every signal received on sig (SIGHUP, from
// signal.Notify) until ctx is done or sig is closed.
func (s *Scheduler) ReloadOn(ctx context.Context, sig <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-sig:
			if !ok {
				return
			}
			s.log.Info("reloading the configuration")
			_ = s.Reload(ctx)
		}
	}
}

// ScanNow queues a scan of location (a location id or Organization) at
// once. It fails with ErrBusy when that location is already queued or
// scanning, ErrUnknownLocation when the running configuration does not
// schedule it, and ErrNotRunning before Start or during Shutdown.
func (s *Scheduler) ScanNow(location string) error {
	s.mu.Lock()
	ok, runner := s.plan.has(location), s.plan.Runner
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownLocation, location)
	}
	job := Job{Location: location, Trigger: TriggerManual, Due: s.now()}
	if q := s.opts.Queue; q != nil {
		if err := s.Ready(); err != nil {
			return ErrNotRunning
		}
		s.mu.Lock()
		_, busy := s.active[location]
		s.mu.Unlock()
		if busy {
			return fmt.Errorf("location %q: %w", location, ErrBusy)
		}
		return q.Enqueue(context.WithoutCancel(s.runCtx), job)
	}
	return s.trigger(job, runner)
}

// Run runs job here, now, with the running plan's runner, as the queue's
// worker that took it: the job shows in Running and counts in Stats while
// it runs. It returns an error wrapping ErrBusy when this scheduler is
// already running the location, ErrNotRunning once Shutdown has begun,
// and otherwise the runner's error. ctx is the queue's: cancelling it
// stops the scan, which is stored as incomplete.
func (s *Scheduler) Run(ctx context.Context, job Job) error {
	s.mu.Lock()
	if s.state != stateRunning {
		s.mu.Unlock()
		return ErrNotRunning
	}
	runner := s.plan.Runner
	if _, busy := s.active[job.Location]; busy {
		s.mu.Unlock()
		s.Skipped(job, "the previous one is still running here")
		return fmt.Errorf("location %q: %w", job.Location, ErrBusy)
	}
	a := &active{progress: Progress{Location: job.Location, Trigger: job.Trigger, Schedule: job.Schedule, Queued: job.Due, Phase: "queued"}}
	if a.progress.Queued.IsZero() {
		a.progress.Queued = s.now()
	}
	s.active[job.Location] = a
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	// Shutdown's grace period cancels the scans it waited for, whoever
	// started them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.runCtx, cancel)
	defer stop()
	return s.execute(ctx, job, runner, a)
}

// Skipped counts a scheduled job that does not run because its location
// is busy (here or, with a Queue, on another replica), and logs why.
func (s *Scheduler) Skipped(job Job, why string) {
	if job.Trigger != TriggerSchedule {
		return
	}
	s.mu.Lock()
	s.statsOf(job.Location).Skipped++
	s.mu.Unlock()
	s.log.Warn("scheduled scan skipped: "+why, "location", job.Location, "schedule", job.Schedule, "due", job.Due)
}

// trigger takes the location's lock and hands the job to a worker, or
// counts it skipped when the location is busy.
func (s *Scheduler) trigger(job Job, runner Runner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateRunning {
		return ErrNotRunning
	}
	st := s.statsOf(job.Location)
	if cur, busy := s.active[job.Location]; busy {
		if job.Trigger == TriggerSchedule {
			st.Skipped++
			s.log.Warn("scheduled scan skipped: the previous one has not finished",
				"location", job.Location, "schedule", job.Schedule,
				"previous_trigger", cur.progress.Trigger, "previous_queued", cur.progress.Queued, "previous_started", cur.progress.Started)
		}
		return fmt.Errorf("location %q: %w", job.Location, ErrBusy)
	}
	a := &active{progress: Progress{Location: job.Location, Trigger: job.Trigger, Schedule: job.Schedule, Queued: s.now(), Phase: "queued"}}
	s.active[job.Location] = a
	s.wg.Add(1)
	go s.run(job, runner, a)
	return nil
}

// run waits for a worker slot, runs the job and releases the location.
func (s *Scheduler) run(job Job, runner Runner, a *active) {
	defer s.wg.Done()
	select {
	case s.sem <- struct{}{}:
	case <-s.stopping:
		s.mu.Lock()
		delete(s.active, job.Location)
		s.mu.Unlock()
		s.log.Info("queued scan dropped: shutting down", "location", job.Location, "trigger", job.Trigger)
		return
	}
	defer func() { <-s.sem }()
	_ = s.execute(s.runCtx, job, runner, a)
}

// execute runs an active job to the end, keeping its progress and the
// location's statistics, and releases the location.
func (s *Scheduler) execute(parent context.Context, job Job, runner Runner, a *active) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	s.mu.Lock()
	start := s.now()
	a.cancel = cancel
	a.progress.Started, a.progress.Phase = start, "starting"
	st := s.statsOf(job.Location)
	st.Started++
	st.LastStarted = start
	s.mu.Unlock()
	s.log.Info("scan started", "location", job.Location, "trigger", job.Trigger, "schedule", job.Schedule,
		"waited", start.Sub(a.progress.Queued).Round(time.Millisecond))

	err := s.runJob(ctx, runner, job, a)

	s.mu.Lock()
	end := s.now()
	st.LastFinished, st.LastOK, st.LastError = end, err == nil, ""
	if err != nil {
		st.Failed++
		st.LastError = err.Error()
	} else {
		st.Succeeded++
	}
	delete(s.active, job.Location)
	s.mu.Unlock()
	took := end.Sub(start).Round(time.Millisecond)
	if err != nil {
		s.log.Error("scan failed", "location", job.Location, "trigger", job.Trigger, "took", took, "error", err)
		return err
	}
	s.log.Info("scan finished", "location", job.Location, "trigger", job.Trigger, "took", took)
	return nil
}

// runJob calls the runner, turning a panic into an error so that one bad
// scan neither kills the daemon nor keeps its location locked.
func (s *Scheduler) runJob(ctx context.Context, runner Runner, job Job, a *active) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("scan panicked: %v", v)
		}
	}()
	return runner.RunJob(ctx, job, func(phase string, done, total int) {
		s.mu.Lock()
		a.progress.Phase, a.progress.Done, a.progress.Total = phase, done, total
		s.mu.Unlock()
	})
}

func (s *Scheduler) statsOf(loc string) *LocationStats {
	st := s.stats[loc]
	if st == nil {
		st = &LocationStats{}
		s.stats[loc] = st
	}
	return st
}

// Running returns the queued and running jobs, by location.
func (s *Scheduler) Running() []Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Progress, 0, len(s.active))
	for _, a := range s.active {
		out = append(out, a.progress)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Location < out[j].Location })
	return out
}

// Stats returns a copy of every location's counters.
func (s *Scheduler) Stats() map[string]LocationStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]LocationStats, len(s.stats))
	for k, v := range s.stats {
		out[k] = *v
	}
	return out
}

// Planned returns the scheduled (schedule, location) pairs with their
// jitter and next due time.
func (s *Scheduler) Planned() []PlannedJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PlannedJob, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.job
		if s.opts.Queue != nil {
			if s.state == stateRunning {
				out[i].Next = e.sched.Next(s.now().In(s.opts.TimeZone))
			}
			continue
		}
		out[i].Next = s.cron.Entry(e.id).Next
	}
	return out
}

// Runner returns the runner of the running plan (nil before Start).
func (s *Scheduler) Runner() Runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plan.Runner
}

// ReloadStatus reports how many reloads succeeded and failed, and why the
// last one failed ("" when it did not).
func (s *Scheduler) ReloadStatus() (ok, failed int64, lastError string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloads, s.failures, s.loadErr
}

// Ready returns nil while the scheduler is running a plan, and why not
// otherwise.
func (s *Scheduler) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateNew:
		return errors.New("scheduler not started")
	case stateStopping, stateStopped:
		return errors.New("scheduler shutting down")
	}
	return nil
}

// Shutdown stops scheduling, drops queued jobs, and waits for running
// scans until ctx is done (the grace period); it then cancels them, so
// each records what it has as an incomplete scan, and waits up to
// Options.CancelWait for them to return. It returns an error naming the
// scans that did not return in time.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.state == stateStopping || s.state == stateStopped {
		s.mu.Unlock()
		return errors.New("daemon: scheduler already shut down")
	}
	s.state = stateStopping
	running := len(s.active)
	s.mu.Unlock()
	<-s.cron.Stop().Done() // no new triggers once this returns
	close(s.stopping)
	if running > 0 {
		s.log.Info("shutting down: waiting for running scans", "scans", running)
	}

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		left := s.Running()
		s.log.Warn("grace period over: cancelling running scans; each is stored as incomplete", "scans", locationsOf(left))
		s.cancel()
		t := time.NewTimer(s.opts.CancelWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			left = s.Running()
			err = fmt.Errorf("daemon: %d scan(s) did not stop within %s of being cancelled: %s", len(left), s.opts.CancelWait, strings.Join(locationsOf(left), ", "))
		}
	}
	s.cancel()
	s.mu.Lock()
	s.state = stateStopped
	s.mu.Unlock()
	if err == nil {
		s.log.Info("scheduler stopped")
	}
	return err
}

func locationsOf(ps []Progress) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Location
	}
	return out
}

// cronLogger routes robfig/cron's logs to slog.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "error", err)...)
}
