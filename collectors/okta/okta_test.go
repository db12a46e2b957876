package okta

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/httpapi"
	"github.com/vigilhq/vigil/collectors/httpapi/httpapitest"
	"github.com/vigilhq/vigil/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

var now = time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)

const (
	apiToken  = "00aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_xy"
	usersPath = "/api/v1/users"
	lastOfP1  = "00u1f96ECLNVOKVMUSEA"
)

// org is a fake Okta org serving testdata/. It also tracks how many
// per-user requests are in flight at once.
type org struct {
	*httpapitest.Server
	t *testing.T

	mu                    sync.Mutex
	inFlight, maxInFlight int
}

func newOrg(t *testing.T) *org {
	o := &org{t: t}
	o.Server = httpapitest.NewServer(t, httpapitest.API{
		Authorization: "SSWS " + apiToken,
		Unauthorized:  "error-invalid-token.json",
		PageParam:     "after",
		Default:       o.serveDefault,
		Group:         perUserKind,
		Wrap:          o.wrap,
		Now:           now,
	})
	return o
}

func (o *org) source(t *testing.T) *Source {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "okta-token")
	if err := os.WriteFile(tokenFile, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(config.IdentitySource{
		Type: "okta", System: "okta", OrgURL: o.URL(), TokenFile: tokenFile,
		Locations: []string{"downtown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Configure(&s.Options)
	return s
}

// perUserKind is "factors" or "roles" for a per-user request: the route
// that overrides it for every user.
func perUserKind(path string) string {
	if !strings.HasPrefix(path, usersPath+"/") {
		return ""
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}

// wrap counts the per-user requests in flight, holding each a moment so
// they overlap, and sends Okta's rate-limit headers with every answer.
func (o *org) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if perUserKind(r.URL.Path) != "" {
			o.mu.Lock()
			o.inFlight++
			o.maxInFlight = max(o.maxInFlight, o.inFlight)
			o.mu.Unlock()
			defer func() {
				o.mu.Lock()
				o.inFlight--
				o.mu.Unlock()
			}()
			time.Sleep(5 * time.Millisecond) // let requests overlap
		}
		w.Header().Set("X-Rate-Limit-Limit", "600")
		w.Header().Set("X-Rate-Limit-Remaining", "599")
		w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(time.Now().Unix()+60))
		next.ServeHTTP(w, r)
	})
}

// most is the largest number of per-user requests that were in flight at
// once.
func (o *org) most() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.maxInFlight
}

func (o *org) serveDefault(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == usersPath:
		if r.URL.Query().Get("limit") != "200" {
			o.t.Errorf("users query %q", r.URL.RawQuery)
		}
		self := fmt.Sprintf(`<%s%s?%s>; rel="self"`, o.URL(), usersPath, r.URL.RawQuery)
		w.Header().Add("Link", self)
		if r.URL.Query().Get("after") == lastOfP1 {
			o.Fixture(w, 200, "users-2.json")
			return
		}
		w.Header().Add("Link", fmt.Sprintf(`<%s%s?after=%s&limit=200>; rel="next"`, o.URL(), usersPath, lastOfP1))
		o.Fixture(w, 200, "users-1.json")
	case strings.HasSuffix(p, "/factors"), strings.HasSuffix(p, "/roles"):
		parts := strings.Split(p, "/") // "", api, v1, users, id, kind
		name := parts[5] + "-" + parts[4] + ".json"
		if _, err := os.Stat(filepath.Join("testdata", name)); errors.Is(err, fs.ErrNotExist) {
			o.Write(w, 200, []byte("[]")) // no factors or roles
			return
		}
		o.Fixture(w, 200, name)
	default:
		o.t.Errorf("unexpected request %s", r.URL)
		w.WriteHeader(404)
	}
}

func TestCollect(t *testing.T) {
	o := newOrg(t)
	obs, err := o.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	httpapitest.Golden(t, "want-accounts.golden.json", obs, *update)
	u := httpapitest.ByUsername(obs)
	u.Check(t, "skim@glowmedspa.com", collectors.AttrMFA, "true")
	u.Check(t, "skim@glowmedspa.com", collectors.AttrMFAMethods, []string{"push", "totp"}) // sms pending: not counted
	u.Check(t, "skim@glowmedspa.com", collectors.AttrAdminRoles, []string{"Help Desk Administrator"})
	u.Check(t, "skim@glowmedspa.com", collectors.AttrEmail, "skim@glowmedspa.com")
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrMFA, "false") // only an inactive question
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrIsAdmin, false)
	u.Check(t, "it-admin@glowmedspa.com", collectors.AttrDisplayName, "IT Administrator")
	u.Check(t, "it-admin@glowmedspa.com", collectors.AttrAdminRoles, []string{"Application Administrator", "Super Administrator"})
	u.Check(t, "it-admin@glowmedspa.com", collectors.AttrMFAMethods, []string{"fastpass", "fido2"})
	u.Check(t, "jlee@glowmedspa.com", collectors.AttrEnabled, false) // SUSPENDED
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrEnabled, true)
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrLastLogin, "")
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrLastLoginOK, true)
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrMFA, "false")
	u.Check(t, "pnurse", collectors.AttrEnabled, true) // LOCKED_OUT can be unlocked
	u.Check(t, "pnurse", collectors.AttrMFAEnforced, "unknown")

	if n := o.most(); n > DefaultConcurrency {
		t.Errorf("%d per-user requests in flight, want at most %d", n, DefaultConcurrency)
	}
	t.Logf("at most %d per-user requests in flight", o.most())
}

func TestConcurrencyBound(t *testing.T) {
	o := newOrg(t)
	s := o.source(t)
	s.Concurrency = 2
	if _, err := s.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := o.most(); n > 2 {
		t.Errorf("%d in flight, want at most 2", n)
	}
}

// TestAPIScenarios runs the failures every cloud identity collector must
// handle (refusals, throttling, broken pages, cancellation, echoed
// credentials) against the fake org. Throttling and cancellation hit the
// per-user requests, which run concurrently.
func TestAPIScenarios(t *testing.T) {
	httpapitest.Suite{
		Start: func(t *testing.T) (*httpapitest.Server, collectors.Collector, *httpapi.Options) {
			o := newOrg(t)
			s := o.source(t)
			return o.Server, s, &s.Options
		},
		Listing:  usersPath,
		Accounts: 6,
		Unauthorized: httpapitest.Refusal{Fixture: "error-invalid-token.json", Hint: "check the API token",
			Code: "E0000011: Invalid token provided"},
		Forbidden: httpapitest.Refusal{Fixture: "error-forbidden.json", Hint: "grant " + GrantUsers,
			Code: "E0000006: You do not have permission"},
		Throttled: httpapitest.Refusal{Path: "roles", Fixture: "error-rate-limit.json", Code: "E0000047"},
		Page2:     httpapitest.Malformed{Body: `[{"id":"00u9","profile":{"login":"x"}}`, Want: "unexpected end of JSON input"},
		Stall:     "factors",
		Secrets:   func() []string { return []string{apiToken} },
		Leaks: map[string]func(*httpapitest.Server){
			"server echoes the token": func(srv *httpapitest.Server) {
				srv.Handle(usersPath, func(w http.ResponseWriter, r *http.Request) {
					b, _ := json.Marshal(map[string]string{"errorCode": "E0000011", "errorSummary": "Invalid token provided: " + r.Header.Get("Authorization")})
					srv.Write(w, 401, b)
				})
			},
			"roles forbidden": func(srv *httpapitest.Server) {
				srv.Handle("roles", func(w http.ResponseWriter, r *http.Request) { srv.Fixture(w, 403, "error-forbidden.json") })
			},
		},
	}.Run(t)
}

// TestCollectErrors covers Okta's failures beyond the users listing that
// TestAPIScenarios exercises: per-user requests and Link headers.
func TestCollectErrors(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		serve func(o *org) http.HandlerFunc
		kind  error
		want  []string
	}{
		{"token's admin cannot read roles", "/api/v1/users/00u2lock000000000004/roles", func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { o.Fixture(w, 403, "error-forbidden.json") }
		}, httpapi.ErrForbidden, []string{
			"okta:okta: GET /api/v1/users/00u2lock000000000004/roles: 403 Forbidden: missing permission: grant the API token's administrator the okta.roles.read permission",
		}},
		{"malformed factors", "/api/v1/users/00u1f96ECLNVOKVMUSEA/factors", func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"factorType":"push"}`) }
		}, httpapi.ErrMalformed, []string{"okta:okta: malformed response from /api/v1/users/00u1f96ECLNVOKVMUSEA/factors"}},
		{"next link off the org", usersPath, func(o *org) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `<https://attacker.example/api/v1/users?after=x>; rel="next"`)
				o.Fixture(w, 200, "users-1.json")
			}
		}, httpapi.ErrMalformed, []string{"refusing to send credentials there"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrg(t)
			o.Handle(tt.path, tt.serve(o))
			httpapitest.CollectFails(t, o.source(t), tt.kind, tt.want...)
		})
	}
}

func TestUserGoneDuringCollection(t *testing.T) {
	o := newOrg(t)
	o.Handle("/api/v1/users/00u2newh000000000003/factors", func(w http.ResponseWriter, r *http.Request) {
		o.Fixture(w, 404, "error-not-found.json")
	})
	obs, err := o.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := httpapitest.ByUsername(obs)["newhire@glowmedspa.com"]
	if a[collectors.AttrMFA] != "unknown" || a[collectors.AttrExtra].(map[string]string)["factors"] == "" {
		t.Errorf("mfa = %v, extra = %v", a[collectors.AttrMFA], a[collectors.AttrExtra])
	}
}

// TestRateLimits covers Okta's own rate-limit headers; Retry-After and
// bounded retries are in TestAPIScenarios.
func TestRateLimits(t *testing.T) {
	t.Run("429 waits until X-Rate-Limit-Reset", func(t *testing.T) {
		o := newOrg(t)
		var once sync.Once
		o.Handle("/api/v1/users/00u2admn4ITADMIN0001/factors", func(w http.ResponseWriter, r *http.Request) {
			refused := false
			once.Do(func() { refused = true })
			if refused {
				now := time.Now()
				w.Header().Set("Date", now.Format(http.TimeFormat))
				w.Header().Set("X-Rate-Limit-Remaining", "0")
				w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(now.Unix()+1))
				o.Fixture(w, 429, "error-rate-limit.json")
				return
			}
			o.Serve(w, r)
		})
		start := time.Now()
		obs, err := o.source(t).Collect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("took %s: did not wait for the reset", took)
		}
		if o.Hits("/api/v1/users/00u2admn4ITADMIN0001/factors") != 2 || len(obs) != 6 {
			t.Errorf("factors fetched %d times, %d accounts", o.Hits("/api/v1/users/00u2admn4ITADMIN0001/factors"), len(obs))
		}
		if !strings.Contains(o.Logs(), "slow down") {
			t.Errorf("wait not logged:\n%s", o.Logs())
		}
	})
	t.Run("spent budget paces the next request", func(t *testing.T) {
		o := newOrg(t)
		o.Handle(usersPath, func(w http.ResponseWriter, r *http.Request) {
			if !o.LaterPage(r) {
				now := time.Now()
				w.Header().Set("Date", now.Format(http.TimeFormat))
				w.Header().Set("X-Rate-Limit-Remaining", "0")
				w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(now.Unix()+1))
			}
			o.Serve(w, r)
		})
		start := time.Now()
		if _, err := o.source(t).Collect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("took %s: did not wait for the budget to refill", took)
		}
		if o.Hits(usersPath) != 1 {
			t.Errorf("page 1 fetched %d times: the budget should prevent a 429, not cause a retry", o.Hits(usersPath))
		}
	})
}

func TestNew(t *testing.T) {
	ok := config.IdentitySource{Type: "okta", System: "okta", OrgURL: "https://glowmedspa.okta.com/", TokenEnv: "X"}
	httpapitest.CheckNew(t, New, ok, "okta:okta",
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.OrgURL = "" }, Want: "set org_url"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.OrgURL = "http://glowmedspa.okta.com" }, Want: "https://"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.OrgURL = "https://glowmedspa-admin.okta.com" }, Want: "without -admin"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.TokenEnv = "" }, Want: "token_env or token_file"},
	)
}

// FuzzUsersPage: nothing Okta sends may panic the collector.
func FuzzUsersPage(f *testing.F) {
	for _, b := range httpapitest.Fixtures(f, "users-1.json", "users-2.json") {
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
