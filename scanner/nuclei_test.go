package scanner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

)

// One engine serves every integration test: compiling the pack is the slow
// part, and sharing it also checks that one engine runs different template
// sets against different targets.
var (
	nucleiTestOnce   sync.Once
	nucleiTestEngine *Nuclei
	nucleiTestErr    error
	nucleiTestInit   time.Duration
)

func nucleiEngine(t *testing.T) *Nuclei {
	t.Helper()
	nucleiTestOnce.Do(func() {
		start := time.Now()
		nucleiTestEngine, nucleiTestErr = NewNuclei(context.Background(), NucleiOptions{
			RateLimit:   50,
			Timeout:     2 * time.Second,
			Concurrency: 8,
			Logger:      nucleiTestLogger(),
		})
		nucleiTestInit = time.Since(start)
	})
	if nucleiTestErr != nil {
		t.Fatalf("NewNuclei: %v", nucleiTestErr)
	}
	t.Logf("engine init took %v (once per test binary)", nucleiTestInit)
	return nucleiTestEngine
}

func TestMain(m *testing.M) {
	code := m.Run()
	if nucleiTestEngine != nil {
		_ = nucleiTestEngine.Close()
	}
	os.Exit(code)
}

// nucleiTestLogger shows nuclei's debug output with VIGIL_TEST_DEBUG=1.
func nucleiTestLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("VIGIL_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// nucleiRun runs the templates tagged tags against target and returns the
// ids that matched, with the results.
func nucleiRun(t *testing.T, target string, tags ...string) ([]string, []NucleiResult) {
	t.Helper()
	n := nucleiEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	res, err := n.Run(ctx, []NucleiJob{{Target: target, Tags: tags}}, nil)
	if err != nil {
		t.Fatalf("Run(%s, %v): %v", target, tags, err)
	}
	t.Logf("Run(%s, %v) took %v: %d result(s)", target, tags, time.Since(start), len(res))
	var ids []string
	for _, r := range res {
		t.Logf("  %s %s:%d/%s extracted=%q details=%q", r.TemplateID, r.Host, r.Port, r.Proto, r.Extracted, r.Details)
		ids = append(ids, r.TemplateID)
	}
	return ids, res
}

func nucleiWant(t *testing.T, ids []string, id string, match bool) {
	t.Helper()
	if got := slices.Contains(ids, id); got != match {
		t.Fatalf("%s matched = %v, want %v (matched: %v)", id, got, match, ids)
	}
}

func nucleiResultFor(t *testing.T, res []NucleiResult, id string) NucleiResult {
	t.Helper()
	for _, r := range res {
		if r.TemplateID == id {
			return r
		}
	}
	t.Fatalf("no result for %s", id)
	return NucleiResult{}
}

// --- helpers for daemons on loopback ---

// nucleiFreePort returns a loopback port that was free a moment ago.
func nucleiFreePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Skipf("cannot bind a UDP port on loopback: %v", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Skipf("cannot bind a TCP port on loopback: %v", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

func nucleiNeedBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Skipf("%s not installed (apt-get install the package providing it)", name)
	}
	return p
}

func nucleiNeedRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

// nucleiDaemon starts a daemon in the foreground, kills it in t.Cleanup
// and returns its output so far on demand.
func nucleiDaemon(t *testing.T, name string, args ...string) func() string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	var mu sync.Mutex
	w := nucleiLockedWriter{w: &out, mu: &mu}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
}

type nucleiLockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l nucleiLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// nucleiWaitTCP waits until addr accepts TCP connections.
func nucleiWaitTCP(t *testing.T, addr string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never accepted connections; daemon output:\n%s", addr, logs())
}

func nucleiWriteFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// --- the pack itself ---

func TestNucleiPackLoads(t *testing.T) {
	n := nucleiEngine(t)
	want := []string{
		"vigil-ftp-anonymous", "vigil-http-login-plaintext", "vigil-mqtt-anonymous",
		"vigil-redis-unauth", "vigil-smb-guest", "vigil-smb-signing-not-required",
		"vigil-snmp-public", "vigil-telnet-banner", "vigil-tls-sslv3", "vigil-vnc-noauth",
	}
	got := n.Templates()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("templates = %v\nwant %v", got, want)
	}
	for _, tpl := range n.pack {
		if v, ok := tpl.Info.Metadata["vigil-check"].(bool); !ok || !v {
			t.Errorf("%s: metadata vigil-check: true missing", tpl.ID)
		}
		if tpl.Info.Description == "" || tpl.Info.Name == "" {
			t.Errorf("%s: name and description are required", tpl.ID)
		}
	}
}

func TestNucleiBadExtraDir(t *testing.T) {
	empty := t.TempDir()
	file := nucleiWriteFile(t, filepath.Join(t.TempDir(), "x.yaml"), "id: x\n")
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), file, empty} {
		_, err := NewNuclei(context.Background(), NucleiOptions{ExtraTemplateDirs: []string{dir}, Logger: nucleiTestLogger()})
		if !errors.Is(err, ErrNucleiTemplateDir) || !strings.Contains(err.Error(), dir) {
			t.Errorf("NewNuclei(extra %s) error = %v, want ErrNucleiTemplateDir naming the directory", dir, err)
		}
	}
}

func TestNucleiRunRejectsHostnames(t *testing.T) {
	n := nucleiEngine(t)
	for _, target := range []string{"localhost:6379", "127.0.0.1", "127.0.0.1:0", "example.com:80"} {
		if _, err := n.Run(context.Background(), []NucleiJob{{Target: target, Tags: []string{"redis"}}}, nil); !errors.Is(err, ErrNucleiTarget) {
			t.Errorf("Run(%q) error = %v, want ErrNucleiTarget", target, err)
		}
	}
}

// --- Redis ---

func TestNucleiRedis(t *testing.T) {
	bin := nucleiNeedBinary(t, "redis-server")
	for _, tc := range []struct {
		name  string
		extra []string
		match bool
	}{
		{"no-auth", nil, true},
		{"requirepass", []string{"--requirepass", "s3cret-vigil"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := nucleiFreePort(t, "tcp")
			args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
				"--appendonly", "no", "--dir", t.TempDir(), "--protected-mode", "no"}, tc.extra...)
			logs := nucleiDaemon(t, bin, args...)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			nucleiWaitTCP(t, addr, logs)
			ids, res := nucleiRun(t, addr, "redis")
			nucleiWant(t, ids, "vigil-redis-unauth", tc.match)
			if tc.match {
				r := nucleiResultFor(t, res, "vigil-redis-unauth")
				if len(r.Extracted) == 0 || !strings.Contains(r.Extracted[0], ".") {
					t.Errorf("extracted version = %q", r.Extracted)
				}
				if r.Host != "127.0.0.1" || r.Port != port || r.Proto != "tcp" {
					t.Errorf("result address = %s:%d/%s", r.Host, r.Port, r.Proto)
				}
			}
		})
	}
}
