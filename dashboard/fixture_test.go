package dashboard

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	_ "modernc.org/sqlite"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store/sqlite"
	"github.com/vigilhq/vigil/users"
	usersqlite "github.com/vigilhq/vigil/users/sqlite"
)

// clock is the fixture's adjustable time, shared by the dashboard and
// package users (TOTP codes are checked against it).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const password = "lavender-otter-keyboard-42"

// Seeded ids.
var (
	rdp = observe.Finding{ID: observe.FindingID("net.rdp-reachable-from-guest", "downtown", "10.10.2.5:3389"), Rule: "net.rdp-reachable-from-guest",
		Category: "exposed-service", Severity: observe.High, Title: "Remote Desktop reachable from the guest network", Location: "downtown",
		Target: "10.10.2.5:3389", Controls: []string{"hipaa:164.312(a)(1)", "insurance:rdp-exposed"},
		Evidence: map[string]any{"seen_from": "guest", "service": "ms-wbt-server"}, Remediation: "Block 3389 from the guest VLAN.", Vantage: "guest"}
	telnet = observe.Finding{ID: observe.FindingID("net.telnet", "uptown", "10.20.1.9:23"), Rule: "net.telnet", Category: "plaintext-protocol",
		Severity: observe.Medium, Title: "Telnet open", Location: "uptown", Target: "10.20.1.9:23", Controls: []string{"hipaa:164.312(e)(1)"},
		Evidence: map[string]any{"service": "telnet"}}
	mfa = observe.Finding{ID: observe.FindingID("id.no-mfa", "", "emr:frontdesk"), Rule: "id.no-mfa", Category: "missing-mfa", Severity: observe.High,
		Title: "Account without MFA", Location: "", Target: "emr:frontdesk", Controls: []string{"hipaa:164.312(d)"}, Evidence: map[string]any{"mfa": "false"}, Vantage: "csv:emr"}
	// Tenant B's.
	acmeFinding = observe.Finding{ID: observe.FindingID("net.smb-exposed", "eastside", "10.99.0.7:445"), Rule: "net.smb-exposed", Category: "exposed-service",
		Severity: observe.Critical, Title: "ACME-SECRET SMB exposed", Location: "eastside", Target: "10.99.0.7:445", Controls: []string{"hipaa:164.312(a)(1)"},
		Evidence: map[string]any{"service": "microsoft-ds"}}
)

const glowYAML = `organization: Glow Aesthetics
data_dir: %DIR%
locations:
  - id: downtown
    name: Downtown Clinic
    state: CA
    segments:
      - {name: front-desk, cidr: 10.10.1.0/24, role: front-desk}
      - {name: clinical, cidr: 10.10.2.0/24, role: clinical}
      - {name: guest, cidr: 10.10.3.0/24, role: guest}
    vantage:
      - {segment: guest, source: 10.10.3.50}
    policy:
      - {from: front-desk, to: clinical, ports: [443]}
  - id: uptown
    name: Uptown Spa
    state: NY
    segments:
      - {name: office, cidr: 10.20.1.0/24, role: front-desk}
identity:
  - {type: csv, system: emr, path: users.csv}
`

const acmeYAML = `organization: ACME Medspa
data_dir: %DIR%
locations:
  - id: eastside
    name: ACME-SECRET Eastside
    state: TX
    segments:
      - {name: lan, cidr: 10.99.0.0/24, role: clinical}
`

// fakeScans is a ScanControl that records ScanNow calls.
type fakeScans struct {
	mu  sync.Mutex
	now []string
}

func (f *fakeScans) ScanNow(loc string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = append(f.now, loc)
	return nil
}

func (f *fakeScans) Running() []daemon.Progress {
	return []daemon.Progress{{Location: "downtown", Trigger: daemon.TriggerManual, Phase: "nmap", Done: 3, Total: 10, Queued: time.Unix(1, 0), Started: time.Unix(2, 0)},
		{Location: "uptown", Trigger: daemon.TriggerSchedule, Phase: "checks", Queued: time.Unix(1, 0)}}
}

func (f *fakeScans) Planned() []daemon.PlannedJob {
	return []daemon.PlannedJob{{Location: "downtown", Schedule: "0 2 * * *"}, {Location: "uptown", Schedule: "0 2 * * *"}, {Location: daemon.Organization, Schedule: "0 2 * * *"}}
}

func (f *fakeScans) Stats() map[string]daemon.LocationStats {
	return map[string]daemon.LocationStats{"downtown": {Started: 1, Succeeded: 1, LastOK: true}}
}

type fixture struct {
	t      *testing.T
	clk    *clock
	dash   *Dashboard
	srv    *httptest.Server
	users  *users.Service
	ustore *usersqlite.Store
	glow   *sqlite.Store
	acme   *sqlite.Store
	scans  *fakeScans
	logs   *bytes.Buffer
	secret map[string]string // username → TOTP secret
	start  time.Time
	with   func(*Options)
}

func loadConfig(t *testing.T, yml string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte("username,email,enabled,mfa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "vigil.yaml")
	cfg, err := config.Parse(name, []byte(strings.ReplaceAll(yml, "%DIR%", filepath.Join(dir, "data"))))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

func newFixtureWith(t *testing.T, with func(*Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, clk: &clock{t: time.Now().UTC().Truncate(time.Second)}, logs: &bytes.Buffer{}, secret: map[string]string{}, scans: &fakeScans{}}
	f.start = f.clk.now().Add(-40 * 24 * time.Hour)
	var err error
	if f.glow, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "glow.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.glow.Close() })
	if f.acme, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "acme.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.acme.Close() })
	f.seedGlow(ctx)
	scan := observe.Scan{ID: "acme-0001", StartedAt: f.start, FinishedAt: f.start.Add(time.Minute), Version: "test", Locations: []string{"eastside"}, Complete: true}
	must(t, f.acme.BeginScan(ctx, scan))
	_, _, err = f.acme.FinishScan(ctx, scan, []observe.Finding{acmeFinding})
	must(t, err)

	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "users.db")+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	must(t, err)
	t.Cleanup(func() { db.Close() })
	if f.ustore, err = usersqlite.Open(ctx, db); err != nil {
		t.Fatal(err)
	}
	if f.users, err = users.New(users.Config{Store: f.ustore, Now: f.clk.now, Logger: slog.New(slog.DiscardHandler),
		Params: users.Params{Memory: 256, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{
		Tenants: []Tenant{
			{ID: "glow", Config: loadConfig(t, glowYAML), Store: f.glow, Scans: f.scans},
			{ID: "acme", Config: loadConfig(t, acmeYAML), Store: f.acme},
		},
		Users: f.users, UserStore: f.ustore, TokenDB: db, Logger: logger, Now: f.clk.now,
	}
	if with != nil {
		with(&opts)
	}
	if f.dash, err = New(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.dash.Close() })
	f.srv = httptest.NewServer(f.dash)
	t.Cleanup(f.srv.Close)
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seedGlow stores two scans: one a month and more ago with the telnet
// finding, and a recent one with reach probes (for the matrix), hosts,
// accounts and the three findings.
func (f *fixture) seedGlow(ctx context.Context) {
	t := f.t
	old := observe.Scan{ID: "scan-0001", StartedAt: f.start, FinishedAt: f.start.Add(time.Minute), Version: "test", Locations: []string{"downtown", "uptown"}, Complete: true}
	must(t, f.glow.BeginScan(ctx, old))
	_, _, err := f.glow.FinishScan(ctx, old, []observe.Finding{telnet})
	must(t, err)

	at := f.clk.now().Add(-24 * time.Hour)
	scan := observe.Scan{ID: "scan-0002", StartedAt: at, FinishedAt: at.Add(time.Minute), Version: "test", Locations: []string{"downtown", "uptown"},
		Complete: true, Vantages: map[string][]string{"downtown": {"guest"}}, Sources: []string{"csv:emr"}}
	must(t, f.glow.BeginScan(ctx, scan))
	obs := []observe.Observation{
		{Kind: observe.KindReach, Location: "downtown", Segment: "clinical", SegmentRole: "clinical", Vantage: "guest", VantageRole: "guest",
			Host: "10.10.2.5", Port: 3389, Proto: "tcp", Source: "reach", At: at, Attrs: map[string]any{"state": "open", "service": "ms-wbt-server"}},
		{Kind: observe.KindReach, Location: "downtown", Segment: "front-desk", SegmentRole: "front-desk", Vantage: "guest", VantageRole: "guest",
			Host: "10.10.1.7", Port: 445, Proto: "tcp", Source: "reach", At: at, Attrs: map[string]any{"state": "filtered"}},
		{Kind: observe.KindHost, Location: "downtown", Segment: "clinical", Host: "10.10.2.5", Source: "nmap", At: at},
		{Kind: observe.KindService, Location: "downtown", Segment: "clinical", Host: "10.10.2.5", Port: 3389, Proto: "tcp", Source: "nmap", At: at,
			Attrs: map[string]any{"service": "ms-wbt-server", "product": "Microsoft Terminal Services"}},
		{Kind: observe.KindAccount, Source: "csv:emr", Vantage: "csv:emr", At: at, Attrs: map[string]any{"system": "emr", "source_type": "csv",
			"username": "frontdesk", "email": "", "enabled": true, "mfa": "false", "last_login": at.Format(time.RFC3339), "last_login_known": true,
			"locations": []any{"downtown"}}},
		{Kind: observe.KindAccount, Source: "csv:emr", Vantage: "csv:emr", At: at, Attrs: map[string]any{"system": "emr", "source_type": "csv",
			"username": "jlee", "email": "jlee@glow.example", "display_name": "Jamie Lee", "enabled": true, "mfa": "true",
			"last_login": at.Format(time.RFC3339), "last_login_known": true, "locations": []any{"uptown"}}},
	}
	must(t, f.glow.AddObservations(ctx, scan.ID, obs))
	_, _, err = f.glow.FinishScan(ctx, scan, []observe.Finding{rdp, telnet, mfa})
	must(t, err)
	_, err = f.glow.AddAttestation(ctx, observe.Attestation{Kind: "workforce-training", At: at.Add(-48 * time.Hour), By: "Dana", Note: "annual training"})
	must(t, err)
}

// addUser creates a user in tenant with role (and locations).
func (f *fixture) addUser(tenant users.TenantID, name string, role users.Role, locs ...string) {
	f.t.Helper()
	actor := users.Principal{Tenant: tenant, UserID: "fixture", Username: "fixture", Role: users.RoleOwner}
	_, err := f.users.CreateUser(context.Background(), actor, users.NewUser{Username: name, Email: name + "@example.com", Role: role,
		Locations: locs, Password: users.NewPassword(password)}, users.Client{IP: "127.0.0.1"})
	must(f.t, err)
}

// client is a browser: a cookie jar, no redirects followed.
type client struct {
	f    *fixture
	hc   *http.Client
	csrf string
	ua   string
}

func (f *fixture) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{f: f, ua: "vigil-test-browser/1.0", hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// response is a finished request.
type response struct {
	code int
	body string
	hdr  http.Header
}

func (r response) loc() string { return r.hdr.Get("Location") }

func (c *client) do(method, path string, form url.Values, hdr ...string) response {
	c.f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.f.srv.URL+path, body)
	must(c.f.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", c.ua)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) response {
	c.f.t.Helper()
	resp, err := c.hc.Do(req)
	must(c.f.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}
}

func (c *client) get(path string) response { return c.do(http.MethodGet, path, nil) }

// post sends a form with the session's CSRF token.
func (c *client) post(path string, form url.Values) response {
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf_token") == "" {
		form.Set("csrf_token", c.csrf)
	}
	return c.do(http.MethodPost, path, form)
}

// multipart posts a multipart form with one file.
func (c *client) multipart(path string, fields map[string]string, file string, content []byte) response {
	c.f.t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	if _, ok := fields["csrf_token"]; !ok {
		w.WriteField("csrf_token", c.csrf)
	}
	if file != "" {
		fw, _ := w.CreateFormFile("document", file)
		fw.Write(content)
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.f.srv.URL+path, &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("User-Agent", c.ua)
	return c.send(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
var secretRE = regexp.MustCompile(`data-testid="enroll-secret">([A-Z2-7]+)<`)

func field(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in\n%s", re, body)
	}
	return m[1]
}

// code returns a fresh TOTP code for the user, moving the clock to the
// next step so that no code is used twice.
func (f *fixture) code(user string) string {
	f.clk.advance(31 * time.Second)
	c, err := totp.GenerateCode(f.secret[user], f.clk.now())
	must(f.t, err)
	return c
}

// tryLogin posts the sign-in form.
func (c *client) tryLogin(tenant, user, pw string) response {
	c.f.t.Helper()
	page := c.get("/login")
	return c.do(http.MethodPost, "/login", url.Values{"csrf_token": {field(c.f.t, csrfRE, page.body)}, "tenant": {tenant}, "username": {user}, "password": {pw}})
}

// login signs in fully, enrolling or answering TOTP as the stage needs,
// and keeps the CSRF token of the session.
func (c *client) login(tenant, user string) *client {
	t := c.f.t
	t.Helper()
	r := c.tryLogin(tenant, user, password)
	if r.code != http.StatusSeeOther {
		t.Fatalf("login %s: %d\n%s", user, r.code, r.body)
	}
	switch r.loc() {
	case "/login/enroll":
		page := c.get("/login/enroll")
		// The QR code must reach the browser as a data: URL (html/template
		// turns an untyped one into #ZgotmplZ, which shows nothing).
		if !strings.Contains(page.body, `src="data:image/png;base64,`) {
			t.Fatalf("enrollment page has no QR image:\n%s", page.body)
		}
		c.f.secret[user] = field(t, secretRE, page.body)
		r = c.do(http.MethodPost, "/login/enroll", url.Values{"csrf_token": {field(t, csrfRE, page.body)}, "code": {c.f.code(user)}})
		if r.code != http.StatusOK || !strings.Contains(r.body, "recovery-codes") {
			t.Fatalf("enroll: %d\n%s", r.code, r.body)
		}
	case "/login/mfa":
		page := c.get("/login/mfa")
		r = c.do(http.MethodPost, "/login/mfa", url.Values{"csrf_token": {field(t, csrfRE, page.body)}, "code": {c.f.code(user)}})
		if r.code != http.StatusSeeOther || r.loc() != "/" {
			t.Fatalf("mfa: %d %s\n%s", r.code, r.loc(), r.body)
		}
	}
	home := c.get("/settings")
	if home.code != http.StatusOK {
		t.Fatalf("after login: %d %s", home.code, home.body)
	}
	c.csrf = field(t, csrfRE, home.body)
	return c
}

// as signs a new browser in as a new user of the glow tenant.
func (f *fixture) as(name string, role users.Role, locs ...string) *client {
	f.t.Helper()
	f.addUser("glow", name, role, locs...)
	return f.client().login("glow", name)
}

// audits returns the tenant's audit events with action, newest first.
func (f *fixture) audits(tenant users.TenantID, action string) []users.AuditEvent {
	f.t.Helper()
	evs, err := f.ustore.AuditEvents(context.Background(), tenant, users.AuditQuery{})
	must(f.t, err)
	var out []users.AuditEvent
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

var newTokenRE = regexp.MustCompile(`data-testid="new-api-token">([^<]+)<`)

// owner creates the glow tenant's first owner through the setup link and
// returns the user name (once per fixture).
func (f *fixture) owner() string {
	f.t.Helper()
	if _, ok := f.secret["olivia"]; ok {
		return "olivia"
	}
	link, err := f.dash.SetupURL(context.Background(), f.srv.URL)
	must(f.t, err)
	if link == "" {
		f.t.Fatal("no setup link although there are no users")
	}
	c := f.client()
	u, _ := url.Parse(link)
	page := c.get(u.RequestURI())
	if page.code != http.StatusOK {
		f.t.Fatalf("setup page: %d", page.code)
	}
	r := c.do(http.MethodPost, "/setup", url.Values{"csrf_token": {field(f.t, csrfRE, page.body)}, "token": {u.Query().Get("token")},
		"tenant": {"glow"}, "username": {"olivia"}, "email": {"olivia@glow.example"}, "password": {password}})
	if r.code != http.StatusSeeOther {
		f.t.Fatalf("setup: %d\n%s", r.code, r.body)
	}
	f.secret["olivia"] = ""
	return "olivia"
}

// day is the date n days from the fixture's now, YYYY-MM-DD. The store
// checks decision expiries against the wall clock, so the fixture's clock
// starts at the real time.
func (f *fixture) day(n int) string { return f.clk.now().AddDate(0, 0, n).Format(time.DateOnly) }
