package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/store/sqlite"
)

const serveToken = "serve-test-token-0123456789"

// serveConfig is a configuration whose scans need no nmap, no root and no
// network: one CSV identity export, read every second.
func serveConfig(t *testing.T) (cfgPath, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("username,email,display_name,enabled,mfa,last_login,locations,role,is_admin\nfrontdesk,frontdesk@glow.example,Front Desk,true,false,2025-03-01,a,reception,false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir = filepath.Join(dir, "data")
	cfgPath = filepath.Join(dir, "vigil.yaml")
	body := fmt.Sprintf(`organization: Serve Test
data_dir: %q
locations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
identity: [{type: csv, system: emr, path: %q}]
schedules: [{cron: "@every 1s", locations: ["*"]}]
`, dataDir, users)
	if err := os.WriteFile(cfgPath, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dataDir
}

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) add(s string) { l.mu.Lock(); l.b.WriteString(s); l.mu.Unlock() }
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemonProc is a running `vigil serve`.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	addr   string
	done   chan struct{}
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startServe(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(vigilBin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "VIGIL_DASHBOARD_TOKEN="+serveToken)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.add(line + "\n")
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.addr = <-addr:
	case <-p.done:
		t.Fatalf("vigil serve exited %d before listening:\n%s", cmd.ProcessState.ExitCode(), p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("vigil serve did not start listening:\n%s", p.stderr)
	}
	return p
}

func (p *daemonProc) waitLog(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", what, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *daemonProc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("vigil serve did not exit after %v:\n%s", sig, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

func get(t *testing.T, c *http.Client, url string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+serveToken)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// vigil serve on loopback: a scheduled scan lands in the store, the probes
// and /metrics answer, a broken config on SIGHUP is refused and the old
// one kept, and SIGTERM stops it cleanly with the store closed.
func TestServeEndToEnd(t *testing.T) {
	cfg, dataDir := serveConfig(t)
	p := startServe(t, "--config", cfg, "--only", "identity", "--listen", "127.0.0.1:0", "--grace", "5s")
	base := "http://" + p.addr
	c := &http.Client{Timeout: 10 * time.Second}

	// A scheduled scan lands in the store.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, c, base+"/api/v1/scans", true)
		var out struct {
			Scans []struct {
				ID       string   `json:"id"`
				Complete bool     `json:"complete"`
				Sources  []string `json:"sources"`
			} `json:"scans"`
		}
		if code == 200 && json.Unmarshal([]byte(body), &out) == nil && len(out.Scans) > 0 && out.Scans[0].Complete {
			if s := out.Scans[0]; len(s.Sources) != 1 || s.Sources[0] != "csv:emr" {
				t.Errorf("scan %+v: want the csv:emr source read", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled scan in the store (last answer %d %s):\n%s", code, body, p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if code, body := get(t, c, base+"/healthz", false); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, c, base+"/readyz", false); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, _ := get(t, c, base+"/metrics", false); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", code)
	}
	code, body := get(t, c, base+"/metrics", true)
	for _, want := range []string{
		`vigil_daemon_scans_started_total{location="_org"}`,
		`vigil_daemon_scans_skipped_total{location="_org"}`,
		`vigil_daemon_last_scan_finished_seconds{location="_org"}`,
		"vigil_daemon_running_scans",
		`vigil_findings_count{category="missing-mfa",location="_org"`, // the posture metrics
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q:\n%s", code, want, body)
		}
	}

	// SIGHUP with a broken file: logged with file and line, old schedules kept.
	good, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(good), "@every 1s", "61 * * * *", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "reload failed: keeping the running configuration")
	if !strings.Contains(p.stderr.String(), "vigil.yaml:5: schedules[0].cron") {
		t.Errorf("the reload failure does not name file and line:\n%s", p.stderr)
	}
	if code, _ := get(t, c, base+"/readyz", false); code != 200 {
		t.Errorf("/readyz after a refused reload: %d", code)
	}
	n := strings.Count(p.stderr.String(), `msg="scan finished"`)
	time.Sleep(2500 * time.Millisecond)
	if m := strings.Count(p.stderr.String(), `msg="scan finished"`); m <= n {
		t.Errorf("no scan ran after the refused reload (%d before, %d after): the old schedule was dropped", n, m)
	}

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0:\n%s", code, p.stderr)
	}
	for _, want := range []string{"shutting down", "scheduler stopped", "store closed", "msg=stopped"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.stderr)
		}
	}
	// The store was closed: another process may open it for writing.
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, "vigil.db"))
	if err != nil {
		t.Fatalf("store after shutdown: %v", err)
	}
	defer st.Close()
	scans, err := st.Scans(context.Background(), 100)
	if err != nil || len(scans) == 0 {
		t.Fatalf("scans after shutdown: %d, %v", len(scans), err)
	}
	for _, s := range scans {
		if s.FinishedAt.IsZero() {
			t.Errorf("scan %s left running by a graceful shutdown", s.ID)
		}
	}
}

// With --tls-cert and --tls-key, even loopback is served over HTTPS.
func TestServeTLSCertificate(t *testing.T) {
	cfg, _ := serveConfig(t)
	ss, err := daemon.LoadOrCreateSelfSigned(filepath.Join(t.TempDir(), "tls"), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, "--config", cfg, "--only", "identity", "--listen", "127.0.0.1:0", "--tls-cert", ss.CertFile, "--tls-key", ss.KeyFile)
	pool := x509.NewCertPool()
	pool.AddCert(ss.Certificate.Leaf)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, _ := get(t, c, "https://"+p.addr+"/healthz", false); code != 200 {
		t.Errorf("https /healthz: %d", code)
	}
	if !strings.Contains(p.stderr.String(), "scheme=https") {
		t.Errorf("log does not say https:\n%s", p.stderr)
	}
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit %d after SIGINT:\n%s", code, p.stderr)
	}
}

func TestServeRefusesBadFlagsAndConfig(t *testing.T) {
	cfg, _ := serveConfig(t)
	bad := writeConfig(t, "organization: T\nlocations:\n  - id: a\n    segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]\nschedules: [{cron: \"* * *\", locations: [\"*\"]}]\n")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"no config", nil, serveToken, "--config is required"},
		{"bad config", []string{"--config", bad}, serveToken, "vigil.yaml:5: schedules[0].cron"},
		{"no token", []string{"--config", cfg}, "", "VIGIL_DASHBOARD_TOKEN"},
		{"short token", []string{"--config", cfg}, "short", "at least 16"},
		{"cert without key", []string{"--config", cfg, "--tls-cert", "x.pem"}, serveToken, "--tls-cert and --tls-key go together"},
		{"unknown part", []string{"--config", cfg, "--only", "everything"}, serveToken, "--only \"everything\""},
		{"bad listen", []string{"--config", cfg, "--only", "identity", "--listen", "8080"}, serveToken, "--listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(vigilBin, append([]string{"serve"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "VIGIL_DASHBOARD_TOKEN="+tc.env)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
			}
		})
	}
	_, stderr, code := vigil(t, "serve", "--help")
	if code != 0 || !strings.Contains(stderr, "Example:") || !strings.Contains(stderr, "--grace") {
		t.Errorf("--help: exit %d\n%s", code, stderr)
	}
}
