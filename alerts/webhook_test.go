package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// sample returns n new-finding alerts, worst first.
func sample(n int) []Alert {
	var cur []observe.Finding
	for i := range n {
		sev := observe.High
		if i%10 == 0 {
			sev = observe.Critical
		}
		cur = append(cur, finding(fmt.Sprintf("rule-%02d", i), "downtown", fmt.Sprintf("10.0.0.%d:3389", i+1), sev, observe.StatusOpen))
	}
	return FromScan(nil, cur, t0, Options{})
}

// noSleep records the waits a Retry asks for instead of sleeping.
type noSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *noSleep) retry(attempts int) Retry {
	return Retry{Attempts: attempts, Base: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 30 * time.Second,
		sleep: func(_ context.Context, d time.Duration) error {
			s.mu.Lock()
			s.waits = append(s.waits, d)
			s.mu.Unlock()
			return nil
		}}
}

// recorder is a loopback receiver that answers with the statuses it is
// given in turn (the last one repeats) and keeps what it received.
type recorder struct {
	srv      *httptest.Server
	statuses []int
	header   http.Header // extra response headers
	calls    atomic.Int32
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
}

func newRecorder(t *testing.T, statuses ...int) *recorder {
	r := &recorder{statuses: statuses, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(r.calls.Add(1))
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		st := r.statuses[min(n, len(r.statuses))-1]
		for k, v := range r.header {
			w.Header()[k] = v
		}
		w.WriteHeader(st)
		fmt.Fprintf(w, "answer %d to %s", st, req.URL.Path) // echoes the path, as some servers do
	}))
	t.Cleanup(r.srv.Close)
	return r
}

const hmacKey = "whsec-test-key-0123456789"

func newTestWebhook(t *testing.T, url string, r Retry) *Webhook {
	t.Helper()
	w, err := NewWebhook(WebhookOptions{HTTPOptions: HTTPOptions{URL: NewSecret(url), Timeout: 2 * time.Second, Retry: r},
		Secret: NewSecret(hmacKey), Organization: "Glow Aesthetics"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebhookSignedPayload(t *testing.T) {
	rec := newRecorder(t, 200)
	var ns noSleep
	w := newTestWebhook(t, rec.srv.URL+"/hooks/vigil", ns.retry(3))
	as := sample(3)
	if err := w.Send(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	if rec.calls.Load() != 1 {
		t.Fatalf("%d requests, want 1", rec.calls.Load())
	}
	body, h := rec.bodies[0], rec.headers[0]
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", h.Get("Content-Type"))
	}
	if err := Verify([]byte(hmacKey), h.Get(SignatureHeader), body, 0, time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v (%s)", err, h.Get(SignatureHeader))
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != PayloadVersion || p.Organization != "Glow Aesthetics" || len(p.Alerts) != 3 || p.ID == "" || h.Get(DeliveryHeader) != p.ID {
		t.Errorf("payload: %+v", p)
	}
	if p.Alerts[0].Kind != NewFinding || p.Alerts[0].FindingID == "" || p.Alerts[0].Severity != observe.Critical {
		t.Errorf("first alert: %+v", p.Alerts[0])
	}

	// What a receiver must reject.
	if err := Verify([]byte(hmacKey), h.Get(SignatureHeader), bytes.Replace(body, []byte("critical"), []byte("low"), 1), 0, time.Now()); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("tampered body: %v", err)
	}
	if err := Verify([]byte("other key"), h.Get(SignatureHeader), body, 0, time.Now()); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("wrong key: %v", err)
	}
	if err := Verify([]byte(hmacKey), h.Get(SignatureHeader), body, 0, time.Now().Add(10*time.Minute)); !errors.Is(err, ErrSignatureExpired) {
		t.Errorf("replayed 10 minutes later: %v", err)
	}
	if err := Verify([]byte(hmacKey), "", body, 0, time.Now()); !errors.Is(err, ErrNoSignature) {
		t.Errorf("no header: %v", err)
	}
	// Rotation: any matching v1 counts.
	two := Sign([]byte("old key"), body, time.Now()) + ",v1=" + strings.SplitN(h.Get(SignatureHeader), "v1=", 2)[1]
	if err := Verify([]byte(hmacKey), two, body, 0, time.Now()); err != nil {
		t.Errorf("two signatures: %v", err)
	}
}

func TestWebhookRetries(t *testing.T) {
	cases := []struct {
		name       string
		statuses   []int
		retryAfter string
		calls      int
		ok         bool
		permanent  bool
		waits      func([]time.Duration) error
	}{
		{name: "500 then 200", statuses: []int{500, 200}, calls: 2, ok: true,
			waits: func(w []time.Duration) error {
				if len(w) != 1 || w[0] < 50*time.Millisecond || w[0] > 100*time.Millisecond {
					return fmt.Errorf("waits %v, want one backoff in [50ms,100ms]", w)
				}
				return nil
			}},
		{name: "429 with Retry-After", statuses: []int{429, 429, 200}, retryAfter: "7", calls: 3, ok: true,
			waits: func(w []time.Duration) error {
				if len(w) != 2 || w[0] != 7*time.Second || w[1] != 7*time.Second {
					return fmt.Errorf("waits %v, want Retry-After 7s twice", w)
				}
				return nil
			}},
		{name: "Retry-After is bounded", statuses: []int{429, 200}, retryAfter: "86400", calls: 2, ok: true,
			waits: func(w []time.Duration) error {
				if len(w) != 1 || w[0] != 30*time.Second {
					return fmt.Errorf("waits %v, want the 30s cap", w)
				}
				return nil
			}},
		{name: "400 not retried", statuses: []int{400}, calls: 1, permanent: true},
		{name: "404 not retried", statuses: []int{404}, calls: 1, permanent: true},
		{name: "408 retried", statuses: []int{408, 200}, calls: 2, ok: true},
		{name: "redirect not followed", statuses: []int{302}, calls: 1, permanent: true},
		{name: "attempts bounded", statuses: []int{503}, calls: 4,
			waits: func(w []time.Duration) error {
				if len(w) != 3 || w[1] < w[0]/2 || w[2] > time.Second {
					return fmt.Errorf("waits %v, want 3 growing backoffs capped at 1s", w)
				}
				return nil
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, tc.statuses...)
			if tc.retryAfter != "" {
				rec.header.Set("Retry-After", tc.retryAfter)
			}
			var ns noSleep
			w := newTestWebhook(t, rec.srv.URL+"/x", ns.retry(4))
			err := w.Send(context.Background(), sample(1))
			if (err == nil) != tc.ok {
				t.Fatalf("Send: %v", err)
			}
			if got := int(rec.calls.Load()); got != tc.calls {
				t.Errorf("%d requests, want %d", got, tc.calls)
			}
			if tc.permanent != errors.Is(err, ErrPermanent) {
				t.Errorf("permanent = %v, want %v (%v)", errors.Is(err, ErrPermanent), tc.permanent, err)
			}
			if tc.waits != nil {
				if e := tc.waits(ns.waits); e != nil {
					t.Error(e)
				}
			}
			// Each attempt carries a signature that verifies.
			for i, h := range rec.headers {
				if err := Verify([]byte(hmacKey), h.Get(SignatureHeader), rec.bodies[i], 0, time.Now()); err != nil {
					t.Errorf("attempt %d: %v", i+1, err)
				}
			}
		})
	}
}

// A real wait: Retry-After of one second is slept, not just computed.
func TestRetryAfterSleeps(t *testing.T) {
	rec := newRecorder(t, 429, 200)
	rec.header.Set("Retry-After", "1")
	w := newTestWebhook(t, rec.srv.URL, Retry{Attempts: 2})
	start := time.Now()
	if err := w.Send(context.Background(), sample(1)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, before Retry-After", d)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var ns noSleep
	w, err := NewWebhook(WebhookOptions{HTTPOptions: HTTPOptions{URL: NewSecret(srv.URL), Timeout: 100 * time.Millisecond, Retry: ns.retry(2)}, Secret: NewSecret(hmacKey)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = w.Send(context.Background(), sample(1))
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("a hung receiver: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two 100ms attempts took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Send(ctx, sample(1)); err == nil {
		t.Error("a cancelled context sent anyway")
	}
}

func TestSlackPayload(t *testing.T) {
	rec := newRecorder(t, 200)
	s, err := NewSlack(HTTPOptions{URL: NewSecret(rec.srv.URL + "/services/T0/B0/tok")}, Format{Organization: "Glow", MaxItems: 5})
	if err != nil {
		t.Fatal(err)
	}
	as := sample(12)
	as[0].Target = "<!channel>"
	as[0].Title = "evil <!channel> & co"
	if err := s.Send(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string `json:"type"`
			Text     *struct{ Type, Text string }
			Elements []struct{ Type, Text string }
		} `json:"blocks"`
	}
	if err := json.Unmarshal(rec.bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Text, "vigil (Glow): 12 alerts (2 critical, 10 high)") || !strings.Contains(m.Text, "and 7 more alerts.") {
		t.Errorf("text: %q", m.Text)
	}
	if strings.Contains(string(rec.bodies[0]), "<!channel>") || !strings.Contains(m.Text, "&lt;!channel&gt; &amp; co") {
		t.Errorf("Slack markup not escaped: %s", rec.bodies[0])
	}
	// header, 5 sections, context
	if len(m.Blocks) != 7 || m.Blocks[0].Type != "header" || m.Blocks[0].Text.Type != "plain_text" ||
		m.Blocks[1].Type != "section" || m.Blocks[1].Text.Type != "mrkdwn" || m.Blocks[6].Type != "context" ||
		m.Blocks[6].Elements[0].Text != "and 7 more alerts." {
		t.Errorf("blocks: %s", rec.bodies[0])
	}
}

func TestTeamsPayload(t *testing.T) {
	rec := newRecorder(t, 200)
	tm, err := NewTeams(HTTPOptions{URL: NewSecret(rec.srv.URL + "/workflows/abc/triggers/manual/paths/invoke?sig=tok")}, Format{MaxItems: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.Send(context.Background(), sample(4)); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "message" || !strings.Contains(m["text"].(string), "and 1 more alert.") {
		t.Errorf("envelope: %s", rec.bodies[0])
	}
	att := m["attachments"].([]any)[0].(map[string]any)
	if att["contentType"] != "application/vnd.microsoft.card.adaptive" {
		t.Errorf("attachment: %v", att)
	}
	if v, ok := att["contentUrl"]; !ok || v != nil {
		t.Errorf("contentUrl should be present and null: %v", att)
	}
	card := att["content"].(map[string]any)
	if card["type"] != "AdaptiveCard" || card["version"] != "1.2" || card["$schema"] == nil {
		t.Errorf("card: %v", card)
	}
	body := card["body"].([]any)
	first := body[0].(map[string]any)
	if first["type"] != "TextBlock" || first["text"] != "vigil: 4 alerts (1 critical, 3 high)" {
		t.Errorf("first block: %v", first)
	}
}

// Webhook URLs whose path or query is a token, and signing keys, never
// show in errors or logs.
func TestSecretsRedacted(t *testing.T) {
	const token = "T0AAAAAAA/B0BBBBBBB/XyZsecretTokenValue123"
	rec := newRecorder(t, 400)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	slack, err := NewSlack(HTTPOptions{URL: NewSecret(rec.srv.URL + "/services/" + token), Retry: Retry{Attempts: 1}}, Format{})
	if err != nil {
		t.Fatal(err)
	}
	// A closed port: the transport error would name the URL.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String() + "/services/" + token
	l.Close()
	slackDead, _ := NewSlack(HTTPOptions{URL: NewSecret(dead), Retry: Retry{Attempts: 1}}, Format{})
	teams, _ := NewTeams(HTTPOptions{URL: NewSecret(rec.srv.URL + "/invoke?api-version=1&sig=XyZsecretTokenValue123"), Retry: Retry{Attempts: 1}}, Format{})
	wh := newTestWebhook(t, dead, Retry{Attempts: 1})

	n := NewNotifier([]Route{{Name: "slack", Channel: slack}, {Name: "dead", Channel: slackDead}, {Name: "teams", Channel: teams}, {Name: "wh", Channel: wh}}, nil, log)
	err = n.Notify(context.Background(), sample(1))
	if err == nil {
		t.Fatal("expected errors")
	}
	key := NewSecret(hmacKey)
	log.Info("channels", "slack", slack, "webhook", wh, "key", key)
	out := err.Error() + "\n" + logs.String() + fmt.Sprintf("%v %+v %#v %s %q %x", key, key, key, key, key, key) +
		fmt.Sprint(slack, slackDead, teams, wh)
	for _, s := range []string{"XyZsecretTokenValue123", hmacKey, "B0BBBBBBB"} {
		if strings.Contains(out, s) {
			t.Errorf("secret %q leaked:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "status 400") || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("errors should still say what happened and where:\n%s", out)
	}
	b, _ := json.Marshal(struct{ K Secret }{key})
	if strings.Contains(string(b), hmacKey) {
		t.Errorf("JSON: %s", b)
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:9/x":            true,
		"http://[::1]:9/x":                true,
		"http://localhost/x":              true,
		"https://siem.example.com/x":      true,
		"http://siem.example.com/x":       false,
		"ftp://siem.example.com/x":        false,
		"/relative":                       false,
		"http://10.0.0.1/services/secret": false,
	} {
		_, err := NewSlack(HTTPOptions{URL: NewSecret(url)}, Format{})
		if (err == nil) != ok {
			t.Errorf("%s: %v", url, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error repeats the path: %v", err)
		}
	}
}
