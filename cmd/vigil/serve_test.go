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
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/alerts"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

// hookSecret signs the alert webhook of serveConfig's alerts section.
const hookSecret = "serve-test-hook-secret-0123456789"

// serveConfig is a configuration whose scans need no nmap, no root and no
// network: one CSV identity export, read every second.
func serveConfig(t *testing.T) (cfgPath, dataDir string) {
	return tenantConfig(t, "Serve Test", "frontdesk", false, "")
}

// tenantConfig is serveConfig for organisation org with one account,
// user (an administrator when admin, so without MFA a critical finding),
// and, when hook is set, an alerts webhook channel to it.
func tenantConfig(t *testing.T, org, user string, admin bool, hook string) (cfgPath, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.csv")
	row := fmt.Sprintf("%s,%s@glow.example,Front Desk,true,false,%s,a,reception,%v\n", user, user, time.Now().UTC().Format(time.DateOnly), admin)
	if err := os.WriteFile(users, []byte("username,email,display_name,enabled,mfa,last_login,locations,role,is_admin\n"+row), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir = filepath.Join(dir, "data")
	cfgPath = filepath.Join(dir, "vigil.yaml")
	body := fmt.Sprintf(`organization: %s
data_dir: %q
locations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
identity: [{type: csv, system: emr, path: %q}]
schedules: [{cron: "@every 1s", locations: ["*"]}]
`, org, dataDir, users)
	if hook != "" {
		body += fmt.Sprintf(`alerts:
  min_severity: critical
  channels: [{name: hook, type: webhook, url: %q, secret_env: VIGIL_TEST_HOOK_SECRET, attempts: 1}]
`, hook)
	}
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

var setupLinkRE = regexp.MustCompile(`http://\S+/setup\?token=\S+`)

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startServe(t *testing.T, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(vigilBin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "VIGIL_TEST_HOOK_SECRET="+hookSecret)
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

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
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

	// A scheduled scan runs; the store is checked after shutdown.
	p.waitLog(t, `msg="scan finished"`)
	// No user yet: the one-time setup link is on the console and opens
	// the setup form.
	link := setupLinkRE.FindString(p.stderr.String())
	if link == "" {
		t.Fatalf("no setup link on the console:\n%s", p.stderr)
	}
	if code, body := get(t, c, link); code != 200 || !strings.Contains(body, "first owner") {
		t.Errorf("setup link %s: %d\n%s", link, code, body)
	}
	tok := link[strings.Index(link, "token=")+len("token="):]
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, "msg=") && strings.Contains(line, tok) {
			t.Errorf("the setup token reached the structured log: %s", line)
		}
	}

	if code, body := get(t, c, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, c, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, _ := get(t, c, base+"/metrics"); code != http.StatusUnauthorized {
		t.Errorf("/metrics without signing in: %d, want 401", code)
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
	if code, _ := get(t, c, base+"/readyz"); code != 200 {
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
	if code, _ := get(t, c, "https://"+p.addr+"/healthz"); code != 200 {
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
	same, _ := serveConfig(t) // another file, the same organisation
	other, _ := tenantConfig(t, "Other Spa", "frontdesk", false, "")
	good, _ := os.ReadFile(cfg)
	sameDir := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(sameDir, []byte(strings.Replace(string(good), "Serve Test", "Another Spa", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	noID := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(noID, []byte(strings.Replace(string(good), "organization: Serve Test", "organization: \"!!!\"", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	noSecret, _ := tenantConfig(t, "No Secret", "frontdesk", false, "http://127.0.0.1:9/hook")
	b, _ := os.ReadFile(noSecret)
	if err := os.WriteFile(noSecret, []byte(strings.Replace(string(b), "VIGIL_TEST_HOOK_SECRET", "VIGIL_TEST_NO_SUCH_SECRET", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := writeConfig(t, "organization: T\nlocations:\n  - id: a\n    segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]\nschedules: [{cron: \"* * *\", locations: [\"*\"]}]\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", nil, "--config is required"},
		{"bad config", []string{"--config", bad}, "vigil.yaml:5: schedules[0].cron"},
		{"same organisation twice", []string{"--config", cfg, "--config", same}, "has the tenant id \"serve-test\", as --config"},
		{"same data_dir twice", []string{"--config", cfg, "--config", sameDir}, "each organisation needs its own data_dir"},
		{"db with two organisations", []string{"--config", cfg, "--config", other, "--db", "sqlite:///tmp/x.db"}, "--db names one store"},
		{"no tenant id", []string{"--config", noID}, "no letter or digit"},
		{"alert secret missing", []string{"--config", noSecret}, "VIGIL_TEST_NO_SUCH_SECRET"},
		{"cert without key", []string{"--config", cfg, "--tls-cert", "x.pem"}, "--tls-cert and --tls-key go together"},
		{"unknown part", []string{"--config", cfg, "--only", "everything"}, "--only \"everything\""},
		{"bad listen", []string{"--config", cfg, "--only", "identity", "--listen", "8080"}, "--listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(vigilBin, append([]string{"serve"}, tc.args...)...)
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

// Two organisations from one vigil serve: each configuration's scans land
// in its own store, and nothing of one reaches the other.
func TestServeTenants(t *testing.T) {
	glow, glowData := tenantConfig(t, "Glow Aesthetics", "glowdesk", false, "")
	radiance, radData := tenantConfig(t, "Radiance Med Spa", "raddesk", false, "")
	p := startServe(t, "--config", glow, "--config", radiance, "--only", "identity", "--listen", "127.0.0.1:0", "--grace", "5s")
	for _, want := range []string{"tenant=glow-aesthetics", "tenant=radiance-med-spa", "tenants=2"} {
		p.waitLog(t, want)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(p.stderr.String(), `msg="scan finished"`) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	if code, body := get(t, c, "http://"+p.addr+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.stderr)
	}
	if _, err := os.Stat(filepath.Join(glowData, "users.db")); err != nil {
		t.Errorf("the users database is not in the first configuration's data_dir: %v", err)
	}
	for _, tc := range []struct{ data, mine, theirs string }{
		{glowData, "emr:glowdesk", "emr:raddesk"},
		{radData, "emr:raddesk", "emr:glowdesk"},
	} {
		st, err := sqlite.Open(context.Background(), filepath.Join(tc.data, "vigil.db"))
		if err != nil {
			t.Fatal(err)
		}
		scans, _ := st.Scans(context.Background(), 0)
		fs, _ := st.Findings(context.Background(), store.FindingFilter{})
		st.Close()
		if len(scans) == 0 {
			t.Errorf("%s: no scan stored", tc.data)
		}
		var targets []string
		for _, f := range fs {
			targets = append(targets, f.Target)
		}
		if !slices.Contains(targets, tc.mine) || slices.Contains(targets, tc.theirs) {
			t.Errorf("%s: findings on %v, want %s and not %s", tc.data, targets, tc.mine, tc.theirs)
		}
	}
}

// vigil serve sends a critical finding to a signed webhook once: not on
// the next scans, and not again after a restart over the same store.
func TestServeAlerts(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []string
		bads int
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := alerts.Verify([]byte(hookSecret), r.Header.Get(alerts.SignatureHeader), body, 5*time.Minute, time.Now()); err != nil {
			bads++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p alerts.Payload
		_ = json.Unmarshal(body, &p)
		for _, a := range p.Alerts {
			got = append(got, string(a.Kind)+" "+string(a.Severity)+" "+a.Rule+" "+a.Target)
		}
	}))
	defer hook.Close()
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	cfg, _ := tenantConfig(t, "Alert Spa", "drlee", true, hook.URL+"/vigil")
	want := []string{"new-finding critical id.admin-without-mfa emr:drlee"}

	p := startServe(t, "--config", cfg, "--only", "identity", "--listen", "127.0.0.1:0", "--grace", "5s")
	p.waitLog(t, `msg="alerts delivered" tenant=alert-spa channel=hook alerts=1`)
	n := strings.Count(p.stderr.String(), `msg="scan finished"`)
	for strings.Count(p.stderr.String(), `msg="scan finished"`) < n+3 {
		time.Sleep(50 * time.Millisecond)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr)
	}
	if d := delivered(); !slices.Equal(d, want) {
		t.Fatalf("the receiver got %v, want %v once", d, want)
	}
	if strings.Contains(p.stderr.String(), hookSecret) {
		t.Error("the webhook secret reached the log")
	}

	p = startServe(t, "--config", cfg, "--only", "identity", "--listen", "127.0.0.1:0", "--grace", "5s")
	for strings.Count(p.stderr.String(), `msg="scan finished"`) < 3 {
		time.Sleep(50 * time.Millisecond)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after the restart:\n%s", code, p.stderr)
	}
	if d := delivered(); !slices.Equal(d, want) || bads > 0 {
		t.Errorf("after a restart the receiver got %v (%d badly signed), want only %v", d, bads, want)
	}
}
