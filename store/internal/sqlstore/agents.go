package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// errDuplicate rolls back the transaction of a batch that was already
// applied; the caller reports it as a duplicate, not an error.
var errDuplicate = errors.New("batch already applied")

// Batch kinds as agent_batches records them (protocol.Batch.Kind).
const (
	batchBegin        = "begin"
	batchObservations = "observations"
	batchFinish       = "finish"
)

// CreateEnrollToken stores a one-time enrollment token (its hash).
func (d *DB) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	if t.Hash == "" || t.Location == "" || t.ExpiresAt.IsZero() {
		return d.errorf("create enrollment token: hash, location and expiry are required")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = d.now()
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO agent_tokens (hash, location, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			t.Hash, t.Location, t.CreatedBy, formatTime(t.CreatedAt), formatTime(t.ExpiresAt))
		return err
	})
	if err != nil {
		return d.errorf("create enrollment token for %s: %w", t.Location, err)
	}
	return nil
}

// EnrollTokens lists the enrollment tokens, newest first.
func (d *DB) EnrollTokens(ctx context.Context) ([]store.EnrollToken, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT hash, location, created_by, created_at, expires_at, used_at, agent_id
		FROM agent_tokens ORDER BY created_at DESC, hash`)
	if err != nil {
		return nil, d.errorf("enrollment tokens: %w", err)
	}
	defer rows.Close()
	var out []store.EnrollToken
	for rows.Next() {
		var (
			t                  store.EnrollToken
			created, expires   string
			used, agent        sql.NullString
			errCreated, errExp error
		)
		if err := rows.Scan(&t.Hash, &t.Location, &t.CreatedBy, &created, &expires, &used, &agent); err != nil {
			return nil, d.errorf("enrollment tokens: %w", err)
		}
		t.CreatedAt, errCreated = parseTime(created)
		t.ExpiresAt, errExp = parseTime(expires)
		if err := errors.Join(errCreated, errExp, parseNullTime(used, &t.UsedAt)); err != nil {
			return nil, d.errorf("enrollment tokens: %w", err)
		}
		t.AgentID = agent.String
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("enrollment tokens: %w", err)
	}
	return out, nil
}

// EnrollAgent burns the token and records the agent in one transaction;
// see store.AgentStore.
func (d *DB) EnrollAgent(ctx context.Context, tokenHash string, a store.Agent) (store.Agent, error) {
	now := d.now()
	id, err := newAgentID()
	if err != nil {
		return store.Agent{}, d.errorf("enroll agent: %w", err)
	}
	err = d.write(ctx, func(tx *sql.Tx) error {
		var (
			loc, by, expires string
			used             sql.NullString
		)
		err := tx.QueryRowContext(ctx, `SELECT location, created_by, expires_at, used_at FROM agent_tokens WHERE hash = $1`, tokenHash).
			Scan(&loc, &by, &expires, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrTokenUnknown
		case err != nil:
			return err
		case used.Valid:
			return store.ErrTokenUsed
		}
		exp, err := parseTime(expires)
		if err != nil {
			return err
		}
		if !now.Before(exp) {
			return store.ErrTokenExpired
		}
		res, err := tx.ExecContext(ctx, `UPDATE agent_tokens SET used_at = $2, agent_id = $3 WHERE hash = $1 AND used_at IS NULL`,
			tokenHash, formatTime(now), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return store.ErrTokenUsed
		}
		a.ID, a.Location, a.EnrolledBy, a.EnrolledAt, a.LastSeen = id, loc, by, now, now
		a.RevokedAt, a.RevokedBy = time.Time{}, ""
		_, err = tx.ExecContext(ctx, `INSERT INTO agents (id, location, hostname, public_key, enrolled_by, enrolled_at, last_seen, version)
			VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`,
			a.ID, a.Location, a.Hostname, hex.EncodeToString(a.PublicKey), a.EnrolledBy, formatTime(now), a.Version)
		return err
	})
	if err != nil {
		return store.Agent{}, d.errorf("enroll agent: %w", err)
	}
	return a, nil
}

func newAgentID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "ag-" + hex.EncodeToString(b[:]), nil
}

const agentCols = `id, location, hostname, public_key, enrolled_by, enrolled_at, revoked_at, revoked_by, last_seen,
	version, queue_depth, queue_bytes, last_scan_id, last_scan_at, assignment_version, scan_requested_at, scan_requested_by`

func scanAgent(r rowScanner) (store.Agent, error) {
	var (
		a                           store.Agent
		key, enrolled               string
		revoked, lastSeen, lastScan sql.NullString
		requested                   sql.NullString
	)
	if err := r.Scan(&a.ID, &a.Location, &a.Hostname, &key, &a.EnrolledBy, &enrolled, &revoked, &a.RevokedBy, &lastSeen,
		&a.Version, &a.QueueDepth, &a.QueueBytes, &a.LastScanID, &lastScan, &a.AssignmentVersion, &requested, &a.ScanRequestedBy); err != nil {
		return a, err
	}
	var err error
	if a.PublicKey, err = hex.DecodeString(key); err != nil {
		return a, fmt.Errorf("agent %s public key: %w", a.ID, err)
	}
	a.EnrolledAt, err = parseTime(enrolled)
	if err = errors.Join(err, parseNullTime(revoked, &a.RevokedAt), parseNullTime(lastSeen, &a.LastSeen),
		parseNullTime(lastScan, &a.LastScanAt), parseNullTime(requested, &a.ScanRequestedAt)); err != nil {
		return a, fmt.Errorf("agent %s: %w", a.ID, err)
	}
	return a, nil
}

// Agent returns one agent; an unknown id is store.ErrNotFound.
func (d *DB) Agent(ctx context.Context, id string) (store.Agent, error) {
	a, err := scanAgent(d.db.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, d.errorf("agent %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return a, d.errorf("agent %s: %w", id, err)
	}
	return a, nil
}

// Agents lists every agent by location, then by enrollment.
func (d *DB) Agents(ctx context.Context) ([]store.Agent, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+agentCols+` FROM agents ORDER BY location, enrolled_at, id`)
	if err != nil {
		return nil, d.errorf("agents: %w", err)
	}
	defer rows.Close()
	var out []store.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, d.errorf("agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("agents: %w", err)
	}
	return out, nil
}

// RevokeAgent revokes the agent; revoking it again changes nothing.
func (d *DB) RevokeAgent(ctx context.Context, id, by string) (store.Agent, error) {
	err := d.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL`,
			id, formatTime(d.now()), by)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM agents WHERE id = $1`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return store.Agent{}, d.errorf("revoke agent %s: %w", id, err)
	}
	return d.Agent(ctx, id)
}

// RecordHeartbeat notes that the agent was heard from now, with h.
func (d *DB) RecordHeartbeat(ctx context.Context, id string, h store.AgentHealth) error {
	err := d.write(ctx, func(tx *sql.Tx) error {
		if err := d.agentWritable(ctx, tx, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE agents SET last_seen = $2, version = $3, queue_depth = $4, queue_bytes = $5,
			last_scan_id = $6, last_scan_at = $7, assignment_version = $8, hostname = CASE WHEN $9 = '' THEN hostname ELSE $9 END WHERE id = $1`,
			id, formatTime(d.now()), h.Version, h.QueueDepth, h.QueueBytes, h.LastScanID, nullTime(h.LastScanAt), h.AssignmentVersion, h.Host)
		return err
	})
	if err != nil {
		return d.errorf("heartbeat of agent %s: %w", id, err)
	}
	return nil
}

// RequestScan asks the location's enrolled agents for a scan now.
func (d *DB) RequestScan(ctx context.Context, location, by string) (int, error) {
	var n int64
	err := d.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET scan_requested_at = $2, scan_requested_by = $3 WHERE location = $1 AND revoked_at IS NULL`,
			location, formatTime(d.now()), by)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, d.errorf("request a scan of %s: %w", location, err)
	}
	return int(n), nil
}

// TakeScanRequest takes a requested scan of the agent's location: the
// request is cleared for every agent there, and only the caller whose
// update cleared it gets it (under PostgreSQL's read committed, a second
// taker's update finds nothing left to clear).
func (d *DB) TakeScanRequest(ctx context.Context, id string) (requested bool, by string, err error) {
	// Every heartbeat asks and almost none finds a request: a read, which
	// takes no writer's turn, answers those.
	var pending, revoked sql.NullString
	if err := d.db.QueryRowContext(ctx, `SELECT scan_requested_at, revoked_at FROM agents WHERE id = $1`, id).Scan(&pending, &revoked); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, "", d.errorf("scan request of agent %s: %w", id, err)
	} else if err == nil && !pending.Valid && !revoked.Valid {
		return false, "", nil
	}
	err = d.write(ctx, func(tx *sql.Tx) error {
		if err := d.agentWritable(ctx, tx, id); err != nil {
			return err
		}
		var at sql.NullString
		var loc string
		if err := tx.QueryRowContext(ctx, `SELECT location, scan_requested_at, scan_requested_by FROM agents WHERE id = $1`, id).
			Scan(&loc, &at, &by); err != nil {
			return err
		}
		if !at.Valid {
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE agents SET scan_requested_at = NULL, scan_requested_by = '' WHERE location = $1 AND scan_requested_at IS NOT NULL`, loc)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		requested = n > 0
		return err
	})
	if err != nil {
		return false, "", d.errorf("scan request of agent %s: %w", id, err)
	}
	if !requested {
		by = ""
	}
	return requested, by, nil
}

// agentWritable checks, inside a write, that the agent exists and is not
// revoked: a revocation that lands between the server's check of the
// request and its write still wins.
func (d *DB) agentWritable(ctx context.Context, tx *sql.Tx, id string) error {
	var revoked sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM agents WHERE id = $1`, id).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("agent %s: %w", id, store.ErrNotFound)
	case err != nil:
		return err
	case revoked.Valid:
		return store.ErrAgentRevoked
	}
	return nil
}

// AgentBatchApplied reports whether the agent's batch was applied.
func (d *DB) AgentBatchApplied(ctx context.Context, agentID, batchID string) (bool, error) {
	var one int
	err := d.db.QueryRowContext(ctx, `SELECT 1 FROM agent_batches WHERE agent_id = $1 AND batch_id = $2`, agentID, batchID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, d.errorf("batch %s of agent %s: %w", batchID, agentID, err)
	}
	return true, nil
}

// recordBatch runs first in a batch's transaction: it refuses a revoked
// agent and a scan the agent does not own, returns errDuplicate for a
// batch already applied, and records this one and the agent's last_seen.
// begin is true for a scan's begin batch, which may create the scan. It
// writes first and checks after, in three statements rather than five
// (each a round trip to PostgreSQL under the write lock): whatever it
// refuses, the caller's transaction rolls back.
func (d *DB) recordBatch(ctx context.Context, tx *sql.Tx, agentID, batchID, scanID, kind string) error {
	now := formatTime(d.now())
	var revoked sql.NullString
	err := tx.QueryRowContext(ctx, `UPDATE agents SET last_seen = $2 WHERE id = $1 RETURNING revoked_at`, agentID, now).Scan(&revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("agent %s: %w", agentID, store.ErrNotFound)
	case err != nil:
		return err
	case revoked.Valid:
		return store.ErrAgentRevoked
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO agent_batches (agent_id, batch_id, scan_id, kind, received_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (agent_id, batch_id) DO NOTHING`, agentID, batchID, scanID, kind, now)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errDuplicate
	}
	if kind != batchBegin {
		return d.ownsScan(ctx, tx, agentID, scanID)
	}
	return nil
}

// ownsScan checks that agentID began scanID.
func (d *DB) ownsScan(ctx context.Context, tx *sql.Tx, agentID, scanID string) error {
	var owner string
	err := tx.QueryRowContext(ctx, `SELECT agent_id FROM agent_batches WHERE scan_id = $1 AND kind = $2 ORDER BY received_at LIMIT 1`,
		scanID, batchBegin).Scan(&owner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		exists, _, err := scanState(ctx, tx, scanID)
		if err != nil {
			return err
		}
		if exists {
			return store.ErrForeignScan
		}
		return store.ErrUnknownScan
	case err != nil:
		return err
	case owner != agentID:
		return store.ErrForeignScan
	}
	return nil
}

// BeginAgentScan begins the agent's scan, or records the batch only when
// the scan exists already and is the agent's; see store.AgentStore.
func (d *DB) BeginAgentScan(ctx context.Context, agentID, batchID string, scan observe.Scan) (bool, error) {
	if scan.ID == "" {
		return false, d.errorf("begin scan: empty scan id")
	}
	if scan.StartedAt.IsZero() {
		scan.StartedAt = d.now()
	}
	locs, err := encodeJSON(scan.Locations, "[]")
	if err != nil {
		return false, d.errorf("begin scan %s: %w", scan.ID, err)
	}
	err = d.writeGrouped(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := d.recordBatch(ctx, tx, agentID, batchID, scan.ID, batchBegin); err != nil {
			return err
		}
		exists, _, err := scanState(ctx, tx, scan.ID)
		if err != nil {
			return err
		}
		if exists {
			// A retried begin under a new batch id, or someone else's scan.
			return d.ownsScanOtherThan(ctx, tx, agentID, batchID, scan.ID)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO scans (id, started_at, version, locations) VALUES ($1, $2, $3, $4)`,
			scan.ID, formatTime(scan.StartedAt), scan.Version, locs)
		return err
	})
	if errors.Is(err, errDuplicate) {
		return true, nil
	}
	if err != nil {
		return false, d.errorf("agent %s: begin scan %s: %w", agentID, scan.ID, err)
	}
	return false, nil
}

// ownsScanOtherThan checks that an existing scan was begun by agentID in
// a batch before this one.
func (d *DB) ownsScanOtherThan(ctx context.Context, tx *sql.Tx, agentID, batchID, scanID string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM agent_batches WHERE scan_id = $1 AND kind = $2 AND NOT (agent_id = $3 AND batch_id = $4)`,
		scanID, batchBegin, agentID, batchID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return store.ErrForeignScan
	}
	return d.ownsScan(ctx, tx, agentID, scanID)
}

// AddAgentObservations adds observations to the agent's scan and records
// the batch, in one transaction.
func (d *DB) AddAgentObservations(ctx context.Context, agentID, batchID, scanID string, obs []observe.Observation) (bool, error) {
	pre := func(ctx context.Context, tx *sql.Tx) error {
		return d.recordBatch(ctx, tx, agentID, batchID, scanID, batchObservations)
	}
	var err error
	if len(obs) == 0 {
		err = d.writeGrouped(ctx, pre)
	} else {
		err = d.addObservations(ctx, scanID, obs, pre)
	}
	if errors.Is(err, errDuplicate) {
		return true, nil
	}
	if err != nil {
		return false, d.errorf("agent %s: %w", agentID, err)
	}
	return false, nil
}

// FinishAgentScan finishes the agent's scan and records the batch, in one
// transaction; a scan already finished is a duplicate.
func (d *DB) FinishAgentScan(ctx context.Context, agentID, batchID string, scan observe.Scan, findings []observe.Finding) (current, resolved []observe.Finding, duplicate bool, err error) {
	// A scan already finished (finishScan's ErrScanFinished) is a
	// duplicate too.
	pre := func(ctx context.Context, tx *sql.Tx) error {
		return d.recordBatch(ctx, tx, agentID, batchID, scan.ID, batchFinish)
	}
	current, resolved, err = d.finishScan(ctx, scan, findings, pre)
	if errors.Is(err, errDuplicate) || errors.Is(err, store.ErrScanFinished) {
		return nil, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, d.errorf("agent %s: %w", agentID, err)
	}
	return current, resolved, false, nil
}

func parseNullTime(s sql.NullString, into *time.Time) error {
	if !s.Valid || s.String == "" {
		return nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return err
	}
	*into = t
	return nil
}

// AbandonScans finishes, as incomplete, the scans nobody will finish:
// those begun before `before` by vigil serve itself (the replica running
// them was killed, or the job's time ran out with it) and, whatever their
// age, those begun by a site agent since revoked. A scan an agent that is
// still enrolled began is left alone however old: the agent may be
// offline with the rest of it queued. At most limit scans per call,
// oldest first. An incomplete scan resolves nothing, so what the scan
// stored stays as evidence and no finding changes.
func (d *DB) AbandonScans(ctx context.Context, before, now time.Time, limit int) ([]store.AbandonedScan, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := d.db.QueryContext(ctx, `SELECT s.id, s.started_at, COALESCE((SELECT a.id FROM agent_batches b JOIN agents a ON a.id = b.agent_id
			WHERE b.scan_id = s.id AND b.kind = $1 AND a.revoked_at IS NOT NULL LIMIT 1), '')
		FROM scans s
		WHERE s.finished_at IS NULL AND (
			(s.started_at < $2 AND NOT EXISTS (SELECT 1 FROM agent_batches b WHERE b.scan_id = s.id AND b.kind = $1))
			OR EXISTS (SELECT 1 FROM agent_batches b JOIN agents a ON a.id = b.agent_id
				WHERE b.scan_id = s.id AND b.kind = $1 AND a.revoked_at IS NOT NULL))
		ORDER BY s.started_at, s.id LIMIT $3`, batchBegin, formatTime(before), limit)
	if err != nil {
		return nil, d.errorf("abandoned scans: %w", err)
	}
	var found []store.AbandonedScan
	for rows.Next() {
		var a store.AbandonedScan
		var started string
		if err := rows.Scan(&a.ID, &started, &a.Agent); err != nil {
			rows.Close()
			return nil, d.errorf("abandoned scans: %w", err)
		}
		if a.StartedAt, err = parseTime(started); err != nil {
			rows.Close()
			return nil, d.errorf("abandoned scan %s: %w", a.ID, err)
		}
		found = append(found, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, d.errorf("abandoned scans: %w", err)
	}
	var out []store.AbandonedScan
	for _, a := range found {
		a.Reason = fmt.Sprintf("abandoned: begun %s and never finished (the vigil serve running it stopped); finished as incomplete by the server",
			a.StartedAt.UTC().Format(time.RFC3339))
		if a.Agent != "" {
			a.Reason = fmt.Sprintf("abandoned: agent %s, which began it, was revoked before finishing it; finished as incomplete by the server", a.Agent)
		}
		_, _, err := d.FinishScan(ctx, observe.Scan{ID: a.ID, FinishedAt: now, Errors: []string{a.Reason}}, nil)
		if errors.Is(err, store.ErrScanFinished) {
			continue // finished meanwhile, by whoever ran it
		}
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}
