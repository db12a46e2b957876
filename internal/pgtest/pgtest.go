// Package pgtest runs a real PostgreSQL server (Debian's postgresql package)
// for tests: a throwaway cluster in a temporary directory, listening only on
// 127.0.0.1 on a free port, with one fresh database per test. It skips the
// test, with the reason, when PostgreSQL is not installed, unless
// VIGIL_REQUIRE_POSTGRES=1 (as in CI), when that is a failure.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// RequireEnv makes a missing PostgreSQL a test failure instead of a skip.
const RequireEnv = "VIGIL_REQUIRE_POSTGRES"

// Server is a running throwaway cluster.
type Server struct {
	dir  string
	port int
	bin  string
	as   *user.User // the OS user the server runs as (never root)
}

var (
	once    sync.Once
	shared  *Server
	initErr error
)

// Main runs the package's tests and stops the shared server afterwards;
// call it from TestMain.
func Main(m interface{ Run() int }) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// StopShared stops the shared server if a test started one; TestMain calls
// it after the tests (Main does).
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// URL returns the URL of a new, empty database on the shared server,
// starting the server on first use. It skips (or fails, under
// VIGIL_REQUIRE_POSTGRES=1) when PostgreSQL cannot run here.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, initErr = Start() })
	if initErr != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("PostgreSQL required (%s=1) but not available: %v", RequireEnv, initErr)
		}
		t.Skipf("PostgreSQL not available (apt-get install postgresql; set %s=1 to make this a failure): %v", RequireEnv, initErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := shared.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", shared.url("postgres"))
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return url
}

// CreateDB creates a new, empty database on s and returns its URL.
func (s *Server) CreateDB(ctx context.Context) (string, error) {
	name := "t_" + randomHex(6)
	admin, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.url(name), nil
}

func (s *Server) url(db string) string {
	return fmt.Sprintf("postgres://vigil@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Start initialises a cluster in a new temporary directory and starts it
// on 127.0.0.1. As root, the server runs as the postgres user (it refuses
// to run as root).
func Start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user (from the postgresql package): %w", err)
		}
	}
	if s.dir, err = os.MkdirTemp("", "vigil-pgtest-"); err != nil {
		return nil, err
	}
	if err := s.chown(s.dir); err != nil {
		return nil, err
	}
	data := filepath.Join(s.dir, "data")
	if out, err := s.run(30*time.Second, "initdb", "-D", data, "-U", "vigil", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		s.port, s.dir)
	if out, err := s.run(60*time.Second, "pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(s.dir, "log"), "-w", "-t", "50", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return s, nil
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	_, _ = s.run(30*time.Second, "pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	os.RemoveAll(s.dir)
}

func (s *Server) run(timeout time.Duration, prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.as != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.as.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (s *Server) chown(dir string) error {
	if s.as == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.as.Uid)
	gid, _ := strconv.Atoi(s.as.Gid)
	return os.Chown(dir, uid, gid)
}

// findBin finds Debian's versioned server binaries, newest first.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("initdb not found (apt-get install postgresql)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
