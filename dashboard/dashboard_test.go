package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store/sqlite"
)

const testToken = "s3cret-token-for-tests-0123456789"

var (
	rdp = observe.Finding{
		Rule: "net.rdp-reachable-from-guest", Category: "exposed-service", Severity: observe.High,
		Title: "Remote Desktop reachable from the guest network", Location: "downtown", Target: "10.10.2.5:3389",
		Controls:    []string{"hipaa:164.312(a)(1)", "insurance:rdp-exposed"},
		Evidence:    map[string]any{"seen_from": "guest", "service": "ms-wbt-server", "banner": "<script>alert(1)</script>"},
		Remediation: "Block 3389 from the guest VLAN.",
	}
	mfa = observe.Finding{
		Rule: "id.mfa-missing-admin", Category: "missing-mfa", Severity: observe.Medium,
		Title: "Administrator without MFA", Location: "uptown", Target: "emr:admin",
		Controls: []string{"hipaa:164.312(d)"},
		Evidence: map[string]any{"mfa": "false", "is_admin": true},
	}
)

func init() {
	rdp.ID = observe.FindingID(rdp.Rule, rdp.Location, rdp.Target)
	mfa.ID = observe.FindingID(mfa.Rule, mfa.Location, mfa.Target)
}

type auditEntry struct{ actor, action, target string }

type fixture struct {
	h      http.Handler
	mu     sync.Mutex
	audits []auditEntry
	logs   *bytes.Buffer
}

func (f *fixture) audited(action string) []auditEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []auditEntry
	for _, a := range f.audits {
		if a.action == action {
			out = append(out, a)
		}
	}
	return out
}

// newFixture builds the dashboard over a real SQLite store holding one
// finished scan with two findings.
func newFixture(t *testing.T) *fixture {
	f, _ := newFixtureWith(t, nil)
	return f
}

// newFixtureWith is newFixture with Options changed by with (given the
// store and the fixture's logger) before the dashboard is built.
func newFixtureWith(t *testing.T, with func(*Options, *sqlite.Store, *slog.Logger)) (*fixture, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Date(2025, 3, 1, 2, 0, 0, 0, time.UTC)
	scan := observe.Scan{ID: "scan-0001", StartedAt: start, FinishedAt: start.Add(time.Minute), Version: "test", Locations: []string{"downtown", "uptown"}, Complete: true}
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.FinishScan(ctx, scan, []observe.Finding{rdp, mfa}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{logs: &bytes.Buffer{}}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{
		Store:        st,
		Organization: "Glow Aesthetics",
		Token:        testToken,
		Logger:       logger,
		Audit: func(_ context.Context, actor, action, target string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.audits = append(f.audits, auditEntry{actor, action, target})
		},
	}
	if with != nil {
		with(&opts, st, logger)
	}
	f.h, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, st
}

type req struct {
	method, path string
	bearer       string
	cookies      []*http.Cookie
	form         url.Values
}

func (f *fixture) do(t *testing.T, r req) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body *strings.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	} else {
		body = strings.NewReader("")
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, hr)
	return w
}

func TestNewRefusesMissingOptions(t *testing.T) {
	if _, err := New(Options{Token: "x"}); err == nil {
		t.Error("New without a store: want an error")
	}
	if _, err := New(Options{Store: fakeStore{}}); err == nil {
		t.Error("New without a token: want an error")
	}
}

func TestAuthRequired(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, path, bearer string
		status             int
		location           string
	}{
		{name: "healthz is open", path: "/healthz", status: http.StatusOK},
		{name: "api without token", path: "/api/v1/findings", status: http.StatusUnauthorized},
		{name: "api scans without token", path: "/api/v1/scans", status: http.StatusUnauthorized},
		{name: "api wrong token", path: "/api/v1/findings", bearer: "nope", status: http.StatusUnauthorized},
		{name: "api token prefix", path: "/api/v1/findings", bearer: testToken[:10], status: http.StatusUnauthorized},
		{name: "page without token goes to login", path: "/?location=uptown", status: http.StatusSeeOther, location: "/login?next=%2F%3Flocation%3Duptown"},
		{name: "finding page without token", path: "/findings/" + rdp.ID, status: http.StatusSeeOther, location: "/login?next=%2Ffindings%2F" + rdp.ID},
		{name: "page wrong token", path: "/", bearer: "nope", status: http.StatusUnauthorized},
		{name: "api with token", path: "/api/v1/findings", bearer: testToken, status: http.StatusOK},
		{name: "page with token", path: "/scans", bearer: testToken, status: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(t, req{path: tt.path, bearer: tt.bearer})
			if w.Code != tt.status {
				t.Fatalf("GET %s: status %d, want %d; body %q", tt.path, w.Code, tt.status, w.Body.String())
			}
			if got := w.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			if tt.status == http.StatusUnauthorized && strings.Contains(w.Body.String(), "Remote Desktop") {
				t.Error("401 response leaks findings")
			}
		})
	}
	if got := f.audited(ActionViewFindings); len(got) != 0 {
		t.Errorf("refused requests were audited as views: %v", got)
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	for _, r := range []req{
		{path: "/healthz"},
		{path: "/login"},
		{path: "/"},
		{path: "/api/v1/findings"},
		{path: "/", bearer: testToken},
		{path: "/no/such/page", bearer: testToken},
		{path: "/static/style.css"},
	} {
		w := f.do(t, r)
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'",
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := w.Header().Get(k); !strings.Contains(got, want) {
				t.Errorf("GET %s (%d): %s = %q, want %q", r.path, w.Code, k, got, want)
			}
		}
	}
}

func TestFindingsPage(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		query      string
		status     int
		want, dont []string
	}{
		{query: "", status: 200, want: []string{rdp.Title, mfa.Title, "downtown", "uptown", "Glow Aesthetics", "2 findings"}},
		{query: "?location=uptown", status: 200, want: []string{mfa.Title}, dont: []string{rdp.Title}},
		{query: "?location=uptown,downtown", status: 200, want: []string{mfa.Title, rdp.Title}},
		{query: "?severity=high", status: 200, want: []string{rdp.Title}, dont: []string{mfa.Title}},
		{query: "?category=missing-mfa", status: 200, want: []string{mfa.Title}, dont: []string{rdp.Title}},
		{query: "?status=resolved", status: 200, want: []string{"No findings match"}, dont: []string{rdp.Title, mfa.Title}},
		{query: "?status=all&severity=", status: 200, want: []string{rdp.Title, mfa.Title}},
		{query: "?severity=urgent", status: 400, want: []string{`severity "urgent"`}},
		{query: "?category=bad", status: 400},
		{query: "?status=closed", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			w := f.do(t, req{path: "/" + tt.query, bearer: testToken})
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body.String())
			}
			body := html.UnescapeString(w.Body.String())
			for _, s := range tt.want {
				if !strings.Contains(body, s) {
					t.Errorf("page does not show %q", s)
				}
			}
			for _, s := range tt.dont {
				if strings.Contains(body, s) {
					t.Errorf("page shows %q, which the filter excludes", s)
				}
			}
		})
	}
	// Grouped by location: downtown's section comes before uptown's.
	body := f.do(t, req{path: "/", bearer: testToken}).Body.String()
	if strings.Index(body, "<h2>downtown") > strings.Index(body, "<h2>uptown") {
		t.Error("locations are not in order")
	}
	if got := f.audited(ActionViewFindings); len(got) < 7 || got[0].actor != ActorToken {
		t.Errorf("findings views audited %v, want one per successful view by %s", got, ActorToken)
	}
}

func TestFindingPage(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, req{path: "/findings/" + rdp.ID, bearer: testToken})
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	body := w.Body.String()
	for _, s := range []string{rdp.Title, "10.10.2.5:3389", "seen_from", "guest", "ms-wbt-server", "hipaa:164.312(a)(1)", "insurance:rdp-exposed", "Block 3389", "opened", "scan-0001"} {
		if !strings.Contains(html.UnescapeString(body), s) {
			t.Errorf("finding page does not show %q", s)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Error("evidence is not escaped: a banner could run script in the dashboard")
	}
	if got := f.audited(ActionViewFinding); len(got) != 1 || got[0].target != rdp.ID {
		t.Errorf("finding view audited %v, want one for %s", got, rdp.ID)
	}
	for _, id := range []string{"0123456789abcdef01234567", "not-an-id", "../../etc"} {
		if w := f.do(t, req{path: "/findings/" + id, bearer: testToken}); w.Code != http.StatusNotFound {
			t.Errorf("/findings/%s: status %d, want 404", id, w.Code)
		}
	}
}

func TestScansPage(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, req{path: "/scans", bearer: testToken})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "scan-0001") {
		t.Fatalf("status %d, body does not list scan-0001: %s", w.Code, w.Body.String())
	}
	if len(f.audited(ActionViewScans)) != 1 {
		t.Error("scans view not audited")
	}
	if w := f.do(t, req{path: "/scans?limit=0", bearer: testToken}); w.Code != http.StatusBadRequest {
		t.Errorf("limit=0: status %d, want 400", w.Code)
	}
}

func TestAPI(t *testing.T) {
	f := newFixture(t)
	var got struct{ Findings []observe.Finding }
	w := f.do(t, req{path: "/api/v1/findings?location=downtown", bearer: testToken})
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) != 1 || got.Findings[0].ID != rdp.ID || got.Findings[0].Evidence["service"] != "ms-wbt-server" || len(got.Findings[0].Controls) != 2 {
		t.Errorf("findings = %+v, want just the RDP finding with its evidence and controls", got.Findings)
	}

	w = f.do(t, req{path: "/api/v1/findings?status=resolved", bearer: testToken})
	if strings.TrimSpace(w.Body.String()) != `{"findings":[]}` {
		t.Errorf("empty result = %s, want an empty list, not null", w.Body.String())
	}
	w = f.do(t, req{path: "/api/v1/findings?severity=nope", bearer: testToken})
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"error"`) {
		t.Errorf("bad filter: status %d body %s, want a 400 JSON error", w.Code, w.Body.String())
	}

	var scans struct{ Scans []observe.Scan }
	w = f.do(t, req{path: "/api/v1/scans", bearer: testToken})
	if err := json.Unmarshal(w.Body.Bytes(), &scans); err != nil || len(scans.Scans) != 1 || scans.Scans[0].ID != "scan-0001" || !scans.Scans[0].Complete {
		t.Errorf("scans = %+v (%v), want scan-0001, complete", scans, err)
	}
	if a := f.audited(ActionExportFindings); len(a) != 2 || a[0].target != "location=downtown" {
		t.Errorf("finding exports audited %v", a)
	}
	if len(f.audited(ActionExportScans)) != 1 {
		t.Error("scan export not audited")
	}
}

var csrfField_ = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// loginPage fetches the form and returns its CSRF cookie and field.
func loginPage(t *testing.T, f *fixture) (*http.Cookie, string) {
	t.Helper()
	w := f.do(t, req{path: "/login?next=/scans"})
	if w.Code != 200 {
		t.Fatalf("GET /login: %d", w.Code)
	}
	m := csrfField_.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatal("login form has no CSRF field")
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == csrfCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("CSRF cookie is not HttpOnly and SameSite=Strict: %+v", c)
			}
			return c, m[1]
		}
	}
	t.Fatal("GET /login set no CSRF cookie")
	return nil, ""
}

func sessionFrom(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c
		}
	}
	return nil
}

func TestLogin(t *testing.T) {
	f := newFixture(t)
	csrf, field := loginPage(t, f)

	tests := []struct {
		name    string
		cookies []*http.Cookie
		form    url.Values
		status  int
	}{
		{name: "wrong token", cookies: []*http.Cookie{csrf}, form: url.Values{"csrf_token": {field}, "token": {"guess"}}, status: http.StatusUnauthorized},
		{name: "empty token", cookies: []*http.Cookie{csrf}, form: url.Values{"csrf_token": {field}, "token": {""}}, status: http.StatusUnauthorized},
		{name: "no CSRF cookie", form: url.Values{"csrf_token": {field}, "token": {testToken}}, status: http.StatusForbidden},
		{name: "CSRF mismatch", cookies: []*http.Cookie{csrf}, form: url.Values{"csrf_token": {field + "x"}, "token": {testToken}}, status: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(t, req{method: http.MethodPost, path: "/login", cookies: tt.cookies, form: tt.form})
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if sessionFrom(w) != nil {
				t.Fatal("refused login set a session cookie")
			}
		})
	}
	if got := f.audited(ActionLoginFailed); len(got) != 2 {
		t.Errorf("failed logins audited %d times, want 2", len(got))
	}

	w := f.do(t, req{method: http.MethodPost, path: "/login", cookies: []*http.Cookie{csrf},
		form: url.Values{"csrf_token": {field}, "token": {testToken}, "next": {"/scans"}}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/scans" {
		t.Fatalf("login: status %d Location %q, want 303 to /scans", w.Code, w.Header().Get("Location"))
	}
	sess := sessionFrom(w)
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || strings.Contains(sess.Value, testToken) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, without the token", sess)
	}
	w = f.do(t, req{path: "/", cookies: []*http.Cookie{sess}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), rdp.Title) {
		t.Fatalf("with session: status %d", w.Code)
	}
	if a := f.audited(ActionViewFindings); len(a) != 1 || a[0].actor != ActorSession {
		t.Errorf("view audited %v, want one by %s", a, ActorSession)
	}
	forged := &http.Cookie{Name: sessionCookie, Value: "99999999999." + strings.Repeat("A", 43)}
	if w := f.do(t, req{path: "/api/v1/findings", cookies: []*http.Cookie{forged}}); w.Code != http.StatusUnauthorized {
		t.Errorf("forged session: status %d, want 401", w.Code)
	}

	// Logout needs the CSRF field too, then the browser's cookie is cleared.
	if w := f.do(t, req{method: http.MethodPost, path: "/logout", cookies: []*http.Cookie{sess}, form: url.Values{}}); w.Code != http.StatusForbidden {
		t.Errorf("logout without CSRF: status %d, want 403", w.Code)
	}
	w = f.do(t, req{method: http.MethodPost, path: "/logout", cookies: []*http.Cookie{sess, csrf}, form: url.Values{"csrf_token": {field}}})
	if w.Code != http.StatusSeeOther {
		t.Errorf("logout: status %d", w.Code)
	}

	if strings.Contains(f.logs.String(), testToken) {
		t.Error("the token appears in the log")
	}
	if !strings.Contains(f.logs.String(), "path=/login") {
		t.Error("requests are not logged")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/scans": "/scans", "/?location=a": "/?location=a", "": "/",
		"//evil.example": "/", "/\\evil.example": "/", "https://evil.example": "/", "scans": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionExpires(t *testing.T) {
	now := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	a := newAuthenticator(testToken, time.Hour, func() time.Time { return now })
	v, _ := a.newSession()
	if !a.checkSession(v) {
		t.Fatal("fresh session refused")
	}
	now = now.Add(2 * time.Hour)
	if a.checkSession(v) {
		t.Error("expired session accepted")
	}
	other := newAuthenticator("another token", time.Hour, func() time.Time { return now.Add(-2 * time.Hour) })
	if other.checkSession(v) {
		t.Error("session survives a token change")
	}
}

// fakeStore satisfies FindingsReader for option checks.
type fakeStore struct{ FindingsReader }
