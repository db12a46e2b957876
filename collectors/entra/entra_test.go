package entra

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	tenant      = "glowmedspa.onmicrosoft.com"
	clientID    = "00000000-0000-0000-0000-000000000001"
	secret      = "Q8~entraSecretValue.abcDEF123_xyz"
	accessToken = "eyJ0eXAiOiJKV1QiLCJub25jZSI6ImZha2UifQ.test-access-token"
	tokenPath   = "/" + tenant + "/oauth2/v2.0/token"
)

// graph is a fake Microsoft Graph and token endpoint serving testdata/.
type graph struct {
	*httpapitest.Server
	t *testing.T
}

func newGraph(t *testing.T) *graph {
	g := &graph{t: t}
	g.Server = httpapitest.NewServer(t, httpapitest.API{
		Authorization: "Bearer " + accessToken,
		Unauthorized:  "error-unauthorized.json",
		PageParam:     "$skiptoken",
		Open:          map[string]http.HandlerFunc{tokenPath: g.token},
		Default:       g.serveDefault,
		Now:           now,
	})
	return g
}

// source is an entra Source pointed at the fake.
func (g *graph) source(t *testing.T) *Source {
	t.Helper()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(config.IdentitySource{
		Type: "entra", System: "m365", TenantID: tenant, ClientID: clientID,
		ClientSecretFile: secretFile,
		APIURL:           g.URL() + "/v1.0",
		TokenURL:         g.URL() + tokenPath,
		Locations:        []string{"downtown", "uptown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	g.Configure(&s.Options)
	return s
}

func (g *graph) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		g.t.Errorf("token request: %s %v", r.Method, err)
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" || f.Get("client_id") != clientID ||
		f.Get("client_secret") != secret || f.Get("scope") != g.URL()+"/.default" {
		g.Fixture(w, 401, "token-invalid-client.json")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, accessToken)
}

func (g *graph) serveDefault(w http.ResponseWriter, r *http.Request) {
	page2 := r.URL.Query().Has("$skiptoken")
	p := r.URL.Path
	switch {
	case p == "/v1.0/users":
		name := "users-1.json"
		if page2 {
			name = "users-2.json"
		}
		if !strings.Contains(r.URL.Query().Get("$select"), "signInActivity") {
			g.withoutSignIns(w, name)
			return
		}
		g.Fixture(w, 200, name)
	case p == "/v1.0/reports/authenticationMethods/userRegistrationDetails":
		if page2 {
			g.Fixture(w, 200, "registration-2.json")
			return
		}
		g.Fixture(w, 200, "registration.json")
	case p == "/v1.0/directoryRoles":
		g.Fixture(w, 200, "directoryRoles.json")
	case strings.HasPrefix(p, "/v1.0/directoryRoles/") && strings.HasSuffix(p, "/members"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/v1.0/directoryRoles/"), "/members")
		if page2 {
			id += "-2"
		}
		g.Fixture(w, 200, "members-"+id+".json")
	default:
		g.t.Errorf("unexpected request %s", r.URL)
		w.WriteHeader(404)
	}
}

// withoutSignIns serves a users page as Graph does when signInActivity is
// not selected.
func (g *graph) withoutSignIns(w http.ResponseWriter, name string) {
	b, _ := os.ReadFile(filepath.Join("testdata", name))
	var page map[string]any
	if err := json.Unmarshal(b, &page); err != nil {
		g.t.Errorf("%s: %v", name, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	for _, u := range page["value"].([]any) {
		delete(u.(map[string]any), "signInActivity")
	}
	if next, ok := page["@odata.nextLink"].(string); ok {
		page["@odata.nextLink"] = strings.ReplaceAll(strings.ReplaceAll(next, "{{base}}", g.URL()), ",signInActivity", "")
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(page)
}

func TestCollect(t *testing.T) {
	g := newGraph(t)
	obs, err := g.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	httpapitest.Golden(t, "want-accounts.golden.json", obs, *update)

	u := httpapitest.ByUsername(obs)
	u.Check(t, "skim@glowmedspa.com", collectors.AttrEmail, "skim@glowmedspa.com")
	u.Check(t, "skim@glowmedspa.com", collectors.AttrLastLogin, "2025-03-01T07:00:12Z") // last successful
	u.Check(t, "skim@glowmedspa.com", collectors.AttrMFA, "true")
	u.Check(t, "skim@glowmedspa.com", collectors.AttrMFAMethods, []string{"push", "sms", "totp"})
	u.Check(t, "skim@glowmedspa.com", collectors.AttrAdminRoles, []string{"User Administrator"})
	u.Check(t, "skim@glowmedspa.com", collectors.AttrLocations, []string{"downtown"})
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrPwdNoExpiry, true)
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrMFA, "false")
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrLastLogin, "2024-06-01T12:00:00Z") // later of the two attempts
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrLocations, []string{"downtown", "uptown"})
	u.Check(t, "it-admin@glowmedspa.onmicrosoft.com", collectors.AttrAdminRoles, []string{"Global Administrator", "User Administrator"})
	u.Check(t, "it-admin@glowmedspa.onmicrosoft.com", collectors.AttrIsAdmin, true)
	u.Check(t, "it-admin@glowmedspa.onmicrosoft.com", collectors.AttrPwdNoExpiry, true)
	u.Check(t, "jlee@glowmedspa.com", collectors.AttrEnabled, false)
	u.Check(t, "jlee@glowmedspa.com", collectors.AttrMFA, "unknown") // disabled users are not in the report
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrLastLogin, "")
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrLastLoginOK, true)
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrIsAdmin, true) // via a role group: only the report knows
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrMFAEnforced, "unknown")
	u.Check(t, "billing_partner.com#EXT#@glowmedspa.onmicrosoft.com", collectors.AttrLastLogin, "2024-02-03T10:00:00Z")

	if n := g.Hits(tokenPath); n != 1 {
		t.Errorf("token fetched %d times, want once", n)
	}
}

// TestAPIScenarios runs the failures every cloud identity collector must
// handle (refusals, throttling, broken pages, cancellation, echoed
// credentials) against the fake Graph.
func TestAPIScenarios(t *testing.T) {
	httpapitest.Suite{
		Start: func(t *testing.T) (*httpapitest.Server, collectors.Collector, *httpapi.Options) {
			g := newGraph(t)
			s := g.source(t)
			return g.Server, s, &s.Options
		},
		Listing:  "/v1.0/users",
		Accounts: 6,
		Unauthorized: httpapitest.Refusal{Fixture: "error-unauthorized.json", Hint: "the access token was refused: check tenant_id",
			Code: "InvalidAuthenticationToken: Access token validation failure"},
		Forbidden: httpapitest.Refusal{Fixture: "error-forbidden.json", Hint: "grant " + GrantUsers,
			Code: "Authorization_RequestDenied: Insufficient privileges"},
		TokenRefused: &httpapitest.Refusal{Path: tokenPath, Fixture: "token-invalid-client.json",
			Hint: "check tenant_id, client_id and the client secret", Code: "invalid_client: AADSTS7000215"},
		Throttled: httpapitest.Refusal{Path: "/v1.0/reports/authenticationMethods/userRegistrationDetails",
			Fixture: "error-throttled.json", Code: "TooManyRequests: Too many requests."},
		Page2:   httpapitest.Malformed{Body: `{"value":[{"id":"x","userPrincipalName":`, Want: "unexpected end of JSON input"},
		Secrets: func() []string { return []string{secret, accessToken} },
		Leaks: map[string]func(*httpapitest.Server){
			"token endpoint echoes the secret": func(srv *httpapitest.Server) {
				srv.Handle(tokenPath, func(w http.ResponseWriter, r *http.Request) {
					r.ParseForm()
					b, _ := json.Marshal(map[string]string{
						"error":             "invalid_request",
						"error_description": "AADSTS900144: bad request from client_secret=" + r.PostForm.Get("client_secret"),
					})
					srv.Write(w, 400, b)
				})
			},
			"api echoes the token": func(srv *httpapitest.Server) {
				srv.Handle("/v1.0/directoryRoles", func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(403)
					fmt.Fprintf(w, `{"error":{"code":"Denied","message":"token %s lacks roles"}}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				})
			},
		},
	}.Run(t)
}

func TestSignInActivityUnavailableDegrades(t *testing.T) {
	for _, fixture := range []string{"error-nonpremium.json", "error-forbidden.json"} {
		t.Run(fixture, func(t *testing.T) {
			g := newGraph(t)
			g.Handle("/v1.0/users", func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Query().Get("$select"), "signInActivity") {
					g.Fixture(w, 403, fixture)
					return
				}
				g.Serve(w, r)
			})
			obs, err := g.source(t).Collect(context.Background())
			if err != nil {
				t.Fatalf("err = %v, want the accounts without sign-in times", err)
			}
			if len(obs) != 6 {
				t.Fatalf("%d accounts", len(obs))
			}
			for _, o := range obs {
				extra := o.Attrs[collectors.AttrExtra].(map[string]string)
				if o.Attrs[collectors.AttrLastLoginOK] != false || o.Attrs[collectors.AttrLastLogin] != "" ||
					extra["signin_activity"] != SignInUnavailable {
					t.Errorf("%v: last_login %q known %v extra %v", o.Attrs[collectors.AttrUsername],
						o.Attrs[collectors.AttrLastLogin], o.Attrs[collectors.AttrLastLoginOK], extra)
				}
			}
			if !strings.Contains(g.Logs(), "sign-in activity") {
				t.Errorf("degradation not logged:\n%s", g.Logs())
			}
		})
	}
}

func TestRegistrationReportWithoutLicenceDegrades(t *testing.T) {
	g := newGraph(t)
	g.Handle("/v1.0/reports/authenticationMethods/userRegistrationDetails", func(w http.ResponseWriter, r *http.Request) {
		g.Fixture(w, 403, "error-nonpremium.json")
	})
	obs, err := g.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		extra := o.Attrs[collectors.AttrExtra].(map[string]string)
		if o.Attrs[collectors.AttrMFA] != "unknown" || extra["mfa_registration"] != RegistrationUnavailable {
			t.Errorf("%v: mfa %v extra %v", o.Attrs[collectors.AttrUsername], o.Attrs[collectors.AttrMFA], extra)
		}
	}
}

// TestCollectErrors covers Graph's failures beyond the users listing that
// TestAPIScenarios exercises: the later listings and their permissions.
func TestCollectErrors(t *testing.T) {
	status := func(code int, fixture string) func(g *graph) http.HandlerFunc {
		return func(g *graph) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { g.Fixture(w, code, fixture) }
		}
	}
	tests := []struct {
		name  string
		path  string
		serve func(g *graph) http.HandlerFunc
		kind  error
		want  []string
	}{
		{"no AuditLog.Read.All", "/v1.0/reports/authenticationMethods/userRegistrationDetails", status(403, "error-forbidden.json"), httpapi.ErrForbidden, []string{
			"GET /v1.0/reports/authenticationMethods/userRegistrationDetails: 403 Forbidden: missing permission: grant the app registration the Microsoft Graph application permission AuditLog.Read.All",
		}},
		{"no RoleManagement.Read.Directory", "/v1.0/directoryRoles", status(403, "error-forbidden.json"), httpapi.ErrForbidden, []string{
			"missing permission: grant the app registration the Microsoft Graph application permission RoleManagement.Read.Directory",
		}},
		{"role members page 2 malformed", "/v1.0/directoryRoles/1a5a4d7b-2e6f-4b8a-9c3d-5e6f7a8b9c0d/members", func(g *graph) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if g.LaterPage(r) {
					fmt.Fprint(w, `{"value":"not a list"}`)
					return
				}
				g.Serve(w, r)
			}
		}, httpapi.ErrMalformed, []string{"entra:m365: malformed response from /v1.0/directoryRoles/1a5a4d7b-2e6f-4b8a-9c3d-5e6f7a8b9c0d/members: page 2"}},
		{"graph down", "/v1.0/directoryRoles", status(500, "error-forbidden.json"), httpapi.ErrServer, []string{"500 Internal Server Error: server error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGraph(t)
			g.Handle(tt.path, tt.serve(g))
			httpapitest.CollectFails(t, g.source(t), tt.kind, tt.want...)
		})
	}
}

func TestNew(t *testing.T) {
	ok := config.IdentitySource{Type: "entra", System: "m365", TenantID: tenant, ClientID: clientID, ClientSecretEnv: "X"}
	httpapitest.CheckNew(t, New, ok, "entra:m365",
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.TenantID = "" }, Want: "tenant_id"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.TenantID = "x/../../evil" }, Want: "tenant_id"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.ClientID = "" }, Want: "client_id"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.ClientSecretEnv = "" }, Want: "client_secret_env or client_secret_file"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.APIURL = "http://graph.example/v1.0" }, Want: "api_url"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.TokenURL = "http://login.example/t" }, Want: "token_url"},
	)
}

func TestMissingSecret(t *testing.T) {
	s, err := New(config.IdentitySource{Type: "entra", System: "m365", TenantID: tenant, ClientID: clientID, ClientSecretEnv: "VIGIL_TEST_UNSET_ENTRA_SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Collect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "entra:m365: client_secret_env: environment variable VIGIL_TEST_UNSET_ENTRA_SECRET is not set") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzUsersPage feeds arbitrary bytes through the users page decoder and the
// account mapping: nothing Graph sends may panic the collector.
func FuzzUsersPage(f *testing.F) {
	for _, b := range httpapitest.Fixtures(f, "users-1.json", "users-2.json") {
		f.Add(b)
	}
	f.Add([]byte(`{"value":[{"signInActivity":{"lastSignInDateTime":"x"},"accountEnabled":null,"passwordPolicies":","}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p page[user]
		if json.Unmarshal(b, &p) != nil {
			return
		}
		for _, u := range p.Value {
			a := account(config.IdentitySource{System: "m365"}, u, true, registration{}, false, true, nil)
			o := a.Observation("entra:m365", now)
			if o.Attrs[collectors.AttrUsername] != u.UserPrincipalName {
				t.Errorf("username %v from %q", o.Attrs[collectors.AttrUsername], u.UserPrincipalName)
			}
		}
	})
}
