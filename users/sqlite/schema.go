package sqlite

// The schema follows vigil's store (store/internal/sqlstore/schema.go):
// TEXT, INTEGER and BOOLEAN columns; timestamps as UTC RFC 3339 TEXT with
// nine fractional digits, so string order is time order; lists as JSON
// TEXT; $n placeholders. Its tables are prefixed auth_ and its versions are
// kept in auth_schema_migrations, apart from the store's, so both can live
// in one database file. A migration is appended, never edited.
//
// Every tenant table leads its key with tenant, and every query names it.

type migration struct {
	version int
	name    string
	stmts   []string
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS auth_schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

var migrations = []migration{
	{version: 1, name: "users, recovery codes, sessions, login attempts, setup tokens, append-only audit", stmts: []string{
		`CREATE TABLE auth_users (
			tenant              TEXT NOT NULL,
			id                  TEXT NOT NULL,
			username            TEXT NOT NULL,            -- lower-case
			email               TEXT NOT NULL DEFAULT '',
			role                TEXT NOT NULL,
			locations           TEXT NOT NULL DEFAULT '[]', -- JSON array, location-manager only
			password_hash       TEXT NOT NULL,            -- argon2id PHC string
			password_changed_at TEXT NOT NULL,
			totp_secret         TEXT NOT NULL DEFAULT '', -- base32; '' until enrolled
			totp_pending        TEXT NOT NULL DEFAULT '', -- awaiting its first code
			totp_last_step      INTEGER NOT NULL DEFAULT 0,
			disabled            BOOLEAN NOT NULL DEFAULT FALSE,
			created_at          TEXT NOT NULL,
			updated_at          TEXT NOT NULL,
			PRIMARY KEY (tenant, id),
			UNIQUE (tenant, username)
		)`,
		`CREATE TABLE auth_recovery_codes (
			tenant  TEXT NOT NULL,
			user_id TEXT NOT NULL,
			hash    TEXT NOT NULL,                        -- users.HashRecoveryCode
			PRIMARY KEY (tenant, user_id, hash),
			FOREIGN KEY (tenant, user_id) REFERENCES auth_users (tenant, id)
		)`,
		`CREATE TABLE auth_sessions (
			tenant       TEXT NOT NULL,
			id           TEXT NOT NULL,                   -- SHA-256 of the cookie token, hex
			user_id      TEXT NOT NULL,
			stage        TEXT NOT NULL,
			created_at   TEXT NOT NULL,
			last_seen_at TEXT NOT NULL,
			expires_at   TEXT NOT NULL,
			ip           TEXT NOT NULL DEFAULT '',
			user_agent   TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (tenant, id),
			FOREIGN KEY (tenant, user_id) REFERENCES auth_users (tenant, id)
		)`,
		`CREATE INDEX auth_sessions_user ON auth_sessions (tenant, user_id)`,
		`CREATE INDEX auth_sessions_expires ON auth_sessions (expires_at)`,
		`CREATE TABLE auth_login_attempts (
			kind         TEXT NOT NULL,                   -- account|ip
			tenant       TEXT NOT NULL,                   -- '' for ip counters
			subject      TEXT NOT NULL,
			failures     INTEGER NOT NULL,
			last_failure TEXT NOT NULL DEFAULT '',
			next_allowed TEXT NOT NULL DEFAULT '',
			version      INTEGER NOT NULL,                -- compare-and-swap
			PRIMARY KEY (kind, tenant, subject)
		)`,
		`CREATE TABLE auth_setup_tokens (
			hash       TEXT PRIMARY KEY,                  -- SHA-256 of the token, hex
			expires_at TEXT NOT NULL,
			used_at    TEXT
		)`,
		`CREATE TABLE auth_audit (
			seq        INTEGER PRIMARY KEY,               -- assigned by SQLite, increasing
			tenant     TEXT NOT NULL,
			at         TEXT NOT NULL,
			user_id    TEXT NOT NULL DEFAULT '',
			username   TEXT NOT NULL DEFAULT '',
			action     TEXT NOT NULL,
			target     TEXT NOT NULL DEFAULT '',
			detail     TEXT NOT NULL DEFAULT '',
			ip         TEXT NOT NULL DEFAULT '',
			user_agent TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX auth_audit_tenant ON auth_audit (tenant, seq)`,
		// The database refuses to change or remove an audit event, as the
		// store does for evidence_log (store migration 4). Someone who can
		// drop triggers can do anything; this stops bugs and stray
		// statements.
		`CREATE TRIGGER auth_audit_no_update BEFORE UPDATE ON auth_audit
		BEGIN SELECT RAISE(ABORT, 'auth_audit is append-only: UPDATE refused'); END`,
		`CREATE TRIGGER auth_audit_no_delete BEFORE DELETE ON auth_audit
		BEGIN SELECT RAISE(ABORT, 'auth_audit is append-only: DELETE refused'); END`,
		// REPLACE removes the conflicting row without firing the DELETE
		// trigger: refuse the conflict before it happens.
		`CREATE TRIGGER auth_audit_no_replace BEFORE INSERT ON auth_audit
		WHEN NEW.seq IS NOT NULL AND EXISTS (SELECT 1 FROM auth_audit WHERE seq = NEW.seq)
		BEGIN SELECT RAISE(ABORT, 'auth_audit is append-only: an event is never replaced'); END`,
	}},
}

// LatestVersion is the auth schema version this build writes.
var LatestVersion = migrations[len(migrations)-1].version
