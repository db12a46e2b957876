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
}

// LatestVersion is the schema version this build of vigil writes.
var LatestVersion = migrations[len(migrations)-1].version
