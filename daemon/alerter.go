package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigilhq/vigil/alerts"
	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
)

// AlertStore is what an Alerter reads and changes in a tenant's store:
// the posture, and the accepted findings whose decision ran out.
type AlertStore interface {
	posture.Reader
	ExpireDecisions(ctx context.Context, now time.Time) ([]observe.Finding, error)
}

// AlertLedger is where an Alerter remembers deliveries: what each channel
// was sent (alerts.Ledger), and what it still owes, so that neither a
// restart re-sends an alert nor a channel that failed on every attempt
// loses one. store/sqlite.AlertLedger implements it.
type AlertLedger interface {
	alerts.Ledger
	Hold(ctx context.Context, pending []store.PendingAlert) error
	Pending(ctx context.Context) ([]store.PendingAlert, error)
	Attempted(ctx context.Context, channel string, keys []string, at time.Time) error
	DropPending(ctx context.Context, before time.Time) ([]store.PendingAlert, error)
}

// AlertPlan is what an Alerter computes and sends alerts with, taken from
// one loaded configuration; a reload swaps it (Alerter.SetPlan).
type AlertPlan struct {
	Config  *config.Config
	Catalog *rules.Catalog
	Rules   []*rules.Rule
	// People is the roster with hire dates, for new-hire training
	// reminders; nil without a roster.
	People []attest.Person
	// Routes are the configured channels (alerts.Routes).
	Routes []alerts.Route
}

// NewAlertPlan builds the plan for cfg: the channels with their secrets
// read from the environment (lookup, nil for os.LookupEnv) or files, the
// catalog and rules of engine, and the roster. A channel that cannot be
// built fails the plan, so a reload with a missing secret keeps the
// running one; an unreadable roster only loses the new-hire reminders
// (the scans report it) and is logged.
func NewAlertPlan(ctx context.Context, cfg *config.Config, engine *rules.Engine, lookup func(string) (string, bool), log *slog.Logger) (AlertPlan, error) {
	p := AlertPlan{Config: cfg, Catalog: engine.Catalog(), Rules: engine.Rules()}
	if p.Catalog == nil {
		cat, err := rules.LoadCatalog()
		if err != nil {
			return p, err
		}
		p.Catalog = cat
	}
	routes, err := alerts.Routes(cfg.Alerts, cfg.Organization, lookup)
	if err != nil {
		return p, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	p.Routes = routes
	if cfg.Roster != "" {
		ro, rowErrs, err := csvidentity.LoadRoster(ctx, cfg.Roster)
		if err = errors.Join(append([]error{err}, rowErrs...)...); err != nil && log != nil {
			log.Warn("roster not read in full: new-hire training reminders may be missing", "roster", cfg.Roster, "error", err)
		}
		if ro != nil {
			p.People = make([]attest.Person, 0, len(ro.Staff))
			for _, m := range ro.Staff {
				p.People = append(p.People, attest.Person{Email: m.Email, Username: m.Username, Name: m.Name,
					Locations: m.Locations, Hired: m.StartDate, Left: m.EndDate})
			}
		}
	}
	return p, nil
}

// Defaults of AlerterOptions.
const (
	DefaultExpireEvery = time.Hour
	DefaultRemindEvery = 24 * time.Hour
	DefaultGiveUpAfter = 7 * 24 * time.Hour
	DefaultFlushEvery  = 5 * time.Second
)

// AlerterOptions configures NewAlerter.
type AlerterOptions struct {
	Store  AlertStore
	Ledger AlertLedger
	// Logger receives the alerter's logs (which alerts went where, what
	// reopened); nil discards. Secrets never reach it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ExpireEvery is how often, besides after each scan, decisions are
	// expired and pending alerts retried (default an hour).
	ExpireEvery time.Duration
	// RemindEvery is how often attestation and new-hire reminders are
	// computed (default a day; the ledger keeps each reminder stage to
	// one message anyway).
	RemindEvery time.Duration
	// GiveUpAfter drops an alert no channel managed to deliver for this
	// long, with a warning (default 7 days).
	GiveUpAfter time.Duration
	// FlushEvery is how often digests held for a window are checked
	// (default 5s).
	FlushEvery time.Duration
	// Refreshed, when set, is called after each cycle has expired
	// decisions and read the store (at start, after a scan, on the
	// hourly timer), before alerts are sent: the dashboard refreshes its
	// snapshot of the tenant then.
	Refreshed func(reason string)
	// AbandonAfter, when set, has each cycle finish as incomplete the
	// scans nobody will finish (store.ScanSweeper): the server's own begun
	// this long ago (a killed replica's), and any begun by a site agent
	// since revoked. Zero sweeps nothing.
	AbandonAfter time.Duration
	// Queue, when set, is given every cycle the alerter would run itself
	// (at start, after a scan, on the timer) instead: several replicas
	// share the cycles through a job queue, which runs them one at a time
	// with Cycle, so nothing is sent twice. Digests held for a window are
	// still flushed by Run.
	Queue func(reason string)
}

// Alerter turns one tenant's changes into alerts. Each cycle (at Run's
// start, after every stored scan, and every ExpireEvery) expires the
// decisions that ran out, reads the posture, compares it with the
// previous cycle's (new and reopened findings, controls that regressed),
// adds the day's reminders, and sends what is new, together with what
// earlier cycles failed to deliver. Cycles run one at a time in Run's
// goroutine, so scans finishing together never alert twice.
type Alerter struct {
	opts AlerterOptions
	log  *slog.Logger
	now  func() time.Time
	kick chan struct{}
	tick chan struct{} // a timer cycle now (tests)

	mu       sync.Mutex
	plan     AlertPlan
	notifier *alerts.Notifier

	// cycleMu serialises cycles (Run's, or Cycle's from a queue's worker).
	cycleMu    sync.Mutex
	lastSweep  time.Time // under cycleMu
	last       *posture.Snapshot
	lastRemind time.Time
	// cycled, in tests, hears the end of every cycle.
	cycled func(reason string)
}

// NewAlerter returns an alerter for plan; Run starts it.
func NewAlerter(opts AlerterOptions, plan AlertPlan) *Alerter {
	if opts.ExpireEvery <= 0 {
		opts.ExpireEvery = DefaultExpireEvery
	}
	if opts.RemindEvery <= 0 {
		opts.RemindEvery = DefaultRemindEvery
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = DefaultGiveUpAfter
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	a := &Alerter{opts: opts, log: opts.Logger, now: opts.Now, kick: make(chan struct{}, 1), tick: make(chan struct{}, 1)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.SetPlan(plan)
	return a
}

// SetPlan switches to the channels and rules of a reloaded
// configuration. Digests held for a window by the old channels are kept
// in the ledger and go out through the new ones on the next cycle.
func (a *Alerter) SetPlan(plan AlertPlan) {
	n := alerts.NewNotifier(plan.Routes, a.opts.Ledger, a.log)
	a.mu.Lock()
	a.plan, a.notifier = plan, n
	a.mu.Unlock()
}

func (a *Alerter) current() (AlertPlan, *alerts.Notifier) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.plan, a.notifier
}

// ScanStored asks for a cycle because a scan was stored. It never
// blocks: requests made while a cycle runs fold into the next one, which
// reads everything stored by then.
func (a *Alerter) ScanStored() {
	if a.opts.Queue != nil {
		a.opts.Queue("scan")
		return
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// cycleNow asks for a timer cycle at once.
func (a *Alerter) cycleNow() {
	select {
	case a.tick <- struct{}{}:
	default:
	}
}

// Run runs a cycle at once, then one after every stored scan and every
// ExpireEvery, and flushes windowed digests, until ctx is done. It then
// runs the cycle a scan asked for, if any, and sends what is held for a
// window, within grace, and returns.
func (a *Alerter) Run(ctx context.Context, grace time.Duration) error {
	a.request(ctx, "start")
	expire := time.NewTicker(a.opts.ExpireEvery)
	defer expire.Stop()
	flush := time.NewTicker(a.opts.FlushEvery)
	defer flush.Stop()
	for {
		select {
		case <-a.kick:
			a.cycle(ctx, "scan")
		case <-expire.C:
			a.request(ctx, "timer")
		case <-a.tick:
			a.request(ctx, "timer")
		case <-flush.C:
			_, n := a.current()
			if err := n.Flush(ctx, false); err != nil {
				a.log.Warn("alert digest not delivered: kept for the next cycle", "error", err)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
			defer cancel()
			select {
			case <-a.kick:
				a.cycle(fctx, "scan")
			default:
			}
			_, n := a.current()
			if err := n.Flush(fctx, true); err != nil {
				a.log.Warn("alert digest not delivered before shutdown: kept for the next start", "error", err)
				return err
			}
			return nil
		}
	}
}

// request runs a cycle, or hands it to the queue.
func (a *Alerter) request(ctx context.Context, reason string) {
	if a.opts.Queue != nil {
		a.opts.Queue(reason)
		return
	}
	a.cycle(ctx, reason)
}

// Cycle runs one cycle now, for a queue's worker (AlerterOptions.Queue):
// expire the decisions that ran out, read the posture, compare it with
// the previous cycle's, add the reminders, send what is new and what
// earlier cycles owe. Cycles never overlap.
func (a *Alerter) Cycle(ctx context.Context, reason string) { a.cycle(ctx, reason) }

// cycle is one pass: expire, read, compare, remind, send.
func (a *Alerter) cycle(ctx context.Context, reason string) {
	a.cycleMu.Lock()
	defer a.cycleMu.Unlock()
	plan, n := a.current()
	now := a.now()
	reopened, err := a.opts.Store.ExpireDecisions(ctx, now)
	if err != nil {
		a.log.Error("decisions not expired", "error", err)
	}
	for _, f := range reopened {
		a.log.Info("decision expired: finding reopened", "finding", f.ID, "rule", f.Rule, "severity", f.Severity,
			"location", f.Location, "target", f.Target)
	}
	a.sweep(ctx, now)
	warn := time.Duration(plan.Config.Alerts.ExpiryWarnDays) * 24 * time.Hour
	snap, err := posture.Load(ctx, a.opts.Store, posture.Input{Config: plan.Config, Catalog: plan.Catalog, Rules: plan.Rules,
		People: plan.People, Warn: warn, Now: now})
	if a.opts.Refreshed != nil {
		a.opts.Refreshed(reason)
	}
	var fresh []alerts.Alert
	if err != nil {
		// Nothing to compare: what earlier cycles owe is still sent.
		a.log.Error("posture not read: no new alerts this cycle", "reason", reason, "error", err)
	} else {
		fresh = a.compute(plan, snap, reopened, now)
		a.last = snap
	}
	fresh = append(fresh, a.quietAgents(ctx, plan, now)...)
	if len(reopened) > 0 || len(fresh) > 0 {
		a.log.Info("alerts computed", "reason", reason, "reopened", len(reopened), "alerts", len(fresh))
	}
	a.deliver(ctx, plan, n, fresh)
	if a.cycled != nil {
		a.cycled(reason)
	}
}

// compute is what changed for the worse since the last cycle's snapshot.
func (a *Alerter) compute(plan AlertPlan, snap *posture.Snapshot, reopened []observe.Finding, now time.Time) []alerts.Alert {
	o := alerts.OptionsFrom(plan.Config.Alerts)
	var out []alerts.Alert
	if a.last != nil {
		out = append(out, alerts.FromScan(a.last.Findings, snap.Findings, now, o)...)
		out = append(out, alerts.FromControls(a.last.Controls, snap.Controls, now, o)...)
	}
	// A decision that ran out reopens its finding: an alert even at
	// start, when there is no earlier snapshot (or one that already saw
	// the decision as expired). Same finding and time, same key: a
	// finding the comparison also caught goes out once.
	if len(reopened) > 0 {
		was := make([]observe.Finding, len(reopened))
		for i, f := range reopened {
			was[i] = f
			was[i].Status = observe.StatusAccepted
		}
		out = append(out, alerts.FromScan(was, reopened, now, o)...)
	}
	if a.lastRemind.IsZero() || now.Sub(a.lastRemind) >= a.opts.RemindEvery {
		out = append(out, alerts.FromReminders(snap.Due, now, o)...)
		a.lastRemind = now
	}
	return out
}

// deliver sends fresh alerts and those pending from earlier cycles. Each
// is first kept in the ledger as pending for every channel that should
// get it; a channel's delivery marks it sent there. What is still
// pending after a failed delivery is counted and tried again next cycle.
func (a *Alerter) deliver(ctx context.Context, plan AlertPlan, n *alerts.Notifier, fresh []alerts.Alert) {
	if len(plan.Routes) == 0 {
		return
	}
	led := a.opts.Ledger
	now := a.now()
	if dropped, err := led.DropPending(ctx, now.Add(-a.opts.GiveUpAfter)); err != nil {
		a.log.Error("alert ledger", "error", err)
	} else if len(dropped) > 0 {
		per := map[string]int{}
		for _, p := range dropped {
			per[p.Channel]++
		}
		for ch, c := range per {
			a.log.Warn("alerts never delivered: given up", "channel", ch, "alerts", c, "after", a.opts.GiveUpAfter)
		}
	}
	pending, err := led.Pending(ctx)
	if err != nil {
		a.log.Error("alert ledger: pending alerts not read", "error", err)
	}
	all := make([]alerts.Alert, 0, len(fresh)+len(pending))
	seen := map[string]bool{}
	for _, al := range fresh {
		if !seen[al.Key] {
			seen[al.Key] = true
			all = append(all, al)
		}
	}
	held := map[string]map[string]bool{} // channel -> keys pending
	for _, p := range pending {
		if held[p.Channel] == nil {
			held[p.Channel] = map[string]bool{}
		}
		held[p.Channel][p.Key] = true
		if seen[p.Key] {
			continue
		}
		var al alerts.Alert
		if err := json.Unmarshal(p.Alert, &al); err != nil || al.Key != p.Key {
			a.log.Warn("alert ledger: unreadable pending alert skipped", "channel", p.Channel, "key", p.Key)
			continue
		}
		seen[p.Key] = true
		all = append(all, al)
	}
	if len(all) == 0 {
		return
	}
	var hold []store.PendingAlert
	due := map[string][]string{} // channel -> keys it should get this cycle
	for _, r := range plan.Routes {
		for _, al := range all {
			if r.MinSeverity.Valid() && al.Severity.Rank() < r.MinSeverity.Rank() {
				continue
			}
			due[r.Name] = append(due[r.Name], al.Key)
			if held[r.Name][al.Key] {
				continue
			}
			body, err := json.Marshal(al)
			if err != nil {
				continue
			}
			hold = append(hold, store.PendingAlert{Channel: r.Name, Key: al.Key, Alert: body, Created: now})
		}
	}
	if err := led.Hold(ctx, hold); err != nil {
		// Delivery goes on; only the retry after a failure is lost.
		a.log.Error("alert ledger: alerts not kept for retry", "error", err)
	}
	if err := n.Notify(ctx, all); err != nil {
		a.log.Warn("alert delivery failed", "error", err)
	}
	for _, r := range plan.Routes {
		if r.Digest && r.Window > 0 {
			continue // held for the window; Flush delivers them
		}
		var failed []string
		for _, k := range due[r.Name] {
			if sent, err := led.Sent(ctx, r.Name, k); err == nil && !sent {
				failed = append(failed, k)
			}
		}
		if len(failed) == 0 {
			continue
		}
		if err := led.Attempted(ctx, r.Name, failed, now); err != nil {
			a.log.Error("alert ledger", "error", err)
		}
		a.log.Warn("alerts not delivered: kept for the next cycle", "channel", r.Name, "alerts", len(failed))
	}
}

// sweep finishes as incomplete the scans nobody will finish, so none
// stays "running" for ever on the dashboard and in reports.
func (a *Alerter) sweep(ctx context.Context, now time.Time) {
	sw, ok := a.opts.Store.(store.ScanSweeper)
	if !ok || a.opts.AbandonAfter <= 0 {
		return
	}
	// Cycles come every few seconds under agent load; the sweep reads the
	// scans table, and nothing it finds is urgent.
	if every := min(10*time.Minute, a.opts.AbandonAfter/4); now.Sub(a.lastSweep) < every {
		return
	}
	a.lastSweep = now
	done, err := sw.AbandonScans(ctx, now.Add(-a.opts.AbandonAfter), now, 100)
	for _, s := range done {
		a.log.Warn("abandoned scan finished as incomplete", "scan", s.ID, "started", s.StartedAt, "agent", s.Agent, "reason", s.Reason)
	}
	if err != nil {
		a.log.Error("abandoned scans not swept", "error", err)
	}
}
