// Package sqlstore is the store implementation the SQLite and PostgreSQL
// backends share: plain SQL over database/sql that both databases run, and the
// finding lifecycle decided in Go. A backend opens the *sql.DB with its
// driver, takes whatever process lock it needs, and hands the pool to New.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// batchRows bounds the rows in one multi-row INSERT or the ids in one IN
// list, keeping every statement well under SQLite's 32766 and PostgreSQL's
// 65535 bind parameters.
const batchRows = 500

// Placeholders is how a driver wants bind parameters written in the
// statements DB builds at run time: IN lists and multi-row INSERTs, with up
// to thousands of parameters. The fixed statements, with a handful each, use
// $1, $2, ... which both databases accept.
type Placeholders int

const (
	// Dollar writes $1, $2, ...: PostgreSQL.
	Dollar Placeholders = iota
	// Question writes ?, ?, ...: SQLite, which resolves each $N by a linear
	// search of the statement's parameter names, quadratic in their number.
	Question
)

// DB implements the store API over a database/sql pool.
type DB struct {
	db           *sql.DB
	name         string // what error messages call the database: a path or a redacted URL
	now          func() time.Time
	placeholders Placeholders
	// sem serialises this process's write transactions, so they queue in Go
	// (honouring ctx) instead of failing on the database's write lock.
	sem          chan struct{}
	beforeCommit func(context.Context) error
	// txStart runs first in every write transaction: PostgreSQL takes an
	// advisory lock there so that replicas write one at a time, as
	// SQLite's single writer does.
	txStart func(context.Context, *sql.Tx) error
	// evidenceKey signs the evidence log's checkpoints; nil writes the
	// chain without signing it.
	evidenceKey *evidence.Key
	// group queues agent batches for the writer; see writeGrouped.
	group      groupQueue
	groupLimit int // 0: DefaultGroupLimit
}

// New wraps an open pool. name prefixes every error ("store NAME: ..."); now
// is the clock used when a caller leaves a time unset.
func New(db *sql.DB, name string, now func() time.Time, p Placeholders) *DB {
	if now == nil {
		now = time.Now
	}
	return &DB{db: db, name: name, now: now, placeholders: p, sem: make(chan struct{}, 1)}
}

// SetBeforeCommit installs a hook that runs inside every write transaction
// just before it commits; a non-nil error rolls the transaction back. Tests
// use it to cancel or crash mid-transaction.
func (d *DB) SetBeforeCommit(f func(ctx context.Context) error) { d.beforeCommit = f }

// SetTxStart installs a statement run first in every write transaction;
// an error rolls it back.
func (d *DB) SetTxStart(f func(context.Context, *sql.Tx) error) { d.txStart = f }

func (d *DB) errorf(format string, args ...any) error {
	return fmt.Errorf("store %s: "+format, append([]any{d.name}, args...)...)
}

// write runs fn in a transaction, one writer at a time, and commits unless fn,
// the hook or ctx says otherwise. Cancelling ctx rolls the transaction back.
func (d *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-d.sem }()

	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that made us roll back is the one to report
		}
	}()
	if d.txStart != nil {
		if err := d.txStart(ctx, tx); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// The driver reports an interrupted statement in its own words;
			// keep errors.Is(err, context.Canceled) true for the caller.
			return fmt.Errorf("%w: %v", cerr, err)
		}
		return err
	}
	if d.beforeCommit != nil {
		if err := d.beforeCommit(ctx); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Migrate brings the schema to LatestVersion in one transaction, recording
// each applied version in schema_migrations. Running it again is a no-op.
func (d *DB) Migrate(ctx context.Context) error {
	return d.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return d.errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return d.errorf("read schema version: %w", err)
		}
		if current > LatestVersion {
			return d.errorf("database schema is v%d, newer than this vigil understands (v%d): upgrade vigil", current, LatestVersion)
		}
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			// Placeholders says which database this is: each driver has one.
			dialect := m.sqlite
			if d.placeholders == Dollar {
				dialect = m.postgres
			}
			for i, stmt := range append(slices.Clip(m.stmts), dialect...) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return d.errorf("migrate to v%d (%s), statement %d: %w", m.version, m.name, i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, formatTime(d.now())); err != nil {
				return d.errorf("migrate to v%d: record version: %w", m.version, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the highest migration applied to the database. It
// fails on a database vigil never migrated.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, d.errorf("read schema version (is this a vigil database?): %w", err)
	}
	return v, nil
}

// BeginScan records that a scan started. Beginning a scan that exists and is
// still running updates it; one that already finished is ErrScanFinished.
func (d *DB) BeginScan(ctx context.Context, scan observe.Scan) error {
	if scan.ID == "" {
		return d.errorf("begin scan: empty scan id")
	}
	if scan.StartedAt.IsZero() {
		scan.StartedAt = d.now()
	}
	locs, err := encodeJSON(scan.Locations, "[]")
	if err != nil {
		return d.errorf("begin scan %s: %w", scan.ID, err)
	}
	err = d.write(ctx, func(tx *sql.Tx) error {
		var finished sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT finished_at FROM scans WHERE id = $1`, scan.ID).Scan(&finished)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO scans (id, started_at, version, locations) VALUES ($1, $2, $3, $4)`,
				scan.ID, formatTime(scan.StartedAt), scan.Version, locs)
			return err
		case err != nil:
			return err
		case finished.Valid:
			return store.ErrScanFinished
		}
		_, err = tx.ExecContext(ctx, `UPDATE scans SET started_at = $2, version = $3, locations = $4 WHERE id = $1`,
			scan.ID, formatTime(scan.StartedAt), scan.Version, locs)
		return err
	})
	if err != nil {
		return d.errorf("begin scan %s: %w", scan.ID, err)
	}
	return nil
}

// scanState returns whether the scan exists and whether it finished.
func scanState(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (exists, finished bool, err error) {
	var f sql.NullString
	err = q.QueryRowContext(ctx, `SELECT finished_at FROM scans WHERE id = $1`, id).Scan(&f)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	return err == nil, f.Valid, err
}

const observationCols = `scan_id, seq, kind, location, segment, segment_role, vantage, vantage_role,
	internet_facing, host, port, proto, source, observed_at, attrs`

// AddObservations appends observations to a running scan in one transaction:
// either all of them are stored or none. The evidence log gets one
// observations entry per evidence.MaxObservationsPerEntry, listing each
// stored row's digest.
func (d *DB) AddObservations(ctx context.Context, scanID string, obs []observe.Observation) error {
	if len(obs) == 0 {
		return nil
	}
	return d.addObservations(ctx, scanID, obs, nil)
}

// addObservations is AddObservations with pre, when not nil, run first in
// its transaction: an error from pre rolls everything back. A write with
// pre is an agent batch's, and shares the writer's transaction with the
// others queued (writeGrouped).
func (d *DB) addObservations(ctx context.Context, scanID string, obs []observe.Observation, pre func(context.Context, *sql.Tx) error) error {
	attrs := make([]any, len(obs))
	for i, o := range obs {
		if len(o.Attrs) == 0 {
			continue // NULL
		}
		s, err := encodeJSON(o.Attrs, "")
		if err != nil {
			return d.errorf("add observations to scan %s: observation %d (%s %s) attrs: %w", scanID, i, o.Kind, o.Target(), err)
		}
		attrs[i] = s
	}
	err := d.writeWith(ctx, pre != nil, func(ctx context.Context, tx *sql.Tx) error {
		if pre != nil {
			if err := pre(ctx, tx); err != nil {
				return err
			}
		}
		// The scan's state and its next seq in one statement: a round trip
		// fewer to PostgreSQL under the write lock.
		var (
			finished sql.NullString
			next     int
		)
		err := tx.QueryRowContext(ctx, `SELECT finished_at, (SELECT COALESCE(MAX(seq), -1) + 1 FROM observations WHERE scan_id = $1)
			FROM scans WHERE id = $1`, scanID).Scan(&finished, &next)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrUnknownScan
		case err != nil:
			return err
		case finished.Valid:
			return store.ErrScanFinished
		}
		rows := make([]evidence.ObservationRow, len(obs))
		for start := 0; start < len(obs); start += batchRows {
			end := min(start+batchRows, len(obs))
			q := d.query()
			q.WriteString(`INSERT INTO observations (` + observationCols + `) VALUES `)
			for i := start; i < end; i++ {
				o := obs[i]
				if i > start {
					q.WriteString(", ")
				}
				at := formatTime(o.At)
				q.row(scanID, next+i, string(o.Kind), o.Location, o.Segment, o.SegmentRole, o.Vantage, o.VantageRole,
					o.InternetFacing, o.Host, o.Port, o.Proto, o.Source, at, attrs[i])
				// The row as stored, for its digest.
				rows[i] = evidence.ObservationRow{ScanID: scanID, Seq: int64(next + i), Kind: string(o.Kind), Location: o.Location,
					Segment: o.Segment, SegmentRole: o.SegmentRole, Vantage: o.Vantage, VantageRole: o.VantageRole,
					InternetFacing: o.InternetFacing, Host: o.Host, Port: int64(o.Port), Proto: o.Proto, Source: o.Source, ObservedAt: at}
				if s, ok := attrs[i].(string); ok {
					rows[i].Attrs = &s
				}
			}
			if _, err := tx.ExecContext(ctx, q.String(), q.args...); err != nil {
				return err
			}
		}
		recs, err := evidence.ObservationRecords(scanID, rows)
		if err != nil {
			return err
		}
		return d.appendEvidence(ctx, tx, recs)
	})
	if err != nil {
		return d.errorf("add %d observations to scan %s: %w", len(obs), scanID, err)
	}
	return nil
}

// Observations returns a scan's observations in the order they were added.
func (d *DB) Observations(ctx context.Context, scanID string) ([]observe.Observation, error) {
	return d.observations(ctx, scanID, nil)
}

// ScanObservations returns a scan's observations at one location ("" for
// the organisation-wide ones: accounts, packages), in the order added.
func (d *DB) ScanObservations(ctx context.Context, scanID, location string) ([]observe.Observation, error) {
	return d.observations(ctx, scanID, &location)
}

func (d *DB) observations(ctx context.Context, scanID string, location *string) ([]observe.Observation, error) {
	q := `SELECT kind, location, segment, segment_role, vantage, vantage_role,
		internet_facing, host, port, proto, source, observed_at, attrs
		FROM observations WHERE scan_id = $1`
	args := []any{scanID}
	if location != nil {
		q += ` AND location = $2`
		args = append(args, *location)
	}
	rows, err := d.db.QueryContext(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return nil, d.errorf("observations of scan %s: %w", scanID, err)
	}
	defer rows.Close()
	var out []observe.Observation
	for rows.Next() {
		var (
			o     observe.Observation
			kind  string
			at    string
			attrs sql.NullString
		)
		if err := rows.Scan(&kind, &o.Location, &o.Segment, &o.SegmentRole, &o.Vantage, &o.VantageRole,
			&o.InternetFacing, &o.Host, &o.Port, &o.Proto, &o.Source, &at, &attrs); err != nil {
			return nil, d.errorf("observations of scan %s: %w", scanID, err)
		}
		o.Kind = observe.Kind(kind)
		if o.At, err = parseTime(at); err != nil {
			return nil, d.errorf("observations of scan %s: %w", scanID, err)
		}
		if o.Attrs, err = decodeMap(attrs.String); err != nil {
			return nil, d.errorf("observations of scan %s: attrs: %w", scanID, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("observations of scan %s: %w", scanID, err)
	}
	if len(out) == 0 {
		exists, _, err := scanState(ctx, d.db, scanID)
		if err != nil {
			return nil, d.errorf("observations of scan %s: %w", scanID, err)
		}
		if !exists {
			return nil, d.errorf("observations of scan %s: %w", scanID, store.ErrUnknownScan)
		}
	}
	return out, nil
}

// lifecycle is the part of a stored finding FinishScan decides.
type lifecycle struct {
	status     observe.Status
	firstSeen  time.Time
	lastSeen   time.Time
	resolvedAt time.Time // zero unless resolved
}

// seenAt applies "a scan at time t saw the finding" to its stored state (nil
// when the finding is new). It returns the next state, the event to record,
// and whether t is the latest sighting, in which case this scan's title,
// evidence and so on replace the stored ones. Scans may be finished out of
// order (an agent uploading a buffered scan late), so nothing moves
// backwards: first_seen only gets earlier, last_seen only later, and a
// finding resolved by a newer scan stays resolved when an older one saw it.
func seenAt(prev *lifecycle, t time.Time) (next lifecycle, ev store.Event, latest bool) {
	if prev == nil {
		return lifecycle{status: observe.StatusOpen, firstSeen: t, lastSeen: t}, store.EventOpened, true
	}
	next = *prev
	latest = !t.Before(prev.lastSeen)
	if t.Before(next.firstSeen) {
		next.firstSeen = t
	}
	if latest {
		next.lastSeen = t
	}
	if prev.status == observe.StatusResolved && prev.resolvedAt.Before(t) {
		// Accepted and false-positive are a person's decisions and stay; only
		// a resolved finding comes back.
		next.status = observe.StatusOpen
		next.resolvedAt = time.Time{}
		return next, store.EventReopened, latest
	}
	return next, store.EventSeen, latest
}

const findingCols = `id, rule, category, severity, title, location, target, controls, evidence, remediation, status, first_seen, last_seen, vantage, decision`

type rowScanner interface{ Scan(dest ...any) error }

func scanFinding(r rowScanner) (observe.Finding, error) {
	var (
		f                        observe.Finding
		category, severity, stat string
		controls, evidence       string
		firstSeen, lastSeen      string
		decision                 sql.NullString
	)
	if err := r.Scan(&f.ID, &f.Rule, &category, &severity, &f.Title, &f.Location, &f.Target,
		&controls, &evidence, &f.Remediation, &stat, &firstSeen, &lastSeen, &f.Vantage, &decision); err != nil {
		return f, err
	}
	if decision.Valid && decision.String != "" {
		f.Decision = new(observe.Decision)
		if err := json.Unmarshal([]byte(decision.String), f.Decision); err != nil {
			return f, fmt.Errorf("finding %s decision: %w", f.ID, err)
		}
	}
	f.Category, f.Severity, f.Status = observe.Category(category), observe.Severity(severity), observe.Status(stat)
	var err error
	if f.Controls, err = decodeStrings(controls); err != nil {
		return f, fmt.Errorf("finding %s controls: %w", f.ID, err)
	}
	if f.Controls == nil {
		f.Controls = []string{}
	}
	if f.Evidence, err = decodeMap(evidence); err != nil {
		return f, fmt.Errorf("finding %s evidence: %w", f.ID, err)
	}
	if f.Evidence == nil {
		f.Evidence = map[string]any{}
	}
	if f.FirstSeen, err = parseTime(firstSeen); err != nil {
		return f, fmt.Errorf("finding %s: %w", f.ID, err)
	}
	if f.LastSeen, err = parseTime(lastSeen); err != nil {
		return f, fmt.Errorf("finding %s: %w", f.ID, err)
	}
	return f, nil
}

type eventRow struct {
	findingID string
	event     store.Event
}

// FinishScan records the end of a scan and reconciles its findings with the
// stored ones in one transaction; see store.Store. The time a finding is
// seen, resolved or reopened is scan.FinishedAt (now, if unset). The
// evidence log gets a scan entry and one finding-event entry per event.
func (d *DB) FinishScan(ctx context.Context, scan observe.Scan, findings []observe.Finding) (current, resolved []observe.Finding, err error) {
	return d.finishScan(ctx, scan, findings, nil)
}

// finishScan is FinishScan with pre, when not nil, run first in its
// transaction: an error from pre rolls everything back. A write with pre
// is an agent batch's, grouped as in addObservations.
func (d *DB) finishScan(ctx context.Context, scan observe.Scan, findings []observe.Finding, pre func(context.Context, *sql.Tx) error) (current, resolved []observe.Finding, err error) {
	if scan.ID == "" {
		return nil, nil, d.errorf("finish scan: empty scan id")
	}
	if scan.FinishedAt.IsZero() {
		scan.FinishedAt = d.now()
	}
	t := scan.FinishedAt.UTC()
	ts := formatTime(t)

	// Normalise the input: fill missing ids, drop repeats of an id (the first
	// wins), encode JSON outside the transaction.
	type prepared struct {
		f                  observe.Finding
		controls, evidence string
	}
	seen := make(map[string]bool, len(findings))
	batch := make([]prepared, 0, len(findings))
	for _, f := range findings {
		if f.ID == "" {
			f.ID = observe.FindingID(f.Rule, f.Location, f.Target)
		}
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		if f.Controls == nil {
			f.Controls = []string{}
		}
		if f.Evidence == nil {
			f.Evidence = map[string]any{}
		}
		p := prepared{f: f}
		if p.controls, err = encodeJSON(f.Controls, "[]"); err != nil {
			return nil, nil, d.errorf("finish scan %s: finding %s controls: %w", scan.ID, f.ID, err)
		}
		if p.evidence, err = encodeJSON(f.Evidence, "{}"); err != nil {
			return nil, nil, d.errorf("finish scan %s: finding %s evidence: %w", scan.ID, f.ID, err)
		}
		batch = append(batch, p)
	}
	errs, err := encodeJSON(scan.Errors, "[]")
	if err != nil {
		return nil, nil, d.errorf("finish scan %s: %w", scan.ID, err)
	}
	vantages, err := encodeJSON(scan.Vantages, "{}")
	if err != nil {
		return nil, nil, d.errorf("finish scan %s: %w", scan.ID, err)
	}
	sources, err := encodeJSON(scan.Sources, "[]")
	if err != nil {
		return nil, nil, d.errorf("finish scan %s: %w", scan.ID, err)
	}
	sourceErrs, err := encodeJSON(scan.SourceErrors, "[]")
	if err != nil {
		return nil, nil, d.errorf("finish scan %s: %w", scan.ID, err)
	}

	err = d.writeWith(ctx, pre != nil, func(ctx context.Context, tx *sql.Tx) error {
		if pre != nil {
			if err := pre(ctx, tx); err != nil {
				return err
			}
		}
		// 0. Decisions that ran out by the scan's end reopen first, so the
		// scan sees them again or resolves them like any open finding.
		if _, err := d.expireDecisions(ctx, tx, t); err != nil {
			return fmt.Errorf("expire decisions: %w", err)
		}

		// 1. The scan row.
		var (
			startedAt, storedLocs, version string
			finishedAt                     sql.NullString
		)
		err := tx.QueryRowContext(ctx, `SELECT started_at, finished_at, version, locations FROM scans WHERE id = $1`, scan.ID).
			Scan(&startedAt, &finishedAt, &version, &storedLocs)
		exists := true
		switch {
		case errors.Is(err, sql.ErrNoRows):
			exists = false
		case err != nil:
			return err
		case finishedAt.Valid:
			return store.ErrScanFinished
		}
		// What BeginScan recorded stands unless the caller says otherwise.
		if scan.Version == "" {
			scan.Version = version
		}
		if len(scan.Locations) == 0 && exists {
			if scan.Locations, err = decodeStrings(storedLocs); err != nil {
				return fmt.Errorf("stored locations: %w", err)
			}
		}
		if scan.StartedAt.IsZero() {
			scan.StartedAt = t
			if exists {
				if scan.StartedAt, err = parseTime(startedAt); err != nil {
					return err
				}
			}
		}
		locs, err := encodeJSON(scan.Locations, "[]")
		if err != nil {
			return err
		}
		if exists {
			_, err = tx.ExecContext(ctx, `UPDATE scans SET started_at = $2, finished_at = $3, version = $4, locations = $5,
				complete = $6, errors = $7, vantages = $8, sources = $9, source_errors = $10 WHERE id = $1`,
				scan.ID, formatTime(scan.StartedAt), ts, scan.Version, locs, scan.Complete, errs, vantages, sources, sourceErrs)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO scans (id, started_at, finished_at, version, locations, complete, errors, vantages,
				sources, source_errors) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				scan.ID, formatTime(scan.StartedAt), ts, scan.Version, locs, scan.Complete, errs, vantages, sources, sourceErrs)
		}
		if err != nil {
			return fmt.Errorf("record scan: %w", err)
		}

		// 2. What the store knows about the findings this scan saw.
		ids := make([]string, len(batch))
		for i, p := range batch {
			ids[i] = p.f.ID
		}
		stored, err := d.loadLifecycles(ctx, tx, ids)
		if err != nil {
			return fmt.Errorf("load findings: %w", err)
		}

		// 3. Upsert each finding with its next state: those new or seen
		// last by this scan in multi-row INSERT ... ON CONFLICT statements
		// (every column but first_scan_id, which an update keeps), those a
		// newer scan saw already one by one (their state only; rare: an
		// agent's buffered scan arriving late).
		events := make([]eventRow, 0, len(batch))
		recs := make([]evidence.Record, 1, 1+len(batch)) // recs[0]: the scan, once the counts are known
		current = make([]observe.Finding, 0, len(batch))
		upserts := make([]int, 0, len(batch)) // indexes into current
		resolvedAt := make([]any, 0, len(batch))
		flush := func() error {
			if len(upserts) == 0 {
				return nil
			}
			q := d.query()
			q.WriteString(`INSERT INTO findings (id, rule, category, severity, severity_rank, title,
			location, target, controls, evidence, remediation, status, first_seen, last_seen, resolved_at,
			first_scan_id, last_scan_id, vantage) VALUES `)
			for i, j := range upserts {
				f, p := &current[j], &batch[j]
				if i > 0 {
					q.WriteString(", ")
				}
				q.row(f.ID, f.Rule, string(f.Category), string(f.Severity), f.Severity.Rank(), f.Title,
					f.Location, f.Target, p.controls, p.evidence, f.Remediation, string(f.Status),
					formatTime(f.FirstSeen), formatTime(f.LastSeen), resolvedAt[i], scan.ID, scan.ID, f.Vantage)
			}
			q.WriteString(` ON CONFLICT (id) DO UPDATE SET rule = excluded.rule, category = excluded.category,
			severity = excluded.severity, severity_rank = excluded.severity_rank, title = excluded.title,
			location = excluded.location, target = excluded.target, controls = excluded.controls,
			evidence = excluded.evidence, remediation = excluded.remediation, status = excluded.status,
			first_seen = excluded.first_seen, last_seen = excluded.last_seen, resolved_at = excluded.resolved_at,
			last_scan_id = excluded.last_scan_id, vantage = excluded.vantage`)
			upserts, resolvedAt = upserts[:0], resolvedAt[:0]
			if _, err := tx.ExecContext(ctx, q.String(), q.args...); err != nil {
				return fmt.Errorf("upsert findings: %w", err)
			}
			return nil
		}
		for _, p := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			f := p.f
			prev, ok := stored[f.ID]
			var prevp *lifecycle
			if ok {
				prevp = &prev
			}
			next, ev, latest := seenAt(prevp, t)
			f.Status, f.FirstSeen, f.LastSeen = next.status, next.firstSeen, next.lastSeen
			if !ok || latest {
				upserts = append(upserts, len(current))
				resolvedAt = append(resolvedAt, nullTime(next.resolvedAt))
			} else if _, err := tx.ExecContext(ctx, `UPDATE findings SET status = $2, first_seen = $3, last_seen = $4,
				resolved_at = $5 WHERE id = $1`, f.ID, string(f.Status), formatTime(f.FirstSeen), formatTime(f.LastSeen),
				nullTime(next.resolvedAt)); err != nil {
				return fmt.Errorf("finding %s (%s at %s): %w", f.ID, f.Rule, f.Target, err)
			}
			events = append(events, eventRow{findingID: f.ID, event: ev})
			current = append(current, f)
			rec, err := findingEvent(&f, ev, scan.ID, ts)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
			if len(upserts) == batchRows/2 { // 18 parameters a row
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}

		// 4. A complete scan resolves the open findings of its locations it
		// did not see. Those it saw now have last_seen >= t; so do those a
		// newer scan saw, which this older one must not overrule. A finding
		// seen from a vantage point is resolved only by a scan from there:
		// another sensor's scan could not have seen it. Findings about
		// accounts and packages (no location, their source as vantage) are
		// resolved by any scan that read their source in full.
		byLocation := scan.Complete && len(scan.Locations) > 0
		if byLocation || len(scan.Sources) > 0 {
			q := d.query()
			q.WriteString(`SELECT ` + findingCols + ` FROM findings WHERE status = ` + q.arg(string(observe.StatusOpen)) +
				` AND last_seen < ` + q.arg(ts) + ` AND (`)
			var scopes int
			if byLocation {
				for _, loc := range scan.Locations {
					if scopes++; scopes > 1 {
						q.WriteString(` OR `)
					}
					q.WriteString(`(location = ` + q.arg(loc) + ` AND (vantage = ''`)
					// A source (a telegraf input) can report about a
					// location too: its findings carry it as vantage.
					if vs := append(slices.Clone(scan.Vantages[loc]), scan.Sources...); len(vs) > 0 {
						q.WriteString(` OR vantage IN (` + listArgs(q, vs) + `)`)
					}
					q.WriteString(`))`)
				}
			}
			if len(scan.Sources) > 0 {
				if scopes++; scopes > 1 {
					q.WriteString(` OR `)
				}
				q.WriteString(`(location = '' AND vantage IN (` + listArgs(q, scan.Sources) + `))`)
			}
			q.WriteString(`)`)
			if len(scan.Categories) > 0 {
				cats := make([]string, len(scan.Categories))
				for i, c := range scan.Categories {
					cats[i] = string(c)
				}
				q.WriteString(` AND category IN (` + listArgs(q, cats) + `)`)
			}
			q.WriteString(` ORDER BY severity_rank DESC, location, target, rule, id`)
			rows, err := tx.QueryContext(ctx, q.String(), q.args...)
			if err != nil {
				return fmt.Errorf("find findings to resolve: %w", err)
			}
			for rows.Next() {
				f, err := scanFinding(rows)
				if err != nil {
					rows.Close()
					return err
				}
				f.Status = observe.StatusResolved
				resolved = append(resolved, f)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("find findings to resolve: %w", err)
			}
			for start := 0; start < len(resolved); start += batchRows {
				end := min(start+batchRows, len(resolved))
				q := d.query()
				q.WriteString(`UPDATE findings SET status = ` + q.arg(string(observe.StatusResolved)) +
					`, resolved_at = ` + q.arg(ts) + ` WHERE id IN (`)
				for i, f := range resolved[start:end] {
					if i > 0 {
						q.WriteString(", ")
					}
					q.WriteString(q.arg(f.ID))
				}
				q.WriteString(`)`)
				if _, err := tx.ExecContext(ctx, q.String(), q.args...); err != nil {
					return fmt.Errorf("resolve findings: %w", err)
				}
			}
			for _, f := range resolved {
				events = append(events, eventRow{findingID: f.ID, event: store.EventResolved})
				rec, err := findingEvent(&f, store.EventResolved, scan.ID, ts)
				if err != nil {
					return err
				}
				recs = append(recs, rec)
			}
		}

		// 5. History.
		if err := d.insertEvents(ctx, tx, scan.ID, ts, events); err != nil {
			return fmt.Errorf("record finding history: %w", err)
		}
		if recs[0], err = scanRecord(scan, len(current), len(resolved)); err != nil {
			return err
		}
		return d.appendEvidence(ctx, tx, recs)
	})
	if err != nil {
		return nil, nil, d.errorf("finish scan %s: %w", scan.ID, err)
	}
	return current, resolved, nil
}

func (d *DB) loadLifecycles(ctx context.Context, tx *sql.Tx, ids []string) (map[string]lifecycle, error) {
	out := make(map[string]lifecycle, len(ids))
	for start := 0; start < len(ids); start += batchRows {
		end := min(start+batchRows, len(ids))
		q := d.query()
		q.WriteString(`SELECT id, status, first_seen, last_seen, resolved_at FROM findings WHERE id IN (` +
			listArgs(q, ids[start:end]) + `)`)
		rows, err := tx.QueryContext(ctx, q.String(), q.args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				id, status, first, last string
				resolvedAt              sql.NullString
				l                       lifecycle
			)
			if err := rows.Scan(&id, &status, &first, &last, &resolvedAt); err != nil {
				rows.Close()
				return nil, err
			}
			l.status = observe.Status(status)
			if l.firstSeen, err = parseTime(first); err == nil {
				if l.lastSeen, err = parseTime(last); err == nil && resolvedAt.Valid {
					l.resolvedAt, err = parseTime(resolvedAt.String)
				}
			}
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("finding %s: %w", id, err)
			}
			out[id] = l
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *DB) insertEvents(ctx context.Context, tx *sql.Tx, scanID, at string, events []eventRow) error {
	for start := 0; start < len(events); start += batchRows {
		end := min(start+batchRows, len(events))
		q := d.query()
		q.WriteString(`INSERT INTO finding_events (finding_id, scan_id, event_at, event) VALUES `)
		for i, e := range events[start:end] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.row(e.findingID, scanID, at, string(e.event))
		}
		if _, err := tx.ExecContext(ctx, q.String(), q.args...); err != nil {
			return err
		}
	}
	return nil
}

// Findings returns the stored findings f selects, highest severity first,
// then by location, target and rule.
func (d *DB) Findings(ctx context.Context, f store.FindingFilter) ([]observe.Finding, error) {
	q := d.query()
	q.WriteString(`SELECT ` + findingCols + ` FROM findings WHERE 1 = 1`)
	if len(f.Locations) > 0 {
		q.WriteString(` AND location IN (` + listArgs(q, f.Locations) + `)`)
	}
	if len(f.Statuses) > 0 {
		q.WriteString(` AND status IN (` + listArgs(q, f.Statuses) + `)`)
	}
	if len(f.Categories) > 0 {
		q.WriteString(` AND category IN (` + listArgs(q, f.Categories) + `)`)
	}
	if len(f.Rules) > 0 {
		q.WriteString(` AND rule IN (` + listArgs(q, f.Rules) + `)`)
	}
	if len(f.IDs) > 0 {
		q.WriteString(` AND id IN (` + listArgs(q, f.IDs) + `)`)
	}
	if f.MinSeverity != "" {
		if !f.MinSeverity.Valid() {
			return nil, d.errorf("findings: unknown severity %q (want critical, high, medium, low or info)", f.MinSeverity)
		}
		q.WriteString(` AND severity_rank >= ` + q.arg(f.MinSeverity.Rank()))
	}
	q.WriteString(` ORDER BY severity_rank DESC, location, target, rule, id`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ` + q.arg(f.Limit))
	}
	rows, err := d.db.QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, d.errorf("findings: %w", err)
	}
	defer rows.Close()
	var out []observe.Finding
	for rows.Next() {
		fd, err := scanFinding(rows)
		if err != nil {
			return nil, d.errorf("findings: %w", err)
		}
		out = append(out, fd)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("findings: %w", err)
	}
	return out, nil
}

// Scans returns up to limit scans, newest first; limit <= 0 returns all.
func (d *DB) Scans(ctx context.Context, limit int) ([]observe.Scan, error) {
	q := d.query()
	q.WriteString(`SELECT id, started_at, finished_at, version, locations, complete, errors, vantages, sources, source_errors
		FROM scans ORDER BY started_at DESC, id DESC`)
	if limit > 0 {
		q.WriteString(` LIMIT ` + q.arg(limit))
	}
	rows, err := d.db.QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, d.errorf("scans: %w", err)
	}
	defer rows.Close()
	var out []observe.Scan
	for rows.Next() {
		var (
			s                             observe.Scan
			started, locs, es, vs, ss, se string
			finished                      sql.NullString
		)
		if err := rows.Scan(&s.ID, &started, &finished, &s.Version, &locs, &s.Complete, &es, &vs, &ss, &se); err != nil {
			return nil, d.errorf("scans: %w", err)
		}
		if s.StartedAt, err = parseTime(started); err != nil {
			return nil, d.errorf("scan %s: %w", s.ID, err)
		}
		if finished.Valid {
			if s.FinishedAt, err = parseTime(finished.String); err != nil {
				return nil, d.errorf("scan %s: %w", s.ID, err)
			}
		}
		if s.Locations, err = decodeStrings(locs); err != nil {
			return nil, d.errorf("scan %s locations: %w", s.ID, err)
		}
		if s.Locations == nil {
			s.Locations = []string{}
		}
		if s.Errors, err = decodeStrings(es); err != nil {
			return nil, d.errorf("scan %s errors: %w", s.ID, err)
		}
		if vs != "" && vs != "{}" {
			if err := decodeVantages(vs, &s.Vantages); err != nil {
				return nil, d.errorf("scan %s vantages: %w", s.ID, err)
			}
		}
		if len(s.Errors) == 0 {
			s.Errors = nil
		}
		if s.Sources, err = decodeStrings(ss); err != nil {
			return nil, d.errorf("scan %s sources: %w", s.ID, err)
		}
		if s.SourceErrors, err = decodeStrings(se); err != nil {
			return nil, d.errorf("scan %s source errors: %w", s.ID, err)
		}
		if len(s.Sources) == 0 {
			s.Sources = nil
		}
		if len(s.SourceErrors) == 0 {
			s.SourceErrors = nil
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("scans: %w", err)
	}
	return out, nil
}

// FindingHistory returns a finding's events, oldest first.
func (d *DB) FindingHistory(ctx context.Context, findingID string) ([]store.FindingEvent, error) {
	out, err := d.Events(ctx, store.EventFilter{FindingIDs: []string{findingID}})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		var n int
		if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM findings WHERE id = $1`, findingID).Scan(&n); err != nil {
			return nil, d.errorf("history of finding %s: %w", findingID, err)
		}
		if n == 0 {
			return nil, d.errorf("history of finding %s: %w", findingID, store.ErrNotFound)
		}
	}
	return out, nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// query builds a statement and its arguments together, writing each
// placeholder as its argument is added, so arguments must be added in the
// order their placeholders appear in the text.
type query struct {
	strings.Builder
	args     []any
	question bool
}

func (d *DB) query() *query { return &query{question: d.placeholders == Question} }

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	if q.question {
		return "?"
	}
	return "$" + strconv.Itoa(len(q.args))
}

// row writes one parenthesised VALUES row.
func (q *query) row(vals ...any) {
	q.WriteByte('(')
	for i, v := range vals {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(q.arg(v))
	}
	q.WriteByte(')')
}

func listArgs[T ~string](q *query, vals []T) string {
	var b strings.Builder
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q.arg(string(v)))
	}
	return b.String()
}
