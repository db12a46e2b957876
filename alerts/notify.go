package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// Channel delivers alerts somewhere: all of them in one message (a
// digest) when given several. Implementations retry transient failures
// themselves and return an error only when they give up.
type Channel interface {
	Send(ctx context.Context, alerts []Alert) error
}

// Ledger remembers which alerts each channel has delivered, so that the
// same alert is never sent twice. The daemon persists it; MemoryLedger
// keeps it for one process.
type Ledger interface {
	// Sent reports whether key was delivered to channel.
	Sent(ctx context.Context, channel, key string) (bool, error)
	// Record notes that key was delivered to channel at at.
	Record(ctx context.Context, channel, key string, at time.Time) error
}

// MemoryLedger is a Ledger in memory. The zero value is ready to use.
type MemoryLedger struct {
	mu   sync.Mutex
	sent map[string]time.Time
}

// Sent implements Ledger.
func (l *MemoryLedger) Sent(_ context.Context, channel, key string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.sent[channel+"\x00"+key]
	return ok, nil
}

// Record implements Ledger.
func (l *MemoryLedger) Record(_ context.Context, channel, key string, at time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[string]time.Time{}
	}
	l.sent[channel+"\x00"+key] = at
	return nil
}

// Route is one configured channel and what it receives.
type Route struct {
	// Name identifies the route in logs and in the Ledger.
	Name    string
	Channel Channel
	// MinSeverity drops alerts below it ("" or invalid: keep all).
	MinSeverity observe.Severity
	// Digest combines the alerts of one Notify call (or of Window) into
	// one message; without it each alert is its own message.
	Digest bool
	// Window, with Digest, holds alerts back until Window has passed since
	// the first one pending, so several scans in a row send one message.
	// Notifier.Run flushes them.
	Window time.Duration
}

// Notifier routes alerts to channels: it filters by severity, drops what
// each channel already had, sends (combined when the route digests) and
// records what was delivered.
type Notifier struct {
	routes []Route
	ledger Ledger
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	pending map[int]*batch
}

type batch struct {
	since  time.Time
	alerts []Alert
	keys   map[string]bool
}

// NewNotifier returns a Notifier over routes. A nil ledger is a fresh
// MemoryLedger; a nil logger discards.
func NewNotifier(routes []Route, ledger Ledger, log *slog.Logger) *Notifier {
	if ledger == nil {
		ledger = &MemoryLedger{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{routes: routes, ledger: ledger, log: log, now: time.Now, pending: map[int]*batch{}}
}

// Notify delivers alerts to every route: at once, or, for a route with a
// window, on a later Flush. It returns the routes' errors joined; one
// failing channel does not stop the others.
func (n *Notifier) Notify(ctx context.Context, alerts []Alert) error {
	var errs []error
	for i, r := range n.routes {
		todo, err := n.fresh(ctx, i, r, alerts)
		if err != nil {
			errs = append(errs, err)
		}
		if len(todo) == 0 {
			continue
		}
		if r.Digest && r.Window > 0 {
			n.hold(i, todo)
			continue
		}
		if err := n.deliver(ctx, r, todo); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fresh is alerts at or above the route's severity that it has not had
// (delivered, or pending), each once.
func (n *Notifier) fresh(ctx context.Context, i int, r Route, alerts []Alert) ([]Alert, error) {
	n.mu.Lock()
	var pending map[string]bool
	if b := n.pending[i]; b != nil {
		pending = b.keys
	}
	n.mu.Unlock()
	seen := map[string]bool{}
	var out []Alert
	for _, a := range alerts {
		if r.MinSeverity.Valid() && a.Severity.Rank() < r.MinSeverity.Rank() {
			continue
		}
		if seen[a.Key] || pending[a.Key] {
			continue
		}
		seen[a.Key] = true
		done, err := n.ledger.Sent(ctx, r.Name, a.Key)
		if err != nil {
			return out, fmt.Errorf("alerts %s: ledger: %w", r.Name, err)
		}
		if !done {
			out = append(out, a)
		}
	}
	return out, nil
}

func (n *Notifier) hold(i int, as []Alert) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.pending[i]
	if b == nil {
		b = &batch{since: n.now(), keys: map[string]bool{}}
		n.pending[i] = b
	}
	for _, a := range as {
		b.alerts = append(b.alerts, a)
		b.keys[a.Key] = true
	}
}

// deliver sends as (one message, or one per alert) and records what went.
func (n *Notifier) deliver(ctx context.Context, r Route, as []Alert) error {
	groups := [][]Alert{as}
	if !r.Digest {
		groups = groups[:0]
		for _, a := range as {
			groups = append(groups, []Alert{a})
		}
	}
	var errs []error
	for _, g := range groups {
		if err := r.Channel.Send(ctx, g); err != nil {
			n.log.Warn("alert delivery failed", "channel", r.Name, "alerts", len(g), "err", err)
			errs = append(errs, fmt.Errorf("alerts %s: %w", r.Name, err))
			continue
		}
		n.log.Info("alerts delivered", "channel", r.Name, "alerts", len(g))
		for _, a := range g {
			if err := n.ledger.Record(ctx, r.Name, a.Key, n.now()); err != nil {
				errs = append(errs, fmt.Errorf("alerts %s: ledger: %w", r.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Flush sends the pending digests whose window has passed, or all of them
// when all is true (at shutdown).
func (n *Notifier) Flush(ctx context.Context, all bool) error {
	now := n.now()
	type due struct {
		i int
		b *batch
	}
	var ready []due
	n.mu.Lock()
	for i, b := range n.pending {
		if all || now.Sub(b.since) >= n.routes[i].Window {
			ready = append(ready, due{i, b})
			delete(n.pending, i)
		}
	}
	n.mu.Unlock()
	var errs []error
	for _, d := range ready {
		if err := n.deliver(ctx, n.routes[d.i], d.b.alerts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run flushes windowed digests as their windows pass, until ctx is done;
// then it sends what is still pending, within grace.
func (n *Notifier) Run(ctx context.Context, grace time.Duration) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := n.Flush(ctx, false); err != nil {
				n.log.Warn("alert digest flush failed", "err", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
			defer cancel()
			return n.Flush(fctx, true)
		}
	}
}
