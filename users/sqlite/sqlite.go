// Package sqlite stores package users' accounts, sessions, login counters
// and audit trail in SQLite tables prefixed auth_. It works on an *sql.DB
// the caller opened with modernc.org/sqlite, so the tables can share vigil's
// database file.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/users"
)

// timeLayout is RFC 3339 with a fixed nine fractional digits, so that
// stored timestamps sort as strings in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q: %w", s, err)
	}
	return t.UTC(), nil
}

// Store implements users.Store.
type Store struct {
	db    *sql.DB
	audit auditQueue
}

var _ users.Store = (*Store)(nil)

// Open migrates the auth_ tables of db to LatestVersion and returns a
// Store on it. db is the caller's to close.
func Open(ctx context.Context, db *sql.DB) (*Store, error) {
	s := &Store{db: db}
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Migrate applies the auth migrations db lacks, in one transaction.
func (s *Store) Migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
			return fmt.Errorf("auth schema: create auth_schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM auth_schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("auth schema: read version: %w", err)
		}
		if current > LatestVersion {
			return fmt.Errorf("auth schema: database is at version %d, newer than this vigil's %d: upgrade vigil", current, LatestVersion)
		}
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			for i, stmt := range m.stmts {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("auth schema: migrate to v%d (%s), statement %d: %w", m.version, m.name, i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO auth_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, formatTime(time.Now())); err != nil {
				return fmt.Errorf("auth schema: record v%d: %w", m.version, err)
			}
		}
		return nil
	})
}

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUnique reports a UNIQUE or PRIMARY KEY violation; modernc.org/sqlite
// reports it in the message.
func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

const userCols = `tenant, id, username, email, role, locations, password_hash, password_changed_at,
	totp_secret, totp_pending, totp_last_step, disabled, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanUser(r scanner) (users.User, error) {
	var u users.User
	var tenant, role, locs, pwAt, secret, pending, created, updated string
	if err := r.Scan(&tenant, &u.ID, &u.Username, &u.Email, &role, &locs, &u.PasswordHash, &pwAt,
		&secret, &pending, &u.TOTPLastStep, &u.Disabled, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return users.User{}, users.ErrNotFound
		}
		return users.User{}, err
	}
	u.Tenant, u.Role = users.TenantID(tenant), users.Role(role)
	u.TOTPSecret, u.TOTPPending = users.NewTOTPSecret(secret), users.NewTOTPSecret(pending)
	if err := json.Unmarshal([]byte(locs), &u.Locations); err != nil {
		return users.User{}, fmt.Errorf("user %s locations: %w", u.ID, err)
	}
	var err error
	if u.PasswordChangedAt, err = parseTime(pwAt); err != nil {
		return users.User{}, err
	}
	if u.CreatedAt, err = parseTime(created); err != nil {
		return users.User{}, err
	}
	if u.UpdatedAt, err = parseTime(updated); err != nil {
		return users.User{}, err
	}
	return u, nil
}

func locationsJSON(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // []string always marshals
	return string(b)
}

func insertUser(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, u users.User) error {
	if err := u.Tenant.Validate(); err != nil {
		return err
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO auth_users (`+userCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		string(u.Tenant), u.ID, u.Username, u.Email, string(u.Role), locationsJSON(u.Locations), u.PasswordHash,
		formatTime(u.PasswordChangedAt), u.TOTPSecret.Reveal(), u.TOTPPending.Reveal(), u.TOTPLastStep, u.Disabled,
		formatTime(u.CreatedAt), formatTime(u.UpdatedAt))
	if isUnique(err) {
		return users.ErrDuplicate
	}
	return err
}

// CreateUser implements users.Store.
func (s *Store) CreateUser(ctx context.Context, u users.User) error { return insertUser(ctx, s.db, u) }

// UserByID implements users.Store.
func (s *Store) UserByID(ctx context.Context, tenant users.TenantID, id string) (users.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM auth_users WHERE tenant = $1 AND id = $2`, string(tenant), id))
}

// UserByName implements users.Store.
func (s *Store) UserByName(ctx context.Context, tenant users.TenantID, username string) (users.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM auth_users WHERE tenant = $1 AND username = $2`, string(tenant), username))
}

// Users implements users.Store.
func (s *Store) Users(ctx context.Context, tenant users.TenantID) ([]users.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM auth_users WHERE tenant = $1 ORDER BY username`, string(tenant))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []users.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser implements users.Store. TOTPLastStep only moves forward here
// too, so a stale copy of the user cannot reopen a used code.
func (s *Store) UpdateUser(ctx context.Context, u users.User) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_users SET email = $3, role = $4, locations = $5, password_hash = $6,
		password_changed_at = $7, totp_secret = $8, totp_pending = $9, totp_last_step = MAX(totp_last_step, $10),
		disabled = $11, updated_at = $12
		WHERE tenant = $1 AND id = $2`,
		string(u.Tenant), u.ID, u.Email, string(u.Role), locationsJSON(u.Locations), u.PasswordHash,
		formatTime(u.PasswordChangedAt), u.TOTPSecret.Reveal(), u.TOTPPending.Reveal(), u.TOTPLastStep,
		u.Disabled, formatTime(u.UpdatedAt))
	return oneRow(res, err)
}

func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return users.ErrNotFound
	}
	return nil
}

// AdvanceTOTPStep implements users.Store.
func (s *Store) AdvanceTOTPStep(ctx context.Context, tenant users.TenantID, userID string, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_users SET totp_last_step = $3
		WHERE tenant = $1 AND id = $2 AND totp_last_step < $3`, string(tenant), userID, step)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AnyUsers implements users.Store.
func (s *Store) AnyUsers(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM auth_users LIMIT 1)`).Scan(&n)
	return n > 0, err
}

// SetRecoveryCodes implements users.Store.
func (s *Store) SetRecoveryCodes(ctx context.Context, tenant users.TenantID, userID string, hashes []string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_recovery_codes WHERE tenant = $1 AND user_id = $2`, string(tenant), userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO auth_recovery_codes (tenant, user_id, hash) VALUES ($1, $2, $3)`, string(tenant), userID, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// UseRecoveryCode implements users.Store.
func (s *Store) UseRecoveryCode(ctx context.Context, tenant users.TenantID, userID, hash string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM auth_recovery_codes WHERE tenant = $1 AND user_id = $2 AND hash = $3`, string(tenant), userID, hash)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RecoveryCodesLeft implements users.Store.
func (s *Store) RecoveryCodesLeft(ctx context.Context, tenant users.TenantID, userID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_recovery_codes WHERE tenant = $1 AND user_id = $2`, string(tenant), userID).Scan(&n)
	return n, err
}

// CreateSession implements users.Store.
func (s *Store) CreateSession(ctx context.Context, x users.Session) error {
	if err := x.Tenant.Validate(); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO auth_sessions (tenant, id, user_id, stage, created_at, last_seen_at, expires_at, ip, user_agent)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		string(x.Tenant), x.ID, x.UserID, string(x.Stage), formatTime(x.CreatedAt), formatTime(x.LastSeenAt),
		formatTime(x.ExpiresAt), x.IP, x.UserAgent)
	if isUnique(err) {
		return users.ErrDuplicate
	}
	return err
}

// Session implements users.Store.
func (s *Store) Session(ctx context.Context, tenant users.TenantID, id string) (users.Session, error) {
	var x users.Session
	var t, stage, created, seen, expires string
	err := s.db.QueryRowContext(ctx, `SELECT tenant, id, user_id, stage, created_at, last_seen_at, expires_at, ip, user_agent
		FROM auth_sessions WHERE tenant = $1 AND id = $2`, string(tenant), id).
		Scan(&t, &x.ID, &x.UserID, &stage, &created, &seen, &expires, &x.IP, &x.UserAgent)
	if errors.Is(err, sql.ErrNoRows) {
		return users.Session{}, users.ErrNotFound
	} else if err != nil {
		return users.Session{}, err
	}
	x.Tenant, x.Stage = users.TenantID(t), users.Stage(stage)
	if x.CreatedAt, err = parseTime(created); err != nil {
		return users.Session{}, err
	}
	if x.LastSeenAt, err = parseTime(seen); err != nil {
		return users.Session{}, err
	}
	if x.ExpiresAt, err = parseTime(expires); err != nil {
		return users.Session{}, err
	}
	return x, nil
}

// TouchSession implements users.Store.
func (s *Store) TouchSession(ctx context.Context, tenant users.TenantID, id string, at time.Time) error {
	return oneRow(s.db.ExecContext(ctx, `UPDATE auth_sessions SET last_seen_at = $3 WHERE tenant = $1 AND id = $2`, string(tenant), id, formatTime(at)))
}

// DeleteSession implements users.Store; deleting a missing session is not
// an error.
func (s *Store) DeleteSession(ctx context.Context, tenant users.TenantID, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM auth_sessions WHERE tenant = $1 AND id = $2`, string(tenant), id)
	return err
}

// DeleteUserSessions implements users.Store.
func (s *Store) DeleteUserSessions(ctx context.Context, tenant users.TenantID, userID, keep string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM auth_sessions WHERE tenant = $1 AND user_id = $2 AND id <> $3`, string(tenant), userID, keep)
	return err
}

// DeleteExpiredSessions implements users.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM auth_sessions WHERE expires_at <= $1 OR (stage = 'full' AND last_seen_at <= $2)`,
		formatTime(now), formatTime(idleSince))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// LoginAttempts implements users.Store.
func (s *Store) LoginAttempts(ctx context.Context, k users.ThrottleKey) (users.Attempts, error) {
	var a users.Attempts
	var last, next string
	err := s.db.QueryRowContext(ctx, `SELECT failures, last_failure, next_allowed, version FROM auth_login_attempts
		WHERE kind = $1 AND tenant = $2 AND subject = $3`, k.Kind, string(k.Tenant), k.Subject).Scan(&a.Failures, &last, &next, &a.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return users.Attempts{}, nil
	} else if err != nil {
		return users.Attempts{}, err
	}
	if a.LastFailure, err = parseTime(last); err != nil {
		return users.Attempts{}, err
	}
	if a.NextAllowed, err = parseTime(next); err != nil {
		return users.Attempts{}, err
	}
	return a, nil
}

// SwapLoginAttempts implements users.Store.
func (s *Store) SwapLoginAttempts(ctx context.Context, k users.ThrottleKey, old, next users.Attempts) (bool, error) {
	var res sql.Result
	var err error
	if old.Version == 0 {
		res, err = s.db.ExecContext(ctx, `INSERT INTO auth_login_attempts (kind, tenant, subject, failures, last_failure, next_allowed, version)
			VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT DO NOTHING`,
			k.Kind, string(k.Tenant), k.Subject, next.Failures, formatTime(next.LastFailure), formatTime(next.NextAllowed))
	} else {
		res, err = s.db.ExecContext(ctx, `UPDATE auth_login_attempts SET failures = $4, last_failure = $5, next_allowed = $6, version = version + 1
			WHERE kind = $1 AND tenant = $2 AND subject = $3 AND version = $7`,
			k.Kind, string(k.Tenant), k.Subject, next.Failures, formatTime(next.LastFailure), formatTime(next.NextAllowed), old.Version)
	}
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// AppendAudit implements users.Store. It returns once the event is
// committed. Events that arrive while another commit is under way are
// written together in the next transaction (group commit): every page view
// is audited, and one fsync per view would make the audit log the
// dashboard's bottleneck under load.
func (s *Store) AppendAudit(ctx context.Context, e users.AuditEvent) error {
	if err := e.Tenant.Validate(); err != nil {
		return err
	}
	r := &auditReq{e: e, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	q := &s.audit
	q.mu.Lock()
	q.pending = append(q.pending, r)
	if !q.writing {
		q.writing = true
		q.mu.Unlock()
		s.writeAuditBatch(ctx)
	} else {
		q.mu.Unlock()
	}
	for {
		select {
		case err := <-r.done:
			return err
		case <-r.lead:
			// The writer before handed over: write the batch waiting,
			// which begins with this event.
			s.writeAuditBatch(ctx)
		}
	}
}

// auditQueue holds events waiting for the next group commit. At most one
// caller writes at a time; each writes one batch, then hands the next to
// the first event still waiting, so no caller writes for others for long.
type auditQueue struct {
	mu      sync.Mutex
	pending []*auditReq
	writing bool
}

type auditReq struct {
	e    users.AuditEvent
	done chan error    // the result of the commit that included e
	lead chan struct{} // this caller writes the next batch
}

// writeAuditBatch commits everything pending in one transaction, tells
// each caller, and hands over or stops writing.
func (s *Store) writeAuditBatch(ctx context.Context) {
	q := &s.audit
	q.mu.Lock()
	batch := q.pending
	q.pending = nil
	q.mu.Unlock()
	// One caller's cancellation must not fail the others' events.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	err := s.tx(wctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(wctx, `INSERT INTO auth_audit (tenant, at, user_id, username, action, target, detail, ip, user_agent)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range batch {
			e := r.e
			if _, err := stmt.ExecContext(wctx, string(e.Tenant), formatTime(e.At), e.UserID, e.Username, e.Action, e.Target,
				e.Detail, e.IP, e.UserAgent); err != nil {
				return err
			}
		}
		return nil
	})
	cancel()
	for _, r := range batch {
		r.done <- err
	}
	q.mu.Lock()
	if len(q.pending) == 0 {
		q.writing = false
		q.mu.Unlock()
		return
	}
	next := q.pending[0]
	q.mu.Unlock()
	next.lead <- struct{}{}
}

// AuditEvents implements users.Store.
func (s *Store) AuditEvents(ctx context.Context, tenant users.TenantID, q users.AuditQuery) ([]users.AuditEvent, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, `SELECT seq, tenant, at, user_id, username, action, target, detail, ip, user_agent
		FROM auth_audit WHERE tenant = $1 AND ($2 = '' OR user_id = $2) AND at >= $3
		ORDER BY seq DESC LIMIT $4`, string(tenant), q.UserID, formatTime(q.Since), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []users.AuditEvent
	for rows.Next() {
		var e users.AuditEvent
		var t, at string
		if err := rows.Scan(&e.Seq, &t, &at, &e.UserID, &e.Username, &e.Action, &e.Target, &e.Detail, &e.IP, &e.UserAgent); err != nil {
			return nil, err
		}
		e.Tenant = users.TenantID(t)
		if e.At, err = parseTime(at); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PutSetupToken implements users.Store.
func (s *Store) PutSetupToken(ctx context.Context, hash string, expires time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_setup_tokens`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO auth_setup_tokens (hash, expires_at) VALUES ($1, $2)`, hash, formatTime(expires))
		return err
	})
}

// CreateFirstUser implements users.Store. Marking the token used is the
// transaction's first write, so of two concurrent calls one waits for the
// other and then finds the token used.
func (s *Store) CreateFirstUser(ctx context.Context, tokenHash string, now time.Time, u users.User) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE auth_setup_tokens SET used_at = $2
			WHERE hash = $1 AND used_at IS NULL AND expires_at > $2`, tokenHash, formatTime(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return users.ErrSetupUnavailable
		}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM auth_users LIMIT 1)`).Scan(&exists); err != nil {
			return err
		}
		if exists > 0 {
			return users.ErrSetupUnavailable
		}
		return insertUser(ctx, tx, u)
	})
}
