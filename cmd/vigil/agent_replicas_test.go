package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/pgtest"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/postgres"
)

// Several site agents with two vigil serve replicas on one PostgreSQL
// database, the shape of an MSP's central server scaled out. Three agents,
// one per location, real nmap on loopback web servers; two push to
// replica A, one to replica B. Replica A is SIGKILLed while its agents
// keep scanning and queue; a new replica A comes back on the same address
// and every queued scan arrives once (counted per scan in the database
// against what each agent scanned). Meanwhile replica B goes on taking the
// third agent's scans, and the organisation schedule both replicas share
// runs once per due slot. Finally the third agent is revoked with both
// replicas up (PostgreSQL takes the CLI's write while they run) and exits 3.
func TestAgentsWithReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: two vigil serve replicas, three vigil agents, real scans")
	}
	if _, err := exec.LookPath("nmap"); err != nil {
		if os.Getenv("VIGIL_LAB_REQUIRED") == "1" {
			t.Fatal("nmap required (VIGIL_LAB_REQUIRED=1) but not installed")
		}
		t.Skip("nmap not installed (apt-get install nmap)")
	}
	url := pgtest.URL(t)
	dir := t.TempDir()

	// One loopback web server per location, each a plain-HTTP login form.
	sites := []string{"north", "south", "east"}
	targets := map[string]string{}
	var locs []string
	for _, s := range sites {
		addr := loginPage(t)
		host, port, _ := net.SplitHostPort(addr)
		targets[s] = addr
		locs = append(locs, fmt.Sprintf("{id: %s, scanned_by: agent, segments: [{name: s, cidr: %s/32, role: servers}], ports: %q}", s, host, port))
	}
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("username,email,display_name,enabled,mfa,last_login,locations,role,is_admin\nfrontdesk,fd@glow.example,Front Desk,true,true,"+
		time.Now().UTC().Format(time.DateOnly)+",north,reception,false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`organization: Fleet Test
data_dir: %q
locations: [%s]
identity: [{type: csv, system: emr, path: %q}]
schedules:
  - {cron: "@every 3s", locations: ["*"]}
  - {cron: "@every 8s", locations: [north, south, east]}
`, filepath.Join(dir, "data"), strings.Join(locs, ", "), users))

	tokens := map[string]string{}
	for _, s := range sites {
		stdout, stderr, code := vigil(t, "agent", "token", "create", "--config", cfg, "--db", url, "--location", s)
		tokens[s] = agentTokenRE.FindString(stdout)
		if code != 0 || tokens[s] == "" {
			t.Fatalf("vigil agent token create --location %s: exit %d\n%s%s", s, code, stdout, stderr)
		}
	}

	// The locations are scanned by their agents (scanned_by: agent), so
	// the replicas scan none of them: every scan of a location in the
	// database is an agent's. The replicas read the organisation's CSV.
	addrA, addrB := freeLoopbackAddr(t), freeLoopbackAddr(t)
	replica := func(addr string) *daemonProc {
		return startServe(t, "--config", cfg, "--db", url, "--listen", addr, "--grace", "5s",
			"--max-jitter", "0s", "--job-timeout", "20s", "--rescue-after", "25s")
	}
	a, b := replica(addrA), replica(addrB)
	server := map[string]string{"north": addrA, "south": addrA, "east": addrB}
	agents := map[string]*agentProc{}
	for _, s := range sites {
		agents[s] = startAgent(t, "--server", "http://"+server[s], "--token", tokens[s],
			"--state-dir", filepath.Join(dir, "agent-"+s), "--heartbeat", "1s")
	}
	logs := func() string {
		var sb strings.Builder
		for _, s := range sites {
			fmt.Fprintf(&sb, "--- agent %s ---\n%s", s, agents[s].log())
		}
		fmt.Fprintf(&sb, "--- replica A ---\n%s--- replica B ---\n%s", a.stderr, b.stderr)
		return sb.String()
	}
	delivered := func(s string) map[string]bool {
		got := map[string]bool{}
		for _, e := range agents[s].msgs("scan delivered") {
			got[e["scan"].(string)] = true
		}
		return got
	}

	// 1. Every agent's first scan arrives, through either replica.
	waitUntil(t, 120*time.Second, "a scan of every location delivered", func() bool {
		for _, s := range sites {
			if len(delivered(s)) == 0 {
				return false
			}
		}
		return true
	}, logs)

	// 2. Replica A dies; its agents queue while B keeps taking east's.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	queuedAt := map[string]int{}
	for _, s := range sites {
		queuedAt[s] = len(agents[s].msgs("scan queued for the server"))
	}
	eastBefore := len(delivered("east"))
	waitUntil(t, 90*time.Second, "north and south queue two scans each while replica A is down, east's go on arriving at B", func() bool {
		return len(agents["north"].msgs("scan queued for the server")) >= queuedAt["north"]+2 &&
			len(agents["south"].msgs("scan queued for the server")) >= queuedAt["south"]+2 &&
			len(delivered("east")) > eastBefore
	}, logs)

	// 3. Replica A returns on its address: everything queued arrives.
	a = replica(addrA)
	queued := map[string][]map[string]any{}
	for _, s := range sites {
		queued[s] = agents[s].msgs("scan queued for the server")
	}
	waitUntil(t, 120*time.Second, "every scan queued during the outage delivered", func() bool {
		for _, s := range sites {
			got := delivered(s)
			for _, e := range queued[s] {
				if !got[e["scan"].(string)] {
					return false
				}
			}
		}
		return true
	}, logs)

	// 4. Count, per delivered scan, the observations in the database
	// against what its agent scanned, while both replicas run.
	ctx := context.Background()
	st, err := postgres.Open(ctx, url, postgres.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	scans, err := st.Scans(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, s := range scans {
		stored[s.ID]++
	}
	total, outage, deliveredScans := 0, 0, 0
	for _, s := range sites {
		scanned := map[string]int{}
		for _, e := range agents[s].msgs("scan queued for the server") {
			n, _ := e["observations"].(float64)
			scanned[e["scan"].(string)] = int(n)
		}
		for id := range delivered(s) {
			want, ok := scanned[id]
			if !ok {
				t.Errorf("%s: scan %s delivered but never scanned", s, id)
				continue
			}
			if stored[id] != 1 {
				t.Errorf("%s: scan %s stored %d times", s, id, stored[id])
			}
			obs, err := st.Observations(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(obs) != want || want == 0 {
				t.Errorf("%s: scan %s has %d observations in the database, the agent scanned %d", s, id, len(obs), want)
			}
			for _, o := range obs {
				if o.Location != s {
					t.Errorf("%s: scan %s holds an observation of location %q", s, id, o.Location)
					break
				}
			}
			total += len(obs)
			deliveredScans++
		}
		outage += len(queued[s]) - queuedAt[s]
	}
	for _, s := range sites {
		fs, err := st.Findings(ctx, store.FindingFilter{Locations: []string{s}, Rules: []string{"web.login-form-plaintext"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 || fs[0].Target != targets[s] {
			t.Errorf("%s: findings %+v; want web.login-form-plaintext at %s", s, fs, targets[s])
		}
	}

	// 5. The organisation schedule both replicas share ran once per due
	// slot, through the outage.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dup, orgRuns int
	if err := db.QueryRow(`SELECT count(*) FROM (SELECT args->>'location', args->>'due' FROM river_job WHERE kind = 'vigil_scan' GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d due slots of the shared schedule have more than one job", dup)
	}
	if err := db.QueryRow(`SELECT count(*) FROM river_job WHERE kind = 'vigil_scan' AND state = 'completed'`).Scan(&orgRuns); err != nil {
		t.Fatal(err)
	}
	if orgRuns == 0 {
		t.Error("the shared organisation schedule never ran")
	}

	// 6. "Scan now" for south (as the dashboard asks it): south's agent,
	// and no other, takes it at its next heartbeat.
	rw, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rw.RequestScan(ctx, "south", "tester"); err != nil || n != 1 {
		t.Fatalf("RequestScan(south) = %d, %v; want its one agent", n, err)
	}
	rw.Close()
	asked := func(s string) int {
		return len(agents[s].msgs("scan requested by the server: starting")) + len(agents[s].msgs("scan requested by the server: one is already running or queued"))
	}
	waitUntil(t, 30*time.Second, "south's agent takes the requested scan", func() bool { return asked("south") == 1 }, logs)
	if n := asked("north") + asked("east"); n != 0 {
		t.Errorf("%d requested scans taken by other locations' agents", n)
	}

	// 7. Revoked while both replicas run, east's agent is refused and exits 3.
	var cred struct {
		AgentID string `json:"agent_id"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "agent-east", "credential.json"))
	if err != nil || json.Unmarshal(raw, &cred) != nil || cred.AgentID == "" {
		t.Fatalf("east's credential: %v %s", err, raw)
	}
	if out, errOut, code := vigil(t, "agent", "revoke", "--config", cfg, "--db", url, cred.AgentID); code != 0 {
		t.Fatalf("vigil agent revoke: exit %d\n%s%s", code, out, errOut)
	}
	select {
	case <-agents["east"].done:
	case <-time.After(60 * time.Second):
		t.Fatalf("revoked agent still running\n%s", logs())
	}
	if code := agents["east"].cmd.ProcessState.ExitCode(); code != exitRefused {
		t.Fatalf("revoked agent exited %d, want %d\n%s", code, exitRefused, logs())
	}
	for _, p := range []*daemonProc{a, b} {
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("replica exited %d:\n%s", code, p.stderr)
		}
	}
	t.Logf("%d agent scans delivered through two replicas (%d queued during replica A's outage), %d observations, each stored once; %d organisation runs, one per due slot",
		deliveredScans, outage, total, orgRuns)
}
