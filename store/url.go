package store

import (
	"fmt"
	"net/url"
	"strings"
)

// Driver names ParseURL returns.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// ParseURL splits a --db URL into the backend that serves it and what that
// backend opens: a file path for SQLite, the URL unchanged for PostgreSQL.
//
//	sqlite:///var/lib/vigil/vigil.db  sqlite, /var/lib/vigil/vigil.db (absolute)
//	sqlite://vigil-data/vigil.db      sqlite, vigil-data/vigil.db (relative to the working directory)
//	sqlite:vigil-data/vigil.db        sqlite, vigil-data/vigil.db
//	./vigil-data/vigil.db             sqlite, ./vigil-data/vigil.db (a plain path is a SQLite file)
//	postgres://user@host/vigil        postgres, postgres://user@host/vigil (also postgresql://)
//
// In a sqlite URL the path is percent-decoded (a space is %20, '?' is %3F);
// query parameters are refused rather than silently ignored, because the
// SQLite backend sets its own.
func ParseURL(raw string) (driver, dsnOrPath string, err error) {
	lower := strings.ToLower(raw)
	switch {
	case strings.TrimSpace(raw) == "":
		return "", "", fmt.Errorf("database URL is empty: use sqlite:///path/vigil.db or postgres://...")
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return DriverPostgres, raw, nil
	case strings.HasPrefix(lower, "sqlite:"):
		rest := strings.TrimPrefix(raw[len("sqlite:"):], "//")
		if strings.ContainsAny(rest, "?#") {
			return "", "", fmt.Errorf("database URL %q: query parameters are not supported (escape '?' in a path as %%3F)", raw)
		}
		path, err := url.PathUnescape(rest)
		if err != nil {
			return "", "", fmt.Errorf("database URL %q: %w", raw, err)
		}
		if path == "" {
			return "", "", fmt.Errorf("database URL %q has no file path: use sqlite:///path/vigil.db", raw)
		}
		if strings.ContainsRune(path, 0) {
			return "", "", fmt.Errorf("database URL %q: path contains a NUL byte", raw)
		}
		return DriverSQLite, path, nil
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		return "", "", fmt.Errorf("database URL %q: unsupported scheme %q: use sqlite:///path/vigil.db or postgres://...", raw, scheme)
	default:
		if strings.ContainsRune(raw, 0) {
			return "", "", fmt.Errorf("database path %q contains a NUL byte", raw)
		}
		return DriverSQLite, raw, nil
	}
}
