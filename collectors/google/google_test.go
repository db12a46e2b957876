package google

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
	adminEmail   = "it@glowmedspa.com"
	clientEmail  = "vigil-reader@glowmedspa-vigil.iam.gserviceaccount.com"
	accessToken  = "ya29.c.test-access-token-value"
	usersPath    = "/admin/directory/v1/users"
	secondPageID = "Q0FFU0hnb0lDQUFRQUJnQUlBQVFBQmdBSUFBUUFCZ0E"
)

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
	keyPEM  string
)

// testKey is one RSA key for every test (generating one is slow).
func testKey(t testing.TB) (*rsa.PrivateKey, string) {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic(err)
		}
		key = k
		keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	})
	return key, keyPEM
}

// directory is a fake Admin SDK and Google token endpoint.
type directory struct {
	*httpapitest.Server
	t *testing.T

	mu    sync.Mutex
	query []string // every users query seen
}

func newDirectory(t *testing.T) *directory {
	d := &directory{t: t}
	d.Server = httpapitest.NewServer(t, httpapitest.API{
		Authorization: "Bearer " + accessToken,
		Unauthorized:  "error-unauthorized.json",
		PageParam:     "pageToken",
		Open:          map[string]http.HandlerFunc{"/token": d.token, "/alt-token": d.token},
		Default:       d.serveDefault,
		Wrap:          d.recordQueries,
		ContentType:   "application/json; charset=UTF-8",
		Now:           now,
	})
	return d
}

// recordQueries notes the query of every users request.
func (d *directory) recordQueries(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == usersPath {
			d.mu.Lock()
			d.query = append(d.query, r.URL.RawQuery)
			d.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// queries returns the users queries seen so far.
func (d *directory) queries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.query)
}

// keyFile writes a service-account key whose token_uri is the fake.
func (d *directory) keyFile(t *testing.T) string {
	t.Helper()
	_, pemKey := testKey(t)
	b, err := os.ReadFile(filepath.Join("testdata", "service-account.json"))
	if err != nil {
		t.Fatal(err)
	}
	quoted, _ := json.Marshal(pemKey)
	b = bytes.ReplaceAll(b, []byte(`"{{private_key}}"`), quoted)
	b = bytes.ReplaceAll(b, []byte("{{token_uri}}"), []byte(d.URL()+"/token"))
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (d *directory) source(t *testing.T) *Source {
	t.Helper()
	s, err := New(config.IdentitySource{
		Type: "google", System: "workspace", CredentialsFile: d.keyFile(t), AdminEmail: adminEmail,
		APIURL: d.URL(), Locations: []string{"downtown", "uptown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Configure(&s.Options)
	return s
}

func (d *directory) serveDefault(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != usersPath {
		d.t.Errorf("unexpected request %s", r.URL)
		w.WriteHeader(404)
		return
	}
	switch r.URL.Query().Get("pageToken") {
	case "":
		d.Fixture(w, 200, "users-1.json")
	case secondPageID:
		d.Fixture(w, 200, "users-2.json")
	default:
		w.WriteHeader(400)
	}
}

// token checks the signed JWT assertion as Google does: signature, issuer,
// subject (the delegated admin), scope and audience.
func (d *directory) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	refuse := func(why string) {
		d.t.Logf("token refused: %s", why)
		d.Fixture(w, 401, "token-unauthorized-client.json")
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		refuse("grant_type")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		refuse("assertion shape")
		return
	}
	k, _ := testKey(d.t)
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		refuse("signature")
		return
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss, Sub, Scope, Aud string
	}
	json.Unmarshal(payload, &claims)
	if claims.Iss != clientEmail || claims.Sub != adminEmail || claims.Scope != Scope || claims.Aud != d.URL()+r.URL.Path {
		refuse(fmt.Sprintf("claims %+v", claims))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, accessToken)
}

func TestCollect(t *testing.T) {
	d := newDirectory(t)
	obs, err := d.source(t).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	httpapitest.Golden(t, "want-accounts.golden.json", obs, *update)
	u := httpapitest.ByUsername(obs)
	u.Check(t, "skim@glowmedspa.com", collectors.AttrAdminRoles, []string{"super admin"})
	u.Check(t, "skim@glowmedspa.com", collectors.AttrMFA, "true")
	u.Check(t, "skim@glowmedspa.com", collectors.AttrMFAEnforced, "true")
	u.Check(t, "skim@glowmedspa.com", collectors.AttrRole, "Medical Director")
	u.Check(t, "skim@glowmedspa.com", collectors.AttrLocations, []string{"downtown"})
	u.Check(t, "skim@glowmedspa.com", collectors.AttrLastLogin, "2025-03-01T16:20:31Z")
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrMFA, "false")
	u.Check(t, "frontdesk@glowmedspa.com", collectors.AttrLocations, []string{"downtown", "uptown"})
	u.Check(t, "ops-admin@glowmedspa.com", collectors.AttrIsAdmin, true)
	u.Check(t, "ops-admin@glowmedspa.com", collectors.AttrAdminRoles, []string{"delegated admin"})
	u.Check(t, "jlee@glowmedspa.com", collectors.AttrEnabled, false)
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrLastLogin, "") // 1970-01-01: never
	u.Check(t, "newhire@glowmedspa.com", collectors.AttrLastLoginOK, true)
	u.Check(t, "former@glowmedspa.com", collectors.AttrEnabled, false) // archived
	if d.Hits("/token") != 1 {
		t.Errorf("token fetched %d times", d.Hits("/token"))
	}
	want := "customer=my_customer&maxResults=500&projection=full"
	if q := d.queries(); len(q) != 2 || q[0] != want || q[1] != "customer=my_customer&maxResults=500&pageToken="+secondPageID+"&projection=full" {
		t.Errorf("queries = %q", q)
	}
}

func TestDomainAndTokenURLOverride(t *testing.T) {
	d := newDirectory(t)
	s := d.source(t)
	s.Config.Domain = "glowmedspa.com"
	s.Config.CustomerID = "C03az79cb"
	s.Config.TokenURL = d.URL() + "/alt-token"
	if _, err := s.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.Hits("/alt-token") != 1 || d.Hits("/token") != 0 {
		t.Errorf("token_url override not used: /alt-token %d, /token %d", d.Hits("/alt-token"), d.Hits("/token"))
	}
	if want := "customer=C03az79cb&domain=glowmedspa.com&maxResults=500&projection=full"; d.queries()[0] != want {
		t.Errorf("query = %q, want %q", d.queries()[0], want)
	}
}

// TestAPIScenarios runs the failures every cloud identity collector must
// handle (refusals, throttling, broken pages, cancellation, echoed
// credentials) against the fake Directory API.
func TestAPIScenarios(t *testing.T) {
	_, pemKey := testKey(t)
	var keyLines []string
	for _, l := range strings.Split(pemKey, "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			keyLines = append(keyLines, l)
		}
	}
	var assertion string // the signed JWT, once a fake token endpoint has seen it
	httpapitest.Suite{
		Start: func(t *testing.T) (*httpapitest.Server, collectors.Collector, *httpapi.Options) {
			d := newDirectory(t)
			s := d.source(t)
			return d.Server, s, &s.Options
		},
		Listing:  usersPath,
		Accounts: 6,
		Unauthorized: httpapitest.Refusal{Fixture: "error-unauthorized.json", Hint: "the access token was refused: check admin_email",
			Code: "authError: Request had invalid authentication credentials"},
		Forbidden: httpapitest.Refusal{Fixture: "error-forbidden.json", Hint: "grant " + Grant,
			Code: "forbidden: Not Authorized to access this resource/api"},
		TokenRefused: &httpapitest.Refusal{Path: "/token", Fixture: "token-unauthorized-client.json",
			Hint: "check that the key in credentials_file is still active",
			Code: "unauthorized_client: Client is unauthorized to retrieve access tokens"},
		Throttled: httpapitest.Refusal{Fixture: "error-rate-limit.json", Code: "rateLimitExceeded"},
		Page2:     httpapitest.Malformed{Body: `{"users":[{"primaryEmail":"x@y"},]}`, Want: "invalid character ']'"},
		Secrets: func() []string {
			leaks := append(slices.Clone(keyLines), accessToken)
			if assertion != "" {
				parts := strings.Split(assertion, ".")
				leaks = append(leaks, assertion, parts[0]+"."+parts[1], parts[2])
			}
			return leaks
		},
		Leaks: map[string]func(*httpapitest.Server){
			"token endpoint echoes the assertion": func(srv *httpapitest.Server) {
				srv.Handle("/token", func(w http.ResponseWriter, r *http.Request) {
					r.ParseForm()
					assertion = r.PostForm.Get("assertion")
					b, _ := json.Marshal(map[string]string{"error": "invalid_grant", "error_description": "bad " + r.PostForm.Get("assertion") + " " + pemKey})
					srv.Write(w, 400, b)
				})
			},
			"api echoes the token": func(srv *httpapitest.Server) {
				srv.Handle(usersPath, func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(403)
					fmt.Fprintf(w, `{"error":{"code":403,"message":%q}}`, r.Header.Get("Authorization"))
				})
			},
		},
	}.Run(t)
}

func TestBadKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	os.WriteFile(path, []byte(`{"type":"authorized_user","client_id":"x"}`), 0o600)
	s, err := New(config.IdentitySource{Type: "google", System: "workspace", CredentialsFile: path, AdminEmail: adminEmail})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Collect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "google:workspace: credentials_file "+path) || !strings.Contains(err.Error(), "download a JSON key") {
		t.Fatalf("err = %v", err)
	}
	s.Config.CredentialsFile = filepath.Join(dir, "missing.json")
	if _, err = s.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "credentials_file") {
		t.Fatalf("err = %v", err)
	}
}

func TestNew(t *testing.T) {
	ok := config.IdentitySource{Type: "google", System: "workspace", CredentialsFile: "/k.json", AdminEmail: adminEmail}
	httpapitest.CheckNew(t, New, ok, "google:workspace",
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.CredentialsFile = "" }, Want: "credentials_file"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.AdminEmail = "" }, Want: "admin_email"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.AdminEmail = "Admin <it@x.com>" }, Want: "admin_email"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.Domain = "x.com&customer=other" }, Want: "plain names"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.APIURL = "http://admin.example" }, Want: "api_url"},
		httpapitest.Misconfig{Change: func(c *config.IdentitySource) { c.TokenURL = "http://oauth.example/token" }, Want: "token_url"},
	)
}

// FuzzUsersPage: nothing the Directory API sends may panic the collector.
func FuzzUsersPage(f *testing.F) {
	for _, b := range httpapitest.Fixtures(f, "users-1.json", "users-2.json") {
		f.Add(b)
	}
	f.Add([]byte(`{"users":[{"locations":"x","organizations":[1,2],"lastLoginTime":"never"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p usersPage
		if json.Unmarshal(b, &p) != nil {
			return
		}
		for _, u := range p.Users {
			o := account(config.IdentitySource{System: "workspace"}, u).Observation("google:workspace", now)
			if o.Attrs[collectors.AttrUsername] != u.PrimaryEmail {
				t.Errorf("username %v from %q", o.Attrs[collectors.AttrUsername], u.PrimaryEmail)
			}
		}
	})
}
