// Package sqlite is vigil's embedded store: one SQLite file (by default
// data_dir/vigil.db) through the pure-Go modernc.org/sqlite driver, no cgo.
// It runs in WAL mode with full syncs, migrates the schema at Open, and holds
// an exclusive lock file beside the database so that a second vigil process
// gets store.ErrLocked instead of a shared write.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/internal/sqlstore"
)

// Store is a vigil database in one SQLite file. Its methods are safe for
// concurrent use; write transactions run one at a time.
type Store struct {
	core *sqlstore.DB
	db   *sql.DB
	lock *fileLock // nil when read-only
	path string

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

type options struct {
	busyTimeout time.Duration
	readOnly    bool
	now         func() time.Time
	evidenceKey *evidence.Key
}

// Option changes how Open opens the database.
type Option func(*options)

// WithBusyTimeout sets how long a statement waits for another connection's
// lock on the database before failing (default 5s). It matters for readers
// in other processes; writers in this process queue in Go instead.
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// ReadOnly opens an existing database for reading only, without the lock
// file, so that `vigil report` can read while `vigil serve` writes. The
// database must already be at this build's schema version; writes fail.
func ReadOnly() Option {
	return func(o *options) { o.readOnly = true }
}

// WithClock sets the clock used for times the caller leaves unset (a scan's
// start or finish, a person's status change, a migration's applied_at).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithEvidenceKey sets the key that signs the evidence log's checkpoints
// (evidence.LoadOrCreateKey reads the data directory's). Without it the
// log is still written and chained, but not signed until a writer with a
// key comes. A read-only store ignores it.
func WithEvidenceKey(k *evidence.Key) Option {
	return func(o *options) { o.evidenceKey = k }
}

// Open opens the database at path, creating it and its parent directory
// (mode 0700) if needed, takes the lock file path+".lock", and applies any
// pending schema migrations in one transaction. If another process has the
// database open the error wraps store.ErrLocked and names that process.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{busyTimeout: 5 * time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if o.readOnly {
		return openReadOnly(ctx, abs, o)
	}

	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("store %s: create directory: %w", abs, err)
	}
	lock, err := acquireLock(abs, abs+".lock")
	if err != nil {
		return nil, err
	}
	// Create the file ourselves so that it, and the -wal and -shm files
	// SQLite derives from it, are private to the owner: it holds findings.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("store %s: %w", abs, err)
	}
	f.Close()

	s, err := openDB(ctx, abs, o, lock)
	if err != nil {
		lock.release()
		return nil, err
	}
	if err := s.core.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openReadOnly(ctx context.Context, abs string, o options) (*Store, error) {
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store %s: no database here yet: run vigil scan or vigil serve first", abs)
	} else if err != nil {
		return nil, fmt.Errorf("store %s: %w", abs, err)
	}
	s, err := openDB(ctx, abs, o, nil)
	if err != nil {
		return nil, err
	}
	v, err := s.core.SchemaVersion(ctx)
	if err == nil && v != sqlstore.LatestVersion {
		err = fmt.Errorf("store %s: database schema is v%d, this vigil reads v%d: open it once read-write (vigil serve or vigil scan) to migrate, or upgrade vigil",
			abs, v, sqlstore.LatestVersion)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openDB(ctx context.Context, abs string, o options, lock *fileLock) (*Store, error) {
	db, err := sql.Open("sqlite", dsn(abs, o))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", abs, err)
	}
	// Every connection runs the DSN's pragmas; a few are plenty for one
	// process (WAL lets readers run beside the single writer).
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: open: %w", abs, err)
	}
	core := sqlstore.New(db, abs, o.now, sqlstore.Question)
	if !o.readOnly && o.evidenceKey != nil {
		core.SetEvidenceKey(o.evidenceKey)
	}
	return &Store{core: core, db: db, lock: lock, path: abs}, nil
}

// dsn builds the modernc.org/sqlite data source name: a file: URI, so that
// any path (spaces, '?', '#') is escaped rather than cut, with pragmas every
// new connection applies.
func dsn(abs string, o options) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(o.busyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "1")
	if o.readOnly {
		q.Set("mode", "ro")
		q.Set("_query_only", "1")
	} else {
		// WAL: readers never block the writer and a crash leaves the last
		// committed state. FULL: a commit survives power loss too; scans
		// commit rarely, so the fsyncs cost little.
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		// Take the write lock at BEGIN, not at the first write, so a
		// transaction never fails halfway on a lock it cannot upgrade.
		q.Set("_txlock", "immediate")
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // file:///C:/vigil-data/vigil.db
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// BeginScan records that a scan started, so observations can be added to it
// while it runs. Beginning a running scan again updates it; a finished one is
// store.ErrScanFinished.
func (s *Store) BeginScan(ctx context.Context, scan observe.Scan) error {
	return s.core.BeginScan(ctx, scan)
}

// AddObservations appends observations to a begun, unfinished scan, all in
// one transaction. Observations keep their order; Attrs are stored as JSON
// (see Observations for how they read back).
func (s *Store) AddObservations(ctx context.Context, scanID string, obs []observe.Observation) error {
	return s.core.AddObservations(ctx, scanID, obs)
}

// FinishScan records the scan's end (FinishedAt, or now if unset; Complete;
// Errors) and reconciles its findings with the stored ones in one
// transaction. Each finding (keyed by ID, computed with observe.FindingID when
// empty; repeats of an ID are dropped) is opened, seen or reopened at the
// scan's FinishedAt; accepted and false-positive findings keep their status.
// When scan.Complete is true, open findings at scan.Locations that this scan
// did not see are resolved. It returns this scan's findings with FirstSeen,
// LastSeen and Status as stored, and the findings it resolved. FinishScan
// on a finished scan is store.ErrScanFinished; on error nothing is written.
func (s *Store) FinishScan(ctx context.Context, scan observe.Scan, findings []observe.Finding) (current, resolved []observe.Finding, err error) {
	return s.core.FinishScan(ctx, scan, findings)
}

// Findings returns the stored findings f selects, highest severity first,
// then by location, target and rule. Controls and Evidence are never nil.
func (s *Store) Findings(ctx context.Context, f store.FindingFilter) ([]observe.Finding, error) {
	return s.core.Findings(ctx, f)
}

// DecideFinding records a person's decision about a finding: accepted or
// false-positive (each needs who, why and an expiry after now; the finding
// reopens then), resolved as fixed (a later scan that sees it reopens it)
// or open again. It goes into the finding's history and the evidence log.
// An unknown id is store.ErrNotFound; a decision missing who, why or
// expiry wraps store.ErrInvalidDecision.
func (s *Store) DecideFinding(ctx context.Context, findingID string, d observe.Decision) (observe.Finding, error) {
	return s.core.DecideFinding(ctx, findingID, d)
}

// ExpireDecisions reopens the accepted and false-positive findings whose
// decision expired at or before now and returns them. FinishScan does the
// same at each scan's end.
func (s *Store) ExpireDecisions(ctx context.Context, now time.Time) ([]observe.Finding, error) {
	return s.core.ExpireDecisions(ctx, now)
}

// Events returns the finding events f selects, oldest first.
func (s *Store) Events(ctx context.Context, f store.EventFilter) ([]store.FindingEvent, error) {
	return s.core.Events(ctx, f)
}

// ScanObservations returns one scan's observations at one location ("" for
// organisation-wide ones), in the order added.
func (s *Store) ScanObservations(ctx context.Context, scanID, location string) ([]observe.Observation, error) {
	return s.core.ScanObservations(ctx, scanID, location)
}

// AddRiskTreatment appends a risk-register decision; an accept treatment
// also accepts the findings named, until its expiry, in one transaction.
func (s *Store) AddRiskTreatment(ctx context.Context, t observe.RiskTreatment, accept []string) (observe.RiskTreatment, error) {
	return s.core.AddRiskTreatment(ctx, t, accept)
}

// RiskTreatments returns each risk's current (newest) treatment.
func (s *Store) RiskTreatments(ctx context.Context) ([]observe.RiskTreatment, error) {
	return s.core.RiskTreatments(ctx)
}

// RiskHistory returns every treatment of one risk, oldest first.
func (s *Store) RiskHistory(ctx context.Context, riskID string) ([]observe.RiskTreatment, error) {
	return s.core.RiskHistory(ctx, riskID)
}

// EvidenceRefs returns the evidence-log entries about the given subjects
// (scan, finding, risk or attestation ids), in log order.
func (s *Store) EvidenceRefs(ctx context.Context, subjects []string) ([]store.EvidenceRef, error) {
	return s.core.EvidenceRefs(ctx, subjects)
}

// Scans returns up to limit scans, newest first; limit <= 0 returns all. A
// scan still running has a zero FinishedAt.
func (s *Store) Scans(ctx context.Context, limit int) ([]observe.Scan, error) {
	return s.core.Scans(ctx, limit)
}

// Observations returns a scan's observations in the order they were added.
// Attrs read back as JSON decodes them, except that whole numbers are int64
// (other numbers float64), so rules see the same types as CEL's. An unknown
// scan is store.ErrUnknownScan.
func (s *Store) Observations(ctx context.Context, scanID string) ([]observe.Observation, error) {
	return s.core.Observations(ctx, scanID)
}

// FindingHistory returns a finding's events, oldest first. An unknown id is
// store.ErrNotFound.
func (s *Store) FindingHistory(ctx context.Context, findingID string) ([]store.FindingEvent, error) {
	return s.core.FindingHistory(ctx, findingID)
}

// ErrSuperseded is returned for a correction of an attestation that was
// already corrected.
var ErrSuperseded = sqlstore.ErrSuperseded

// AddAttestation stores an attestation (validate it first with
// attest.Validate), assigning its ID and RecordedAt, and appends it to the
// evidence log in the same transaction. Stored attestations are never
// changed or deleted: see CorrectAttestation.
func (s *Store) AddAttestation(ctx context.Context, r observe.Attestation) (observe.Attestation, error) {
	return s.core.AddAttestation(ctx, r)
}

// CorrectAttestation stores r as the correction of the attestation with id
// supersedes, which stays in the database and the evidence log but no
// longer counts. An unknown id is store.ErrNotFound; an id already
// corrected is ErrSuperseded (correct the newest record).
func (s *Store) CorrectAttestation(ctx context.Context, supersedes string, r observe.Attestation) (observe.Attestation, error) {
	return s.core.CorrectAttestation(ctx, supersedes, r)
}

// Attestations returns the attestations in force (not superseded by a
// correction), oldest first.
func (s *Store) Attestations(ctx context.Context) ([]observe.Attestation, error) {
	return s.core.Attestations(ctx)
}

// Core returns the shared implementation, for moving a database between
// backends (package store/dbmove).
func (s *Store) Core() *sqlstore.DB { return s.core }

// SQL returns the connection pool, for tests that check the database itself
// refuses what vigil never does (UPDATE on the evidence log).
func (s *Store) SQL() *sql.DB { return s.db }

// SetBeforeCommit installs a hook run inside every write transaction just
// before it commits; an error rolls it back. Tests use it to fail or cancel
// mid-transaction.
func (s *Store) SetBeforeCommit(f func(context.Context) error) { s.core.SetBeforeCommit(f) }

// Evidence returns what `vigil evidence export` reads: the evidence log,
// its checkpoints and the observations its entries commit to.
func (s *Store) Evidence() evidence.Source { return s.core }

// Close waits for running statements, closes the database and releases the
// lock file. Calling it again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store %s: close: %w", s.path, err)
		}
		if s.lock != nil {
			s.lock.release()
		}
	})
	return s.closeErr
}
