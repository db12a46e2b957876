// Package httpapitest is the test bench of the cloud identity collectors
// (entra, google, okta): a fake API over TLS that serves a collector's
// testdata fixtures, and the failure scenarios every collector must pass
// against its own fake. Each collector's tests describe what differs (its
// credential, paging, fixtures and wording); the checks are written once.
package httpapitest

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors/httpapi"
)

// API describes one provider's fake.
type API struct {
	// Authorization is the Authorization header the API accepts ("Bearer
	// <token>", "SSWS <token>"); any other request is answered 401 with
	// the Unauthorized fixture.
	Authorization string
	Unauthorized  string
	// PageParam is the query parameter that only follow-on pages carry
	// ("$skiptoken", "pageToken", "after"); their requests are counted
	// under path+"#2".
	PageParam string
	// Open serves paths that take no access credential (token endpoints),
	// unless a Handle override claims them.
	Open map[string]http.HandlerFunc
	// Default answers every authorised request no override claims.
	Default http.HandlerFunc
	// Group, if set, names the override a path falls back on when none is
	// set for it exactly ("factors" for every user's factors).
	Group func(path string) string
	// Wrap, if set, wraps the whole fake (to track requests in flight, or
	// add headers every answer carries).
	Wrap func(http.Handler) http.Handler
	// ContentType of fixtures; "" means application/json.
	ContentType string
	// Now is what Sources set up by Configure stamp observations with.
	Now time.Time
}

// Server is a running fake of an API. It counts requests by path and lets
// a test replace the answer for a path with Handle.
type Server struct {
	t    testing.TB
	api  API
	srv  *httptest.Server
	logs logBuffer

	mu     sync.Mutex
	hits   map[string]int
	routes map[string]http.HandlerFunc
}

// NewServer starts a fake of api over TLS, closed when t ends.
func NewServer(t testing.TB, api API) *Server {
	s := &Server{t: t, api: api, hits: map[string]int{}, routes: map[string]http.HandlerFunc{}}
	var h http.Handler = http.HandlerFunc(s.serve)
	if api.Wrap != nil {
		h = api.Wrap(h)
	}
	s.srv = httptest.NewTLSServer(h)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the fake's root, https://127.0.0.1:port.
func (s *Server) URL() string { return s.srv.URL }

// Configure points o at the fake: its TLS client, the fixed clock
// API.Now, and a debug logger whose output Logs returns.
func (s *Server) Configure(o *httpapi.Options) {
	o.HTTPClient = s.srv.Client()
	o.Now = func() time.Time { return s.api.Now }
	o.Logger = slog.New(slog.NewTextHandler(&s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Logs is everything logged by a Source set up by Configure.
func (s *Server) Logs() string { return s.logs.String() }

// Handle answers route (a path, or a name API.Group gives) with h instead
// of the default. Authorised requests only, except on Open paths.
func (s *Server) Handle(route string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[route] = h
}

// Hits is how many requests path received; path+"#2" counts the
// follow-on pages.
func (s *Server) Hits(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[key]
}

// LaterPage reports whether r asks for a follow-on page of a listing.
func (s *Server) LaterPage(r *http.Request) bool {
	return s.api.PageParam != "" && r.URL.Query().Has(s.api.PageParam)
}

// Serve answers r as the fake does by default, for overrides that change
// only some requests.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request) { s.api.Default(w, r) }

// Fixture answers with status and testdata/name, in which {{base}} stands
// for the fake's URL.
func (s *Server) Fixture(w http.ResponseWriter, status int, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		s.t.Errorf("fixture: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.Write(w, status, b)
}

// Write answers with status and body as JSON, {{base}} standing for the
// fake's URL.
func (s *Server) Write(w http.ResponseWriter, status int, body []byte) {
	ct := s.api.ContentType
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(bytes.ReplaceAll(body, []byte("{{base}}"), []byte(s.srv.URL)))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Path
	if s.LaterPage(r) {
		key += "#2"
	}
	s.mu.Lock()
	s.hits[key]++
	h := s.routes[r.URL.Path]
	if h == nil && s.api.Group != nil {
		if g := s.api.Group(r.URL.Path); g != "" {
			h = s.routes[g]
		}
	}
	s.mu.Unlock()
	if open, ok := s.api.Open[r.URL.Path]; ok {
		if h == nil {
			h = open
		}
		h(w, r)
		return
	}
	if r.Header.Get("Authorization") != s.api.Authorization {
		s.Fixture(w, http.StatusUnauthorized, s.api.Unauthorized)
		return
	}
	if h == nil {
		h = s.api.Default
	}
	h(w, r)
}

// logBuffer collects log output written from the collector's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
