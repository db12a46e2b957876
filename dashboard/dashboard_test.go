package dashboard

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/users"
)

func TestLoginPasswordAndTOTP(t *testing.T) {
	f := newFixture(t)
	// Without a session every page sends the browser to the sign-in form
	// and the API answers 401.
	anon := f.client()
	if r := anon.get("/findings"); r.code != http.StatusSeeOther || !strings.HasPrefix(r.loc(), "/login") {
		t.Fatalf("anonymous page: %d %s", r.code, r.loc())
	}
	if r := anon.get("/api/v1/findings"); r.code != http.StatusUnauthorized {
		t.Fatalf("anonymous API: %d", r.code)
	}
	if r := anon.get("/login"); !strings.Contains(r.body, "setup link") {
		t.Error("the sign-in page of a vigil without users does not point to the setup link")
	}

	name := f.owner()
	// The setup link works once.
	if link, err := f.dash.SetupURL(context.Background(), f.srv.URL); err != nil || link != "" {
		t.Fatalf("setup link after the first user: %q %v", link, err)
	}
	// An owner must enroll before seeing anything.
	c := f.client()
	r := c.tryLogin("glow", name, password)
	if r.loc() != "/login/enroll" {
		t.Fatalf("owner without MFA: sent to %q, want /login/enroll", r.loc())
	}
	if r := c.get("/"); r.loc() != "/login/enroll" {
		t.Fatalf("half-signed-in owner reached %q", r.loc())
	}
	c = f.client().login("glow", name) // enrolls
	if r := c.get("/"); r.code != http.StatusOK || !strings.Contains(r.body, `data-testid="portfolio-row"`) {
		t.Fatalf("portfolio after enrollment: %d", r.code)
	}

	// Next time: password, then a TOTP code.
	c2 := f.client()
	if r := c2.tryLogin("glow", name, password); r.loc() != "/login/mfa" {
		t.Fatalf("enrolled owner: sent to %q, want /login/mfa", r.loc())
	}
	page := c2.get("/login/mfa")
	code := f.code(name)
	if r := c2.do(http.MethodPost, "/login/mfa", url.Values{"csrf_token": {field(t, csrfRE, page.body)}, "code": {"000000"}}); r.code != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", r.code)
	}
	if r := c2.do(http.MethodPost, "/login/mfa", url.Values{"csrf_token": {field(t, csrfRE, page.body)}, "code": {code}}); r.code != http.StatusSeeOther || r.loc() != "/" {
		t.Fatalf("right code: %d %s", r.code, r.loc())
	}
	// The same code is refused in another browser (replay).
	c3 := f.client()
	c3.tryLogin("glow", name, password)
	page = c3.get("/login/mfa")
	if r := c3.do(http.MethodPost, "/login/mfa", url.Values{"csrf_token": {field(t, csrfRE, page.body)}, "code": {code}}); r.code != http.StatusUnauthorized || !strings.Contains(r.body, "already used") {
		t.Fatalf("replayed code: %d\n%s", r.code, r.body)
	}

	// The session cookie is HttpOnly and SameSite=Strict.
	resp, _ := http.Get(f.srv.URL + "/login")
	resp.Body.Close()
	r = c2.get("/")
	_ = r
	login := f.client()
	lr := login.tryLogin("glow", name, password)
	for _, sc := range lr.hdr.Values("Set-Cookie") {
		if strings.HasPrefix(sc, users.InsecureSessionCookieName+"=") && (!strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict")) {
			t.Errorf("session cookie %q", sc)
		}
	}

	// Logout ends the session.
	if r := c2.post("/logout", url.Values{"csrf_token": {field(t, csrfRE, c2.get("/settings").body)}}); r.code != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.code)
	}
	if r := c2.get("/findings"); r.code != http.StatusSeeOther {
		t.Fatalf("after logout: %d", r.code)
	}
}

func TestLoginThrottlingAndLockout(t *testing.T) {
	f := newFixture(t)
	f.addUser("glow", "arnie", users.RoleAnalyst)
	c := f.client()
	var last response
	for range 12 {
		last = c.tryLogin("glow", "arnie", "wrong password, clearly")
	}
	if last.code != http.StatusTooManyRequests {
		t.Fatalf("after 12 failures: %d, want 429", last.code)
	}
	// The right password does not help while locked.
	if r := c.tryLogin("glow", "arnie", password); r.code != http.StatusTooManyRequests {
		t.Fatalf("right password while locked: %d", r.code)
	}
	if len(f.audits("glow", users.ActionLoginThrottled)) == 0 || len(f.audits("glow", users.ActionLoginFailed)) == 0 {
		t.Error("failures and throttling are not in the audit trail")
	}
	// The sign-in form without its CSRF cookie is refused.
	r := f.client().do(http.MethodPost, "/login", url.Values{"csrf_token": {strings.Repeat("x", 43)}, "tenant": {"glow"}, "username": {"arnie"}, "password": {password}})
	if r.code != http.StatusForbidden {
		t.Fatalf("login without the pre-login cookie: %d", r.code)
	}
}

func TestCSRFRefused(t *testing.T) {
	f := newFixture(t)
	a := f.as("ana", users.RoleAnalyst)
	form := url.Values{"action": {"accept"}, "reason": {"printer VLAN"}, "until": {f.day(120)}}
	for _, tok := range []string{"", "forged", users.CSRFToken(users.NewSessionToken("another session"), "")} {
		form.Set("csrf_token", tok)
		if r := a.do(http.MethodPost, "/findings/"+rdp.ID+"/decision", form); r.code != http.StatusForbidden {
			t.Fatalf("csrf %q: %d, want 403", tok, r.code)
		}
	}
	if got := f.finding(a, rdp.ID).Status; got != observe.StatusOpen {
		t.Fatalf("a refused form changed the finding: %s", got)
	}
	form.Set("csrf_token", a.csrf)
	if r := a.do(http.MethodPost, "/findings/"+rdp.ID+"/decision", form); r.code != http.StatusSeeOther {
		t.Fatalf("with the token: %d %s", r.code, r.body)
	}
	if got := f.finding(a, rdp.ID); got.Status != observe.StatusAccepted || got.Decision == nil || got.Decision.By != "ana" {
		t.Fatalf("accepted finding: %+v", got)
	}
}

// finding reads a finding through the API.
func (f *fixture) finding(c *client, id string) observe.Finding {
	f.t.Helper()
	r := c.get("/api/v1/findings/" + id)
	if r.code != http.StatusOK {
		f.t.Fatalf("finding %s: %d", id, r.code)
	}
	var out struct{ Finding observe.Finding }
	must(f.t, json.Unmarshal([]byte(r.body), &out))
	return out.Finding
}

func TestRoleMatrix(t *testing.T) {
	f := newFixture(t)
	auditor := f.as("audrey", users.RoleAuditor)
	analyst := f.as("ana", users.RoleAnalyst)
	lm := f.as("lena", users.RoleLocationManager, "downtown")

	accept := url.Values{"action": {"accept"}, "reason": {"kiosk"}, "until": {f.day(60)}}
	if r := auditor.post("/findings/"+rdp.ID+"/decision", accept); r.code != http.StatusForbidden {
		t.Errorf("auditor accepts: %d, want 403", r.code)
	}
	if r := lm.post("/findings/"+rdp.ID+"/decision", accept); r.code != http.StatusForbidden {
		t.Errorf("location manager accepts: %d, want 403", r.code)
	}
	if strings.Contains(auditor.get("/findings/"+rdp.ID).body, `data-testid="finding-actions"`) {
		t.Error("the auditor is shown decision forms")
	}
	if !strings.Contains(analyst.get("/findings/"+rdp.ID).body, `data-testid="finding-actions"`) {
		t.Error("the analyst is not shown decision forms")
	}
	if r := auditor.get("/export/findings.csv?status=all"); r.code != http.StatusOK || !strings.Contains(r.body, rdp.ID) {
		t.Errorf("auditor export: %d", r.code)
	}
	if r := auditor.post("/scans/now", url.Values{"location": {"downtown"}}); r.code != http.StatusForbidden {
		t.Errorf("auditor scan now: %d", r.code)
	}
	if r := analyst.post("/scans/now", url.Values{"location": {"uptown"}}); r.code != http.StatusSeeOther || len(f.scans.now) != 1 || f.scans.now[0] != "uptown" {
		t.Errorf("analyst scan now: %d %v", r.code, f.scans.now)
	}
	if r := analyst.post("/settings/users", url.Values{"action": {"create"}, "username": {"x"}, "role": {"analyst"}, "password": {password}}); r.code != http.StatusForbidden {
		t.Errorf("analyst creates a user: %d", r.code)
	}

	// The location manager sees downtown only, everywhere.
	home := lm.get("/")
	if !strings.Contains(home.body, `data-location="downtown"`) || strings.Contains(home.body, `data-location="uptown"`) {
		t.Errorf("location manager's portfolio:\n%s", home.body)
	}
	for _, path := range []string{"/locations/uptown", "/api/v1/locations/uptown", "/findings/" + telnet.ID, "/api/v1/findings/" + telnet.ID,
		"/findings/" + mfa.ID, "/api/v1/findings/" + mfa.ID} {
		if r := lm.get(path); r.code != http.StatusNotFound || strings.Contains(r.body, telnet.Target) {
			t.Errorf("location manager %s: %d", path, r.code)
		}
	}
	for _, path := range []string{"/findings?status=all", "/api/v1/findings?status=all", "/api/v1/risks", "/export/findings.csv?status=all", "/api/v1/controls", "/api/v1/scans", "/api/v1/portfolio"} {
		r := lm.get(path)
		if r.code != http.StatusOK {
			t.Errorf("%s: %d", path, r.code)
		}
		if strings.Contains(r.body, telnet.ID) || strings.Contains(r.body, mfa.ID) || strings.Contains(r.body, "uptown") {
			t.Errorf("location manager %s shows another location or organisation-wide data:\n%s", path, r.body)
		}
	}
	if r := lm.get("/api/v1/findings"); !strings.Contains(r.body, rdp.ID) {
		t.Error("the location manager does not see their own location's finding")
	}
	if r := lm.post("/scans/now", url.Values{"location": {"uptown"}}); r.code != http.StatusNotFound {
		t.Errorf("location manager scans another location: %d", r.code)
	}
	ids := lm.get("/api/v1/identities")
	if strings.Contains(ids.body, "jlee") || !strings.Contains(ids.body, "frontdesk") {
		t.Errorf("location manager's identities:\n%s", ids.body)
	}
	// A location manager attests for their location, not another.
	at := map[string]string{"kind": "workforce-training", "location": "uptown", "at": f.day(-1)}
	if r := lm.multipart("/attestations", at, "", nil); r.code != http.StatusNotFound {
		t.Errorf("attest for another location: %d", r.code)
	}
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	a := f.as("ana", users.RoleAnalyst)
	// acme's ids, asked for by a user of glow.
	for _, path := range []string{"/findings/" + acmeFinding.ID, "/api/v1/findings/" + acmeFinding.ID, "/locations/eastside", "/api/v1/locations/eastside"} {
		r := a.get(path)
		if r.code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.code)
		}
		if strings.Contains(r.body, "ACME-SECRET") || strings.Contains(r.body, acmeFinding.Target) {
			t.Errorf("%s leaks acme data", path)
		}
	}
	if r := a.post("/findings/"+acmeFinding.ID+"/decision", url.Values{"action": {"accept"}, "reason": {"x"}, "until": {f.day(60)}}); r.code != http.StatusNotFound {
		t.Errorf("decide acme's finding: %d", r.code)
	}
	for _, path := range []string{"/", "/api/v1/portfolio", "/findings?status=all", "/api/v1/findings?status=all", "/controls/" + url.PathEscape("hipaa:164.312(a)(1)"),
		"/api/v1/controls/" + url.PathEscape("hipaa:164.312(a)(1)"), "/api/v1/risks", "/api/v1/scans", "/export/findings.json?status=all"} {
		r := a.get(path)
		if r.code != http.StatusOK {
			t.Errorf("%s: %d", path, r.code)
		}
		if strings.Contains(r.body, "ACME-SECRET") || strings.Contains(r.body, acmeFinding.ID) || strings.Contains(r.body, "eastside") {
			t.Errorf("%s shows acme data", path)
		}
	}
	// Swapping the tenant cookie does not carry the session across.
	jarURL, _ := url.Parse(f.srv.URL)
	a.hc.Jar.SetCookies(jarURL, []*http.Cookie{{Name: tenantCookie, Value: "acme", Path: "/"}})
	if r := a.get("/api/v1/findings/" + acmeFinding.ID); r.code != http.StatusUnauthorized {
		t.Errorf("tenant cookie swapped: %d, want 401", r.code)
	}
	// acme's own user sees acme.
	f.addUser("acme", "bob", users.RoleAnalyst)
	b := f.client().login("acme", "bob")
	if r := b.get("/api/v1/findings/" + acmeFinding.ID); r.code != http.StatusOK {
		t.Errorf("acme's user, acme's finding: %d", r.code)
	}
	if r := b.get("/api/v1/findings/" + rdp.ID); r.code != http.StatusNotFound {
		t.Errorf("acme's user, glow's finding: %d", r.code)
	}
}

func TestAuditTrail(t *testing.T) {
	f := newFixture(t)
	a := f.as("ana", users.RoleAnalyst)
	a.get("/findings/" + rdp.ID)
	a.get("/identities")
	a.get("/locations/downtown")
	a.get("/controls/" + url.PathEscape("hipaa:164.312(a)(1)"))
	a.get("/export/findings.csv")
	a.get("/export/risks.csv")
	a.post("/findings/"+rdp.ID+"/decision", url.Values{"action": {"false-positive"}, "reason": {"decoy host"}, "until": {f.day(30)}})
	want := map[string][]string{
		users.ActionView:   {"finding:" + rdp.ID, "identities", "location:downtown", "control:hipaa:164.312(a)(1)"},
		users.ActionExport: {"findings.csv", "risks.csv"},
		users.ActionChange: {"finding:" + rdp.ID},
	}
	for action, targets := range want {
		evs := f.audits("glow", action)
		for _, target := range targets {
			found := false
			for _, e := range evs {
				if e.Target == target && e.Username == "ana" && e.IP == "127.0.0.1" && e.UserAgent == "vigil-test-browser/1.0" && !e.At.IsZero() {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s %s by ana with address and user agent in %+v", action, target, evs)
			}
		}
	}
	// The audit section shows it to an auditor, not to an analyst.
	au := f.as("audrey", users.RoleAuditor)
	if r := au.get("/settings"); !strings.Contains(r.body, `data-testid="audit-table"`) || !strings.Contains(r.body, "decoy host") {
		t.Error("the auditor's settings page lacks the audit trail")
	}
	if r := a.get("/settings"); strings.Contains(r.body, `data-testid="audit-table"`) {
		t.Error("the analyst sees the audit trail")
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	a := f.as("ana", users.RoleAnalyst)
	check := func(name string, h http.Header, tls bool) {
		t.Helper()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "default-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", name, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code", name)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", name, h)
		}
		if got := h.Get("Strict-Transport-Security") != ""; got != tls {
			t.Errorf("%s: HSTS %v, want %v", name, got, tls)
		}
	}
	check("/healthz", f.client().get("/healthz").hdr, false)
	check("/login", f.client().get("/login").hdr, false)
	check("/findings", a.get("/findings").hdr, false)
	check("404", a.get("/nope").hdr, false)
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	f.dash.ServeHTTP(w, req)
	check("TLS", w.Header(), true)
	// No inline script or style in a page.
	for _, path := range []string{"/", "/scans", "/findings/" + rdp.ID, "/login"} {
		body := a.get(path).body
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") || strings.Contains(body, " style=") {
			t.Errorf("%s has inline script or style", path)
		}
	}
}

func TestEveryPageRenders(t *testing.T) {
	f := newFixture(t)
	o := f.client().login("glow", f.owner())
	pages := []struct{ path, want string }{
		{"/", `data-testid="portfolio-row" data-location="downtown"`},
		{"/", `<svg class="chart"`},
		{"/locations/downtown", `data-testid="matrix-cell" data-from="guest" data-to="clinical" data-status="reachable-against-policy"`},
		{"/locations/downtown", "OPEN against policy"},
		{"/locations/downtown", "Microsoft Terminal Services"},
		{"/locations/uptown", "No reachability matrix"},
		{"/findings", `data-testid="finding-row" data-id="` + rdp.ID},
		{"/findings?location=uptown&status=all", telnet.ID},
		{"/findings?category=missing-mfa", mfa.ID},
		{"/findings/" + rdp.ID, `data-testid="accept"`},
		{"/findings/" + rdp.ID, "scan-0002"},
		{"/findings/" + rdp.ID, "Block 3389"},
		{"/controls", `data-testid="control-row"`},
		{"/controls/" + url.PathEscape("hipaa:164.312(a)(1)"), `data-testid="trace-risk"`},
		{"/risks", `data-testid="risk-row"`},
		{"/identities", `data-testid="person-row" data-person="frontdesk`},
		{"/identities", `data-testid="flag-mfa"`},
		{"/scans", `data-testid="running-row"`},
		{"/scans", `data-testid="scan-now"`},
		{"/scans", "scan-0002"},
		{"/reports", `data-testid="export-risks-csv"`},
		{"/settings", `data-testid="attestation-row"`},
		{"/settings", `data-testid="user-row" data-user="olivia"`},
		{"/settings", `data-testid="audit-table"`},
		{"/static/style.css", "@media print"},
		{"/static/scans.js", "/api/v1/scans/running"},
	}
	for _, p := range pages {
		r := o.get(p.path)
		if r.code != http.StatusOK || !strings.Contains(r.body, p.want) {
			t.Errorf("%s: %d, want %q in\n%.3000s", p.path, r.code, p.want, r.body)
		}
	}
	apis := []string{"portfolio", "locations/downtown", "findings", "findings/" + rdp.ID, "controls", "controls/" + url.PathEscape("hipaa:164.312(d)"),
		"risks", "identities", "scans", "scans/running"}
	for _, a := range apis {
		r := o.get("/api/v1/" + a)
		var v map[string]any
		if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &v) != nil {
			t.Errorf("/api/v1/%s: %d %.300s", a, r.code, r.body)
		}
	}
	// The portfolio trend: telnet has been open since before last month.
	var port portfolioPage
	json.Unmarshal([]byte(o.get("/api/v1/portfolio").body), &port)
	for _, l := range port.Locations {
		if l.ID == "uptown" && (l.OpenMonthAgo != 1 || l.Trend != 0) {
			t.Errorf("uptown trend: %+v", l)
		}
		if l.ID == "downtown" && (l.OpenMonthAgo != 0 || l.Trend != 1) {
			t.Errorf("downtown trend: %+v", l)
		}
	}
	if len(port.Locations) != 2 || port.Locations[0].ID != "downtown" {
		t.Errorf("worst first: %+v", port.Locations)
	}
}

func TestDecisionsRisksAttestationsAndInvalidate(t *testing.T) {
	f := newFixture(t)
	o := f.client().login("glow", f.owner())
	// Reopen needs an accepted finding; accept beyond a year is refused.
	if r := o.post("/findings/"+rdp.ID+"/decision", url.Values{"action": {"accept"}, "reason": {"r"}, "until": {f.day(400)}}); !strings.Contains(r.loc(), "error=") {
		t.Errorf("acceptance beyond a year: %d %s", r.code, r.loc())
	}
	o.post("/findings/"+rdp.ID+"/decision", url.Values{"action": {"accept"}, "reason": {"guest VLAN retired next month"}, "until": {f.day(60)}})
	if got := f.finding(o, rdp.ID).Status; got != observe.StatusAccepted {
		t.Fatalf("after accept: %s", got)
	}
	o.post("/findings/"+rdp.ID+"/decision", url.Values{"action": {"reopen"}, "reason": {"not retired after all"}})
	if got := f.finding(o, rdp.ID).Status; got != observe.StatusOpen {
		t.Fatalf("after reopen: %s", got)
	}
	// Risk register: owner and due date, then acceptance.
	var reg risksPage
	json.Unmarshal([]byte(o.get("/api/v1/risks").body), &reg)
	if len(reg.Risks) == 0 {
		t.Fatal("empty register")
	}
	id := ""
	for _, r := range reg.Risks {
		if r.Location == "uptown" {
			id = r.ID
		}
	}
	if r := o.post("/risks/"+url.PathEscape(id), url.Values{"action": {"set"}, "owner": {"it@glow.example"}, "treatment": {"mitigate"}, "due": {f.day(45)}}); r.code != http.StatusSeeOther {
		t.Fatalf("risk set: %d %s", r.code, r.body)
	}
	if r := o.post("/risks/"+url.PathEscape(id), url.Values{"action": {"accept"}, "reason": {"telnet box replaced in April"}, "until": {f.day(60)}}); r.code != http.StatusSeeOther {
		t.Fatalf("risk accept: %d", r.code)
	}
	json.Unmarshal([]byte(o.get("/api/v1/risks?all=1").body), &reg)
	for _, r := range reg.Risks {
		if r.ID == id && (r.Owner != "it@glow.example" || r.Status != "accepted") {
			t.Errorf("risk after decisions: %+v", r)
		}
	}
	if got := f.finding(o, telnet.ID).Status; got != observe.StatusAccepted {
		t.Errorf("accepting the risk did not accept its finding: %s", got)
	}
	// An attestation with a document, content-addressed.
	r := o.multipart("/attestations", map[string]string{"kind": "restore-drill", "location": "downtown", "at": f.day(-10), "result": "pass"}, "drill.pdf", []byte("%PDF restore drill"))
	if r.code != http.StatusSeeOther {
		t.Fatalf("attestation: %d %s", r.code, r.body)
	}
	if s := o.get("/settings").body; !strings.Contains(s, "restore-drill") {
		t.Error("the new attestation is not listed")
	}
	// Its document downloads, as stored, by its hash; nothing else does.
	sum := sha256.Sum256([]byte("%PDF restore drill"))
	doc := "/documents/" + hex.EncodeToString(sum[:])
	if r := o.get(doc); r.code != http.StatusOK || r.body != "%PDF restore drill" || !strings.Contains(r.hdr.Get("Content-Disposition"), "attachment") {
		t.Errorf("document download: %d %q %v", r.code, r.body, r.hdr)
	}
	if r := o.get("/documents/" + strings.Repeat("0", 64)); r.code != http.StatusNotFound {
		t.Errorf("unknown document: %d", r.code)
	}
	// A scan stored behind the dashboard's back shows after Invalidate.
	ctx := context.Background()
	at := f.clk.now()
	sc := observe.Scan{ID: "scan-0003", StartedAt: at, FinishedAt: at.Add(time.Minute), Version: "test", Locations: []string{"uptown"}, Complete: true}
	must(t, f.glow.BeginScan(ctx, sc))
	nf := observe.Finding{ID: observe.FindingID("net.vnc", "uptown", "10.20.1.4:5900"), Rule: "net.vnc", Category: "exposed-service", Severity: observe.Critical,
		Title: "VNC without password", Location: "uptown", Target: "10.20.1.4:5900", Controls: []string{"hipaa:164.312(d)"}}
	_, _, err := f.glow.FinishScan(ctx, sc, []observe.Finding{telnet, nf})
	must(t, err)
	f.dash.Invalidate("glow")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(o.get("/api/v1/findings").body, nf.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the new finding never showed after Invalidate")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAPITokenAndPagination(t *testing.T) {
	f := newFixture(t)
	o := f.client().login("glow", f.owner())
	a := f.as("ana", users.RoleAnalyst)
	tok := field(t, newTokenRE, a.post("/settings/tokens", url.Values{"name": {"script"}}).body)
	api := f.client()
	r := api.do(http.MethodGet, "/api/v1/findings?status=all&per_page=2", nil, "Authorization", "Bearer "+tok)
	var page findingsPage
	if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &page) != nil {
		t.Fatalf("bearer: %d %s", r.code, r.body)
	}
	if page.Total != 3 || len(page.Findings) != 2 || page.Pages != 2 {
		t.Errorf("pagination: total %d, %d on page, %d pages", page.Total, len(page.Findings), page.Pages)
	}
	if strings.Contains(f.logs.String(), tok) {
		t.Error("the API token is in the log")
	}
	// Disabled users' tokens stop working.
	var uid string
	for _, u := range mustUsers(t, f) {
		if u.Username == "ana" {
			uid = u.ID
		}
	}
	if r := o.post("/settings/users", url.Values{"action": {"disable"}, "user_id": {uid}}); r.code != http.StatusSeeOther {
		t.Fatalf("disable: %d %s", r.code, r.body)
	}
	if r := api.do(http.MethodGet, "/api/v1/findings", nil, "Authorization", "Bearer "+tok); r.code != http.StatusUnauthorized {
		t.Errorf("disabled user's token: %d", r.code)
	}
	if r := a.get("/findings"); r.code != http.StatusSeeOther {
		t.Errorf("disabled user's session: %d", r.code)
	}
}

func mustUsers(t *testing.T, f *fixture) []users.User {
	us, err := f.ustore.Users(context.Background(), "glow")
	must(t, err)
	return us
}

// The report kinds of `vigil report` download from the Reports page, for
// whoever may export the whole organisation, and each download is audited.
func TestReportDownloads(t *testing.T) {
	f := newFixture(t)
	au := f.as("audrey", users.RoleAuditor)
	if r := au.get("/reports"); !strings.Contains(r.body, `data-testid="report-ocr-pdf"`) {
		t.Fatalf("the reports page offers no OCR pack:\n%s", r.body)
	}
	for kind, check := range map[string]func(r response) bool{
		"ocr?format=pdf":                    func(r response) bool { return strings.HasPrefix(r.body, "%PDF-") },
		"insurance?format=csv":              func(r response) bool { return strings.Contains(r.body, "Yes") || strings.Contains(r.body, "Unknown") },
		"diligence?format=html":             func(r response) bool { return strings.Contains(r.body, "<html") },
		"ocr?format=json&as_of=" + f.day(0): func(r response) bool { return strings.HasPrefix(strings.TrimSpace(r.body), "{") },
	} {
		r := au.get("/reports/" + kind)
		if r.code != http.StatusOK || !check(r) {
			t.Errorf("/reports/%s: %d\n%.300s", kind, r.code, r.body)
		}
	}
	if r := au.get("/reports/nonsense"); r.code != http.StatusNotFound {
		t.Errorf("unknown kind: %d", r.code)
	}
	if r := au.get("/reports/ocr?format=docx"); r.code != http.StatusBadRequest {
		t.Errorf("unknown format: %d", r.code)
	}
	// A location manager sees one location: an organisation-wide report is not theirs.
	lm := f.as("lena", users.RoleLocationManager, "downtown")
	if r := lm.get("/reports/ocr?format=pdf"); r.code == http.StatusOK {
		t.Errorf("location manager downloaded the OCR pack")
	}
	var found bool
	for _, e := range f.audits("glow", users.ActionExport) {
		if e.Target == "report.ocr.pdf" && e.Username == "audrey" {
			found = true
		}
	}
	if !found {
		t.Error("the OCR pack download is not in the audit trail")
	}
}

// Scans stored back to back (agents finishing scans all day) do not have
// the posture rebuilt back to back: invalidations during a rebuild fold
// into one, and the next waits as long as the last took (at least a
// second), so a burst of a hundred stored scans over half a second costs
// two or three rebuilds, not a hundred.
func TestInvalidateBurstRebuildsSparingly(t *testing.T) {
	f := newFixture(t)
	tn := f.dash.s.tenants["glow"]
	waitIdle := func() {
		t.Helper()
		for i := 0; ; i++ {
			tn.mu.Lock()
			idle := !tn.building
			tn.mu.Unlock()
			if idle {
				return
			}
			if i == 1000 {
				t.Fatal("rebuild never ended")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitIdle()
	tn.mu.Lock()
	before := tn.finished
	tn.mu.Unlock()
	for range 100 {
		f.dash.Invalidate("glow")
		time.Sleep(5 * time.Millisecond)
	}
	waitIdle()
	tn.mu.Lock()
	builds := tn.finished - before
	tn.mu.Unlock()
	if builds < 1 || builds > 3 {
		t.Fatalf("%d rebuilds for a burst of 100 invalidations over 0.5 s; want 1 to 3", builds)
	}
}
