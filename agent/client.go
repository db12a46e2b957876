package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/daemon"
)

// Timeouts of the agent's HTTP client. A request never waits longer than
// requestTimeout in all; the server answers a batch once it is stored.
const (
	dialTimeout      = 10 * time.Second
	handshakeTimeout = 10 * time.Second
	headerTimeout    = 60 * time.Second
	requestTimeout   = 2 * time.Minute
	maxAnswer        = 1 << 20
)

// Trust says how the agent trusts the server's certificate: pinned by
// fingerprint, by a CA file, or (both empty) by the system's roots.
type Trust struct {
	// Fingerprint is the SHA-256 of the server's certificate, as `vigil
	// serve` prints it (daemon.Fingerprint: "AB:CD:..."); case, colons
	// and a "sha256:" prefix do not matter.
	Fingerprint string
	// CAFile is a PEM file of CA certificates to verify the server with.
	CAFile string
}

// NormalizeFingerprint returns fp in daemon.Fingerprint's form
// (upper-case hex pairs joined by colons), or an error when it is not a
// SHA-256.
func NormalizeFingerprint(fp string) (string, error) {
	s := strings.TrimSpace(fp)
	if len(s) > 7 && strings.EqualFold(s[:7], "sha256:") {
		s = s[7:]
	}
	s = strings.ToUpper(strings.NewReplacer(":", "", " ", "", "-", "").Replace(s))
	if len(s) != 64 || strings.Trim(s, "0123456789ABCDEF") != "" {
		return "", fmt.Errorf("%q is not a SHA-256 fingerprint (64 hex digits, e.g. as `vigil serve` prints it)", fp)
	}
	var parts []string
	for i := 0; i < len(s); i += 2 {
		parts = append(parts, s[i:i+2])
	}
	return strings.Join(parts, ":"), nil
}

// ErrInsecureServer is returned for an http:// server that is not on
// loopback: the agent's observations and signatures would cross the
// network in clear.
var ErrInsecureServer = errors.New("http:// is allowed only for a server on loopback: use https://")

// ServerURL checks a server URL: https, or http to a loopback address.
func ServerURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%q is not a server URL (want https://HOST[:PORT])", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: a server URL has no query, fragment or user", raw)
	}
	if u.Scheme == "http" {
		port := u.Port()
		if port == "" {
			port = "80"
		}
		lo, err := daemon.IsLoopback(ctx, net.JoinHostPort(u.Hostname(), port))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", raw, err)
		}
		if !lo {
			return nil, fmt.Errorf("%s: %w", raw, ErrInsecureServer)
		}
	}
	return u, nil
}

// NewHTTPClient returns an HTTP client for the server with timeouts on
// every step and the TLS trust of t.
func NewHTTPClient(t Trust) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var roots *x509.CertPool
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", t.CAFile)
		}
	}
	pin := ""
	if t.Fingerprint != "" {
		var err error
		if pin, err = NormalizeFingerprint(t.Fingerprint); err != nil {
			return nil, fmt.Errorf("--server-fingerprint: %w", err)
		}
	}
	// Verification is done here rather than by crypto/tls so that a
	// refusal can name the certificate the server presented: the operator
	// compares it with what `vigil serve` printed.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		leaf := cs.PeerCertificates[0]
		got := daemon.Fingerprint(leaf.Raw)
		if pin != "" {
			if got != pin {
				return fmt.Errorf("server certificate fingerprint %s is not the pinned %s: refusing to talk to it (if the server's certificate was replaced, pass its new --server-fingerprint)", got, pin)
			}
			return nil
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: roots, Intermediates: inter}); err != nil {
			return fmt.Errorf("server certificate not trusted: %w (its SHA-256 fingerprint is %s: if `vigil serve` printed that, pass --server-fingerprint %s, or --ca FILE)", err, got, got)
		}
		return nil
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg,
		TLSHandshakeTimeout:   handshakeTimeout,
		ResponseHeaderTimeout: headerTimeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: requestTimeout}, nil
}

// StatusError is a non-2xx answer from the server.
type StatusError struct {
	Code    int
	Message string
	// Reason is the answer's protocol error code ("revoked", "clock",
	// ...); empty from a server that sends none.
	Reason string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("server answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("server answered %d: %s", e.Code, e.Message)
}

// ErrRefused is wrapped by the errors of requests the server refused
// because of who the agent is: revoked, unknown, or a key that does not
// match (401). Retrying cannot help; the agent stops.
var ErrRefused = errors.New("the server refuses this agent")

// classify wraps a refusal with ErrRefused. A 401 about the date is the
// agent's clock, which can be fixed while it waits, so it is not a
// refusal. A 403 refuses one request (a batch about another location or
// another agent's scan), not the agent.
func classify(err error) error {
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		return err
	}
	clock := se.Reason == protocol.CodeClock
	if se.Reason == "" { // a server from before error codes
		clock = strings.Contains(se.Message, protocol.HeaderDate)
	}
	if clock {
		return err
	}
	return fmt.Errorf("%w: %w", ErrRefused, err)
}

// rejected reports whether the server refused a batch for what it is
// (malformed, too big, another location's, a scan it cannot take): sending
// it again would be refused again, so it is set aside rather than block
// the queue. A 409 about the server's configuration (the location was
// removed) is not: an administrator can put it back.
func rejected(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusUnsupportedMediaType:
		return true
	case http.StatusConflict:
		if se.Reason != "" {
			return se.Reason == protocol.CodeScanNotBegun || se.Reason == protocol.CodeScanFinished
		}
		return strings.Contains(se.Message, "never begun") || strings.Contains(se.Message, "already finished") // a server from before error codes
	}
	return false
}

// Client talks to the server as one enrolled agent.
type Client struct {
	base    *url.URL
	http    *http.Client
	cred    *Credential
	key     ed25519.PrivateKey
	version string
	now     func() time.Time
}

// NewClient returns a client that signs as cred with key.
func NewClient(base *url.URL, hc *http.Client, cred *Credential, key ed25519.PrivateKey, version string) *Client {
	return &Client{base: base, http: hc, cred: cred, key: key, version: version, now: time.Now}
}

// postEnroll exchanges a one-time token for the agent's credential. It is
// the one unsigned request: the token authenticates it.
func postEnroll(ctx context.Context, base *url.URL, hc *http.Client, req protocol.EnrollRequest, version string) (*protocol.EnrollResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+protocol.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "vigil-agent/"+version)
	var resp protocol.EnrollResponse
	if err := do(hc, r, &resp); err != nil {
		return nil, err
	}
	if resp.Tenant == "" || resp.AgentID == "" {
		return nil, errors.New("enrollment answer has no tenant or agent id")
	}
	return &resp, nil
}

// Assignment fetches the agent's current assignment.
func (c *Client) Assignment(ctx context.Context) (*protocol.Assignment, error) {
	var a protocol.Assignment
	if err := c.signed(ctx, http.MethodGet, protocol.PathAssignment, nil, false, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// PostBatch sends one batch, gz being its gzip-compressed JSON.
func (c *Client) PostBatch(ctx context.Context, gz []byte) (*protocol.BatchAck, error) {
	var ack protocol.BatchAck
	if err := c.signed(ctx, http.MethodPost, protocol.PathBatches, gz, true, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// Heartbeat reports the agent's health.
func (c *Client) Heartbeat(ctx context.Context, hb protocol.Heartbeat) (*protocol.HeartbeatAck, error) {
	body, err := json.Marshal(hb)
	if err != nil {
		return nil, err
	}
	var ack protocol.HeartbeatAck
	if err := c.signed(ctx, http.MethodPost, protocol.PathHeartbeat, body, false, &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

func (c *Client) signed(ctx context.Context, method, path string, body []byte, gz bool, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if gz {
		r.Header.Set("Content-Encoding", "gzip")
	}
	r.Header.Set("User-Agent", "vigil-agent/"+c.version)
	protocol.Sign(r, c.cred.Tenant, c.cred.AgentID, c.key, body, c.now())
	return classify(do(c.http, r, out))
}

// do sends r and decodes a 2xx answer into out; anything else is a
// *StatusError with the server's reason.
func do(hc *http.Client, r *http.Request, out any) error {
	resp, err := hc.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", r.Method, r.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e protocol.Error
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return &StatusError{Code: resp.StatusCode, Message: msg, Reason: e.Code}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: answer is not the expected JSON: %w", r.Method, r.URL.Path, err)
	}
	return nil
}
