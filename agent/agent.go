// Package agent is the site sensor of `vigil agent`: it enrolls with a
// central `vigil serve`, scans its location on the schedules the server
// assigns with the same scanner code as `vigil scan`, and delivers what it
// saw through a bounded on-disk spool, so a server that is away loses
// nothing. The wire contract is package protocol; the outbox is package
// spool.
package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/agent/spool"
	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/sources"
	"github.com/vigilhq/vigil/collectors/telegrafin"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/scanner"
	"github.com/vigilhq/vigil/scanrun"
)

// Defaults of Options.
const (
	DefaultQueueLimit = 1 << 30
	DefaultHeartbeat  = time.Minute
	DefaultGrace      = 20 * time.Second
)

// Options configures an agent.
type Options struct {
	// State is the state directory.
	State *State
	// Server overrides the credential's server URL (the flag --server).
	Server string
	// Trust overrides the credential's certificate trust when set.
	Trust Trust
	// QueueLimit bounds the spool in bytes.
	QueueLimit int64
	// Heartbeat is how often the agent reports its health.
	Heartbeat time.Duration
	// Grace is how long a running scan may go on after ctx is cancelled
	// before it is cut short and recorded as incomplete.
	Grace time.Duration
	// Vantage names the segment this sensor probes from (as vigil scan
	// --vantage); empty detects it from local addresses.
	Vantage string
	// MaxJitter bounds schedule jitter (daemon.Options.MaxJitter); zero
	// is the daemon's default.
	MaxJitter time.Duration
	// ScanNow scans once at start, besides the schedule (after a first
	// enrollment, so the dashboard shows the site within minutes).
	ScanNow  bool
	Logger   *slog.Logger
	Version  string
	Hostname string
}

// EnrollOptions configures Enroll.
type EnrollOptions struct {
	State    *State
	Server   string
	Trust    Trust
	Token    string
	Version  string
	Hostname string
}

// Enroll exchanges the one-time token for a credential, with a new key,
// and stores both. The token is not kept.
func Enroll(ctx context.Context, o EnrollOptions) (*Credential, error) {
	if _, err := protocol.ParseToken(o.Token); err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	base, err := ServerURL(ctx, o.Server)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	hc, err := NewHTTPClient(o.Trust)
	if err != nil {
		return nil, err
	}
	key, err := o.State.NewKey()
	if err != nil {
		return nil, err
	}
	host := o.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	resp, err := postEnroll(ctx, base, hc, protocol.EnrollRequest{Token: o.Token, PublicKey: key.Public().(ed25519.PublicKey), Hostname: host, Version: o.Version}, o.Version)
	if err != nil {
		return nil, fmt.Errorf("enroll with %s: %w", base, err)
	}
	fp := ""
	if o.Trust.Fingerprint != "" {
		fp, _ = NormalizeFingerprint(o.Trust.Fingerprint)
	}
	ca := o.Trust.CAFile
	if ca != "" {
		if abs, err := filepath.Abs(ca); err == nil {
			ca = abs
		}
	}
	cred := &Credential{Tenant: resp.Tenant, AgentID: resp.AgentID, Location: resp.Location, Organization: resp.Organization,
		Server: base.String(), ServerFingerprint: fp, CAFile: ca, EnrolledAt: time.Now().UTC()}
	if err := o.State.SaveCredential(cred); err != nil {
		return nil, fmt.Errorf("enrolled as %s/%s but could not store the credential: %w", cred.Tenant, cred.AgentID, err)
	}
	// A new identity starts from its own assignment.
	_ = os.Remove(o.State.path(AssignmentFile))
	return cred, nil
}

// agent is one running agent.
type agent struct {
	o      Options
	log    *slog.Logger
	cred   *Credential
	client *Client
	sp     *spool.Spool
	store  *SpoolStore
	sender *Sender
	sched  *daemon.Scheduler

	mu     sync.Mutex
	asg    *protocol.Assignment
	status Status
}

// Run runs the enrolled agent until ctx is cancelled (it then lets the
// running scan finish for Options.Grace, records it as incomplete if it
// has not, and returns nil) or the server refuses it (an error wrapping
// ErrRefused).
func Run(ctx context.Context, o Options) error {
	if o.QueueLimit <= 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cred, err := o.State.Credential()
	if err != nil {
		return err
	}
	key, err := o.State.loadKey()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("the agent key %s is missing: enroll again with a new token and --re-enroll", o.State.path(KeyFile))
		}
		return err
	}
	server := cred.Server
	if o.Server != "" {
		u, err := ServerURL(ctx, o.Server)
		if err != nil {
			return fmt.Errorf("--server: %w", err)
		}
		if u.String() != cred.Server {
			log.Warn("--server differs from the server this agent enrolled with: using --server", "enrolled_with", cred.Server, "server", u.String())
		}
		server = u.String()
	}
	base, err := ServerURL(ctx, server)
	if err != nil {
		return err
	}
	trust := o.Trust
	if trust.Fingerprint == "" && trust.CAFile == "" {
		trust = Trust{Fingerprint: cred.ServerFingerprint, CAFile: cred.CAFile}
	}
	hc, err := NewHTTPClient(trust)
	if err != nil {
		return err
	}
	a := &agent{o: o, log: log, cred: cred, client: NewClient(base, hc, cred, key, o.Version)}
	if a.sp, err = spool.Open(filepath.Join(o.State.Dir, SpoolDir), o.QueueLimit); err != nil {
		return err
	}
	defer a.sp.Close()
	a.sender = NewSender(a.sp, a.client, filepath.Join(o.State.Dir, RejectedDir), log)
	a.sender.OnDelivered = a.delivered
	a.sender.OnError = func(err error) { a.setError(err) }
	if a.store, err = NewSpoolStore(a.sp, filepath.Join(o.State.Dir, OpenScansDir), log, a.sender.Wake); err != nil {
		return err
	}
	a.store.OnFinish = a.scanQueued
	if prev, err := o.State.Status(); err == nil {
		a.status.LastScanID, a.status.LastScanAt, a.status.LastScanComplete = prev.LastScanID, prev.LastScanAt, prev.LastScanComplete
		a.status.LastDeliveredAt, a.status.LastHeartbeatAt = prev.LastDeliveredAt, prev.LastHeartbeatAt
	}
	a.status.PID, a.status.Version = os.Getpid(), o.Version
	if _, err := a.store.RecoverOpenScans(); err != nil {
		return fmt.Errorf("finishing the scans a previous run left open: %w", err)
	}
	st := a.sp.Stats()
	log.Info("agent starting", "tenant", cred.Tenant, "agent", cred.AgentID, "location", cred.Location, "server", base.String(),
		"pinned", trust.Fingerprint != "", "queued_batches", st.Pending, "queued_bytes", st.PendingBytes, "queue_limit", st.Limit)
	a.saveStatus()

	// The sender and the heartbeat run from the start: what a previous
	// run queued is delivered even before there is an assignment.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	refused := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := a.sender.Run(runCtx); err != nil {
			refused <- err
		}
	}()
	go func() {
		defer wg.Done()
		if err := a.heartbeats(runCtx); err != nil {
			refused <- err
		}
	}()
	stop := func(err error) error {
		if a.sched != nil {
			grace := o.Grace
			if err != nil {
				grace = 0 // a refused agent stops at once
			}
			gctx, cancel := context.WithTimeout(context.Background(), grace)
			if serr := a.sched.Shutdown(gctx); serr != nil {
				log.Warn("scheduler shutdown", "error", serr)
			}
			cancel()
		}
		stopRun()
		wg.Wait()
		if err == nil {
			// Deliver the last scan's finish if the server is there;
			// whatever is left stays queued for the next start.
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = a.sender.Drain(fctx)
			cancel()
		} else {
			a.setError(err)
		}
		a.saveStatus()
		st := a.sp.Stats()
		log.Info("agent stopped", "queued_batches", st.Pending, "queued_bytes", st.PendingBytes)
		return err
	}

	asg, err := a.firstAssignment(ctx, refused)
	if err != nil {
		if ctx.Err() != nil {
			return stop(nil)
		}
		return stop(err)
	}
	a.setAssignment(asg)
	plan, err := a.plan(ctx)
	if err != nil {
		return stop(fmt.Errorf("assignment %s: %w", short(asg.Version), err))
	}
	sched := daemon.New(daemon.Options{Load: func(ctx context.Context) (daemon.Plan, error) { return a.plan(ctx) },
		MaxParallel: 1, MaxJitter: o.MaxJitter, CancelWait: 10 * time.Second, Logger: log})
	if err := sched.Start(plan); err != nil {
		return stop(err)
	}
	a.mu.Lock() // the heartbeats read it
	a.sched = sched
	a.mu.Unlock()
	for _, p := range a.sched.Planned() {
		log.Info("scan scheduled", "location", p.Location, "schedule", p.Schedule, "jitter", p.Jitter, "next", p.Next)
	}
	if o.ScanNow {
		if err := a.sched.ScanNow(asg.Location); err != nil {
			log.Warn("first scan not started", "error", err)
		}
	}
	select {
	case <-ctx.Done():
		log.Info("stopping: the running scan, if any, has the grace period to finish", "grace", o.Grace)
		return stop(nil)
	case err := <-refused:
		log.Error("THE SERVER REFUSES THIS AGENT: stopping (revoked or unknown; enroll again with a new token and --re-enroll if this is wrong)", "error", err)
		return stop(err)
	}
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

// firstAssignment fetches the assignment, falling back on the cached one
// while the server is away; with neither it retries until it gets one.
func (a *agent) firstAssignment(ctx context.Context, refused <-chan error) (*protocol.Assignment, error) {
	cached, cerr := a.o.State.Assignment()
	if cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
		a.log.Warn("cached assignment unreadable: ignored", "error", cerr)
		cached = nil
	}
	b := Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax}
	for {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		asg, err := a.client.Assignment(fctx)
		cancel()
		if err == nil {
			if err := a.o.State.SaveAssignment(asg); err != nil {
				a.log.Warn("assignment not cached", "error", err)
			}
			a.log.Info("assignment fetched", "location", asg.Location, "version", short(asg.Version))
			return asg, nil
		}
		if errors.Is(err, ErrRefused) || ctx.Err() != nil {
			return nil, err
		}
		if cached != nil && cerr == nil {
			a.log.Warn("server unreachable: scanning on the cached assignment", "error", err, "version", short(cached.Version))
			return cached, nil
		}
		d := b.Next()
		a.log.Warn("no assignment yet and the server is unreachable: retrying", "error", err, "retry_in", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-refused:
			return nil, err
		case <-time.After(d):
		}
	}
}

// plan parses the current assignment and builds what scans it: the
// scanner as `vigil scan` builds it, with no rules (the server judges).
func (a *agent) plan(ctx context.Context) (daemon.Plan, error) {
	a.mu.Lock()
	asg := a.asg
	a.mu.Unlock()
	cfg, err := config.Parse(filepath.Join(a.o.State.Dir, "assignment.yaml"), asg.Config)
	if err != nil {
		return daemon.Plan{}, err
	}
	loc := asg.Location
	if loc == "" {
		loc = a.cred.Location
	}
	if _, ok := cfg.Location(loc); !ok {
		return daemon.Plan{}, fmt.Errorf("the assignment has no location %q", loc)
	}
	sc, err := scanner.New(ctx, scanner.Options{Config: cfg, Logger: a.log, Vantage: a.o.Vantage})
	if err != nil {
		return daemon.Plan{}, err
	}
	r := &runner{cfg: cfg, scanner: sc, store: a.store, sp: a.sp, log: a.log, version: a.o.Version, sources: telegrafSources(cfg, a.log)}
	if svc, why := sources.Services(cfg); svc != nil {
		r.services = svc
	} else {
		a.log.Info("service versions not checked on this agent", "reason", why)
	}
	if len(cfg.Schedules) == 0 {
		a.log.Warn("the assignment has no schedule for this location: nothing will be scanned until it has one", "location", loc)
	}
	return daemon.Plan{Schedules: cfg.Schedules, Locations: []string{loc}, Runner: r}, nil
}

// heartbeats reports health every Options.Heartbeat and fetches the
// assignment again when the server says it changed.
func (a *agent) heartbeats(ctx context.Context) error {
	t := time.NewTicker(a.o.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ack, err := a.client.Heartbeat(hctx, a.heartbeat())
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRefused):
			return err
		case err != nil:
			if !failing {
				a.log.Warn("heartbeat failed: the server will show this site as quiet until it is back", "error", err)
			}
			failing = true
			a.setError(err)
		default:
			if failing {
				a.log.Info("heartbeat delivered again")
			}
			failing = false
			a.mu.Lock()
			a.status.LastHeartbeatAt = time.Now().UTC()
			started := a.asg != nil // before, firstAssignment fetches it
			cur := ""
			if started {
				cur = a.asg.Version
			}
			a.mu.Unlock()
			if started && ack.AssignmentVersion != "" && ack.AssignmentVersion != cur {
				if err := a.refreshAssignment(ctx); errors.Is(err, ErrRefused) {
					return err
				}
			}
			if ack.ScanNow {
				a.scanRequested(ack.RequestedBy)
			}
		}
		a.saveStatus()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scanRequested starts the scan the server asked for ("Scan now" on the
// dashboard), unless one is running or queued already.
func (a *agent) scanRequested(by string) {
	a.mu.Lock()
	sched := a.sched
	loc := a.cred.Location
	if a.asg != nil && a.asg.Location != "" {
		loc = a.asg.Location
	}
	a.mu.Unlock()
	if sched == nil {
		a.log.Info("scan requested by the server before the first assignment: the first scan starts with it", "requested_by", by)
		return
	}
	switch err := sched.ScanNow(loc); {
	case err == nil:
		a.log.Info("scan requested by the server: starting", "location", loc, "requested_by", by)
	case errors.Is(err, daemon.ErrBusy):
		a.log.Info("scan requested by the server: one is already running or queued", "location", loc, "requested_by", by)
	default:
		a.log.Warn("scan requested by the server not started", "location", loc, "error", err)
	}
}

// refreshAssignment fetches the assignment and, when it changed, caches it
// and reschedules.
func (a *agent) refreshAssignment(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	asg, err := a.client.Assignment(fctx)
	cancel()
	if err != nil {
		a.log.Warn("assignment changed on the server but could not be fetched: keeping the current one", "error", err)
		return err
	}
	a.mu.Lock()
	same := a.asg != nil && a.asg.Version == asg.Version
	sched := a.sched
	a.mu.Unlock()
	if same {
		return nil
	}
	if err := a.o.State.SaveAssignment(asg); err != nil {
		a.log.Warn("assignment not cached", "error", err)
	}
	a.log.Info("assignment changed: rescheduling", "version", short(asg.Version))
	a.setAssignment(asg)
	if sched != nil {
		if err := sched.Reload(ctx); err == nil {
			for _, p := range sched.Planned() {
				a.log.Info("scan scheduled", "location", p.Location, "schedule", p.Schedule, "jitter", p.Jitter, "next", p.Next)
			}
		}
	}
	return nil
}

func (a *agent) setAssignment(asg *protocol.Assignment) {
	a.mu.Lock()
	a.asg = asg
	a.status.AssignmentVersion = asg.Version
	a.mu.Unlock()
}

func (a *agent) heartbeat() protocol.Heartbeat {
	st := a.sp.Stats()
	a.mu.Lock()
	defer a.mu.Unlock()
	return protocol.Heartbeat{Version: a.o.Version, Hostname: a.o.Hostname, QueueDepth: st.Pending, QueueBytes: st.PendingBytes,
		LastScanID: a.status.LastScanID, LastScanAt: a.status.LastScanAt, AssignmentVersion: a.status.AssignmentVersion}
}

// scanQueued records a scan whose finish is spooled.
func (a *agent) scanQueued(scan observe.Scan) {
	a.mu.Lock()
	a.status.LastScanID, a.status.LastScanAt, a.status.LastScanComplete = scan.ID, scan.StartedAt, scan.Complete
	a.mu.Unlock()
	a.saveStatus()
}

func (a *agent) delivered(b *protocol.Batch, _ *protocol.BatchAck) {
	a.mu.Lock()
	a.status.LastDeliveredAt = time.Now().UTC()
	a.status.LastError = ""
	a.mu.Unlock()
	if b.Kind == protocol.BatchFinish || a.sp.Stats().Pending == 0 {
		a.saveStatus()
	}
}

func (a *agent) setError(err error) {
	a.mu.Lock()
	a.status.LastError = err.Error()
	a.mu.Unlock()
}

// saveStatus writes the status file for `vigil agent status`.
func (a *agent) saveStatus() {
	st := a.sp.Stats()
	a.mu.Lock()
	a.status.UpdatedAt = time.Now().UTC()
	a.status.QueueDepth, a.status.QueueBytes, a.status.QueueLimit = st.Pending, st.PendingBytes, st.Limit
	a.status.QueueFull = a.store != nil && a.store.Full()
	s := a.status
	a.mu.Unlock()
	if err := a.o.State.SaveStatus(&s); err != nil {
		a.log.Debug("status not written", "error", err)
	}
}

// telegrafSources builds the location's telegraf inputs the assignment
// names, each named protocol.AgentSourceName ("telegraf:x509_cert@downtown")
// so that what it reports is the location's alone: the server's own
// inputs of the same plugin keep their findings. One that cannot be built
// here (a secret file missing on this machine) still runs with every
// scan, failing, so each scan records the source as not read and the
// server resolves nothing it reported.
func telegrafSources(cfg *config.Config, log *slog.Logger) []collectors.Collector {
	var out []collectors.Collector
	for i, in := range cfg.Telegraf.Inputs {
		name := protocol.AgentSourceName("telegraf:"+in.Plugin, in.Location)
		c, err := telegrafin.New(in)
		if err != nil {
			err = fmt.Errorf("telegraf.inputs[%d] of the assignment: %w", i, err)
			log.Error("telegraf input not usable on this agent: every scan will report it unread", "input", name, "error", err)
			out = append(out, agentSource{name: name, err: err})
			continue
		}
		out = append(out, agentSource{name: name, c: c})
	}
	return out
}

// agentSource is a source under the agent's name for it; with no
// collector (it could not be built) reading it fails with err.
type agentSource struct {
	name string
	c    collectors.Collector
	err  error
}

func (s agentSource) Name() string { return s.name }

func (s agentSource) Collect(ctx context.Context) ([]observe.Observation, error) {
	if s.c == nil {
		return nil, s.err
	}
	return s.c.Collect(ctx)
}

// runner runs the scheduler's jobs with scanrun, spooling what it sees.
type runner struct {
	cfg      *config.Config
	scanner  *scanner.Scanner
	sources  []collectors.Collector // the location's telegraf inputs
	services scanrun.ServiceMatcher
	store    *SpoolStore
	sp       *spool.Spool
	log      *slog.Logger
	version  string
}

// RunJob implements daemon.Runner.
func (r *runner) RunJob(ctx context.Context, job daemon.Job, progress daemon.ProgressFunc) error {
	log := r.log.With("location", job.Location)
	// scanrun names the location in its own lines.
	run := &scanrun.Run{Config: r.cfg, Locations: []string{job.Location}, Scanner: r.scanner, Services: r.services,
		Store: r.store, Logger: r.log, Version: r.version, Sources: r.sources,
		OnPhase: func(phase string) {
			progress(phase, 0, 0)
			log.Info("scan phase", "phase", phase)
		}}
	start := time.Now()
	res, err := run.Do(ctx)
	if err != nil {
		return err
	}
	st := r.sp.Stats()
	log.Info("scan queued for the server", "scan", res.Scan.ID, "complete", res.Scan.Complete, "hosts", res.Hosts,
		"observations", res.Observations, "errors", len(res.Scan.Errors), "took", time.Since(start).Round(time.Millisecond),
		"queued_batches", st.Pending, "queued_bytes", st.PendingBytes)
	for _, n := range res.Notes {
		log.Info("scan note", "note", n)
	}
	switch {
	case res.Interrupted:
		return fmt.Errorf("scan %s: %w: interrupted (queued as incomplete)", res.Scan.ID, daemon.ErrIncomplete)
	case !res.Scan.Complete:
		return fmt.Errorf("scan %s: %w: %v", res.Scan.ID, daemon.ErrIncomplete, res.Scan.Errors)
	}
	return nil
}
