// Package postgres is vigil's store on PostgreSQL, for a central server and
// several `vigil serve` replicas: the same schema, migrations and behaviour
// as store/sqlite (both run store/internal/sqlstore), through pgx's
// database/sql driver. Writers serialise on a transaction-scoped advisory
// lock, so replicas append to the evidence log one at a time.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/internal/sqlstore"
)

// writeLockKey is the advisory lock every vigil write transaction takes
// ("vigil" in ASCII), whatever the replica.
const writeLockKey = 0x7669676c

// Store is a vigil database on a PostgreSQL server. Its methods (those of
// the shared SQL implementation) are safe for concurrent use, and for
// several processes on one database.
type Store struct {
	*sqlstore.DB
	db   *sql.DB
	name string

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.AgentStore = (*Store)(nil)
)

type options struct {
	now         func() time.Time
	evidenceKey *evidence.Key
	readOnly    bool
	maxConns    int
}

// Option changes how Open opens the database.
type Option func(*options)

// WithClock sets the clock used for times the caller leaves unset.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithEvidenceKey sets the key that signs the evidence log's checkpoints.
func WithEvidenceKey(k *evidence.Key) Option { return func(o *options) { o.evidenceKey = k } }

// ReadOnly opens the database for reading only: no migration, and every
// transaction is READ ONLY, so a report or CLI query cannot change it.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithMaxConns bounds the connection pool (default 10).
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = n } }

// Open connects to the PostgreSQL database at rawURL
// (postgres://user@host:port/db?sslmode=...) and, unless ReadOnly, applies
// pending migrations in one transaction under the write lock, so replicas
// starting together migrate once.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Store, error) {
	o := options{now: time.Now, maxConns: 10}
	for _, opt := range opts {
		opt(&o)
	}
	name := Redact(rawURL)
	dsn := rawURL
	if o.readOnly {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", name, err)
		}
		q := u.Query()
		q.Set("default_transaction_read_only", "on")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	db.SetMaxOpenConns(o.maxConns)
	// Every connection stays open while idle (up to the idle timeout):
	// under a burst of agent batches, closing all but a few as they
	// come back meant a new server process per request or two.
	db.SetMaxIdleConns(o.maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: connect: %w", name, err)
	}
	core := sqlstore.New(db, name, o.now, sqlstore.Dollar)
	// One transaction per agent batch: with no fsync to share, a savepoint
	// per batch costs PostgreSQL more round trips than the commit it saves
	// (measured: docs/benchmarks.md, "Agent ingest").
	core.SetGroupLimit(1)
	core.SetTxStart(func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey)
		return err
	})
	s := &Store{DB: core, db: db, name: name}
	if o.readOnly {
		v, err := core.SchemaVersion(ctx)
		if err == nil && v != sqlstore.LatestVersion {
			err = fmt.Errorf("store %s: database schema is v%d, this vigil reads v%d: run `vigil db migrate` or upgrade vigil",
				name, v, sqlstore.LatestVersion)
		}
		if err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	if o.evidenceKey != nil {
		core.SetEvidenceKey(o.evidenceKey)
	}
	if err := core.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Path names the database in messages: the URL without its password.
func (s *Store) Path() string { return s.name }

// Evidence returns what `vigil evidence export` reads.
func (s *Store) Evidence() evidence.Source { return s.DB }

// SQL returns the connection pool, for tests that check the database
// itself refuses what vigil never does (UPDATE on the evidence log).
func (s *Store) SQL() *sql.DB { return s.db }

// Close closes the pool. Calling it again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store %s: close: %w", s.name, err)
		}
	})
	return s.closeErr
}

// Redact returns rawURL without its password, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "postgres://(unparseable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Core returns the shared implementation, for moving a database between
// backends (package store/dbmove).
func (s *Store) Core() *sqlstore.DB { return s.DB }
