// Package httpapi is the small JSON-over-HTTPS client the cloud identity
// collectors (entra, google, okta) share: authorised GETs with bounded,
// Retry-After-honouring retries, a size cap, paging, and errors that name the
// source and endpoint and say what to do, never the credentials.
package httpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Client's tuning fields.
const (
	DefaultMaxRetries = 4
	DefaultMaxWait    = 60 * time.Second
	DefaultTimeout    = 60 * time.Second
	DefaultMaxBody    = 32 << 20
	DefaultMaxPages   = 1000
)

// Error kinds. Every *Error wraps exactly one, for errors.Is.
var (
	ErrUnauthorized = errors.New("credentials rejected")
	ErrForbidden    = errors.New("missing permission")
	ErrNotFound     = errors.New("not found")
	ErrRateLimited  = errors.New("rate limited")
	ErrServer       = errors.New("server error")
	ErrStatus       = errors.New("unexpected answer")
	ErrMalformed    = errors.New("malformed response")
	ErrTooLarge     = errors.New("response too large")
	ErrIncomplete   = errors.New("listing incomplete")
	ErrTransport    = errors.New("request failed")
)

// Error is a failed request. Its text names the source, the method and path
// (never the query or the credentials) and what to do about it.
type Error struct {
	Source string // e.g. "entra:m365"
	Method string // "" means GET
	Path   string // URL path of the endpoint
	Status int    // HTTP status; 0 when there was no answer
	Kind   error  // one of the Err* kinds above
	Code   string // the API's own error code, e.g. "Authorization_RequestDenied", "E0000011"
	Detail string // what the API said, scrubbed of secrets and shortened
	Hint   string // what to do next
	Err    error  // the cause (network, context or JSON error), if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	b.WriteString(": ")
	switch e.Kind {
	case ErrMalformed, ErrTooLarge:
		fmt.Fprintf(&b, "%v from %s", e.Kind, e.Path)
	default:
		m := e.Method
		if m == "" {
			m = http.MethodGet
		}
		fmt.Fprintf(&b, "%s %s", m, e.Path)
		if e.Status != 0 {
			fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
		}
		fmt.Fprintf(&b, ": %v", e.Kind)
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Detail != "" || e.Code != "" {
		b.WriteString(" (the API said: ")
		switch {
		case e.Code != "" && e.Detail != "":
			b.WriteString(e.Code + ": " + e.Detail)
		case e.Code != "":
			b.WriteString(e.Code)
		default:
			b.WriteString(e.Detail)
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so both errors.Is(err,
// ErrForbidden) and errors.Is(err, context.Canceled) work.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Authorizer puts credentials on a request. An error stops the request; it
// must not contain the credential.
type Authorizer func(ctx context.Context, req *http.Request) error

// Static authorises every request with "Authorization: <scheme> <token>"
// (Okta's "SSWS", or "Bearer").
func Static(scheme string, token Secret) Authorizer {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", scheme+" "+token.Value())
		return nil
	}
}

// Client reads one source's JSON API. Its zero tuning fields take the
// Default* values. A Client is safe for concurrent use once its fields are
// set.
type Client struct {
	// Source names the collector in every error and log line ("okta:main").
	Source string
	// Base is the API root; relative references resolve against it, and
	// every URL fetched (including next-page links) must share its scheme
	// and host, so credentials never go anywhere else.
	Base *url.URL
	// HTTP sends the requests; nil means NewHTTPClient(""), made on first
	// use.
	HTTP *http.Client
	// Auth authorises each request; nil sends none.
	Auth Authorizer
	// AuthHint says what to check when the API answers 401.
	AuthHint string
	// Redact lists credentials scrubbed from anything the API says that
	// ends up in an error (an echoing proxy, a chatty error page).
	Redact []Secret
	// Logger receives retries and waits (never URLs' queries or
	// credentials); nil discards.
	Logger *slog.Logger

	MaxRetries int           // retries after 429 or 503, per request
	MaxWait    time.Duration // the longest single wait; a server asking for more fails the request
	Timeout    time.Duration // one attempt, headers and body
	MaxBody    int64         // bytes per response
	MaxPages   int           // pages per listing

	// Now and Sleep replace the clock in tests; nil means the real one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu        sync.Mutex // guards HTTP (when nil) and notBefore
	notBefore time.Time  // set when the API said the rate-limit budget is spent
}

// NewHTTPClient returns an HTTP client with connection, TLS and header
// timeouts, TLS 1.2 or later, the environment's proxy, and the PEM bundle
// caFile trusted in addition to the system roots ("" for none).
func NewHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.MaxIdleConnsPerHost = 8
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: 3 * time.Minute}, nil
}

// HTTPS parses raw as an https URL with a host and no credentials or
// fragment; field names it for errors ("api_url").
func HTTPS(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a URL", field, raw)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%s: %q must start with https:// (credentials never travel in clear text)", field, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: %q has no host", field, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: put no user or password in the URL; use the *_env or *_file settings", field)
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("%s: %q must not have a query or fragment", field, u.Redacted())
	}
	return u, nil
}

func (c *Client) maxRetries() int {
	if c.MaxRetries > 0 {
		return c.MaxRetries
	}
	if c.MaxRetries < 0 {
		return 0
	}
	return DefaultMaxRetries
}

func (c *Client) maxWait() time.Duration {
	if c.MaxWait > 0 {
		return c.MaxWait
	}
	return DefaultMaxWait
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) maxBody() int64 {
	if c.MaxBody > 0 {
		return c.MaxBody
	}
	return DefaultMaxBody
}

func (c *Client) maxPages() int {
	if c.MaxPages > 0 {
		return c.MaxPages
	}
	return DefaultMaxPages
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// httpClient is c.HTTP, or one default client made on first use.
func (c *Client) httpClient() (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.HTTP == nil {
		hc, err := NewHTTPClient("")
		if err != nil {
			return nil, err
		}
		c.HTTP = hc
	}
	return c.HTTP, nil
}

// resolve turns ref (absolute, or relative to Base) into a URL on Base's
// scheme and host.
func (c *Client) resolve(ref string) (*url.URL, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return nil, &Error{Source: c.Source, Path: "(link)", Kind: ErrMalformed, Err: errors.New("the API returned a link that is not a URL")}
	}
	var u *url.URL
	if r.IsAbs() {
		u = r
	} else {
		base := *c.Base
		if !strings.HasSuffix(base.Path, "/") {
			base.Path += "/"
		}
		r.Path = strings.TrimPrefix(r.Path, "/")
		u = base.ResolveReference(r)
	}
	if u.Scheme != c.Base.Scheme || u.Host != c.Base.Host {
		return nil, &Error{Source: c.Source, Path: u.Path, Kind: ErrMalformed,
			Err: fmt.Errorf("link to %s://%s is not on the API's host %s: refusing to send credentials there", u.Scheme, u.Host, c.Base.Host)}
	}
	return u, nil
}

// Get fetches ref (a path relative to Base, or an absolute URL on Base's
// host) and decodes the JSON answer into v. grant names what to grant when
// the API answers 403 ("User.Read.All"). It returns the response headers.
func (c *Client) Get(ctx context.Context, ref, grant string, v any) (http.Header, error) {
	u, err := c.resolve(ref)
	if err != nil {
		return nil, err
	}
	h, body, err := c.fetch(ctx, u, grant)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return h, c.malformed(u.Path, err)
	}
	return h, nil
}

func (c *Client) malformed(path string, err error) *Error {
	return &Error{Source: c.Source, Path: path, Kind: ErrMalformed, Err: jsonError(err)}
}

// jsonError says where a response did not fit in the API's own terms (the
// field path and JSON kinds) rather than Go's types; like encoding/json's
// own errors it never quotes the body.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	want := "another type"
	switch te.Type.Kind() {
	case reflect.Slice, reflect.Array:
		want = "an array"
	case reflect.Struct, reflect.Map:
		want = "an object"
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		want = "a number"
	}
	if te.Field == "" {
		return fmt.Errorf("a JSON %s where %s was expected", te.Value, want)
	}
	return fmt.Errorf("field %s: a JSON %s where %s was expected", te.Field, te.Value, want)
}

// fetch GETs u, retrying 429 and 503 answers, and returns the body of a 2xx
// answer.
func (c *Client) fetch(ctx context.Context, u *url.URL, grant string) (http.Header, []byte, error) {
	hc, err := c.httpClient()
	if err != nil {
		return nil, nil, err
	}
	log := c.logger()
	for attempt := 0; ; attempt++ {
		if err := c.waitBudget(ctx, u.Path); err != nil {
			return nil, nil, &Error{Source: c.Source, Path: u.Path, Kind: ErrTransport, Err: err}
		}
		status, h, body, sent, err := c.once(ctx, hc, u)
		if err != nil {
			return h, nil, err
		}
		c.noteBudget(h)
		if status >= 200 && status < 300 {
			return h, body, nil
		}
		if (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) && attempt < c.maxRetries() {
			d, told := c.retryDelay(h, attempt)
			if d > c.maxWait() {
				e := c.statusError(u.Path, status, body, grant, sent)
				e.Hint = fmt.Sprintf("the API asks to wait %s, longer than %s: run the collection again later", d.Round(time.Second), c.maxWait())
				return h, nil, e
			}
			log.Warn("identity API asked to slow down; waiting", "source", c.Source, "path", u.Path,
				"status", status, "wait", d, "retry_after_header", told, "attempt", attempt+1, "max_retries", c.maxRetries())
			if err := c.sleep(ctx, d); err != nil {
				return h, nil, &Error{Source: c.Source, Path: u.Path, Kind: ErrTransport, Err: err}
			}
			continue
		}
		e := c.statusError(u.Path, status, body, grant, sent)
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			e.Hint = fmt.Sprintf("still refused after %d retries: run the collection again later", c.maxRetries())
		}
		return h, nil, e
	}
}

// once makes one attempt: it returns the status, headers and body, or an
// error when there was no complete answer. sent is the credential the
// request carried (a fresh access token is not in c.Redact), so errors can
// scrub it.
func (c *Client) once(ctx context.Context, hc *http.Client, u *url.URL) (status int, h http.Header, body []byte, sent Secret, err error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, nil, sent, &Error{Source: c.Source, Path: u.Path, Kind: ErrTransport, Err: errors.New("cannot build the request")}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vigil")
	if c.Auth != nil {
		err := c.Auth(actx, req)
		if _, cred, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok {
			sent = NewSecret(cred)
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, nil, sent, &Error{Source: c.Source, Path: u.Path, Kind: ErrTransport, Err: ctx.Err()}
			}
			return 0, nil, nil, sent, err
		}
	}
	start := c.now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, sent, c.transportError(ctx, actx, u.Path, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, c.maxBody()+1))
	if err != nil {
		return 0, resp.Header, nil, sent, c.transportError(ctx, actx, u.Path, err)
	}
	if int64(len(body)) > c.maxBody() {
		return 0, resp.Header, nil, sent, &Error{Source: c.Source, Path: u.Path, Kind: ErrTooLarge,
			Hint: fmt.Sprintf("more than %d MiB: is api_url the identity API?", c.maxBody()>>20)}
	}
	c.logger().Debug("identity API answered", "source", c.Source, "path", u.Path, "status", resp.StatusCode, "took", c.now().Sub(start))
	return resp.StatusCode, resp.Header, body, sent, nil
}

// transportError describes a request that got no complete answer, without
// the URL (whose query is the API's business) and keeping the context's
// error for errors.Is.
func (c *Client) transportError(ctx, actx context.Context, path string, err error) *Error {
	e := &Error{Source: c.Source, Path: path, Kind: ErrTransport}
	switch {
	case ctx.Err() != nil:
		e.Err = ctx.Err()
	case actx.Err() != nil:
		e.Err = fmt.Errorf("no complete answer within %s: %w", c.timeout(), actx.Err())
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		e.Err = errors.New(scrub(err.Error(), c.Redact))
		e.Hint = "check the network path to " + c.Base.Host
	}
	return e
}

// statusError turns a non-2xx answer into an *Error that says what to do.
func (c *Client) statusError(path string, status int, body []byte, grant string, sent Secret) *Error {
	code, msg := apiMessage(body)
	code, msg = shorten(code, msg, append(slices.Clip(c.Redact), sent))
	e := &Error{Source: c.Source, Path: path, Status: status, Code: code, Detail: msg}
	switch {
	case status == http.StatusUnauthorized:
		e.Kind, e.Hint = ErrUnauthorized, c.AuthHint
	case status == http.StatusForbidden:
		e.Kind = ErrForbidden
		if grant != "" {
			e.Hint = "grant " + grant
		}
	case status == http.StatusNotFound:
		e.Kind, e.Hint = ErrNotFound, "check the API URL and the tenant, domain or customer settings"
	case status == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
	case status >= 500:
		e.Kind, e.Hint = ErrServer, "the provider is having trouble: try again later"
	default:
		e.Kind = ErrStatus
	}
	return e
}

// APIMessage pulls the error code and message out of an error body in the
// shapes the identity APIs use: Graph {"error":{"code":"X","message":"..."}},
// Google {"error":{"code":403,"message":"...","errors":[...]}}, Okta
// {"errorCode":"E0000011","errorSummary":"..."} and OAuth
// {"error":"invalid_client","error_description":"..."}. It returns what it
// can, shortened to one line.
func APIMessage(body []byte) (code, message string) {
	code, message = apiMessage(body)
	return shorten(code, message, nil)
}

// shorten scrubs code and message of secrets, then cuts them to one short
// line each (scrubbing first, so a cut never leaves half a secret that no
// longer matches).
func shorten(code, message string, redact []Secret) (string, string) {
	return oneLine(scrub(code, redact), 80), oneLine(scrub(message, redact), 300)
}

func apiMessage(body []byte) (code, message string) {
	var v struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
		ErrorCode        string          `json:"errorCode"`
		ErrorSummary     string          `json:"errorSummary"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", ""
	}
	switch {
	case v.ErrorCode != "" || v.ErrorSummary != "":
		code, message = v.ErrorCode, v.ErrorSummary
	case len(v.Error) > 0 && v.Error[0] == '{':
		var inner struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		}
		if json.Unmarshal(v.Error, &inner) == nil {
			var s string
			if json.Unmarshal(inner.Code, &s) == nil {
				code = s
			}
			if len(inner.Errors) > 0 && inner.Errors[0].Reason != "" {
				code = inner.Errors[0].Reason // Google's "forbidden", "notFound", ...
			}
			message = inner.Message
		}
	case len(v.Error) > 0 && v.Error[0] == '"':
		_ = json.Unmarshal(v.Error, &code)
		message = v.ErrorDescription
	}
	return code, message
}

// oneLine keeps the first line of s, printable characters only, at most n
// bytes.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > n {
		cut := n
		for cut > 0 && (s[cut]&0xC0) == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// retryDelay is how long to wait before retrying a 429 or 503 answer:
// Retry-After (seconds or an HTTP date), else Okta's X-Rate-Limit-Reset,
// else exponential backoff from one second. told says a header set it.
func (c *Client) retryDelay(h http.Header, attempt int) (d time.Duration, told bool) {
	now := serverNow(h, c.now())
	if d, ok := RetryAfter(h.Get("Retry-After"), now); ok {
		return d, true
	}
	if d, ok := resetIn(h, now); ok {
		return d, true
	}
	d = time.Second << min(attempt, 6)
	return d, false
}

// RetryAfter parses a Retry-After value, delay-seconds or an HTTP date,
// relative to now. Negative delays are zero.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > 1<<31 {
			n = 1 << 31
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// serverNow is the server's clock (its Date header) if it sent one, so a
// skewed local clock does not stretch or shrink waits computed from
// absolute times.
func serverNow(h http.Header, local time.Time) time.Time {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t
	}
	return local
}

// resetIn reads Okta's X-Rate-Limit-Reset (Unix seconds when the budget
// refills) as a delay from now.
func resetIn(h http.Header, now time.Time) (time.Duration, bool) {
	v := h.Get("X-Rate-Limit-Reset")
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return 0, false
	}
	d := time.Unix(n, 0).Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// noteBudget remembers when an API that reports its remaining budget
// (X-Rate-Limit-Remaining: 0) refills, so the next request waits instead of
// being refused.
func (c *Client) noteBudget(h http.Header) {
	if strings.TrimSpace(h.Get("X-Rate-Limit-Remaining")) != "0" {
		return
	}
	local := c.now()
	d, ok := resetIn(h, serverNow(h, local))
	if !ok || d <= 0 {
		return
	}
	if d > c.maxWait() {
		d = c.maxWait()
	}
	c.mu.Lock()
	if t := local.Add(d); t.After(c.notBefore) {
		c.notBefore = t
	}
	c.mu.Unlock()
}

// waitBudget waits until the rate-limit budget noted by noteBudget refills.
func (c *Client) waitBudget(ctx context.Context, path string) error {
	c.mu.Lock()
	d := c.notBefore.Sub(c.now())
	c.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	c.logger().Info("identity API rate-limit budget spent; waiting for it to refill", "source", c.Source, "path", path, "wait", d)
	return c.sleep(ctx, d)
}
