// Package dbmove opens vigil databases by URL, whichever the backend, and
// moves one into another: SQLite to PostgreSQL when a single server outgrows
// its file, or back. A move copies rows as stored, so the evidence log keeps
// its hashes and signatures.
package dbmove

import (
	"context"
	"fmt"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/internal/sqlstore"
	"github.com/vigilhq/vigil/store/postgres"
	"github.com/vigilhq/vigil/store/sqlite"
)

// Report is what a move copied: rows per table and the evidence log's head.
type Report = sqlstore.CopyReport

// Opened is a store opened by URL.
type Opened interface {
	store.Store
	Path() string
	Core() *sqlstore.DB
	Evidence() evidence.Source
}

// Open opens the database at rawURL (sqlite:///path or postgres://...),
// migrating it unless readOnly.
func Open(ctx context.Context, rawURL string, readOnly bool) (Opened, error) {
	driver, dsn, err := store.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch driver {
	case store.DriverSQLite:
		if readOnly {
			return sqlite.Open(ctx, dsn, sqlite.ReadOnly())
		}
		return sqlite.Open(ctx, dsn)
	case store.DriverPostgres:
		if readOnly {
			return postgres.Open(ctx, dsn, postgres.ReadOnly())
		}
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("unknown database driver %q", driver)
}

// Move copies everything in the database at from into the empty database at
// to (created and migrated if needed), in one transaction of the
// destination, and checks row counts and the evidence log's head before
// committing. The source is opened read-only and left as it was.
func Move(ctx context.Context, from, to string, progress func(table string, rows int64)) (*Report, error) {
	src, err := Open(ctx, from, true)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := Open(ctx, to, false)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	defer dst.Close()
	return src.Core().CopyTo(ctx, dst.Core(), progress)
}

// LatestVersion is the schema version this build of vigil writes.
var LatestVersion = sqlstore.LatestVersion
