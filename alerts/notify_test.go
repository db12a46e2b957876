package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// spy is a Channel that records each message.
type spy struct {
	mu   sync.Mutex
	msgs [][]Alert
	fail error
}

func (s *spy) Send(_ context.Context, as []Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.msgs = append(s.msgs, as)
	return nil
}

// One scan with fifty new findings sends one message per digest channel,
// each alert once, and nothing more on the next scan.
func TestDigestAndDedup(t *testing.T) {
	rec := newRecorder(t, 200)
	wh := newTestWebhook(t, rec.srv.URL, Retry{Attempts: 1})
	digest, each, critical := &spy{}, &spy{}, &spy{}
	n := NewNotifier([]Route{
		{Name: "webhook", Channel: wh, Digest: true},
		{Name: "digest", Channel: digest, Digest: true},
		{Name: "each", Channel: each},
		{Name: "pager", Channel: critical, Digest: true, MinSeverity: observe.Critical},
	}, nil, nil)
	as := sample(50)
	if err := n.Notify(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	if rec.calls.Load() != 1 || len(digest.msgs) != 1 || len(digest.msgs[0]) != 50 {
		t.Errorf("digest: %d webhook posts, %d messages", rec.calls.Load(), len(digest.msgs))
	}
	var p Payload
	json.Unmarshal(rec.bodies[0], &p)
	if len(p.Alerts) != 50 {
		t.Errorf("webhook digest carries %d alerts, want all 50", len(p.Alerts))
	}
	if len(each.msgs) != 50 {
		t.Errorf("digest off: %d messages, want 50", len(each.msgs))
	}
	if len(critical.msgs) != 1 || len(critical.msgs[0]) != 5 {
		t.Errorf("min critical: %v", critical.msgs)
	}

	// The same alerts again (a daemon restart re-reading the same scan, or
	// the same reminder the next day): nothing is sent.
	if err := n.Notify(context.Background(), append(as, as[0])); err != nil {
		t.Fatal(err)
	}
	if rec.calls.Load() != 1 || len(digest.msgs) != 1 || len(each.msgs) != 50 {
		t.Errorf("sent twice: %d posts, %d digests, %d single", rec.calls.Load(), len(digest.msgs), len(each.msgs))
	}
}

// A channel that failed gets the alerts on the next Notify; the others do
// not get them twice.
func TestFailedDeliveryIsNotRemembered(t *testing.T) {
	ok, bad := &spy{}, &spy{fail: errors.New("down")}
	ledger := &MemoryLedger{}
	n := NewNotifier([]Route{{Name: "ok", Channel: ok, Digest: true}, {Name: "bad", Channel: bad, Digest: true}}, ledger, nil)
	as := sample(3)
	if err := n.Notify(context.Background(), as); err == nil {
		t.Fatal("failure not reported")
	}
	bad.fail = nil
	if err := n.Notify(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	if len(ok.msgs) != 1 || len(bad.msgs) != 1 || len(bad.msgs[0]) != 3 {
		t.Errorf("ok %d messages, bad %d", len(ok.msgs), len(bad.msgs))
	}
	if sent, _ := ledger.Sent(context.Background(), "bad", as[0].Key); !sent {
		t.Error("ledger did not record the late delivery")
	}
}

// With a window, several scans within it send one message.
func TestDigestWindow(t *testing.T) {
	s := &spy{}
	n := NewNotifier([]Route{{Name: "w", Channel: s, Digest: true, Window: 10 * time.Minute}}, nil, nil)
	now := t0
	n.now = func() time.Time { return now }
	ctx := context.Background()
	as := sample(6)
	n.Notify(ctx, as[:3])
	now = now.Add(4 * time.Minute)
	n.Notify(ctx, as[2:]) // as[2] is pending already
	n.Flush(ctx, false)
	if len(s.msgs) != 0 {
		t.Fatal("flushed before the window passed")
	}
	now = now.Add(6 * time.Minute)
	n.Flush(ctx, false)
	if len(s.msgs) != 1 || len(s.msgs[0]) != 6 {
		t.Fatalf("window digest: %v", s.msgs)
	}
	n.Notify(ctx, sample(7)[6:])
	if err := n.Flush(ctx, true); err != nil || len(s.msgs) != 2 {
		t.Errorf("forced flush: %v, %d messages", err, len(s.msgs))
	}
}

func TestRunFlushesOnShutdown(t *testing.T) {
	s := &spy{}
	n := NewNotifier([]Route{{Name: "w", Channel: s, Digest: true, Window: time.Hour}}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx, time.Second) }()
	n.Notify(ctx, sample(2))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(s.msgs) != 1 {
		t.Errorf("pending digest lost at shutdown: %v", s.msgs)
	}
}

func TestRoutesFromConfig(t *testing.T) {
	no := false
	cfg := config.AlertSettings{Channels: []config.AlertChannel{
		{Name: "siem", Type: "webhook", URL: "https://siem.example.com/x", SecretEnv: "WH_KEY", MinSeverity: "critical"},
		{Name: "slack", Type: "slack", URLEnv: "SLACK_URL", Digest: &no},
		{Name: "mail", Type: "email", Host: "smtp.example.com", Port: 587, From: "v@example.com", To: []string{"it@example.com"}, Username: "v", PasswordEnv: "SMTP_PW"},
	}}
	env := map[string]string{"WH_KEY": "k", "SLACK_URL": "https://hooks.slack.com/services/T/B/x"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	routes, err := Routes(cfg, "Glow", lookup)
	if err == nil || len(routes) != 2 {
		t.Fatalf("missing SMTP_PW should fail one channel: %v, %d routes", err, len(routes))
	}
	if want := "alerts channel mail: password: environment variable SMTP_PW is not set"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	env["SMTP_PW"] = "pw"
	routes, err = Routes(cfg, "Glow", lookup)
	if err != nil || len(routes) != 3 {
		t.Fatal(err)
	}
	if routes[0].MinSeverity != observe.Critical || !routes[0].Digest || routes[1].Digest {
		t.Errorf("routes: %+v", routes)
	}
	if _, ok := routes[2].Channel.(*Email); !ok {
		t.Errorf("email channel is %T", routes[2].Channel)
	}
}
