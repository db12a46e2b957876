package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

// The shipped systemd unit parses, with no unknown key or section.
func TestAgentUnitFileVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("VIGIL_REQUIRE_SYSTEMD") == "1" {
			t.Fatal("systemd-analyze required (VIGIL_REQUIRE_SYSTEMD=1) but not installed (Debian package systemd)")
		}
		t.Skip("systemd-analyze not installed (Debian package systemd; VIGIL_REQUIRE_SYSTEMD=1 makes this a failure)")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", "vigil-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's binary and the EnvironmentFile's directory
	// to exist: point them at this build and a temporary file.
	dir := t.TempDir()
	env := filepath.Join(dir, "agent.env")
	if err := os.WriteFile(env, []byte("VIGIL_AGENT_SERVER=https://vigil.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/vigil", vigilBin)
	text = strings.ReplaceAll(text, "/etc/vigil-agent/agent.env", env)
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=vigil-agent", "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN", "ProtectSystem=strict", "Restart=always", "RestartPreventExitStatus=3"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	if strings.Contains(text, "--token") {
		t.Error("the unit passes the token on the command line")
	}
	path := filepath.Join(dir, "vigil-agent.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// Bad flags exit 2 with a message naming the flag; an agent that is not
// enrolled needs a token; status says so.
func TestAgentFlags(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--queue-limit", "lots"}, "--queue-limit"},
		{[]string{"--heartbeat", "10ms"}, "--heartbeat"},
		{[]string{"--server-fingerprint", "12:34"}, "--server-fingerprint"},
		{[]string{"--server-fingerprint", strings.Repeat("ab", 32), "--ca", "x.pem"}, "--server-fingerprint and --ca"},
		{[]string{"--state-dir", state}, "--token is required"},
		{[]string{"--state-dir", state, "--token", "vge1.t." + strings.Repeat("x", 43)}, "--server is required"},
		{[]string{"--state-dir", state, "--token", "nonsense", "--server", "https://127.0.0.1:1"}, "--token"},
		{[]string{"--state-dir", state, "--token", "vge1.t." + strings.Repeat("x", 43), "--server", "http://192.0.2.1:8080"}, "only for a server on loopback"},
		{[]string{"--log-format", "xml"}, "--log-format"},
	} {
		_, stderr, code := vigil(t, append([]string{"agent"}, tc.args...)...)
		if code != exitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("vigil agent %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
		if strings.Contains(stderr, strings.Repeat("x", 43)) {
			t.Errorf("vigil agent %v printed the token: %s", tc.args, stderr)
		}
	}
	stdout, _, code := vigil(t, "agent", "status", "--state-dir", state)
	if code != 1 || !strings.Contains(stdout, "enrolled:    no") {
		t.Errorf("status of an agent never enrolled: exit %d\n%s", code, stdout)
	}
}

// agentProc is a running `vigil agent` with its JSON log lines.
type agentProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []map[string]any
	raw    strings.Builder
	done   chan struct{}
}

func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(vigilBin, append([]string{"agent", "--log-format", "json"}, args...)...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev map[string]any
			p.mu.Lock()
			p.raw.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				p.events = append(p.events, ev)
			}
			p.mu.Unlock()
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
	return p
}

func (p *agentProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

// msgs returns the events whose msg is msg.
func (p *agentProc) msgs(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, e := range p.events {
		if e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool, logs ...func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(l())
			}
			t.Fatalf("after %s: %s never happened\n%s", d, what, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// loginPage serves a login form over plain HTTP on loopback, a finding
// (web.login-form-plaintext) for the agent's scans. It is a bare HTTP/1.0
// server: nmap's service detection names Go's net/http only after 90
// seconds of probes, and this in the time of one.
func loginPage(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.TrimSpace(line) == "" {
						break
					}
				}
				body := `<html><title>Clinic Portal Login</title><form><input type="password" name="p"></form></html>`
				_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nServer: Apache/2.4.57\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"+body)
			}()
		}
	}()
	return ln.Addr().String()
}

var agentTokenRE = regexp.MustCompile(`vge1\.[a-z0-9-]+\.[A-Za-z0-9_-]{32,}`)

// A real vigil agent against a real vigil serve, both on loopback: the
// agent enrolls with a token from the CLI and its scans (real nmap on a
// loopback web server with a plain-HTTP login form) arrive and are judged
// by the server; with the server killed, the agent keeps scanning and
// queues; once the server is back every queued observation arrives exactly
// once (counted per scan in the store against what the agent scanned);
// revoked, the agent is refused and exits 3.
func TestAgentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts vigil serve and vigil agent with real scans")
	}
	if _, err := exec.LookPath("nmap"); err != nil {
		if os.Getenv("VIGIL_LAB_REQUIRED") == "1" {
			t.Fatal("nmap required (VIGIL_LAB_REQUIRED=1) but not installed")
		}
		t.Skip("nmap not installed (apt-get install nmap)")
	}
	webAddr := loginPage(t)
	_, webPort, _ := net.SplitHostPort(webAddr)

	dir := t.TempDir()
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("username,email,display_name,enabled,mfa,last_login,locations,role,is_admin\nfrontdesk,fd@glow.example,Front Desk,true,true,"+time.Now().UTC().Format(time.DateOnly)+",site,reception,false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	cfg := writeConfig(t, fmt.Sprintf(`organization: Agent Test
data_dir: %q
locations: [{id: site, name: Site, scanned_by: agent, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}], ports: %q}]
identity: [{type: csv, system: emr, path: %q}]
telegraf:
  inputs: [{plugin: net_response, location: site, options: {protocol: tcp, address: %q, timeout: 2s}}]
schedules: [{cron: "@every 10s", locations: ["site"]}]
`, dataDir, webPort, users, webAddr))

	// The location is scanned by its agent (scanned_by: agent): the server
	// scans it never, and leaves its telegraf input to the agent, so every
	// scan of location site in the store is the agent's. vigil scan leaves
	// it alone too unless told --location.
	if _, stderr, code := vigil(t, "scan", "--config", cfg, "--only", "network"); code != exitError || !strings.Contains(stderr, "every location is scanned by its site agents") {
		t.Fatalf("vigil scan --only network of an agent-scanned configuration: exit %d\n%s", code, stderr)
	}
	if stdout, stderr, code := vigil(t, "scan", "--config", cfg, "--dry-run"); code != exitOK || !strings.Contains(stderr, "not scanning site: scanned by site agents") || strings.Contains(stdout, "net_response") {
		t.Fatalf("vigil scan --dry-run of an agent-scanned configuration: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code := vigil(t, "agent", "token", "create", "--config", cfg, "--location", "site")
	token := agentTokenRE.FindString(stdout + stderr)
	if code != 0 || token == "" {
		t.Fatalf("vigil agent token create: exit %d\n%s%s", code, stdout, stderr)
	}
	addr := freeLoopbackAddr(t)
	serve := func() *daemonProc {
		return startServe(t, "--config", cfg, "--listen", addr, "--grace", "5s")
	}
	srv := serve()
	state := filepath.Join(dir, "agent-state")
	ag := startAgent(t, "--server", "http://"+addr, "--token", token, "--state-dir", state, "--heartbeat", "1s")
	logs := func() string { return "--- agent ---\n" + ag.log() + "--- server ---\n" + srv.stderr.String() }

	// 1. Enrolled, scanned at once, delivered, judged.
	waitUntil(t, 90*time.Second, "a scan delivered with findings", func() bool {
		for _, e := range ag.msgs("scan delivered") {
			if f, _ := e["findings"].(float64); f > 0 {
				return true
			}
		}
		return false
	}, logs)
	if strings.Contains(ag.log(), token) || strings.Contains(srv.stderr.String(), token) {
		t.Fatal("the enrollment token appears in a log")
	}

	// 2. The server goes away; the agent keeps scanning and queues.
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	queuedAtKill := len(ag.msgs("scan queued for the server"))
	waitUntil(t, 60*time.Second, "two scans queued while the server is down", func() bool {
		return len(ag.msgs("scan queued for the server")) >= queuedAtKill+2 && len(ag.msgs("server unreachable: batches stay queued and scans go on; retrying")) > 0
	}, logs)
	out, _, _ := vigil(t, "agent", "status", "--state-dir", state, "--format", "json")
	var st struct {
		Running bool
		Status  struct {
			QueueDepth int `json:"queue_depth"`
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Running || st.Status.QueueDepth == 0 {
		t.Errorf("agent status while the server is down: %v\n%s", err, out)
	}

	// 3. The server returns: everything queued arrives.
	srv = serve()
	queued := ag.msgs("scan queued for the server")
	waitUntil(t, 90*time.Second, "every scan queued during the outage delivered", func() bool {
		got := map[string]bool{}
		for _, e := range ag.msgs("scan delivered") {
			got[e["scan"].(string)] = true
		}
		for _, e := range queued {
			if !got[e["scan"].(string)] {
				return false
			}
		}
		return true
	}, logs)

	// 4. Count, per delivered scan, the observations in the store against
	// what the agent scanned (the server is stopped: SQLite has one
	// process at a time).
	if code := srv.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("vigil serve exited %d\n%s", code, srv.stderr)
	}
	scanned := map[string]int{}
	for _, e := range ag.msgs("scan queued for the server") {
		n, _ := e["observations"].(float64)
		scanned[e["scan"].(string)] = int(n)
	}
	delivered := map[string]bool{}
	for _, e := range ag.msgs("scan delivered") {
		delivered[e["scan"].(string)] = true
	}
	if len(delivered) < 3 {
		t.Fatalf("%d scans delivered, want at least 3 (one before the outage, two during)", len(delivered))
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, store.DefaultFileName))
	if err != nil {
		t.Fatal(err)
	}
	inStore := map[string]bool{}
	scans, err := db.Scans(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scans {
		if len(s.Locations) == 1 && s.Locations[0] == "site" {
			if _, ok := scanned[s.ID]; ok && s.Complete && !slices.Contains(s.Sources, "telegraf:net_response@site") {
				t.Errorf("scan %s of the agent: sources %v, want telegraf:net_response@site read in full", s.ID, s.Sources)
			}
			if inStore[s.ID] {
				t.Errorf("scan %s stored twice", s.ID)
			}
			inStore[s.ID] = true
		}
	}
	total := 0
	for id := range delivered {
		want, ok := scanned[id]
		if !ok {
			t.Errorf("scan %s delivered but never scanned", id)
			continue
		}
		obs, err := db.Observations(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(obs) != want || want == 0 {
			t.Errorf("scan %s: %d observations in the store, the agent scanned %d", id, len(obs), want)
		}
		if !inStore[id] {
			t.Errorf("scan %s delivered but not in the store's scans", id)
		}
		// The location's telegraf input was read by the agent, under its
		// location-qualified name.
		metrics := 0
		for _, o := range obs {
			if o.Kind == observe.KindMetric && o.Vantage == "telegraf:net_response@site" && o.Location == "site" {
				metrics++
			}
		}
		if metrics != 1 {
			t.Errorf("scan %s: %d net_response metrics from the agent, want 1", id, metrics)
		}
		total += len(obs)
	}
	for _, s := range scans {
		// A scan the agent is still running when the server stops has
		// its begin delivered and no "scan queued" line yet.
		if _, ok := scanned[s.ID]; !ok && inStore[s.ID] && !s.FinishedAt.IsZero() {
			t.Errorf("the store has a finished scan %s of the agent's location that the agent never made", s.ID)
		}
	}
	fs, err := db.Findings(ctx, store.FindingFilter{Locations: []string{"site"}, Rules: []string{"web.login-form-plaintext"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Target != webAddr {
		t.Errorf("findings of the agent's scans: %+v; want web.login-form-plaintext at %s", fs, webAddr)
	}
	db.Close()
	t.Logf("%d scans delivered (%d during the outage), %d observations, each counted once", len(delivered), len(queued)-queuedAtKill, total)

	// 5. Revoked, the agent is refused and exits 3.
	var cred struct {
		AgentID string `json:"agent_id"`
	}
	b, err := os.ReadFile(filepath.Join(state, "credential.json"))
	if err != nil || json.Unmarshal(b, &cred) != nil || cred.AgentID == "" {
		t.Fatalf("credential: %v %s", err, b)
	}
	if out, errOut, code := vigil(t, "agent", "revoke", "--config", cfg, cred.AgentID); code != 0 {
		t.Fatalf("vigil agent revoke: exit %d\n%s%s", code, out, errOut)
	}
	srv = serve()
	select {
	case <-ag.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("revoked agent still running\n%s", logs())
	}
	if code := ag.cmd.ProcessState.ExitCode(); code != exitRefused || !strings.Contains(ag.log(), "THE SERVER REFUSES THIS AGENT") {
		t.Fatalf("revoked agent exited %d; want %d with the refusal logged\n%s", code, exitRefused, logs())
	}
}
