//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// The test binary re-executes itself as a second vigil process: with
// childEnv set, TestMain runs the named child role instead of the tests.
const (
	childEnv   = "VIGIL_STORE_TEST_CHILD"
	childDBEnv = "VIGIL_STORE_TEST_DB"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "hold":
		childHold(os.Getenv(childDBEnv))
	case "crash-in-finish":
		childCrashInFinish(os.Getenv(childDBEnv))
	default:
		fmt.Fprintf(os.Stderr, "unknown child role %q\n", os.Getenv(childEnv))
		os.Exit(2)
	}
}

// childHold opens the store, says "ready", and holds it until stdin closes.
func childHold(path string) {
	s, err := Open(context.Background(), path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		os.Exit(3)
	}
	os.Exit(0)
}

// scan2 would resolve rdp, see telnet and open tls10.
var crashScan = observe.Scan{ID: "s2", StartedAt: at(1), FinishedAt: at(2), Locations: []string{"downtown"}, Complete: true}

// childCrashInFinish dies by SIGKILL inside FinishScan's transaction, after
// every statement ran and before the commit.
func childCrashInFinish(path string) {
	s, err := Open(context.Background(), path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	s.core.SetBeforeCommit(func(context.Context) error {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // wait for the signal
	})
	_, _, err = s.FinishScan(context.Background(), crashScan, []observe.Finding{telnet, tls10})
	fmt.Println("FinishScan returned:", err)
	os.Exit(4)
}

func child(t *testing.T, role, path string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childDBEnv+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// startHolder starts a child process that holds the store open.
func startHolder(t *testing.T, path string) (cmd *exec.Cmd, stdin io.WriteCloser) {
	t.Helper()
	cmd = child(t, "hold", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // this test's own child, if still running
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("child did not open the store: %q, %v", line, err)
	}
	return cmd, stdin
}

func TestSecondProcessIsLocked(t *testing.T) {
	tests := []struct {
		name string
		stop func(cmd *exec.Cmd, stdin io.WriteCloser) error
	}{
		{"holder closes the store", func(cmd *exec.Cmd, stdin io.WriteCloser) error {
			stdin.Close()
			return cmd.Wait()
		}},
		{"holder crashes", func(cmd *exec.Cmd, _ io.WriteCloser) error {
			// A crashed vigil must not leave a stale lock behind.
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vigil.db")
			cmd, stdin := startHolder(t, path)

			_, err := Open(context.Background(), path)
			if !errors.Is(err, store.ErrLocked) {
				t.Fatalf("Open while another process holds the store: %v, want ErrLocked", err)
			}
			for _, want := range []string{path + ".lock", "vigil process " + strconv.Itoa(cmd.Process.Pid)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("ErrLocked message %q does not mention %q", err, want)
				}
			}
			// A reader is still welcome.
			r := openT(t, path, ReadOnly())
			r.Close()

			if err := tt.stop(cmd, stdin); err != nil {
				t.Fatalf("child: %v", err)
			}
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatalf("Open after the other process stopped: %v", err)
			}
			s.Close()
		})
	}
}

// A vigil killed in the middle of FinishScan leaves the database as it was
// before that scan: it opens, passes SQLite's integrity check, and has the
// previous findings and history.
func TestCrashInsideFinishScanKeepsPreviousState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openT(t, path)
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}, rdp, telnet)
	if err := s.BeginScan(context.Background(), crashScan); err != nil {
		t.Fatal(err)
	}
	before := byID(t, s)
	histBefore, _ := s.FindingHistory(context.Background(), rdp.ID)
	s.Close()

	cmd := child(t, "crash-in-finish", path)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child: %v, output %q; want it killed", err, out)
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, output %q; want death by SIGKILL inside the transaction", err, out)
	}

	s = openT(t, path)
	var check string
	if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check after crash = %q, %v", check, err)
	}
	if after := byID(t, s); !reflect.DeepEqual(after, before) {
		t.Errorf("findings after crash:\n got %v\nwant %v", after, before)
	}
	if h, _ := s.FindingHistory(context.Background(), rdp.ID); !reflect.DeepEqual(h, histBefore) {
		t.Errorf("history after crash = %v, want %v", h, histBefore)
	}
	// The interrupted scan is still running and can be finished now.
	deadline, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, resolved, err := s.FinishScan(deadline, crashScan, []observe.Finding{telnet, tls10}); err != nil || len(resolved) != 1 || resolved[0].ID != rdp.ID {
		t.Errorf("finishing the scan after the crash: resolved %v, %v; want rdp", ids(resolved), err)
	}
}
