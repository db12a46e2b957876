package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/storetest"
)

// The shared store suite, on SQLite files.
func TestSuite(t *testing.T) {
	storetest.Run(t, harness)
}

var harness = storetest.Harness{
	Dialect: storetest.SQLite,
	New:     func(t testing.TB) string { return filepath.Join(t.TempDir(), "vigil.db") },
	Open: func(ctx context.Context, path string, o storetest.Options) (storetest.Backend, error) {
		var opts []Option
		if o.Now != nil {
			opts = append(opts, WithClock(o.Now))
		}
		if o.Key != nil {
			opts = append(opts, WithEvidenceKey(o.Key))
		}
		if o.ReadOnly {
			opts = append(opts, ReadOnly())
		}
		return Open(ctx, path, opts...)
	},
}

var (
	base   = storetest.At(0)
	at     = storetest.At
	rdp    = storetest.RDP
	telnet = storetest.Telnet
	tls10  = storetest.TLS10
)

func openT(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func finishT(t *testing.T, s *Store, scan observe.Scan, fs ...observe.Finding) ([]observe.Finding, []observe.Finding) {
	t.Helper()
	return storetest.FinishT(t, s, scan, fs...)
}

func byID(t *testing.T, s *Store) map[string]observe.Finding { t.Helper(); return storetest.ByID(t, s) }

func ids(fs []observe.Finding) []string { return storetest.IDs(fs) }

func finding(rule string, cat observe.Category, sev observe.Severity, loc, target string) observe.Finding {
	return storetest.Finding(rule, cat, sev, loc, target)
}

// The database file and its directory are private, and the journal is WAL.
func TestOpenCreatesPrivateDatabaseInWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vigil data", "nested")
	path := filepath.Join(dir, "vigil.db")
	s := openT(t, path)
	var mode string
	if err := s.db.QueryRowContext(context.Background(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&0o077 != 0 || got&want != want {
			t.Errorf("%s mode %v, want %v (findings are private)", p, got, want)
		}
	}
}

func TestSecondOpenInProcessIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	first, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), path)
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	for _, want := range []string{path + ".lock", "vigil process " + strconv.Itoa(os.Getpid()), "another vigil process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ErrLocked message %q does not mention %q", err, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := openT(t, path)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnlyOpenOfAMissingDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	if _, err := Open(context.Background(), path, ReadOnly()); err == nil || !strings.Contains(err.Error(), "no database here yet") {
		t.Fatalf("read-only Open of a missing database: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read-only Open created %s", path)
	}
}
