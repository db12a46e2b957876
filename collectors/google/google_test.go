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
	t     *testing.T
	srv   *httptest.Server
	logs  bytes.Buffer
	mu    sync.Mutex
	hits  map[string]int
	route map[string]http.HandlerFunc
	query []string // every users query seen
}

func newDirectory(t *testing.T) *directory {
	d := &directory{t: t, hits: map[string]int{}, route: map[string]http.HandlerFunc{}}
	d.srv = httptest.NewTLSServer(d)
	t.Cleanup(d.srv.Close)
	return d
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
	b = bytes.ReplaceAll(b, []byte("{{token_uri}}"), []byte(d.srv.URL+"/token"))
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
		APIURL: d.srv.URL, Locations: []string{"downtown", "uptown"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.HTTPClient = d.srv.Client()
	s.Now = func() time.Time { return now }
	s.Logger = slog.New(slog.NewTextHandler(&d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return s
}

func (d *directory) hit(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[key]
}

func (d *directory) fixture(w http.ResponseWriter, status int, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		d.t.Errorf("fixture: %v", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
}

func (d *directory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Path
	if r.URL.Query().Has("pageToken") {
		key += "#2"
	}
	d.mu.Lock()
	d.hits[key]++
	h := d.route[r.URL.Path]
	if r.URL.Path == usersPath {
		d.query = append(d.query, r.URL.RawQuery)
	}
	d.mu.Unlock()
	if h != nil && r.URL.Path == "/token" {
		h(w, r)
		return
	}
	switch r.URL.Path {
	case "/token":
		d.token(w, r)
		return
	case "/alt-token":
		d.token(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+accessToken {
		d.fixture(w, 401, "error-unauthorized.json")
		return
	}
	if h != nil {
		h(w, r)
		return
	}
	d.serveDefault(w, r)
}

func (d *directory) serveDefault(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != usersPath {
		d.t.Errorf("unexpected request %s", r.URL)
		w.WriteHeader(404)
		return
	}
	switch r.URL.Query().Get("pageToken") {
	case "":
		d.fixture(w, 200, "users-1.json")
	case secondPageID:
		d.fixture(w, 200, "users-2.json")
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
		d.fixture(w, 401, "token-unauthorized-client.json")
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
	if claims.Iss != clientEmail || claims.Sub != adminEmail || claims.Scope != Scope || claims.Aud != d.srv.URL+r.URL.Path {
		refuse(fmt.Sprintf("claims %+v", claims))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, accessToken)
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
	d := newDirectory(t)
	obs, err := d.source(t).Collect(context.Background())
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
	check("skim@glowmedspa.com", collectors.AttrAdminRoles, []string{"super admin"})
	check("skim@glowmedspa.com", collectors.AttrMFA, "true")
	check("skim@glowmedspa.com", collectors.AttrMFAEnforced, "true")
	check("skim@glowmedspa.com", collectors.AttrRole, "Medical Director")
	check("skim@glowmedspa.com", collectors.AttrLocations, []string{"downtown"})
	check("skim@glowmedspa.com", collectors.AttrLastLogin, "2025-03-01T16:20:31Z")
	check("frontdesk@glowmedspa.com", collectors.AttrMFA, "false")
	check("frontdesk@glowmedspa.com", collectors.AttrLocations, []string{"downtown", "uptown"})
	check("ops-admin@glowmedspa.com", collectors.AttrIsAdmin, true)
	check("ops-admin@glowmedspa.com", collectors.AttrAdminRoles, []string{"delegated admin"})
	check("jlee@glowmedspa.com", collectors.AttrEnabled, false)
	check("newhire@glowmedspa.com", collectors.AttrLastLogin, "") // 1970-01-01: never
	check("newhire@glowmedspa.com", collectors.AttrLastLoginOK, true)
	check("former@glowmedspa.com", collectors.AttrEnabled, false) // archived
	if d.hit("/token") != 1 {
		t.Errorf("token fetched %d times", d.hit("/token"))
	}
	want := "customer=my_customer&maxResults=500&projection=full"
	if len(d.query) != 2 || d.query[0] != want || d.query[1] != "customer=my_customer&maxResults=500&pageToken="+secondPageID+"&projection=full" {
		t.Errorf("queries = %q", d.query)
	}
}

func TestDomainAndTokenURLOverride(t *testing.T) {
	d := newDirectory(t)
	s := d.source(t)
	s.Config.Domain = "glowmedspa.com"
	s.Config.CustomerID = "C03az79cb"
	s.Config.TokenURL = d.srv.URL + "/alt-token"
	if _, err := s.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.hit("/alt-token") != 1 || d.hit("/token") != 0 {
		t.Errorf("token_url override not used: /alt-token %d, /token %d", d.hit("/alt-token"), d.hit("/token"))
	}
	if want := "customer=C03az79cb&domain=glowmedspa.com&maxResults=500&projection=full"; d.query[0] != want {
		t.Errorf("query = %q, want %q", d.query[0], want)
	}
}

func TestCollectErrors(t *testing.T) {
	serve := func(code int, fixture string) func(d *directory) http.HandlerFunc {
		return func(d *directory) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { d.fixture(w, code, fixture) }
		}
	}
	tests := []struct {
		name  string
		path  string
		serve func(d *directory) http.HandlerFunc
		kind  error
		want  []string
	}{
		{"delegation not authorised", "/token", serve(401, "token-unauthorized-client.json"), httpapi.ErrUnauthorized, []string{
			"google:workspace: POST /token: 401 Unauthorized: credentials rejected: check that the key in credentials_file is still active",
			"unauthorized_client: Client is unauthorized to retrieve access tokens",
		}},
		{"access token refused", usersPath, serve(401, "error-unauthorized.json"), httpapi.ErrUnauthorized, []string{
			"google:workspace: GET /admin/directory/v1/users: 401 Unauthorized: credentials rejected", "authError: Request had invalid authentication credentials",
		}},
		{"admin lacks privilege", usersPath, serve(403, "error-forbidden.json"), httpapi.ErrForbidden, []string{
			"google:workspace: GET /admin/directory/v1/users: 403 Forbidden: missing permission: grant the service account's client ID domain-wide delegation for " + Scope,
			"forbidden: Not Authorized to access this resource/api",
		}},
		{"malformed page 2", usersPath, func(d *directory) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Has("pageToken") {
					fmt.Fprint(w, `{"users":[{"primaryEmail":"x@y"},]}`)
					return
				}
				d.serveDefault(w, r)
			}
		}, httpapi.ErrMalformed, []string{"google:workspace: malformed response from /admin/directory/v1/users: page 2: invalid character ']'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirectory(t)
			d.route[tt.path] = tt.serve(d)
			obs, err := d.source(t).Collect(context.Background())
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

func TestRateLimited(t *testing.T) {
	t.Run("waits and retries", func(t *testing.T) {
		d := newDirectory(t)
		var once sync.Once
		d.route[usersPath] = func(w http.ResponseWriter, r *http.Request) {
			refused := false
			if r.URL.Query().Has("pageToken") {
				once.Do(func() { refused = true })
			}
			if refused {
				w.Header().Set("Retry-After", "1")
				d.fixture(w, 429, "error-rate-limit.json")
				return
			}
			d.serveDefault(w, r)
		}
		start := time.Now()
		obs, err := d.source(t).Collect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 950*time.Millisecond {
			t.Errorf("took %s: did not wait", took)
		}
		if d.hit(usersPath+"#2") != 2 || len(obs) != 6 {
			t.Errorf("page 2 fetched %d times, %d accounts", d.hit(usersPath+"#2"), len(obs))
		}
	})
	t.Run("forever", func(t *testing.T) {
		d := newDirectory(t)
		d.route[usersPath] = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			d.fixture(w, 429, "error-rate-limit.json")
		}
		s := d.source(t)
		s.MaxRetries = 3
		obs, err := s.Collect(context.Background())
		if !errors.Is(err, httpapi.ErrRateLimited) || obs != nil {
			t.Fatalf("err = %v, %d observations", err, len(obs))
		}
		if d.hit(usersPath) != 4 {
			t.Errorf("%d requests, want 1 + 3 retries", d.hit(usersPath))
		}
		if !strings.Contains(err.Error(), "rateLimitExceeded") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestCancel(t *testing.T) {
	d := newDirectory(t)
	d.route[usersPath] = func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	obs, err := d.source(t).Collect(ctx)
	if !errors.Is(err, context.Canceled) || obs != nil {
		t.Fatalf("err = %v, %d observations", err, len(obs))
	}
}

func TestSecretsNeverLeak(t *testing.T) {
	_, pemKey := testKey(t)
	var keyLines []string
	for _, l := range strings.Split(pemKey, "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			keyLines = append(keyLines, l)
		}
	}
	var assertion string
	scenarios := map[string]func(d *directory){
		"success": func(d *directory) {},
		"token endpoint echoes the assertion": func(d *directory) {
			d.route["/token"] = func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				assertion = r.PostForm.Get("assertion")
				w.WriteHeader(400)
				json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "bad " + r.PostForm.Get("assertion") + " " + pemKey})
			}
		},
		"api echoes the token": func(d *directory) {
			d.route[usersPath] = func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(403)
				fmt.Fprintf(w, `{"error":{"code":403,"message":%q}}`, r.Header.Get("Authorization"))
			}
		},
	}
	for name, setup := range scenarios {
		t.Run(name, func(t *testing.T) {
			d := newDirectory(t)
			setup(d)
			obs, err := d.source(t).Collect(context.Background())
			t.Logf("error: %v", err)
			var out strings.Builder
			if err != nil {
				fmt.Fprintf(&out, "%v\n%+v\n%#v\n", err, err, err)
			}
			j, _ := json.Marshal(obs)
			out.Write(j)
			out.WriteString(d.logs.String())
			leaks := append(keyLines, accessToken)
			if assertion != "" {
				parts := strings.Split(assertion, ".")
				leaks = append(leaks, assertion, parts[0]+"."+parts[1], parts[2])
			}
			for _, leak := range leaks {
				if strings.Contains(out.String(), leak) {
					t.Fatalf("credential %q leaked:\n%s", leak[:8]+"...", out.String())
				}
			}
		})
	}
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
	if s, err := New(ok); err != nil || s.Name() != "google:workspace" {
		t.Fatal(s, err)
	}
	tests := []struct {
		change func(*config.IdentitySource)
		want   string
	}{
		{func(c *config.IdentitySource) { c.System = "" }, "set system"},
		{func(c *config.IdentitySource) { c.CredentialsFile = "" }, "credentials_file"},
		{func(c *config.IdentitySource) { c.AdminEmail = "" }, "admin_email"},
		{func(c *config.IdentitySource) { c.AdminEmail = "Admin <it@x.com>" }, "admin_email"},
		{func(c *config.IdentitySource) { c.Domain = "x.com&customer=other" }, "plain names"},
		{func(c *config.IdentitySource) { c.APIURL = "http://admin.example" }, "api_url"},
		{func(c *config.IdentitySource) { c.TokenURL = "http://oauth.example/token" }, "token_url"},
	}
	for _, tt := range tests {
		c := ok
		tt.change(&c)
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error about %s", c, err, tt.want)
		}
	}
}

// FuzzUsersPage: nothing the Directory API sends may panic the collector.
func FuzzUsersPage(f *testing.F) {
	for _, name := range []string{"users-1.json", "users-2.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
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
