package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

type item struct {
	Name string `json:"name"`
}

type listPage struct {
	Items []item `json:"items"`
	Next  string `json:"next"`
}

// newClient returns a client for srv whose waits are recorded, not slept,
// unless realSleep.
func newClient(t *testing.T, srv *httptest.Server, realSleep bool) (*Client, *[]time.Duration) {
	t.Helper()
	base, err := url.Parse(srv.URL + "/api")
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	var mu sync.Mutex
	c := &Client{
		Source:   "test:sys",
		Base:     base,
		HTTP:     srv.Client(),
		Auth:     Static("Bearer", NewSecret("tok-SECRET-123")),
		AuthHint: "check the token",
		Redact:   []Secret{NewSecret("tok-SECRET-123")},
	}
	if !realSleep {
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			waits = append(waits, d)
			mu.Unlock()
			return ctx.Err()
		}
	}
	return c, &waits
}

func pages(t *testing.T, c *Client) ([]string, error) {
	t.Helper()
	var names []string
	err := Pages(context.Background(), c, "list", "Read.All",
		func(_ http.Header, p *listPage) string { return p.Next },
		func(p *listPage) error {
			for _, it := range p.Items {
				names = append(names, it.Name)
			}
			return nil
		})
	return names, err
}

func TestPagesReadsEveryPage(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-SECRET-123" {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		switch r.URL.Query().Get("p") {
		case "":
			fmt.Fprintf(w, `{"items":[{"name":"a"},{"name":"b"}],"next":%q}`, srv.URL+"/api/list?p=2")
		case "2":
			fmt.Fprint(w, `{"items":[{"name":"c"}],"next":"list?p=3"}`) // relative to Base
		case "3":
			fmt.Fprint(w, `{"items":[{"name":"d"}]}`)
		}
	}))
	defer srv.Close()
	c, _ := newClient(t, srv, false)
	names, err := pages(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, ","); got != "a,b,c,d" {
		t.Errorf("names = %s", got)
	}
}

func TestRetryAfterOneSecondThenSuccess(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, `{"items":[{"name":"a"}]}`)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	c, _ := newClient(t, srv, true)
	c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := time.Now()
	names, err := pages(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 950*time.Millisecond {
		t.Errorf("retried after %s, before the 1 s the server asked for", took)
	}
	if hits.Load() != 2 || len(names) != 1 {
		t.Errorf("hits = %d, names = %v; want one retry and the page", hits.Load(), names)
	}
	if !strings.Contains(logs.String(), "wait=1s") {
		t.Errorf("the wait was not logged:\n%s", logs.String())
	}
}

func TestRateLimitedForeverIsBounded(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"code":"TooManyRequests","message":"Too many requests."}}`)
	}))
	defer srv.Close()
	c, waits := newClient(t, srv, false)
	c.MaxRetries = 3
	_, err := pages(t, c)
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	if hits.Load() != 4 {
		t.Errorf("hits = %d, want 1 + 3 retries", hits.Load())
	}
	if fmt.Sprint(*waits) != "[2s 2s 2s]" {
		t.Errorf("waits = %v", *waits)
	}
	for _, want := range []string{"test:sys", "GET /api/list", "429", "after 3 retries", "TooManyRequests"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRetryWaits(t *testing.T) {
	now := time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		status  int
		headers map[string]string
		want    []time.Duration // waits before failing or succeeding
		fails   bool
	}{
		{"seconds", 429, map[string]string{"Retry-After": "3"}, []time.Duration{3 * time.Second, 3 * time.Second}, true},
		{"http date from server clock", 503, map[string]string{
			"Retry-After": now.Add(5 * time.Second).Format(http.TimeFormat),
			"Date":        now.Format(http.TimeFormat),
		}, []time.Duration{5 * time.Second, 5 * time.Second}, true},
		{"okta reset", 429, map[string]string{
			"X-Rate-Limit-Reset": fmt.Sprint(now.Unix() + 7),
			"Date":               now.Format(http.TimeFormat),
		}, []time.Duration{7 * time.Second, 7 * time.Second}, true},
		{"backoff without headers", 503, nil, []time.Duration{time.Second, 2 * time.Second}, true},
		{"longer than the cap fails at once", 429, map[string]string{"Retry-After": "3600"}, nil, true},
		{"not retried: 500", 500, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			c, waits := newClient(t, srv, false)
			c.MaxRetries = 2
			c.Now = func() time.Time { return now }
			_, err := pages(t, c)
			if (err != nil) != tt.fails {
				t.Fatalf("err = %v", err)
			}
			if fmt.Sprint(*waits) != fmt.Sprint(tt.want) {
				t.Errorf("waits = %v, want %v", *waits, tt.want)
			}
			if tt.name == "longer than the cap fails at once" && !strings.Contains(err.Error(), "asks to wait 1h0m0s") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestRateLimitBudgetPacesNextRequest(t *testing.T) {
	now := time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", now.Format(http.TimeFormat))
		if r.URL.Query().Get("p") == "" {
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			w.Header().Set("X-Rate-Limit-Reset", fmt.Sprint(now.Unix()+4))
			fmt.Fprint(w, `{"items":[{"name":"a"}],"next":"list?p=2"}`)
			return
		}
		w.Header().Set("X-Rate-Limit-Remaining", "99")
		fmt.Fprint(w, `{"items":[{"name":"b"}]}`)
	}))
	defer srv.Close()
	c, waits := newClient(t, srv, false)
	c.Now = func() time.Time { return now }
	if _, err := pages(t, c); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*waits) != "[4s]" {
		t.Errorf("waits = %v, want one 4s wait for the budget", *waits)
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		status int
		body   string
		kind   error
		want   []string
	}{
		{401, `{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorLink":"E0000011","errorId":"oae1","errorCauses":[]}`,
			ErrUnauthorized, []string{"test:sys: GET /api/list: 401 Unauthorized: credentials rejected: check the token", "E0000011: Invalid token provided"}},
		{403, `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2025-03-02T02:00:00","request-id":"x"}}}`,
			ErrForbidden, []string{"403 Forbidden: missing permission: grant Read.All", "Authorization_RequestDenied: Insufficient privileges"}},
		{403, `{"error":{"code":403,"message":"Not Authorized to access this resource/api","errors":[{"message":"Not Authorized to access this resource/api","domain":"global","reason":"forbidden"}]}}`,
			ErrForbidden, []string{"missing permission: grant Read.All", "forbidden: Not Authorized to access this resource/api"}},
		{404, `<html>nope</html>`, ErrNotFound, []string{"404 Not Found: not found: check the API URL"}},
		{500, ``, ErrServer, []string{"500 Internal Server Error: server error: the provider is having trouble"}},
		{400, `{"error":"invalid_request","error_description":"bad\nsecond line"}`, ErrStatus, []string{"invalid_request: bad)"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c, _ := newClient(t, srv, false)
			_, err := pages(t, c)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestIncompleteListingsFail(t *testing.T) {
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("credentials sent to another host: %s", r.URL)
	}))
	defer other.Close()
	tests := []struct {
		name, page2 string
		kind        error
		want        string
	}{
		{"malformed page 2", `{"items":[{"name":"b"}`, ErrMalformed, "test:sys: malformed response from /api/list: page 2: unexpected end of JSON input"},
		{"wrong type on page 2", `{"items":{"name":"b"}}`, ErrMalformed, "malformed response from /api/list: page 2: field items: a JSON object where an array was expected"},
		{"empty page 2", ``, ErrMalformed, "malformed response from /api/list"},
		{"link to another host", `{"items":[],"next":"` + other.URL + `/steal"}`, ErrMalformed, "refusing to send credentials there"},
		{"link loop", `{"items":[],"next":"list"}`, ErrIncomplete, "links back to an earlier page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("p") == "" {
					fmt.Fprint(w, `{"items":[{"name":"a"}],"next":"list?p=2"}`)
					return
				}
				fmt.Fprint(w, tt.page2)
			}))
			defer srv.Close()
			c, _ := newClient(t, srv, false)
			_, err := pages(t, c)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.kind, tt.want)
			}
		})
	}
}

func TestPageLimit(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		fmt.Fprintf(w, `{"items":[{"name":"x"}],"next":"list?p=%d"}`, n+1)
	}))
	defer srv.Close()
	c, _ := newClient(t, srv, false)
	c.MaxPages = 3
	_, err := pages(t, c)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "more than 3 pages") || hits.Load() != 3 {
		t.Fatalf("err = %v after %d pages", err, hits.Load())
	}
}

func TestResponseSizeCap(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"items":[{"name":"%s"}]}`, strings.Repeat("x", 2048))
	}))
	defer srv.Close()
	c, _ := newClient(t, srv, false)
	c.MaxBody = 1024
	_, err := pages(t, c)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelAndTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			// Send nothing: an empty 200 can reach a client that is
			// still tearing the request down and read as malformed.
			panic(http.ErrAbortHandler)
		}
	}))
	defer srv.Close()
	defer close(release)

	t.Run("cancel", func(t *testing.T) {
		c, _ := newClient(t, srv, false)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := Pages(ctx, c, "list", "", func(http.Header, *listPage) string { return "" }, func(*listPage) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("cancel took %s", time.Since(start))
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		c, _ := newClient(t, srv, false)
		c.Timeout = 100 * time.Millisecond
		c.MaxRetries = -1
		_, err := c.Get(context.Background(), "list", "", &listPage{})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no complete answer within 100ms") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancel during a retry wait", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		c, _ := newClient(t, srv, true)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Get(ctx, "list", "", &listPage{})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("err = %v after %s", err, time.Since(start))
		}
	})
}

func TestHTTPS(t *testing.T) {
	for _, bad := range []string{"http://graph.example", "https://", "https://u:p@host", "ftp://x", "https://h/?q=1", ":"} {
		if _, err := HTTPS("api_url", bad); err == nil {
			t.Errorf("HTTPS(%q) accepted", bad)
		}
	}
	if _, err := HTTPS("api_url", "https://graph.microsoft.com/v1.0"); err != nil {
		t.Error(err)
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct {
		links []string
		want  string
	}{
		{[]string{`<https://o.okta.com/api/v1/users?limit=200>; rel="self"`, `<https://o.okta.com/api/v1/users?after=00u2&limit=200>; rel="next"`},
			"https://o.okta.com/api/v1/users?after=00u2&limit=200"},
		{[]string{`<https://a/1>; rel="self", <https://a/2>; rel="next"`}, "https://a/2"},
		{[]string{`<https://a/2>; title="x;y"; rel=next`}, "https://a/2"},
		{[]string{`<https://a/2>; rel="prev next"`}, "https://a/2"},
		{[]string{`<https://a/1>; rel="self"`}, ""},
		{[]string{`garbage`}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		h := http.Header{"Link": tt.links}
		if got := NextLink(h); got != tt.want {
			t.Errorf("NextLink(%q) = %q, want %q", tt.links, got, tt.want)
		}
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := RetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"2025-03-01T14:05:00Z", "2025-03-01T14:05:00Z", true},
		{"2025-03-01T14:05:00.123Z", "2025-03-01T14:05:00.123Z", true},
		{"2025-03-01T15:05:00+01:00", "2025-03-01T14:05:00Z", true},
		{"1970-01-01T00:00:00.000Z", "0001-01-01T00:00:00Z", true},
		{"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", true},
		{"", "0001-01-01T00:00:00Z", true},
		{"yesterday", "0001-01-01T00:00:00Z", false},
	}
	for _, tt := range tests {
		got, ok := ParseTime(tt.in)
		if got.Format(time.RFC3339Nano) != tt.want || ok != tt.ok {
			t.Errorf("ParseTime(%q) = %v, %v", tt.in, got, ok)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2-very-secret")
	holder := struct {
		Token Secret
		List  []Secret
	}{s, []Secret{s}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "token", s, "holder", holder)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "token", s)
	j, _ := json.Marshal(holder)
	out := fmt.Sprintf("%v %+v %#v %s %q %x %d", s, holder, holder, s, s, s, s) + logs.String() + string(j) + s.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("secret printed: %s", out)
	}
	if s.Value() != "hunter2-very-secret" {
		t.Error("Value lost the secret")
	}
}

func TestTokenErrorScrubsAndExplains(t *testing.T) {
	secret := NewSecret("s3cr3t-client-value")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			_ = r.ParseForm()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			// An endpoint that echoes what it was sent.
			fmt.Fprintf(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided: %s\r\nTrace ID: 1"}`, r.PostForm.Get("client_secret"))
			return
		}
		t.Errorf("API called without a token: %s", r.URL.Path)
	}))
	defer srv.Close()
	tokenURL, _ := url.Parse(srv.URL + "/token")
	cc := clientcredentials.Config{ClientID: "app", ClientSecret: secret.Value(), TokenURL: tokenURL.String(), AuthStyle: oauth2.AuthStyleInParams}
	ts := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client()))
	c, _ := newClient(t, srv, false)
	c.Auth = OAuth2("test:sys", ts, tokenURL, "check client_id and the secret", []Secret{secret})
	_, err := c.Get(context.Background(), "list", "", &listPage{})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, secret.Value()) || strings.Contains(fmt.Sprintf("%#v", err), secret.Value()) {
		t.Fatalf("secret in error: %s", msg)
	}
	for _, want := range []string{"test:sys: POST /token: 401 Unauthorized: credentials rejected: check client_id and the secret", "invalid_client: AADSTS7000215: Invalid client secret provided: [redacted]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "Trace ID") {
		t.Errorf("error keeps more than the first line: %q", msg)
	}
}

func TestAPIMessage(t *testing.T) {
	tests := []struct{ body, code, msg string }{
		{`{"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired."}}`, "InvalidAuthenticationToken", "Access token has expired."},
		{`{"error":{"code":401,"message":"Login Required.","errors":[{"reason":"required"}]}}`, "required", "Login Required."},
		{`{"error":{"code":429,"message":"Quota"}}`, "", "Quota"},
		{`{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action"}`, "E0000006", "You do not have permission to perform the requested action"},
		{`{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method."}`, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method."},
		{`not json`, "", ""},
		{`{"error":{"message":"` + strings.Repeat("é", 400) + `"}}`, "", strings.Repeat("é", 150) + "…"},
	}
	for _, tt := range tests {
		code, msg := APIMessage([]byte(tt.body))
		if code != tt.code || msg != tt.msg {
			t.Errorf("APIMessage(%.60s) = %q, %q; want %q, %q", tt.body, code, msg, tt.code, tt.msg)
		}
	}
}

func FuzzNextLink(f *testing.F) {
	f.Add(`<https://o.okta.com/api/v1/users?after=00u2&limit=200>; rel="next"`)
	f.Add(`<https://a/1>; rel="self", <https://a/2>; rel="next"`)
	f.Add(`<`)
	f.Add(`<>;rel=`)
	f.Fuzz(func(t *testing.T, v string) {
		got := NextLink(http.Header{"Link": {v}})
		if got != "" && !strings.Contains(v, got) {
			t.Errorf("NextLink(%q) = %q, not part of the header", v, got)
		}
	})
}

func FuzzAPIMessage(f *testing.F) {
	f.Add([]byte(`{"error":{"code":"X","message":"m"}}`))
	f.Add([]byte(`{"error":{"code":403,"errors":[{"reason":"forbidden"}]}}`))
	f.Add([]byte(`{"errorCode":"E0000011","errorSummary":"Invalid token provided"}`))
	f.Add([]byte(`{"error":"invalid_client","error_description":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, msg := APIMessage(body)
		if len(code) > 80+len("…") || len(msg) > 300+len("…") || strings.ContainsAny(code+msg, "\n\r") {
			t.Errorf("APIMessage = %q, %q: too long or multi-line", code, msg)
		}
	})
}

func FuzzRetryAfter(f *testing.F) {
	f.Add("1")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add("99999999999999999999")
	f.Fuzz(func(t *testing.T, v string) {
		if d, ok := RetryAfter(v, time.Unix(1e9, 0)); ok && d < 0 {
			t.Errorf("RetryAfter(%q) = %v", v, d)
		}
	})
}
