package dashboard

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/users"
)

var (
	agentTokenRE   = regexp.MustCompile(`data-testid="agent-token">([^<]+)<`)
	agentCommandRE = regexp.MustCompile(`data-testid="agent-command">([^<]+)<`)
)

// An owner creates a one-time enrollment token (shown once, with the
// command to paste), the agent shows with its health and goes quiet when
// unheard from, and revoking it is recorded; readers see only their
// locations' agents, and only owners and admins change anything.
func TestAgentsPage(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) { o.AgentServerFingerprint = "AB:CD:EF" })
	ctx := context.Background()
	o := f.client().login("glow", f.owner())

	r := o.post("/agents/tokens", url.Values{"location": {"downtown"}, "expires": {"2h"}})
	if r.code != http.StatusOK {
		t.Fatalf("create token: %d\n%s", r.code, r.body)
	}
	tok, err := protocol.ParseToken(html.UnescapeString(field(t, agentTokenRE, r.body)))
	if err != nil || tok.Tenant != "glow" {
		t.Fatalf("token %q: %v", tok, err)
	}
	cmd := html.UnescapeString(field(t, agentCommandRE, r.body))
	if want := "vigil agent --server " + f.srv.URL + " --token " + tok.String() + " --server-fingerprint AB:CD:EF"; cmd != want {
		t.Errorf("command %q, want %q", cmd, want)
	}
	if again := o.get("/agents"); strings.Contains(again.body, tok.Secret) {
		t.Error("the token is shown again")
	}
	if strings.Contains(f.logs.String(), tok.Secret) {
		t.Error("the token reached the log")
	}
	if ev := f.audits("glow", users.ActionChange); len(ev) == 0 || !strings.HasPrefix(ev[0].Target, "agent-token:") || strings.Contains(ev[0].Detail+ev[0].Target, tok.Secret) {
		t.Errorf("audit: %+v", ev)
	}
	toks, _ := f.glow.EnrollTokens(ctx)
	if len(toks) != 1 || toks[0].Hash != tok.Hash() || toks[0].CreatedBy != "olivia" || toks[0].Location != "downtown" ||
		toks[0].ExpiresAt.Sub(toks[0].CreatedAt) != 2*time.Hour {
		t.Errorf("stored tokens %+v", toks)
	}
	for _, bad := range []url.Values{{"location": {"nowhere"}}, {"location": {"downtown"}, "expires": {"90d"}}} {
		if r := o.post("/agents/tokens", bad); r.code != http.StatusBadRequest {
			t.Errorf("token %v: %d, want 400", bad, r.code)
		}
	}

	// Two agents enroll; the uptown one was last heard from an hour ago.
	down, err := f.glow.EnrollAgent(ctx, tok.Hash(), store.Agent{Hostname: "sensor-downtown", PublicKey: make([]byte, 32)})
	must(t, err)
	must(t, f.glow.RecordHeartbeat(ctx, down.ID, store.AgentHealth{Version: "1.4.0", QueueDepth: 3, QueueBytes: 2048}))
	up := protocol.NewToken("glow")
	must(t, f.glow.CreateEnrollToken(ctx, store.EnrollToken{Hash: up.Hash(), Location: "uptown", ExpiresAt: time.Now().Add(time.Hour)}))
	upAgent, err := f.glow.EnrollAgent(ctx, up.Hash(), store.Agent{Hostname: "sensor-uptown", PublicKey: make([]byte, 32)})
	must(t, err)
	// The uptown agent was last heard from an hour ago (set behind the
	// store's back: its clock is the real one).
	if _, err := f.glow.SQL().ExecContext(ctx, `UPDATE agents SET last_seen = $1 WHERE id = $2`,
		f.clk.now().Add(-time.Hour).UTC().Format("2006-01-02T15:04:05.000000000Z"), upAgent.ID); err != nil {
		t.Fatal(err)
	}

	var page agentsPage
	r = o.get("/api/v1/agents")
	if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &page) != nil {
		t.Fatalf("api: %d %s", r.code, r.body)
	}
	status := map[string]string{}
	for _, a := range page.Agents {
		status[a.Hostname] = a.Status
	}
	if status["sensor-downtown"] != store.AgentOK || status["sensor-uptown"] != store.AgentQuiet || page.QuietAfter != "30m0s" {
		t.Errorf("statuses %v (quiet after %s)", status, page.QuietAfter)
	}
	r = o.get("/agents")
	if !strings.Contains(r.body, "sensor-uptown") || !strings.Contains(r.body, `<span class="status-quiet">quiet</span>`) || !strings.Contains(r.body, "1.4.0") {
		t.Errorf("agents page after an hour:\n%s", r.body)
	}

	// A location manager sees downtown's agent only, and cannot revoke it.
	lm := f.as("lena", users.RoleLocationManager, "downtown")
	r = lm.get("/agents")
	if !strings.Contains(r.body, "sensor-downtown") || strings.Contains(r.body, "sensor-uptown") || strings.Contains(r.body, "create-agent-token") {
		t.Errorf("location manager's page:\n%s", r.body)
	}
	if r := lm.post("/agents/"+down.ID+"/revoke", nil); r.code != http.StatusForbidden {
		t.Errorf("location manager revokes: %d, want 403", r.code)
	}
	if r := lm.post("/agents/"+upAgent.ID+"/revoke", nil); r.code != http.StatusNotFound {
		t.Errorf("location manager revokes another location's agent: %d, want 404", r.code)
	}
	a := f.as("ana", users.RoleAnalyst)
	if r := a.post("/agents/tokens", url.Values{"location": {"downtown"}}); r.code != http.StatusForbidden {
		t.Errorf("analyst creates a token: %d, want 403", r.code)
	}
	// Without the CSRF token: refused.
	if r := o.do(http.MethodPost, "/agents/"+down.ID+"/revoke", url.Values{}); r.code != http.StatusForbidden {
		t.Errorf("revoke without CSRF: %d, want 403", r.code)
	}

	r = o.post("/agents/"+down.ID+"/revoke", nil)
	if r.code != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", r.code, r.body)
	}
	got, _ := f.glow.Agent(ctx, down.ID)
	if !got.Revoked() || got.RevokedBy != "olivia" {
		t.Errorf("after revoke: %+v", got)
	}
	if ev := f.audits("glow", users.ActionChange); len(ev) == 0 || ev[0].Target != "agent:"+down.ID {
		t.Errorf("revocation not audited: %+v", ev)
	}
	if r := o.get(r.loc()); !strings.Contains(r.body, `<span class="status-revoked">revoked</span>`) {
		t.Errorf("revoked agent not shown as such:\n%s", r.body)
	}
}

// "Scan now" for a location its site agents scan asks them (the first to
// send a heartbeat takes it) instead of the server's scheduler; with no
// agent enrolled it says so. The Agents page shows the pending request,
// and warns of a location with agents that the server also scans.
func TestScanNowAsksTheSiteAgent(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) {
		o.Tenants[0].Config = loadConfig(t, strings.Replace(glowYAML, "    name: Uptown Spa\n", "    name: Uptown Spa\n    scanned_by: agent\n", 1))
	})
	ctx := context.Background()
	o := f.client().login("glow", f.owner())
	if r := o.get("/scans"); !strings.Contains(r.body, `<option value="uptown">uptown (its site agent)</option>`) {
		t.Fatalf("scans page offers no scan of uptown by its agent:\n%s", r.body)
	}
	r := o.post("/scans/now", url.Values{"location": {"uptown"}})
	if r.code != http.StatusSeeOther || !strings.Contains(r.loc(), url.QueryEscape("none is enrolled")) {
		t.Errorf("scan now of uptown without an agent: %d %s", r.code, r.loc())
	}

	enroll := func(loc, host string) store.Agent {
		tok := protocol.NewToken("glow")
		must(t, f.glow.CreateEnrollToken(ctx, store.EnrollToken{Hash: tok.Hash(), Location: loc, ExpiresAt: time.Now().Add(time.Hour)}))
		a, err := f.glow.EnrollAgent(ctx, tok.Hash(), store.Agent{Hostname: host, PublicKey: make([]byte, 32)})
		must(t, err)
		return a
	}
	up := enroll("uptown", "sensor-uptown")
	r = o.post("/scans/now", url.Values{"location": {"uptown"}})
	if r.code != http.StatusSeeOther || !strings.Contains(r.loc(), url.QueryEscape("asked of its site agent")) {
		t.Fatalf("scan now of uptown: %d %s", r.code, r.loc())
	}
	f.scans.mu.Lock()
	local := slices.Clone(f.scans.now)
	f.scans.mu.Unlock()
	if len(local) != 0 {
		t.Errorf("the server's scheduler was asked for %v", local)
	}
	if a, _ := f.glow.Agent(ctx, up.ID); a.ScanRequestedBy != "olivia" || a.ScanRequestedAt.IsZero() {
		t.Errorf("agent after the request: %+v", a)
	}
	if ev := f.audits("glow", users.ActionChange); len(ev) == 0 || ev[0].Target != "scan-now:uptown" {
		t.Errorf("request not audited: %+v", ev)
	}
	if r := o.get("/agents"); !strings.Contains(r.body, `data-testid="scan-requested">scan asked by olivia`) || strings.Contains(r.body, "server-also-scans") {
		t.Errorf("agents page with a pending request:\n%s", r.body)
	}
	if ok, by, err := f.glow.TakeScanRequest(ctx, up.ID); !ok || by != "olivia" || err != nil {
		t.Errorf("the agent's heartbeat takes %v %q %v", ok, by, err)
	}

	// Downtown's manager may not ask uptown's agent.
	lm := f.as("lena", users.RoleLocationManager, "downtown")
	if r := lm.post("/scans/now", url.Values{"location": {"uptown"}}); r.code != http.StatusNotFound {
		t.Errorf("another location's manager asks uptown's agent: %d, want 404", r.code)
	}
	// An agent at downtown, which the server scans itself: the page warns.
	enroll("downtown", "sensor-downtown")
	if r := o.get("/agents"); !strings.Contains(r.body, `data-testid="server-also-scans">This server scans downtown itself`) {
		t.Errorf("no warning that the server scans downtown too:\n%s", r.body)
	}
}
