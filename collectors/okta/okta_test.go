package okta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/httpapi"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

var now = time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)

const (
	apiToken  = "00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_xy"
	usersPath = "/api/v1/users"
	lastOfP1  = "00u1f96ECLNVOKVMUSEA"
)

// org is a fake Okta org serving testdata/.
type org struct {
	t     *testing.T
	srv   *httptest.Server
	logs  bytes.Buffer
	mu    sync.Mutex
	hits  map[string]int
	route map[string]http.HandlerFunc // exact path, or "factors"/"roles" for every user

	inFlight, maxInFlight int
}

func newOrg(t *testing.T) *org {
	o := &org{t: t, hits: map[string]int{}, route: map[string]http.HandlerFunc{}}
	o.srv = httptest.NewTLSServer(o)
	t.Cleanup(o.srv.Close)
	return o
}

func (o *org) source(t *testing.T) *Source {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "okta-token")
	if err := os.WriteFile(tokenFile, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(config.IdentitySource{
		Type: "okta", System: "okta", OrgURL: o.srv.URL, TokenFile: tokenFile,
		Locations: []string{"downtown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.HTTPClient = o.srv.Client()
	s.Now = func() time.Time { return now }
	s.Logger = slog.New(slog.NewTextHandler(&o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return s
}

func (o *org) hit(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[key]
}

func (o *org) fixture(w http.ResponseWriter, status int, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if errors.Is(err, os.ErrNotExist) && (strings.HasPrefix(name, "factors-") || strings.HasPrefix(name, "roles-")) {
		b, err = []byte("[]"), nil
	}
	if err != nil {
		o.t.Errorf("fixture: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(bytes.ReplaceAll(b, []byte("{{base}}"), []byte(o.srv.URL)))
}

func (o *org) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Path
	if r.URL.Query().Has("after") {
		key += "#2"
	}
	kind := ""
	if strings.HasPrefix(r.URL.Path, usersPath+"/") {
		kind = r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	}
	o.mu.Lock()
	o.hits[key]++
	h := o.route[r.URL.Path]
	if h == nil && kind != "" {
		h = o.route[kind]
	}
	if kind != "" {
		o.inFlight++
		o.maxInFlight = max(o.maxInFlight, o.inFlight)
	}
	o.mu.Unlock()
	if kind != "" {
		defer func() {
			o.mu.Lock()
			o.inFlight--
			o.mu.Unlock()
		}()
		time.Sleep(5 * time.Millisecond) // let requests overlap
	}
	if r.Header.Get("Authorization") != "SSWS "+apiToken {
		o.fixture(w, 401, "error-invalid-token.json")
		return
	}
	w.Header().Set("X-Rate-Limit-Limit", "600")
	w.Header().Set("X-Rate-Limit-Remaining", "599")
	w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(time.Now().Unix()+60))
	if h != nil {
		h(w, r)
		return
	}
	o.serveDefault(w, r)
}

func (o *org) serveDefault(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == usersPath:
		if r.URL.Query().Get("limit") != "200" {
			o.t.Errorf("users query %q", r.URL.RawQuery)
		}
		self := fmt.Sprintf(`<%s%s?%s>; rel="self"`, o.srv.URL, usersPath, r.URL.RawQuery)
		w.Header().Add("Link", self)
		if r.URL.Query().Get("after") == lastOfP1 {
			o.fixture(w, 200, "users-2.json")
			return
		}
		w.Header().Add("Link", fmt.Sprintf(`<%s%s?after=%s&limit=200>; rel="next"`, o.srv.URL, usersPath, lastOfP1))
		o.fixture(w, 200, "users-1.json")
	case strings.HasSuffix(p, "/factors"), strings.HasSuffix(p, "/roles"):
		parts := strings.Split(p, "/") // "", api, v1, users, id, kind
		o.fixture(w, 200, parts[5]+"-"+parts[4]+".json")
	default:
		o.t.Errorf("unexpected request %s", r.URL)
		w.WriteHeader(404)
	}
}

func byUser(obs []observe.Observation) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, o := range obs {
		m[o.Attrs[collectors.AttrUsername].(string)] = o.Attrs
	}
	return m
}

func golden(t *testing.T, name string, obs []observe.Observation) {
	t.Helper()
	got, err := json.MarshalIndent(obs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(bytes.TrimSpace(want)) != string(got) {
		t.Errorf("observations differ from %s (go test -update to accept):\n%s", path, got)
	}
}

func TestCollect(t *testing.T) {
	o := newOrg(t)
	obs, err := o.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "want-accounts.golden.json", obs)
	if len(obs) != 6 {
		t.Fatalf("%d accounts, want 6 from two pages", len(obs))
	}
	u := byUser(obs)
	check := func(user, key string, want any) {
		t.Helper()
		if got := u[user][key]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s.%s = %v, want %v", user, key, got, want)
		}
	}
	check("skim@glowmedspa.com", collectors.AttrMFA, "true")
	check("skim@glowmedspa.com", collectors.AttrMFAMethods, []string{"push", "totp"}) // sms pending: not counted
	check("skim@glowmedspa.com", collectors.AttrAdminRoles, []string{"Help Desk Administrator"})
	check("skim@glowmedspa.com", collectors.AttrEmail, "skim@glowmedspa.com")
	check("frontdesk@glowmedspa.com", collectors.AttrMFA, "false") // only an inactive question
	check("frontdesk@glowmedspa.com", collectors.AttrIsAdmin, false)
	check("it-admin@glowmedspa.com", collectors.AttrDisplayName, "IT Administrator")
	check("it-admin@glowmedspa.com", collectors.AttrAdminRoles, []string{"Application Administrator", "Super Administrator"})
	check("it-admin@glowmedspa.com", collectors.AttrMFAMethods, []string{"fastpass", "fido2"})
	check("jlee@glowmedspa.com", collectors.AttrEnabled, false) // SUSPENDED
	check("newhire@glowmedspa.com", collectors.AttrEnabled, true)
	check("newhire@glowmedspa.com", collectors.AttrLastLogin, "")
	check("newhire@glowmedspa.com", collectors.AttrLastLoginOK, true)
	check("newhire@glowmedspa.com", collectors.AttrMFA, "false")
	check("pnurse", collectors.AttrEnabled, true) // LOCKED_OUT can be unlocked
	check("pnurse", collectors.AttrMFAEnforced, "unknown")

	if o.maxInFlight > DefaultConcurrency {
		t.Errorf("%d per-user requests in flight, want at most %d", o.maxInFlight, DefaultConcurrency)
	}
	t.Logf("at most %d per-user requests in flight", o.maxInFlight)
	if o.hit(usersPath) != 1 || o.hit(usersPath+"#2") != 1 {
		t.Errorf("user pages fetched %d, %d times", o.hit(usersPath), o.hit(usersPath+"#2"))
	}
}

func TestConcurrencyBound(t *testing.T) {
	o := newOrg(t)
	s := o.source(t)
	s.Concurrency = 2
	if _, err := s.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if o.maxInFlight > 2 {
		t.Errorf("%d in flight, want at most 2", o.maxInFlight)
	}
}

func TestCollectErrors(t *testing.T) {
	serve := func(code int, fixture string) func(o *org) http.HandlerFunc {
		return func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { o.fixture(w, code, fixture) }
		}
	}
	tests := []struct {
		name  string
		path  string
		serve func(o *org) http.HandlerFunc
		kind  error
		want  []string
	}{
		{"token rejected", usersPath, serve(401, "error-invalid-token.json"), httpapi.ErrUnauthorized, []string{
			"okta:okta: GET /api/v1/users: 401 Unauthorized: credentials rejected: check the API token", "E0000011: Invalid token provided",
		}},
		{"token's admin cannot list users", usersPath, serve(403, "error-forbidden.json"), httpapi.ErrForbidden, []string{
			"okta:okta: GET /api/v1/users: 403 Forbidden: missing permission: grant the API token's administrator the Read-only Administrator role",
			"E0000006: You do not have permission",
		}},
		{"token's admin cannot read roles", "/api/v1/users/00u2lock000000000004/roles", serve(403, "error-forbidden.json"), httpapi.ErrForbidden, []string{
			"okta:okta: GET /api/v1/users/00u2lock000000000004/roles: 403 Forbidden: missing permission: grant the API token's administrator the okta.roles.read permission",
		}},
		{"malformed page 2", usersPath, func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Has("after") {
					fmt.Fprint(w, `[{"id":"00u9","profile":{"login":"x"}}`)
					return
				}
				o.serveDefault(w, r)
			}
		}, httpapi.ErrMalformed, []string{"okta:okta: malformed response from /api/v1/users: page 2: unexpected end of JSON input"}},
		{"malformed factors", "/api/v1/users/00u1f96ECLNVOKVMUSEA/factors", func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"factorType":"push"}`) }
		}, httpapi.ErrMalformed, []string{"okta:okta: malformed response from /api/v1/users/00u1f96ECLNVOKVMUSEA/factors"}},
		{"next link off the org", usersPath, func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `<https://attacker.example/api/v1/users?after=x>; rel="next"`)
				o.fixture(w, 200, "users-1.json")
			}
		}, httpapi.ErrMalformed, []string{"refusing to send credentials there"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrg(t)
			o.route[tt.path] = tt.serve(o)
			obs, err := o.source(t).Collect(context.Background())
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			if obs != nil {
				t.Errorf("%d observations returned with the error", len(obs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %s\nlacks\n  %s", err, w)
				}
			}
		})
	}
}

func TestUserGoneDuringCollection(t *testing.T) {
	o := newOrg(t)
	o.route["/api/v1/users/00u2newh000000000003/factors"] = func(w http.ResponseWriter, r *http.Request) {
		o.fixture(w, 404, "error-not-found.json")
	}
	obs, err := o.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := byUser(obs)["newhire@glowmedspa.com"]
	if a[collectors.AttrMFA] != "unknown" || a[collectors.AttrExtra].(map[string]string)["factors"] == "" {
		t.Errorf("mfa = %v, extra = %v", a[collectors.AttrMFA], a[collectors.AttrExtra])
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("429 waits until X-Rate-Limit-Reset", func(t *testing.T) {
		o := newOrg(t)
		var once sync.Once
		o.route["/api/v1/users/00u2admn4ITADMIN0001/factors"] = func(w http.ResponseWriter, r *http.Request) {
			refused := false
			once.Do(func() { refused = true })
			if refused {
				now := time.Now()
				w.Header().Set("Date", now.Format(http.TimeFormat))
				w.Header().Set("X-Rate-Limit-Remaining", "0")
				w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(now.Unix()+1))
				o.fixture(w, 429, "error-rate-limit.json")
				return
			}
			o.serveDefault(w, r)
		}
		start := time.Now()
		obs, err := o.source(t).Collect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("took %s: did not wait for the reset", took)
		}
		if o.hit("/api/v1/users/00u2admn4ITADMIN0001/factors") != 2 || len(obs) != 6 {
			t.Errorf("factors fetched %d times, %d accounts", o.hit("/api/v1/users/00u2admn4ITADMIN0001/factors"), len(obs))
		}
		if !strings.Contains(o.logs.String(), "slow down") {
			t.Errorf("wait not logged:\n%s", o.logs.String())
		}
	})
	t.Run("spent budget paces the next request", func(t *testing.T) {
		o := newOrg(t)
		o.route[usersPath] = func(w http.ResponseWriter, r *http.Request) {
			if !r.URL.Query().Has("after") {
				now := time.Now()
				w.Header().Set("Date", now.Format(http.TimeFormat))
				w.Header().Set("X-Rate-Limit-Remaining", "0")
				w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(now.Unix()+1))
			}
			o.serveDefault(w, r)
		}
		start := time.Now()
		if _, err := o.source(t).Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("took %s: did not wait for the budget to refill", took)
		}
		if o.hit(usersPath) != 1 {
			t.Errorf("page 1 fetched %d times: the budget should prevent a 429, not cause a retry", o.hit(usersPath))
		}
	})
	t.Run("429 forever", func(t *testing.T) {
		o := newOrg(t)
		o.route["roles"] = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			o.fixture(w, 429, "error-rate-limit.json")
		}
		s := o.source(t)
		s.MaxRetries = 2
		obs, err := s.Collect(context.Background())
		if !errors.Is(err, httpapi.ErrRateLimited) || obs != nil {
			t.Fatalf("err = %v, %d observations", err, len(obs))
		}
		if !strings.Contains(err.Error(), "E0000047") || !strings.Contains(err.Error(), "after 2 retries") {
			t.Errorf("err = %v", err)
		}
		for path, n := range o.hits {
			if strings.HasSuffix(path, "/roles") && n > 3 {
				t.Errorf("%s requested %d times, want at most 1 + 2 retries", path, n)
			}
		}
	})
}

func TestCancel(t *testing.T) {
	o := newOrg(t)
	o.route["factors"] = func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	obs, err := o.source(t).Collect(ctx)
	if !errors.Is(err, context.Canceled) || obs != nil {
		t.Fatalf("err = %v, %d observations", err, len(obs))
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s to stop", time.Since(start))
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	scenarios := map[string]func(o *org){
		"success": func(o *org) {},
		"server echoes the token": func(o *org) {
			o.route[usersPath] = func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(401)
				json.NewEncoder(w).Encode(map[string]string{"errorCode": "E0000011", "errorSummary": "Invalid token provided: " + r.Header.Get("Authorization")})
			}
		},
		"forbidden": func(o *org) {
			o.route["roles"] = func(w http.ResponseWriter, r *http.Request) { o.fixture(w, 403, "error-forbidden.json") }
		},
	}
	for name, setup := range scenarios {
		t.Run(name, func(t *testing.T) {
			o := newOrg(t)
			setup(o)
			obs, err := o.source(t).Collect(context.Background())
			t.Logf("error: %v", err)
			var out strings.Builder
			if err != nil {
				fmt.Fprintf(&out, "%v\n%+v\n%#v\n", err, err, err)
			}
			j, _ := json.Marshal(obs)
			out.Write(j)
			out.WriteString(o.logs.String())
			if strings.Contains(out.String(), apiToken) {
				t.Errorf("token leaked:\n%s", out.String())
			}
		})
	}
}

func TestNew(t *testing.T) {
	ok := config.IdentitySource{Type: "okta", System: "okta", OrgURL: "https://glowmedspa.okta.com/", TokenEnv: "X"}
	if s, err := New(ok); err != nil || s.Name() != "okta:okta" {
		t.Fatal(s, err)
	}
	tests := []struct {
		change func(*config.IdentitySource)
		want   string
	}{
		{func(c *config.IdentitySource) { c.System = "" }, "set system"},
		{func(c *config.IdentitySource) { c.OrgURL = "" }, "set org_url"},
		{func(c *config.IdentitySource) { c.OrgURL = "http://glowmedspa.okta.com" }, "https://"},
		{func(c *config.IdentitySource) { c.OrgURL = "https://glowmedspa-admin.okta.com" }, "without -admin"},
		{func(c *config.IdentitySource) { c.TokenEnv = "" }, "token_env or token_file"},
	}
	for _, tt := range tests {
		c := ok
		tt.change(&c)
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error about %s", c, err, tt.want)
		}
	}
}

// FuzzUsersPage: nothing Okta sends may panic the collector.
func FuzzUsersPage(f *testing.F) {
	for _, name := range []string{"users-1.json", "users-2.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(`[{"factorType":"push","status":"ACTIVE"}]`))
	}
	f.Add([]byte(`[{"lastLogin":"x","status":"suspended","profile":{}}]`), []byte(`[{"factorType":"","status":"active"}]`))
	f.Fuzz(func(t *testing.T, usersJSON, factorsJSON []byte) {
		var users []user
		if json.Unmarshal(usersJSON, &users) != nil {
			return
		}
		var d detail
		d.factorsKnown = json.Unmarshal(factorsJSON, &d.factors) == nil
		for _, u := range users {
			o := account(config.IdentitySource{System: "okta"}, u, d).Observation("okta:okta", now)
			if o.Attrs[collectors.AttrUsername] != u.Profile.Login {
				t.Errorf("username %v from %q", o.Attrs[collectors.AttrUsername], u.Profile.Login)
			}
		}
	})
}
