package httpapitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/httpapi"
)

// Suite is one collector's side of the shared scenarios: how to start its
// fake, and what its API answers when things go wrong.
type Suite struct {
	// Start starts a fresh fake and returns it with a Source pointed at it
	// (through Server.Configure) and that Source's options, which
	// scenarios adjust before collecting.
	Start func(t *testing.T) (*Server, collectors.Collector, *httpapi.Options)
	// Listing is the path of the paged listing a collection reads first;
	// the fixtures hold Accounts accounts over two of its pages.
	Listing  string
	Accounts int

	// Unauthorized is the API refusing the access credential (401).
	Unauthorized Refusal
	// Forbidden is the API refusing the listing for want of a permission
	// (403); its Hint is "grant ...".
	Forbidden Refusal
	// TokenRefused, for APIs that sign in first, is the token endpoint
	// refusing the client's credentials (401 to a POST to its Path).
	TokenRefused *Refusal
	// Throttled is a 429 answer (Retry-After 0) repeated for ever; its Path
	// may be an API.Group name.
	Throttled Refusal
	// Page2 is a second page of the listing that is not what the API
	// sends, and the JSON error it must be reported with.
	Page2 Malformed
	// Stall is the route left unanswered while the collection is
	// cancelled; "" means Listing.
	Stall string

	// Secrets lists the credentials that must never show in an error, the
	// observations or the logs. It is called after each collection, so it
	// may include values the fake captured (a signed assertion).
	Secrets func() []string
	// Leaks are further answers that echo credentials back; each sets up
	// a fresh fake, and the collection must fail without showing them.
	Leaks map[string]func(s *Server)
}

// Refusal is an error answer and what the collector's error must say.
type Refusal struct {
	Path    string // route refused; "" means the Listing
	Fixture string // answer body, in testdata
	Hint    string // what the error says to do, after the kind; "" for none
	Code    string // how the error quotes the API, e.g. "E0000011: Invalid token provided"
}

// Malformed is a page body the collector must refuse.
type Malformed struct {
	Body string // the page, served with 200
	Want string // the JSON error, e.g. "unexpected end of JSON input"
}

// Run runs every scenario as a subtest of t.
func (su Suite) Run(t *testing.T) {
	t.Run("every page once", su.everyPage)
	t.Run("refusals", su.refusals)
	t.Run("malformed page 2", su.malformedPage)
	t.Run("throttled, then served", su.throttledThenServed)
	t.Run("throttled forever", su.throttledForever)
	t.Run("cancelled", su.cancelled)
	t.Run("secrets never leak", su.secretsNeverLeak)
}

func (su Suite) path(p string) string {
	if p == "" {
		return su.Listing
	}
	return p
}

// CollectFails collects with s and checks that it failed with kind,
// returned no observations (a partial directory must not look complete),
// and says every one of want. It returns the error.
func CollectFails(t *testing.T, s collectors.Collector, kind error, want ...string) error {
	t.Helper()
	obs, err := s.Collect(context.Background())
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	if obs != nil {
		t.Errorf("%d observations returned with the error: a partial directory must not look complete", len(obs))
	}
	for _, w := range want {
		if w != "" && !strings.Contains(err.Error(), w) {
			t.Errorf("error\n  %s\nlacks\n  %s", err, w)
		}
	}
	return err
}

func (su Suite) everyPage(t *testing.T) {
	srv, s, _ := su.Start(t)
	obs, err := s.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != su.Accounts {
		t.Fatalf("%d accounts, want %d from two pages", len(obs), su.Accounts)
	}
	for _, o := range obs {
		if o.Kind != collectors.KindAccount || o.Source != s.Name() || !o.At.Equal(srv.api.Now) {
			t.Errorf("observation header %+v", o)
		}
	}
	if srv.Hits(su.Listing) != 1 || srv.Hits(su.Listing+"#2") != 1 {
		t.Errorf("listing pages fetched %d, %d times, want once each", srv.Hits(su.Listing), srv.Hits(su.Listing+"#2"))
	}
}

// refusals: each error answer fails the collection with an error that
// names the source, the request, the kind and what to do, and quotes the
// API.
func (su Suite) refusals(t *testing.T) {
	type refusal struct {
		name   string
		r      Refusal
		method string
		status int
		kind   error
	}
	tests := []refusal{
		{"access credential refused", su.Unauthorized, http.MethodGet, http.StatusUnauthorized, httpapi.ErrUnauthorized},
		{"listing forbidden", su.Forbidden, http.MethodGet, http.StatusForbidden, httpapi.ErrForbidden},
		{"provider failing", Refusal{Hint: "the provider is having trouble: try again later"}, http.MethodGet, http.StatusInternalServerError, httpapi.ErrServer},
	}
	if su.TokenRefused != nil {
		tests = append(tests, refusal{"client credentials refused", *su.TokenRefused, http.MethodPost, http.StatusUnauthorized, httpapi.ErrUnauthorized})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, s, _ := su.Start(t)
			srv.Handle(su.path(tt.r.Path), func(w http.ResponseWriter, r *http.Request) {
				if tt.r.Fixture == "" {
					srv.Write(w, tt.status, []byte("{}"))
					return
				}
				srv.Fixture(w, tt.status, tt.r.Fixture)
			})
			want := fmt.Sprintf("%s: %s %s: %d %s: %v", s.Name(), tt.method, su.path(tt.r.Path), tt.status, http.StatusText(tt.status), tt.kind)
			if tt.r.Hint != "" {
				want += ": " + tt.r.Hint
			}
			CollectFails(t, s, tt.kind, want, tt.r.Code)
		})
	}
}

// malformedPage: a broken second page fails the whole listing, and the
// error says which page.
func (su Suite) malformedPage(t *testing.T) {
	srv, s, _ := su.Start(t)
	srv.Handle(su.Listing, func(w http.ResponseWriter, r *http.Request) {
		if srv.LaterPage(r) {
			srv.Write(w, http.StatusOK, []byte(su.Page2.Body))
			return
		}
		srv.Serve(w, r)
	})
	CollectFails(t, s, httpapi.ErrMalformed, fmt.Sprintf("%s: malformed response from %s: page 2: %s", s.Name(), su.Listing, su.Page2.Want))
}

// throttledThenServed: a 429 with Retry-After is waited out and retried,
// and the collection is complete.
func (su Suite) throttledThenServed(t *testing.T) {
	srv, s, _ := su.Start(t)
	var once sync.Once
	srv.Handle(su.Listing, func(w http.ResponseWriter, r *http.Request) {
		refuse := false
		if srv.LaterPage(r) {
			once.Do(func() { refuse = true })
		}
		if refuse {
			w.Header().Set("Retry-After", "1")
			srv.Fixture(w, http.StatusTooManyRequests, su.Throttled.Fixture)
			return
		}
		srv.Serve(w, r)
	})
	start := time.Now()
	obs, err := s.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 950*time.Millisecond {
		t.Errorf("took %s: did not wait the 1 s the API asked for", took)
	}
	if srv.Hits(su.Listing+"#2") != 2 || len(obs) != su.Accounts {
		t.Errorf("page 2 fetched %d times, %d accounts; want one retry and all %d", srv.Hits(su.Listing+"#2"), len(obs), su.Accounts)
	}
	if !strings.Contains(srv.Logs(), "slow down") {
		t.Errorf("wait not logged:\n%s", srv.Logs())
	}
}

// throttledForever: retries are bounded by MaxRetries, per request, and
// the error says so and quotes the API.
func (su Suite) throttledForever(t *testing.T) {
	const retries = 2
	srv, s, opts := su.Start(t)
	opts.MaxRetries = retries
	var mu sync.Mutex
	hits := map[string]int{}
	srv.Handle(su.path(su.Throttled.Path), func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Retry-After", "0")
		srv.Fixture(w, http.StatusTooManyRequests, su.Throttled.Fixture)
	})
	CollectFails(t, s, httpapi.ErrRateLimited, fmt.Sprintf("still refused after %d retries", retries), su.Throttled.Code)
	mu.Lock()
	defer mu.Unlock()
	most := 0
	for path, n := range hits {
		if n > 1+retries {
			t.Errorf("%s requested %d times, want at most 1 + %d retries", path, n, retries)
		}
		most = max(most, n)
	}
	if most != 1+retries {
		t.Errorf("the refused request was made %d times, want 1 + %d retries (%v)", most, retries, hits)
	}
}

// cancelled: cancelling the context stops a collection waiting on the
// API, promptly and with no observations.
func (su Suite) cancelled(t *testing.T) {
	srv, s, _ := su.Start(t)
	srv.Handle(su.path(su.Stall), func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		// Send nothing: an empty 200 can reach a client that is still
		// tearing the request down and read as a malformed answer, which
		// no real API sends to a caller that has gone.
		panic(http.ErrAbortHandler)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	obs, err := s.Collect(ctx)
	if !errors.Is(err, context.Canceled) || obs != nil {
		t.Fatalf("err = %v, %d observations", err, len(obs))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s to stop", took)
	}
}

// secretsNeverLeak: whatever the API answers, no credential shows in the
// error however it is printed, in the observations or in the logs.
func (su Suite) secretsNeverLeak(t *testing.T) {
	leaks := map[string]func(s *Server){
		"success": func(*Server) {},
		"forbidden": func(srv *Server) {
			srv.Handle(su.Listing, func(w http.ResponseWriter, r *http.Request) {
				srv.Fixture(w, http.StatusForbidden, su.Forbidden.Fixture)
			})
		},
	}
	for name, setup := range su.Leaks {
		leaks[name] = setup
	}
	names := make([]string, 0, len(leaks))
	for name := range leaks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			srv, s, _ := su.Start(t)
			leaks[name](srv)
			obs, err := s.Collect(context.Background())
			t.Logf("error: %v", err)
			var out strings.Builder
			if err != nil {
				fmt.Fprintf(&out, "%v\n%+v\n%#v\n", err, err, err)
			}
			j, _ := json.Marshal(obs)
			out.Write(j)
			out.WriteString(srv.Logs())
			for _, secret := range su.Secrets() {
				if secret != "" && strings.Contains(out.String(), secret) {
					t.Errorf("credential %q leaked:\n%s", secret[:min(8, len(secret))]+"...", out.String())
				}
			}
			if name != "success" && err == nil {
				t.Error("no error")
			}
		})
	}
}
