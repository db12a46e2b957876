// Package jobs runs vigil serve's work as River jobs, so that several
// replicas on one PostgreSQL database share it: scheduled and manual
// scans, the organisation-wide collector runs, alert cycles and
// scheduled reports are rows in River's queue, each taken by one replica,
// the schedules are enqueued by River's elected leader only, and a job whose replica died is rescued
// and finished by another. With the embedded SQLite store the queue is a
// SQLite file beside it, so one vigil serve works the same way alone.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/store/postgres"
)

// FileName is the SQLite queue's file in the first configuration's
// data_dir.
const FileName = "jobs.db"

// Defaults of Options.
const (
	// DefaultJobTimeout bounds one scan: a location with many segments
	// and a slow rate limit can take hours.
	DefaultJobTimeout = 6 * time.Hour
	// rescueMargin is how long after JobTimeout a job still marked
	// running is taken to be lost with its replica, by default.
	rescueMargin = 15 * time.Minute
	// MaxAttempts is how often a job is tried: a job whose replica died
	// (or was stopped mid-scan) is tried again on another.
	MaxAttempts = 3
)

// Errors callers branch on.
var (
	// ErrUnknownTenant: a job names a tenant this process does not serve.
	ErrUnknownTenant = errors.New("tenant not served by this replica")
)

// Options configures Open.
type Options struct {
	// Postgres is the URL of the PostgreSQL database River's tables live
	// in (the first tenant's store); empty uses the SQLite file SQLite.
	Postgres string
	// SQLite is the path of the queue's SQLite file, when Postgres is
	// empty.
	SQLite string
	// Tenants are the tenant ids served, each with the most scans it runs
	// at once on this replica.
	Tenants map[string]int
	// JobTimeout bounds one scan (default DefaultJobTimeout); the scan is
	// then cancelled and stored as incomplete.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before it is taken
	// to be lost with its replica and run again by another; more than
	// JobTimeout (default JobTimeout + 15m).
	RescueAfter time.Duration
	// ID names this replica in River's tables (default host-pid).
	ID string
	// TimeZone the reports' cron expressions and file dates are read
	// in; nil means time.Local, as for the scan schedules.
	TimeZone *time.Location
	// Logger receives the queue's logs; River's own are passed on from
	// warnings up. Nil discards.
	Logger *slog.Logger
}

// Tenant is what a replica's workers run a tenant's jobs with.
type Tenant struct {
	Scheduler *daemon.Scheduler
	Alerter   *daemon.Alerter
	// Reports reads what the tenant's scheduled reports are made from;
	// nil when it has none.
	Reports func(ctx context.Context) (ReportInput, error)
}

// riverClient is the part of river.Client (for either driver) used here.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	PeriodicJobs() *river.PeriodicJobBundle
	ID() string
}

// Queue is the process's River client, serving every tenant.
type Queue struct {
	opts   Options
	log    *slog.Logger
	client riverClient
	locks  locker
	closer func() error
	name   string

	mu       sync.Mutex
	tenants  map[string]Tenant
	periodic map[string][]rivertype.PeriodicJobHandle // by tenant
	// reportPeriodic are the tenants' scheduled reports.
	reportPeriodic map[string][]rivertype.PeriodicJobHandle
}

// Open connects to (or creates) the queue's database, applies River's
// migrations, and builds the client; Serve registers the tenants' workers
// and Start starts it.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.JobTimeout <= 0 {
		opts.JobTimeout = DefaultJobTimeout
	}
	if opts.RescueAfter <= 0 {
		opts.RescueAfter = opts.JobTimeout + rescueMargin
	}
	if opts.RescueAfter <= opts.JobTimeout {
		return nil, fmt.Errorf("jobs: rescue-after %s must be longer than the job timeout %s, or running scans would be run twice", opts.RescueAfter, opts.JobTimeout)
	}
	if opts.ID == "" {
		host, _ := os.Hostname()
		opts.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	q := &Queue{opts: opts, log: opts.Logger, tenants: map[string]Tenant{}, periodic: map[string][]rivertype.PeriodicJobHandle{},
		reportPeriodic: map[string][]rivertype.PeriodicJobHandle{}}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &scanWorker{q: q})
	river.AddWorker(workers, &alertWorker{q: q})
	river.AddWorker(workers, &reportWorker{q: q})
	queues := map[string]river.QueueConfig{alertQueue: {MaxWorkers: max(1, len(opts.Tenants))}, reportQueue: {MaxWorkers: 1}}
	conns := 0
	for id, n := range opts.Tenants {
		queues[scanQueue(id)] = river.QueueConfig{MaxWorkers: max(1, n)}
		conns += max(1, n)
	}
	cfg := &river.Config{
		ID:                   opts.ID,
		Queues:               queues,
		Workers:              workers,
		JobTimeout:           opts.JobTimeout,
		RescueStuckJobsAfter: opts.RescueAfter,
		MaxAttempts:          MaxAttempts,
		Logger:               slog.New(warnOnly{q.log.Handler()}),
	}
	var err error
	if opts.Postgres != "" {
		err = q.openPostgres(ctx, cfg, conns)
	} else {
		err = q.openSQLite(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) openPostgres(ctx context.Context, cfg *river.Config, conns int) error {
	pcfg, err := pgxpool.ParseConfig(q.opts.Postgres)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	q.name = postgres.Redact(q.opts.Postgres)
	// Every running job holds one connection for its location's lock;
	// River needs a few of its own.
	pcfg.MaxConns = int32(conns + len(q.opts.Tenants) + 8)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("jobs %s: %w", q.name, err)
	}
	if err := migratePostgres(ctx, pool); err != nil {
		pool.Close()
		return fmt.Errorf("jobs %s: %w", q.name, err)
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		pool.Close()
		return fmt.Errorf("jobs: %w", err)
	}
	q.client, q.locks = c, pgLocker{pool}
	q.closer = func() error { pool.Close(); return nil }
	return nil
}

func (q *Queue) openSQLite(ctx context.Context, cfg *river.Config) error {
	q.name = q.opts.SQLite
	db, err := openSQLite(ctx, q.opts.SQLite)
	if err != nil {
		return err
	}
	if err := migrateSQLite(ctx, db); err != nil {
		db.Close()
		return fmt.Errorf("jobs %s: %w", q.name, err)
	}
	// Without LISTEN/NOTIFY River polls; a manual scan should not wait
	// long for it.
	cfg.FetchPollInterval = 250 * time.Millisecond
	c, err := river.NewClient(riversqlite.New(db), cfg)
	if err != nil {
		db.Close()
		return fmt.Errorf("jobs: %w", err)
	}
	q.client, q.locks = c, newMemLocker()
	q.closer = db.Close
	return nil
}

// openSQLite opens (creating) the queue file, private to its owner, with
// one connection, as riversqlite asks.
func openSQLite(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("jobs %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("jobs %s: %w", path, err)
	}
	f.Close()
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(NORMAL)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: v.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("jobs %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("jobs %s: %w", path, err)
	}
	return db, nil
}

// migrateLockKey serialises River's migrations between replicas starting
// together ("vgjm").
const migrateLockKey = 0x76676a6d

func migratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	// Each of River's versions runs in its own transaction (one adds an
	// enum value the next uses); a session lock on a connection of its
	// own keeps the other replicas waiting meanwhile.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

func migrateSQLite(ctx context.Context, db *sql.DB) error {
	m, err := rivermigrate.New(riversqlite.New(db), nil)
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

// Migrate applies River's migrations to the PostgreSQL database at
// rawURL (vigil db migrate), and returns River's schema version.
func Migrate(ctx context.Context, rawURL string) (int, error) {
	pool, err := pgxpool.New(ctx, rawURL)
	if err != nil {
		return 0, fmt.Errorf("jobs %s: %w", postgres.Redact(rawURL), err)
	}
	defer pool.Close()
	if err := migratePostgres(ctx, pool); err != nil {
		return 0, fmt.Errorf("jobs %s: %w", postgres.Redact(rawURL), err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return 0, err
	}
	vs, err := m.ExistingVersions(ctx)
	if err != nil || len(vs) == 0 {
		return 0, err
	}
	return vs[len(vs)-1].Version, nil
}

// Name names the queue's database in logs: a file, or a URL without its
// password.
func (q *Queue) Name() string { return q.name }

// ID is this replica's name in River's tables.
func (q *Queue) ID() string { return q.client.ID() }

// Serve registers a tenant's scheduler and alerter with the workers.
// Call it for every tenant before Start.
func (q *Queue) Serve(id string, t Tenant) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tenants[id] = t
}

func (q *Queue) tenant(id string) (Tenant, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.tenants[id]
	return t, ok && t.Scheduler != nil
}

// Start starts working jobs and, once elected leader, enqueuing the
// schedules.
func (q *Queue) Start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	q.log.Info("job queue started", "queue", q.name, "replica", q.client.ID(),
		"job_timeout", q.opts.JobTimeout, "rescue_after", q.opts.RescueAfter)
	return nil
}

// AbandonAfter is how long after it began a scan of vigil serve's own
// that is still unfinished is certainly nobody's: twice RescueAfter, by
// when its job was either stored as incomplete at JobTimeout or rescued
// and run again elsewhere (daemon.AlerterOptions.AbandonAfter).
func (q *Queue) AbandonAfter() time.Duration { return 2 * q.opts.RescueAfter }

// Stop stops taking jobs and waits up to grace for the running ones to
// finish; it then cancels them (each scan is stored as incomplete, and
// its job is tried again by another replica or at the next start) and
// waits up to cancelWait for them to return.
func (q *Queue) Stop(ctx context.Context, grace, cancelWait time.Duration) error {
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := q.client.Stop(gctx); err == nil {
		return nil
	}
	q.log.Warn("grace period over: cancelling running jobs; each scan is stored as incomplete and tried again")
	cctx, cancel2 := context.WithTimeout(ctx, cancelWait)
	defer cancel2()
	if err := q.client.StopAndCancel(cctx); err != nil {
		return fmt.Errorf("jobs: running jobs did not stop within %s of being cancelled: %w", cancelWait, err)
	}
	return nil
}

// Close closes the queue's database; call it after Stop.
func (q *Queue) Close() error { return q.closer() }

// For returns the daemon.Queue of one tenant, for its scheduler.
func (q *Queue) For(tenant string) daemon.Queue { return tenantQueue{q: q, tenant: tenant} }

// AlertCycles returns the daemon.AlerterOptions.Queue of one tenant.
func (q *Queue) AlertCycles(tenant string) func(reason string) {
	return func(reason string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := q.requestCycle(ctx, tenant, reason); err != nil {
			q.log.Error("alert cycle not queued", "tenant", tenant, "reason", reason, "error", err)
		}
	}
}

// warnOnly passes on River's records from warnings up: its own info
// logs (client started, leader elected) are noise in vigil's.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}
func (w warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(as)} }
func (w warnOnly) WithGroup(n string) slog.Handler       { return warnOnly{w.Handler.WithGroup(n)} }
