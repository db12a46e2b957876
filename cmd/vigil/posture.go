package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/dbmove"
)

// storeFlags declares --config and --db the same way for every command
// that reads or writes the store.
func storeFlags(fs *flag.FlagSet) (cfgPath, db *string) {
	return fs.String("config", "", "configuration file (required)"),
		fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db, or postgres://...)")
}

// storeURL is --db, or the data directory's SQLite file when it is empty.
func storeURL(cfg *config.Config, db string) string {
	if db == "" {
		return "sqlite://" + filepath.Join(absDir(cfg.DataDir), store.DefaultFileName)
	}
	return db
}

// readStore is what the read-only commands read.
type readStore interface {
	posture.Reader
	risk.Reader
	Events(ctx context.Context, f store.EventFilter) ([]store.FindingEvent, error)
	Close() error
}

// openReadStore opens the store read-only, so that reading posture works
// while `vigil serve` or a scan writes.
func openReadStore(ctx context.Context, cfg *config.Config, db string) (readStore, error) {
	url := storeURL(cfg, db)
	driver, path, err := store.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	if driver == store.DriverSQLite {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no database at %s: run `vigil scan --config FILE` first", path)
		}
	}
	return dbmove.Open(ctx, url, true)
}

// decisionStore is what recording a decision needs: the store, and the
// posture it is decided against.
type decisionStore interface {
	store.Store
	posture.Reader
}

// openWriteStore opens the store for a person's decision, with the
// evidence key, as vigil scan does.
func openWriteStore(ctx context.Context, cfg *config.Config, db string) (decisionStore, error) {
	st, err := openStore(ctx, db, cfg)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%w\n(while `vigil serve` runs, record decisions in its dashboard or API)", err)
		}
		return nil, err
	}
	full, ok := st.(decisionStore)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("store %s cannot record decisions", st.Path())
	}
	return full, nil
}

// readSession is a read-only look at one organisation's store, and its
// posture when asked for.
type readSession struct {
	cfg  *config.Config
	st   readStore
	snap *posture.Snapshot
}

// openRead loads the config at cfgPath and opens its store read-only
// (computing the posture snapshot when withSnapshot); on failure it has
// reported why and returns nil with the exit code.
func openRead(ctx context.Context, cfgPath, db, prog string, withSnapshot bool, stderr io.Writer, fail func(string, ...any) int) (*readSession, int) {
	cfg := loadConfig(cfgPath, prog, stderr)
	if cfg == nil {
		return nil, exitError
	}
	st, err := openReadStore(ctx, cfg, db)
	if err != nil {
		return nil, fail("%v", err)
	}
	s := &readSession{cfg: cfg, st: st}
	if withSnapshot {
		if s.snap, err = loadSnapshot(ctx, cfg, st, stderr); err != nil {
			st.Close()
			return nil, fail("%v", err)
		}
	}
	return s, exitOK
}

// Close closes the store.
func (s *readSession) Close() { s.st.Close() }

// loadSnapshot computes the posture from the store at cfg: control status,
// risk register, what is due.
func loadSnapshot(ctx context.Context, cfg *config.Config, st posture.Reader, stderr io.Writer) (*posture.Snapshot, error) {
	engine, err := rules.Load(rules.Options{Dirs: cfg.Rules.Dirs, Disable: cfg.Rules.Disable})
	if err != nil {
		return nil, fmt.Errorf("rules:\n%w", err)
	}
	in := posture.Input{Config: cfg, Catalog: engine.Catalog(), Rules: engine.Rules(), Now: time.Now()}
	if cfg.Roster != "" {
		if in.People, err = rosterPeople(ctx, cfg.Roster, stderr); err != nil {
			return nil, err
		}
	}
	return posture.Load(ctx, st, in)
}

// parseExpiry reads --until (YYYY-MM-DD, the end of that day UTC) or --for
// (days, or a Go duration) into an expiry checked against
// risk.MaxAcceptance.
func parseExpiry(until, forDur string, now time.Time) (time.Time, error) {
	var exp time.Time
	switch {
	case until != "" && forDur != "":
		return exp, errors.New("give --until or --for, not both")
	case until != "":
		d, err := time.Parse(time.DateOnly, until)
		if err != nil {
			return exp, fmt.Errorf("--until %q: want YYYY-MM-DD", until)
		}
		exp = d.Add(24*time.Hour - time.Second)
	case forDur != "":
		if n, err := strconv.Atoi(strings.TrimSuffix(forDur, "d")); err == nil {
			exp = now.AddDate(0, 0, n)
		} else if d, err := time.ParseDuration(forDur); err == nil {
			exp = now.Add(d)
		} else {
			return exp, fmt.Errorf("--for %q: want days (90 or 90d) or a duration (720h)", forDur)
		}
	default:
		return exp, errors.New("an expiry is required: --until YYYY-MM-DD or --for DAYS (at most a year); it reopens then")
	}
	if err := risk.CheckExpiry(exp, now); err != nil {
		return exp, err
	}
	return exp, nil
}

func dateOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
