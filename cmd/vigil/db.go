package main

import (
	"context"
	"fmt"
	"io"

	"github.com/vigilhq/vigil/jobs"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/dbmove"
)

func runDB(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "vigil db", `Usage: vigil db migrate|move [flags]

  migrate  bring a database's schema up to this vigil's (SQLite or PostgreSQL)
  move     copy everything from one database into a new, empty one (SQLite to PostgreSQL, or back)

Database URLs: sqlite:///path/vigil.db or postgres://user@host:5432/vigil?sslmode=verify-full.
Run `+"`vigil db move --help`"+` for flags and an example. See docs/postgres.md.
`, []verb{{"migrate", runDBMigrate}, {"move", runDBMove}}, args, stdout, stderr)
}

func runDBMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("db migrate", "db migrate (--db URL | --config FILE)\n\n"+
		"Applies the schema migrations this vigil has and the database lacks, in one transaction\n"+
		"(several replicas starting together migrate once), and on PostgreSQL those of vigil serve's\n"+
		"job queue (River's tables, docs/jobs.md). vigil scan and vigil serve do the same\n"+
		"when they open a database; this does it alone, e.g. before rolling out replicas.\n\n"+
		"Exit codes: 0 migrated (or already current); 2 could not.",
		"vigil db migrate --db postgres://vigil@db.internal:5432/vigil?sslmode=verify-full", stderr)
	var (
		cfgPath = fs.String("config", "", "configuration file: its data_dir's SQLite database when --db is not given")
		db      = fs.String("db", "", "database URL")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil db migrate")
	url, code, ok := dbURL(*cfgPath, *db, fs.Args(), stderr, fail)
	if !ok {
		return code
	}
	st, err := dbmove.Open(ctx, url, false)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()
	v, err := st.Core().SchemaVersion(ctx)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "%s: schema v%d (this vigil's is v%d)\n", st.Path(), v, dbmove.LatestVersion)
	// vigil serve's job queue (River) lives in the same PostgreSQL
	// database; on SQLite it is a file of its own, migrated when opened.
	if driver, dsn, _ := store.ParseURL(url); driver == store.DriverPostgres {
		rv, err := jobs.Migrate(ctx, dsn)
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stdout, "%s: job queue (River) schema v%d\n", st.Path(), rv)
	}
	return exitOK
}

func runDBMove(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("db move", "db move --to URL (--from URL | --config FILE)\n\n"+
		"Copies every scan, observation, finding and its history, decision, attestation, risk-register\n"+
		"entry and the whole evidence log from one database into a new, empty one, in one transaction,\n"+
		"and checks the row counts and the evidence log's head before committing. Rows are copied as\n"+
		"stored, so the evidence log verifies exactly as before. The source is only read. Stop\n"+
		"`vigil serve` first, then point it at the new database with --db.\n\n"+
		"Exit codes: 0 moved; 2 could not (nothing is committed).",
		"vigil db move --config vigil.yaml --to postgres://vigil@db.internal:5432/vigil?sslmode=verify-full", stderr)
	var (
		cfgPath = fs.String("config", "", "configuration file: its data_dir's SQLite database is the source when --from is not given")
		from    = fs.String("from", "", "source database URL")
		to      = fs.String("to", "", "destination database URL (required; created and migrated, must be empty)")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil db move")
	if *to == "" {
		return fail("--to is required: the database to move into")
	}
	if _, _, err := store.ParseURL(*to); err != nil {
		return fail("--to: %v", err)
	}
	src, code, ok := dbURL(*cfgPath, *from, fs.Args(), stderr, fail)
	if !ok {
		return code
	}
	rep, err := dbmove.Move(ctx, src, *to, func(table string, n int64) {
		fmt.Fprintf(stderr, "  %-22s %d rows\n", table, n)
	})
	if err != nil {
		return fail("%v", err)
	}
	var total int64
	for _, n := range rep.Rows {
		total += n
	}
	fmt.Fprintf(stdout, "moved %d rows; evidence log head: entry %d, hash %s\n", total, rep.EvidenceSeq, rep.EvidenceHead)
	return exitOK
}

// dbURL picks the database: an explicit URL, or the config's default.
func dbURL(cfgPath, url string, rest []string, stderr io.Writer, fail func(string, ...any) int) (string, int, bool) {
	switch {
	case len(rest) > 0:
		return "", fail("unexpected argument %q", rest[0]), false
	case url != "":
		if _, _, err := store.ParseURL(url); err != nil {
			return "", fail("%v", err), false
		}
		return url, 0, true
	case cfgPath == "":
		return "", fail("give the database with --db/--from URL, or --config FILE for its data_dir's"), false
	}
	cfg := loadConfig(cfgPath, "vigil db", stderr)
	if cfg == nil {
		return "", exitError, false
	}
	return storeURL(cfg, ""), 0, true
}
