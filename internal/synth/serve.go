package synth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServeOptions start `vigil serve` over a generated directory.
type ServeOptions struct {
	// Vigil is the vigil binary.
	Vigil string
	// Dir is a generated directory vigil may write to (a copy of a
	// cached one: see CopyDir).
	Dir string
	// Args are extra flags for vigil serve.
	Args []string
	// Log, when set, also receives the server's stderr.
	Log io.Writer
	// Ready bounds the wait for /healthz (default 60s).
	Ready time.Duration
	// Network leaves out --only identity. Only for a configuration with
	// no schedules and no addresses a scan now could reach (Fleet's),
	// which has no identity source for --only to read.
	Network bool
}

// Server is a running `vigil serve` on a loopback port.
type Server struct {
	// URL is http://127.0.0.1:PORT, without a trailing slash.
	URL string
	// Token is the shared dashboard token the server was started with
	// (VIGIL_DASHBOARD_TOKEN), for a vigil whose dashboard still has one.
	Token string
	cmd   *exec.Cmd
	log   *logBuffer
	done  chan struct{}
	err   error
}

// logBuffer keeps the server's stderr for SetupURL and error messages.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.tee != nil {
		l.tee.Write(p)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// FreeLoopbackAddr returns a 127.0.0.1 address with a port free right now.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveFlags lists the flags `vigil serve --help` mentions, so the
// harness passes only flags this build of vigil knows.
func serveFlags(ctx context.Context, vigil string) string {
	out, _ := exec.CommandContext(ctx, vigil, "serve", "--help").CombinedOutput()
	return string(out)
}

// StartServe starts vigil serve on a free 127.0.0.1 port over o.Dir and
// waits until /healthz answers. Scanning stays off: the configuration has
// no schedules, and when the build has --only the server runs with
// --only identity, so even a "scan now" reads only the CSV exports.
func StartServe(ctx context.Context, o ServeOptions) (*Server, error) {
	if o.Ready <= 0 {
		o.Ready = 60 * time.Second
	}
	addr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	help := serveFlags(ctx, o.Vigil)
	args := []string{"serve", "--config", filepath.Join(o.Dir, ConfigFile), "--listen", addr}
	if strings.Contains(help, "-only") && !o.Network {
		args = append(args, "--only", "identity")
	}
	if strings.Contains(help, "-max-jitter") {
		args = append(args, "--max-jitter", "0s")
	}
	args = append(args, o.Args...)
	tok := make([]byte, 24)
	rand.Read(tok)
	s := &Server{URL: "http://" + addr, Token: hex.EncodeToString(tok), log: &logBuffer{tee: o.Log}, done: make(chan struct{})}
	// Not CommandContext: Stop ends it with SIGTERM, not SIGKILL.
	s.cmd = exec.Command(o.Vigil, args...)
	s.cmd.Env = append(os.Environ(), "VIGIL_DASHBOARD_TOKEN="+s.Token)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Vigil, err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(o.Ready)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("vigil serve exited (%v) before answering; its log:\n%s", s.err, tail(s.log.String(), 40))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := client.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("vigil serve did not answer /healthz within %s; its log:\n%s", o.Ready, tail(s.log.String(), 40))
		}
	}
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Log returns what the server wrote to stderr so far.
func (s *Server) Log() string { return s.log.String() }

var setupRE = regexp.MustCompile(`https?://[^\s"']+/setup\?token=[A-Za-z0-9_\-%.=]+`)

// SetupURL waits up to timeout for the first-start setup link vigil serve
// prints when no dashboard user exists, and returns it with its host
// replaced by the server's loopback address.
func (s *Server) SetupURL(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if m := setupRE.FindString(s.log.String()); m != "" {
			_, rest, _ := strings.Cut(m, "/setup?")
			return s.URL + "/setup?" + rest, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("vigil serve printed no /setup?token= link within %s (does this build have first-start setup?)", timeout)
		}
		select {
		case <-s.done:
			return "", fmt.Errorf("vigil serve exited: %v", s.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Memory is a process's resident memory from /proc/PID/status.
type Memory struct {
	RSS, HWM int64 // VmRSS and VmHWM (peak), bytes
}

// ProcMemory reads VmRSS and VmHWM of pid.
func ProcMemory(pid int) (Memory, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) != 2 || fs[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.HWM = n << 10
		}
	}
	return m, sc.Err()
}

// Stop sends SIGTERM and waits up to 30s for a clean exit, then kills.
// It returns an error when the server did not exit cleanly.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return s.err
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return errors.New("vigil serve did not stop within 30s of SIGTERM; killed")
	}
	return s.err
}
