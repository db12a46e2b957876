package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultHTTPTimeout bounds one webhook request when no timeout is set.
const DefaultHTTPTimeout = 10 * time.Second

// HTTPOptions are what every webhook-style channel shares.
type HTTPOptions struct {
	// URL is where to POST. It is a Secret because chat webhooks carry
	// their token in the path; errors show only its scheme and host.
	URL Secret
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	Retry   Retry
	// Client sends the requests (default: a client that does not follow
	// redirects, so a signed body never goes anywhere but URL).
	Client *http.Client
}

// poster POSTs JSON with retries and turns HTTP outcomes into errors that
// say whether to retry, without the URL's secret parts.
type poster struct {
	HTTPOptions
	what string // "webhook", "slack", "teams": for errors
}

func newPoster(what string, o HTTPOptions) (poster, error) {
	if err := checkURL(o.URL.Reveal()); err != nil {
		return poster{}, fmt.Errorf("%s: %w", what, err)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultHTTPTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return poster{HTTPOptions: o, what: what}, nil
}

// checkURL accepts https anywhere and http only to a loopback address:
// alerts name a clinic's weaknesses and must not cross a network in clear.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("URL is not an absolute http(s) URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s: plain http is only allowed to a loopback address; use https", redactURL(raw))
	}
	return fmt.Errorf("%s: scheme must be https", redactURL(raw))
}

// IsLoopback reports whether host is "localhost" or a loopback IP literal.
// Names are not resolved: a name that happens to resolve to 127.0.0.1 is
// not trusted to stay there.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// post sends body; header, when set, adds headers to each attempt (a fresh
// signature each time).
func (p poster) post(ctx context.Context, body []byte, header func(h http.Header, now time.Time)) error {
	dest := redactURL(p.URL.Reveal())
	err := p.Retry.do(ctx, p.Timeout, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL.Reveal(), bytes.NewReader(body))
		if err != nil {
			return permanent(fmt.Errorf("building request: %v", redactErr(err, p.URL)))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "vigil-alerts/1")
		if header != nil {
			header(req.Header, time.Now())
		}
		resp, err := p.Client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the full URL
			}
			return errors.New(redactErr(err, p.URL))
		}
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return nil
		}
		msg := fmt.Sprintf("status %d", resp.StatusCode)
		if s := oneLine(string(snippet)); s != "" {
			msg += ": " + redactErr(errors.New(truncate(s, 120)), p.URL)
		}
		serr := errors.New(msg)
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			return retryAfter(serr, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
		case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
			return serr
		}
		return permanent(serr)
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", p.what, dest, err)
	}
	return nil
}

// redactErr is err's message with the URL and each of its path segments
// and query values removed, should anything echo them.
func redactErr(err error, u Secret) string {
	msg := err.Error()
	raw := u.Reveal()
	if raw == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, raw, redactURL(raw))
	if pu, perr := url.Parse(raw); perr == nil {
		for _, seg := range strings.Split(pu.Path, "/") {
			if len(seg) >= 8 {
				msg = strings.ReplaceAll(msg, seg, redacted)
			}
		}
		for _, vs := range pu.Query() {
			for _, v := range vs {
				if len(v) >= 8 {
					msg = strings.ReplaceAll(msg, v, redacted)
				}
			}
		}
		if p, ok := pu.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, redacted)
		}
	}
	return msg
}

// PayloadVersion is the version of the webhook JSON schema. It changes
// only when a field changes meaning or goes away; new fields may appear
// at any version.
const PayloadVersion = 1

// Payload is the body of a generic webhook delivery (docs/alerts.md).
type Payload struct {
	Version int `json:"version"`
	// ID identifies the delivery: the same alerts give the same ID, across
	// retries too, so receivers can drop duplicates.
	ID           string    `json:"id"`
	SentAt       time.Time `json:"sent_at"`
	Organization string    `json:"organization,omitempty"`
	Alerts       []Alert   `json:"alerts"`
}

// Signature header and scheme. The value is "t=<unix seconds>,v1=<hex>",
// where v1 is HMAC-SHA256(secret, "<t>." + body), as Stripe signs its
// webhooks: the timestamp is signed too, so a receiver that rejects old
// timestamps rejects replays.
const (
	SignatureHeader = "X-Vigil-Signature"
	DeliveryHeader  = "X-Vigil-Delivery"
)

// DefaultTolerance is how old a signature Verify accepts by default.
const DefaultTolerance = 5 * time.Minute

// Errors Verify returns, for errors.Is.
var (
	ErrNoSignature       = errors.New("no valid " + SignatureHeader + " header")
	ErrSignatureMismatch = errors.New("signature does not match the body")
	ErrSignatureExpired  = errors.New("signature timestamp outside the tolerance")
)

// Sign returns the X-Vigil-Signature value for body at time t.
func Sign(secret []byte, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as a receiver should: header is the
// X-Vigil-Signature value, body the raw request body. It accepts any v1
// that matches (several may be sent while a secret is rotated) and
// rejects a timestamp further than tolerance from now (default 5m when
// tolerance is 0).
func Verify(secret []byte, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	match := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			match = true
		}
	}
	if !match {
		return ErrSignatureMismatch
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureExpired
	}
	return nil
}

// WebhookOptions configure a generic webhook.
type WebhookOptions struct {
	HTTPOptions
	// Secret is the HMAC-SHA256 key deliveries are signed with.
	Secret       Secret
	Organization string
}

// Webhook POSTs alerts as JSON (Payload) to any receiver, signed with
// HMAC-SHA256 in X-Vigil-Signature.
type Webhook struct {
	p      poster
	secret Secret
	org    string
	now    func() time.Time
}

// NewWebhook checks the options and returns the channel.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	p, err := newPoster("webhook", o.HTTPOptions)
	if err != nil {
		return nil, err
	}
	if o.Secret.Empty() {
		return nil, errors.New("webhook: a signing secret is required (secret_env or secret_file)")
	}
	return &Webhook{p: p, secret: o.Secret, org: o.Organization, now: time.Now}, nil
}

// String names the channel for logs without its URL's secret parts.
func (w *Webhook) String() string { return "webhook " + redactURL(w.p.URL.Reveal()) }

// Send delivers all alerts in one signed POST.
func (w *Webhook) Send(ctx context.Context, as []Alert) error {
	if len(as) == 0 {
		return nil
	}
	body, err := json.Marshal(Payload{Version: PayloadVersion, ID: deliveryID(as), SentAt: w.now().UTC(), Organization: w.org, Alerts: as})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	id := deliveryID(as)
	return w.p.post(ctx, body, func(h http.Header, now time.Time) {
		h.Set(SignatureHeader, Sign([]byte(w.secret.Reveal()), body, now))
		h.Set(DeliveryHeader, id)
	})
}

// deliveryID is a stable id for a set of alerts.
func deliveryID(as []Alert) string {
	h := sha256.New()
	for _, a := range as {
		h.Write([]byte(a.Key))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
