package sqlstore

// The schema is written once for SQLite and PostgreSQL:
//
//   - types are TEXT, INTEGER and BOOLEAN only;
//   - timestamps are TEXT in UTC, RFC 3339 with exactly nine fractional
//     digits ("2006-01-02T15:04:05.000000000Z"), so that comparing and sorting
//     the strings compares and sorts the times, and a person reading the
//     database with sqlite3 or psql sees dates;
//   - JSON values (lists, evidence, attrs) are TEXT holding encoding/json
//     output; nothing queries inside them;
//   - no autoincrement: observations are keyed by (scan_id, seq), where the
//     store assigns seq in insertion order;
//   - placeholders are $1, $2, ... which both PostgreSQL and modernc.org/sqlite
//     bind by position.
//
// A migration is appended, never edited: a database records the versions it
// has applied in schema_migrations and Migrate runs the rest, all in one
// transaction.

type migration struct {
	version int
	name    string
	stmts   []string
	// sqlite and postgres hold what the two databases write differently
	// (triggers); Migrate runs the backend's list after stmts.
	sqlite, postgres []string
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL
)`

var migrations = []migration{
	{version: 1, name: "scans, observations, findings, finding_events", stmts: []string{
		`CREATE TABLE scans (
			id          TEXT PRIMARY KEY,
			started_at  TEXT NOT NULL,
			finished_at TEXT,                          -- NULL while the scan runs
			version     TEXT NOT NULL DEFAULT '',
			locations   TEXT NOT NULL DEFAULT '[]',    -- JSON array of location ids
			complete    BOOLEAN NOT NULL DEFAULT FALSE,
			errors      TEXT NOT NULL DEFAULT '[]'     -- JSON array of strings
		)`,
		`CREATE INDEX scans_started_at ON scans (started_at)`,

		`CREATE TABLE observations (
			scan_id         TEXT NOT NULL REFERENCES scans (id),
			seq             INTEGER NOT NULL,          -- order of insertion within the scan
			kind            TEXT NOT NULL,
			location        TEXT NOT NULL,
			segment         TEXT NOT NULL DEFAULT '',
			segment_role    TEXT NOT NULL DEFAULT '',
			vantage         TEXT NOT NULL DEFAULT '',
			vantage_role    TEXT NOT NULL DEFAULT '',
			internet_facing BOOLEAN NOT NULL DEFAULT FALSE,
			host            TEXT NOT NULL,
			port            INTEGER NOT NULL DEFAULT 0,
			proto           TEXT NOT NULL DEFAULT '',
			source          TEXT NOT NULL DEFAULT '',
			observed_at     TEXT NOT NULL,
			attrs           TEXT,                      -- JSON object, NULL when empty
			PRIMARY KEY (scan_id, seq)
		)`,
		`CREATE INDEX observations_location_host ON observations (location, host)`,

		`CREATE TABLE findings (
			id            TEXT PRIMARY KEY,            -- observe.FindingID(rule, location, target)
			rule          TEXT NOT NULL,
			category      TEXT NOT NULL,
			severity      TEXT NOT NULL,
			severity_rank INTEGER NOT NULL,            -- observe.Severity.Rank(), for "at least high"
			title         TEXT NOT NULL DEFAULT '',
			location      TEXT NOT NULL,
			target        TEXT NOT NULL,
			controls      TEXT NOT NULL DEFAULT '[]',  -- JSON array
			evidence      TEXT NOT NULL DEFAULT '{}',  -- JSON object
			remediation   TEXT NOT NULL DEFAULT '',
			status        TEXT NOT NULL,               -- open|resolved|accepted|false-positive
			first_seen    TEXT NOT NULL,
			last_seen     TEXT NOT NULL,
			resolved_at   TEXT,                        -- set while status is resolved
			first_scan_id TEXT NOT NULL REFERENCES scans (id),
			last_scan_id  TEXT NOT NULL REFERENCES scans (id)
		)`,
		`CREATE INDEX findings_location_status ON findings (location, status)`,

		`CREATE TABLE finding_events (
			finding_id TEXT NOT NULL REFERENCES findings (id),
			scan_id    TEXT REFERENCES scans (id),     -- NULL for a person's decision
			event_at   TEXT NOT NULL,
			event      TEXT NOT NULL,                  -- opened|seen|resolved|reopened|accepted|false-positive
			note       TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX finding_events_finding ON finding_events (finding_id, event_at)`,
		`CREATE INDEX finding_events_scan ON finding_events (scan_id)`,
	}},
	{version: 2, name: "vantage scoping: findings.vantage, scans.vantages", stmts: []string{
		// The segment a finding was seen from: only a scan from there
		// resolves it, so one sensor's scan never closes what another's saw.
		`ALTER TABLE findings ADD COLUMN vantage TEXT NOT NULL DEFAULT ''`,
		// JSON object: location id -> segments the scan probed from.
		`ALTER TABLE scans ADD COLUMN vantages TEXT NOT NULL DEFAULT '{}'`,
	}},
	{version: 3, name: "collector sources: scans.sources, scans.source_errors", stmts: []string{
		// JSON arrays: the identity and software sources read in full, and
		// the problems reading the others.
		`ALTER TABLE scans ADD COLUMN sources TEXT NOT NULL DEFAULT '[]'`,
		`ALTER TABLE scans ADD COLUMN source_errors TEXT NOT NULL DEFAULT '[]'`,
	}},
	{version: 4, name: "evidence log: evidence_log, evidence_checkpoints, append-only", stmts: []string{
		// The hash-chained log (package evidence, docs/evidence.md). Digests
		// and keys are lower-case hex TEXT so that sqlite3 and psql show them.
		`CREATE TABLE evidence_log (
			seq            INTEGER PRIMARY KEY,        -- 1, 2, 3, ... without gaps
			at             TEXT NOT NULL,              -- when appended; hashed as written
			kind           TEXT NOT NULL,              -- observations|scan|finding-event|acceptance|attestation|key
			subject        TEXT NOT NULL DEFAULT '',   -- the scan or finding id
			payload        TEXT NOT NULL,              -- compact JSON: the exact bytes payload_digest covers
			payload_digest TEXT NOT NULL,              -- SHA-256 of payload
			prev_hash      TEXT NOT NULL,              -- hash of entry seq-1; zeros for entry 1
			hash           TEXT NOT NULL               -- evidence.Entry.ComputeHash
		)`,
		`CREATE INDEX evidence_log_kind ON evidence_log (kind, seq)`,
		`CREATE INDEX evidence_log_at ON evidence_log (at)`,
		`CREATE TABLE evidence_checkpoints (
			seq        INTEGER PRIMARY KEY REFERENCES evidence_log (seq),
			hash       TEXT NOT NULL,                  -- the hash of entry seq, as signed
			at         TEXT NOT NULL,                  -- when signed
			public_key TEXT NOT NULL,                  -- ed25519:<hex>
			signature  TEXT NOT NULL                   -- Ed25519 signature, hex
		)`,
	},
		// The database refuses to change or remove what was logged, and
		// accepts a new entry only right after the last one. This stops a
		// bug or a stray statement; someone who can drop triggers can do
		// anything, and the chain and signatures are what catch that.
		sqlite: []string{
			`CREATE TRIGGER evidence_log_no_update BEFORE UPDATE ON evidence_log
			BEGIN SELECT RAISE(ABORT, 'evidence_log is append-only: UPDATE refused'); END`,
			`CREATE TRIGGER evidence_log_no_delete BEFORE DELETE ON evidence_log
			BEGIN SELECT RAISE(ABORT, 'evidence_log is append-only: DELETE refused'); END`,
			// Also stops INSERT OR REPLACE over an existing entry.
			`CREATE TRIGGER evidence_log_append BEFORE INSERT ON evidence_log
			WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM evidence_log)
				OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM evidence_log WHERE seq = NEW.seq - 1), '` + zeroHash + `')
			BEGIN SELECT RAISE(ABORT, 'evidence_log is append-only: a new entry must follow the last one'); END`,
			`CREATE TRIGGER evidence_checkpoints_no_update BEFORE UPDATE ON evidence_checkpoints
			BEGIN SELECT RAISE(ABORT, 'evidence_checkpoints is append-only: UPDATE refused'); END`,
			`CREATE TRIGGER evidence_checkpoints_no_delete BEFORE DELETE ON evidence_checkpoints
			BEGIN SELECT RAISE(ABORT, 'evidence_checkpoints is append-only: DELETE refused'); END`,
			`CREATE TRIGGER evidence_checkpoints_append BEFORE INSERT ON evidence_checkpoints
			WHEN NEW.hash IS NOT (SELECT hash FROM evidence_log WHERE seq = NEW.seq)
				OR EXISTS (SELECT 1 FROM evidence_checkpoints WHERE seq = NEW.seq)
			BEGIN SELECT RAISE(ABORT, 'evidence_checkpoints is append-only: a checkpoint signs a logged hash, once'); END`,
		},
		// PostgreSQL: the same rules. INTEGER is 32-bit there, so the log's
		// sequence numbers are BIGINT. (These statements were first run by
		// the PostgreSQL store of schema 7; no database ran an older list.)
		postgres: []string{
			`ALTER TABLE evidence_checkpoints DROP CONSTRAINT evidence_checkpoints_seq_fkey`,
			`ALTER TABLE evidence_log ALTER COLUMN seq TYPE BIGINT`,
			`ALTER TABLE evidence_checkpoints ALTER COLUMN seq TYPE BIGINT`,
			`ALTER TABLE evidence_checkpoints ADD CONSTRAINT evidence_checkpoints_seq_fkey FOREIGN KEY (seq) REFERENCES evidence_log (seq)`,
			`CREATE FUNCTION evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
			END $$`,
			// A new entry must follow the last one: the next seq, chained to
			// its hash. Rows earlier in the same INSERT are visible here.
			`CREATE FUNCTION evidence_log_append() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.seq IS DISTINCT FROM (SELECT COALESCE(MAX(seq), 0) + 1 FROM evidence_log)
					OR NEW.prev_hash IS DISTINCT FROM COALESCE((SELECT hash FROM evidence_log WHERE seq = NEW.seq - 1), '` + zeroHash + `') THEN
					RAISE EXCEPTION 'evidence_log is append-only: a new entry must follow the last one';
				END IF;
				RETURN NEW;
			END $$`,
			`CREATE TRIGGER evidence_log_append BEFORE INSERT ON evidence_log
			FOR EACH ROW EXECUTE FUNCTION evidence_log_append()`,
			`CREATE FUNCTION evidence_checkpoints_append() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.hash IS DISTINCT FROM (SELECT hash FROM evidence_log WHERE seq = NEW.seq)
					OR EXISTS (SELECT 1 FROM evidence_checkpoints WHERE seq = NEW.seq) THEN
					RAISE EXCEPTION 'evidence_checkpoints is append-only: a checkpoint signs a logged hash, once';
				END IF;
				RETURN NEW;
			END $$`,
			`CREATE TRIGGER evidence_checkpoints_append BEFORE INSERT ON evidence_checkpoints
			FOR EACH ROW EXECUTE FUNCTION evidence_checkpoints_append()`,
			`CREATE TRIGGER evidence_log_append_only BEFORE UPDATE OR DELETE ON evidence_log
			FOR EACH ROW EXECUTE FUNCTION evidence_append_only()`,
			`CREATE TRIGGER evidence_log_no_truncate BEFORE TRUNCATE ON evidence_log
			FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only()`,
			`CREATE TRIGGER evidence_checkpoints_append_only BEFORE UPDATE OR DELETE ON evidence_checkpoints
			FOR EACH ROW EXECUTE FUNCTION evidence_append_only()`,
			`CREATE TRIGGER evidence_checkpoints_no_truncate BEFORE TRUNCATE ON evidence_checkpoints
			FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only()`,
		},
	},
	{version: 5, name: "attestations, append-only", stmts: []string{
		// A person's dated record that an administrative safeguard is in
		// place (package attest, docs/attestations.md). A correction is a
		// new row naming the one it replaces in supersedes; UNIQUE keeps
		// the corrections of a record a single line.
		`CREATE TABLE attestations (
			id          TEXT PRIMARY KEY,
			kind        TEXT NOT NULL,                 -- a catalog attestation kind
			location    TEXT NOT NULL DEFAULT '',      -- '' for the whole organisation
			at          TEXT NOT NULL,                 -- when the thing attested was done
			expires_at  TEXT,                          -- NULL: the kind's valid_days
			by_name     TEXT NOT NULL DEFAULT '',      -- who recorded it ("by" is an SQL keyword)
			owner       TEXT NOT NULL DEFAULT '',
			subject     TEXT NOT NULL DEFAULT '',
			result      TEXT NOT NULL DEFAULT '',
			note        TEXT NOT NULL DEFAULT '',
			document    TEXT NOT NULL DEFAULT '',      -- sha256 of the attached document
			supersedes  TEXT UNIQUE REFERENCES attestations (id),
			recorded_at TEXT NOT NULL
		)`,
		`CREATE INDEX attestations_kind ON attestations (kind, location, at)`,
	},
		sqlite: []string{
			`CREATE TRIGGER attestations_no_update BEFORE UPDATE ON attestations
			BEGIN SELECT RAISE(ABORT, 'attestations is append-only: UPDATE refused; record a correction that supersedes it'); END`,
			`CREATE TRIGGER attestations_no_delete BEFORE DELETE ON attestations
			BEGIN SELECT RAISE(ABORT, 'attestations is append-only: DELETE refused; record a correction that supersedes it'); END`,
			// REPLACE removes the row it conflicts with without firing the
			// DELETE trigger: refuse the conflict before it happens.
			`CREATE TRIGGER attestations_no_replace BEFORE INSERT ON attestations
			WHEN EXISTS (SELECT 1 FROM attestations WHERE id = NEW.id OR supersedes = NEW.supersedes)
			BEGIN SELECT RAISE(ABORT, 'attestations is append-only: a new record needs a new id and supersedes a record once'); END`,
		},
		// evidence_append_only() is migration 4's.
		postgres: []string{
			`CREATE TRIGGER attestations_append_only BEFORE UPDATE OR DELETE ON attestations
			FOR EACH ROW EXECUTE FUNCTION evidence_append_only()`,
			`CREATE TRIGGER attestations_no_truncate BEFORE TRUNCATE ON attestations
			FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only()`,
		},
	},
	{version: 6, name: "decisions with expiry, risk register, evidence by subject", stmts: []string{
		// A person's accepted / false-positive decision on a finding, as
		// JSON (observe.Decision), and its expiry apart so that expiring
		// decisions is one indexed query. Both NULL without a decision.
		`ALTER TABLE findings ADD COLUMN decision TEXT`,
		`ALTER TABLE findings ADD COLUMN decision_expires TEXT`,
		`CREATE INDEX findings_decision_expires ON findings (decision_expires)`,
		`CREATE INDEX finding_events_event ON finding_events (event, event_at)`,
		// Traceability looks entries up by what they are about.
		`CREATE INDEX evidence_log_subject ON evidence_log (subject, seq)`,
		// The risk register's decisions (package risk, docs/risk.md): each
		// row is the full state of one risk as someone set it; the newest
		// row per risk counts. Append-only like the attestations.
		`CREATE TABLE risk_treatments (
			id          TEXT PRIMARY KEY,
			risk_id     TEXT NOT NULL,
			by_name     TEXT NOT NULL,
			owner       TEXT NOT NULL DEFAULT '',
			treatment   TEXT NOT NULL DEFAULT '',      -- mitigate|accept|transfer, '' not yet decided
			due         TEXT,                          -- NULL: the register's default
			likelihood  TEXT NOT NULL DEFAULT '',      -- override of the derived level, '' none
			impact      TEXT NOT NULL DEFAULT '',
			reason      TEXT NOT NULL DEFAULT '',
			expires_at  TEXT,                          -- end of an acceptance
			recorded_at TEXT NOT NULL
		)`,
		`CREATE INDEX risk_treatments_risk ON risk_treatments (risk_id, recorded_at)`,
	},
		sqlite: []string{
			`CREATE TRIGGER risk_treatments_no_update BEFORE UPDATE ON risk_treatments
			BEGIN SELECT RAISE(ABORT, 'risk_treatments is append-only: UPDATE refused; record a new treatment'); END`,
			`CREATE TRIGGER risk_treatments_no_delete BEFORE DELETE ON risk_treatments
			BEGIN SELECT RAISE(ABORT, 'risk_treatments is append-only: DELETE refused; record a new treatment'); END`,
			`CREATE TRIGGER risk_treatments_no_replace BEFORE INSERT ON risk_treatments
			WHEN EXISTS (SELECT 1 FROM risk_treatments WHERE id = NEW.id)
			BEGIN SELECT RAISE(ABORT, 'risk_treatments is append-only: a new treatment needs a new id'); END`,
		},
		postgres: []string{
			`CREATE TRIGGER risk_treatments_append_only BEFORE UPDATE OR DELETE ON risk_treatments
			FOR EACH ROW EXECUTE FUNCTION evidence_append_only()`,
			`CREATE TRIGGER risk_treatments_no_truncate BEFORE TRUNCATE ON risk_treatments
			FOR EACH STATEMENT EXECUTE FUNCTION evidence_append_only()`,
		},
	},
	{version: 7, name: "alert deliveries: what each channel was sent, and what it still owes", stmts: []string{
		// The daemon's alert ledger (package alerts, docs/alerts.md): one
		// row per (channel, alert key). A pending row holds the alert
		// until the channel delivers it, so an alert that failed on every
		// attempt is tried again on the next cycle, after a restart too; a
		// sent row is what stops the same alert going out twice. Rows are
		// updated in place (pending -> sent): unlike the evidence log this
		// is bookkeeping, not a record anyone audits.
		`CREATE TABLE alert_deliveries (
			channel      TEXT NOT NULL,                -- the route name (alerts.channels[].name)
			alert_key    TEXT NOT NULL,                -- alerts.Alert.Key; carries no secret
			state        TEXT NOT NULL,                -- pending|sent
			alert        TEXT,                         -- JSON alerts.Alert while pending; NULL once sent
			created_at   TEXT NOT NULL,                -- when the alert was first due to this channel
			attempts     INTEGER NOT NULL DEFAULT 0,   -- delivery cycles that failed
			last_attempt TEXT,                         -- the last failed cycle
			sent_at      TEXT,                         -- set once state is sent
			PRIMARY KEY (channel, alert_key)
		)`,
		`CREATE INDEX alert_deliveries_pending ON alert_deliveries (state, created_at)`,
	},
		// One table in the shared dialect: nothing differs between SQLite
		// and PostgreSQL (INSERT ... ON CONFLICT is in both).
		sqlite:   nil,
		postgres: nil,
	},
	{version: 8, name: "site agents: enrollment tokens, agents, agent batches", stmts: []string{
		// One-time enrollment tokens (package agent/protocol, docs/agent.md):
		// only the SHA-256 of the secret is kept. A token is burnt (used_at,
		// agent_id) in the transaction that records its agent.
		`CREATE TABLE agent_tokens (
			hash       TEXT PRIMARY KEY,               -- hex SHA-256 of the token's secret
			location   TEXT NOT NULL,
			created_by TEXT NOT NULL DEFAULT '',
			created_at TEXT NOT NULL,
			expires_at TEXT NOT NULL,
			used_at    TEXT,                           -- NULL until an agent enrolled with it
			agent_id   TEXT                            -- the agent that did
		)`,
		// Enrolled agents: the key they sign with, and what their last
		// heartbeat said. A revoked agent stays, so its history reads.
		`CREATE TABLE agents (
			id                 TEXT PRIMARY KEY,
			location           TEXT NOT NULL,
			hostname           TEXT NOT NULL DEFAULT '',
			public_key         TEXT NOT NULL,          -- hex Ed25519 public key
			enrolled_by        TEXT NOT NULL DEFAULT '', -- who created the token
			enrolled_at        TEXT NOT NULL,
			revoked_at         TEXT,
			revoked_by         TEXT NOT NULL DEFAULT '',
			last_seen          TEXT,
			version            TEXT NOT NULL DEFAULT '',
			queue_depth        INTEGER NOT NULL DEFAULT 0,
			queue_bytes        INTEGER NOT NULL DEFAULT 0,
			last_scan_id       TEXT NOT NULL DEFAULT '',
			last_scan_at       TEXT,
			assignment_version TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX agents_location ON agents (location, enrolled_at)`,
		// The batches each agent pushed, recorded in the transaction that
		// stored what they carried: a retried batch is found here and
		// acknowledged without being stored twice. The begin batch of a
		// scan also says which agent owns the scan.
		`CREATE TABLE agent_batches (
			agent_id    TEXT NOT NULL REFERENCES agents (id),
			batch_id    TEXT NOT NULL,                 -- protocol.Batch.ID
			scan_id     TEXT NOT NULL,
			kind        TEXT NOT NULL,                 -- begin|observations|finish
			received_at TEXT NOT NULL,
			PRIMARY KEY (agent_id, batch_id)
		)`,
		`CREATE INDEX agent_batches_scan ON agent_batches (scan_id, kind)`,
	},
		sqlite: nil,
		// INTEGER is 32-bit in PostgreSQL; a spool's size may not be.
		postgres: []string{`ALTER TABLE agents ALTER COLUMN queue_bytes TYPE BIGINT`},
	},
	// A scan asked of a location's agents from the dashboard: the first of
	// them to send a heartbeat takes it (and clears it for the others).
	{version: 9, name: "agents: scan requests", stmts: []string{
		`ALTER TABLE agents ADD COLUMN scan_requested_at TEXT`,
		`ALTER TABLE agents ADD COLUMN scan_requested_by TEXT NOT NULL DEFAULT ''`,
	}},
}

// zeroHash is the prev_hash of entry 1.
const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// LatestVersion is the schema version this build of vigil writes.
var LatestVersion = migrations[len(migrations)-1].version
