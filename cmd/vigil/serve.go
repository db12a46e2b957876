package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/dashboard"
	"github.com/vigilhq/vigil/jobs"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/store/postgres"
	"github.com/vigilhq/vigil/store/sqlite"
	"github.com/vigilhq/vigil/telemetry"
	"github.com/vigilhq/vigil/users"
	usersqlite "github.com/vigilhq/vigil/users/sqlite"
)

// serveStore is what the daemon needs from the store openStore returns:
// scans are written, the dashboard reads and records decisions, the
// alerter expires decisions.
type serveStore interface {
	storeCloser
	dashboard.Store
	daemon.AlertStore
}

// usersFileName is the server-wide users database, in the first
// configuration's data_dir.
const usersFileName = "users.db"

// serveTenant is one organisation being served.
type serveTenant struct {
	daemon.Tenant
	cfg    *config.Config
	store  serveStore
	runner *daemon.ScanRunner
	log    *slog.Logger
	// live is the configuration and rules in force, for the agent server.
	live liveConfig
}

func runServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := newFlags("serve",
		"serve --config FILE [--config FILE]... [--listen ADDR] [--db URL] [--tls-cert FILE --tls-key FILE] [--grace DURATION] [--max-parallel N] [--max-jitter DURATION] [--only PART]",
		"vigil serve --config /etc/vigil/glow.yaml --config /etc/vigil/radiance.yaml --listen 0.0.0.0:8443 --grace 2m",
		stderr)
	var cfgPaths multiFlag
	fs.Var(&cfgPaths, "config", "configuration file, one per organisation (required; repeat it to serve several); each is reloaded on SIGHUP")
	var (
		listen      = fs.String("listen", "127.0.0.1:8080", "address to serve the dashboard, API, /healthz, /readyz and /metrics on; plain HTTP only on a loopback address, HTTPS otherwise")
		db          = fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db); only with a single --config")
		tlsCert     = fs.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS with; with --tls-key")
		tlsKey      = fs.String("tls-key", "", "PEM private key of --tls-cert")
		grace       = fs.Duration("grace", 60*time.Second, "on SIGTERM/SIGINT, how long running scans may take to finish before they are cancelled and stored as incomplete")
		maxParallel = fs.Int("max-parallel", daemon.DefaultMaxParallel, "most scans running at once per organisation (default: the configuration's scan.max_parallel)")
		maxJitter   = fs.Duration("max-jitter", daemon.DefaultMaxJitter, "most a location's scheduled scan starts after the schedule's time (also at most 10% of the schedule's interval); 0s for none (default: each schedule's jitter, else 5m)")
		only        = fs.String("only", "", "run only one part of every scheduled scan: "+strings.Join(daemon.Parts, ", ")+" (as vigil scan --only)")
		vantage     = fs.String("vantage", "", "the segment this sensor probes from (default: detected from local addresses)")
		tokenEnv    = fs.String("token-env", "", "no longer used: the dashboard signs people in (see the setup link printed at first start)")
		tokenFile   = fs.String("token-file", "", "no longer used: the dashboard signs people in")
		logFormat   = fs.String("log-format", "text", "log format on stderr: text or json")
		verbose     = fs.Bool("verbose", false, "debug logging")
		debugAddr   = fs.String("debug-addr", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060, to find where time goes; off by default")
		jobTimeout  = fs.Duration("job-timeout", jobs.DefaultJobTimeout, "longest one scan may run before it is cancelled and stored as incomplete (docs/jobs.md)")
		rescueAfter = fs.Duration("rescue-after", 0, "how long a scan may stay running before it is taken as lost with its replica and run again by another; more than --job-timeout (default --job-timeout + 15m; docs/jobs.md)")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fail := failer(stderr, "vigil serve")
	switch {
	case len(cfgPaths) == 0:
		return fail("--config is required (see `vigil serve --help`)")
	case fs.NArg() > 0:
		return fail("unexpected argument %q (see --help)", fs.Arg(0))
	case (*tlsCert == "") != (*tlsKey == ""):
		return fail("--tls-cert and --tls-key go together")
	case *maxParallel < 1:
		return fail("--max-parallel %d: use 1 or more", *maxParallel)
	case *grace < 0:
		return fail("--grace %s: use 0s or more", *grace)
	case *only != "" && !slices.Contains(daemon.Parts, *only):
		return fail("--only %q: use one of %s", *only, strings.Join(daemon.Parts, ", "))
	case *logFormat != "text" && *logFormat != "json":
		return fail("--log-format %q: use text or json", *logFormat)
	case *db != "" && len(cfgPaths) > 1:
		return fail("--db names one store, and %d organisations were given: each uses the store in its own data_dir", len(cfgPaths))
	}
	jitter := *maxJitter
	if jitter == 0 {
		jitter = -1 // daemon.Options: negative is none, zero the default
	}

	// One tenant per configuration: its id is a slug of the organisation.
	var (
		cfgs     []*config.Config
		ids      = map[string]string{} // tenant id -> config path
		dataDirs = map[string]string{} // data_dir -> config path
	)
	for _, p := range cfgPaths {
		cfg := loadConfig(p, "vigil serve", stderr)
		if cfg == nil {
			return exitError
		}
		id := daemon.TenantID(cfg.Organization)
		if id == "" {
			return fail("--config %s: organization %q has no letter or digit to make a tenant id of", p, cfg.Organization)
		}
		if prev, dup := ids[id]; dup {
			return fail("--config %s: organization %q has the tenant id %q, as --config %s does: each organisation needs its own name", p, cfg.Organization, id, prev)
		}
		if prev, dup := dataDirs[absDir(cfg.DataDir)]; dup {
			return fail("--config %s: data_dir %s is also --config %s's: each organisation needs its own data_dir (its own store)", p, absDir(cfg.DataDir), prev)
		}
		ids[id], dataDirs[absDir(cfg.DataDir)] = p, p
		cfgs = append(cfgs, cfg)
	}
	loopback, err := daemon.IsLoopback(ctx, *listen)
	if err != nil {
		return fail("--listen: %v", err)
	}

	newLogger(stderr, *verbose) // libraries' own logs: warnings only unless --verbose
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, hopts)
	if *logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, hopts)
	}
	log := slog.New(handler)
	if *tokenEnv != "" || *tokenFile != "" {
		log.Warn("--token-env and --token-file are ignored: the dashboard signs people in with their own accounts")
	}

	// The stores and the daemon outlive the signal that stops them: they
	// shut down in order below, not on cancellation.
	bg := context.WithoutCancel(ctx)
	var tenants []*serveTenant
	defer func() {
		for _, t := range slices.Backward(tenants) {
			if err := t.store.Close(); err != nil {
				t.log.Error("store not closed cleanly", "error", err)
			} else {
				t.log.Info("store closed", "path", t.store.Path())
			}
		}
		log.Info("stopped")
	}()
	for _, cfg := range cfgs {
		id := daemon.TenantID(cfg.Organization)
		opened, err := openStore(ctx, *db, cfg)
		if err != nil {
			return fail("%s: %v", cfg.Path, err)
		}
		st, ok := opened.(serveStore)
		if !ok {
			opened.Close()
			return fail("the store at %s cannot serve the dashboard", opened.Path())
		}
		t := &serveTenant{cfg: cfg, store: st, log: log.With("tenant", id)}
		t.ID, t.Name, t.ConfigPath, t.Store = id, cfg.Organization, cfg.Path, st
		tenants = append(tenants, t)
	}

	usersDB, err := openUsersDB(ctx, filepath.Join(absDir(cfgs[0].DataDir), usersFileName))
	if err != nil {
		return fail("%v", err)
	}
	defer usersDB.Close()
	ustore, err := usersqlite.Open(ctx, usersDB)
	if err != nil {
		return fail("users database: %v", err)
	}
	usvc, err := users.New(users.Config{Store: ustore, Logger: log})
	if err != nil {
		return fail("users: %v", err)
	}

	parallel := map[string]int{}
	for _, t := range tenants {
		if parallel[t.ID] = *maxParallel; !set["max-parallel"] {
			parallel[t.ID] = t.cfg.Scan.MaxParallel
		}
	}
	queue, err := openJobs(ctx, *db, cfgs, parallel, jobs.Options{JobTimeout: *jobTimeout, RescueAfter: *rescueAfter}, log)
	if err != nil {
		return fail("%v", err)
	}
	defer queue.Close()
	var dash *dashboard.Dashboard // set below; the alerters only start once it is
	for _, t := range tenants {
		if err := t.build(ctx, set, *maxParallel, jitter, *only, *vantage, queue, func() *dashboard.Dashboard { return dash }); err != nil {
			return fail("%v", err)
		}
		queue.Serve(t.ID, jobs.Tenant{Scheduler: t.Scheduler, Alerter: t.Alerter, Reports: t.reportInput})
		if err := t.scheduleReports(queue, t.cfg.Reports); err != nil {
			return fail("%s: %v", t.cfg.Path, err)
		}
	}

	var (
		tlsConf     *tls.Config
		fingerprint string // of the certificate served, for the agents' enrollment command
	)
	scheme := "http"
	switch {
	case *tlsCert != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fail("--tls-cert/--tls-key: %v", err)
		}
		tlsConf, scheme = daemon.TLSConfig(cert), "https"
		if cert.Leaf != nil {
			fingerprint = daemon.Fingerprint(cert.Leaf.Raw)
		}
	case !loopback:
		ss, err := daemon.LoadOrCreateSelfSigned(filepath.Join(absDir(cfgs[0].DataDir), "tls"), daemon.CertHosts(*listen), time.Now())
		if err != nil {
			return fail("%s is not a loopback address, so vigil serves HTTPS only, and %v; pass --tls-cert and --tls-key, or listen on 127.0.0.1", *listen, err)
		}
		msg := "using the self-signed certificate generated on first start: browsers will warn; check its fingerprint, or pass --tls-cert and --tls-key"
		if ss.Created {
			msg = "generated a self-signed certificate: browsers will warn; check its fingerprint, or pass --tls-cert and --tls-key"
		}
		log.Warn(msg, "cert", ss.CertFile, "sha256", ss.Fingerprint, "not_after", ss.NotAfter.Format(time.DateOnly))
		tlsConf, scheme, fingerprint = daemon.TLSConfig(ss.Certificate), "https", ss.Fingerprint
	}

	// The telegraf ingest is one endpoint for the server; it writes to
	// the first organisation's store, with that configuration's token.
	var ingest http.Handler
	if first := tenants[0]; first.cfg.Telegraf.TokenEnv != "" || first.cfg.Telegraf.TokenFile != "" {
		var locs []string
		for _, l := range first.cfg.Locations {
			locs = append(locs, l.ID)
		}
		ingest = telemetry.IngestHandler(telemetry.ConfigToken(first.cfg.Telegraf), telemetry.StoreSink{Store: first.store},
			telemetry.IngestOptions{Locations: locs, Logger: first.log})
	}
	dopts := dashboard.Options{Users: usvc, UserStore: ustore, TokenDB: usersDB, Logger: log, Version: version,
		Telemetry: dashboard.TelemetryRoutes{Ingest: ingest}, AgentServerFingerprint: fingerprint}
	var probes []daemon.Tenant
	for _, t := range tenants {
		dopts.Tenants = append(dopts.Tenants, dashboard.Tenant{ID: users.TenantID(t.ID), Name: t.Name, Config: t.cfg, Store: t.store,
			Scans: t.Scheduler, Rules: t.runner.Engine(),
			Metrics: telemetry.MetricsHandler(daemon.MetricsSource{Store: t.store, Scheduler: t.Scheduler})})
		probes = append(probes, t.Tenant)
	}
	dash, err = dashboard.New(dopts)
	if err != nil {
		return fail("%v", err)
	}
	defer dash.Close()

	agents, err := agentServer(tenants, log)
	if err != nil {
		return fail("%v", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail("--listen: %v", err)
	}
	if *debugAddr != "" {
		stop, err := serveProfiler(ctx, *debugAddr)
		if err != nil {
			ln.Close()
			return fail("--debug-addr: %v", err)
		}
		defer stop()
		log.Info("profiler listening", "addr", *debugAddr)
	}
	srv := &http.Server{
		Handler:           withAgents(agents, daemon.Handler(daemon.HTTPOptions{Tenants: probes, Dashboard: dash})),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return bg },
	}
	for _, t := range tenants {
		if err := t.Scheduler.Start(t.runner.Plan()); err != nil {
			ln.Close()
			return fail("%v", err)
		}
		for _, pj := range t.Scheduler.Planned() {
			t.log.Info("scheduled", "location", pj.Location, "schedule", pj.Schedule, "jitter", pj.Jitter, "next", pj.Next)
		}
		if len(t.cfg.Schedules) == 0 {
			t.log.Warn("the configuration has no schedules: nothing will be scanned until one is added (then send SIGHUP)")
		}
	}
	if err := queue.Start(bg); err != nil {
		ln.Close()
		return fail("%v", err)
	}
	// The alerters run until the schedulers have stopped, so the scans
	// that finish during the grace period still alert.
	actx, stopAlerts := context.WithCancel(bg)
	defer stopAlerts()
	var alerting sync.WaitGroup
	for _, t := range tenants {
		alerting.Go(func() { _ = t.Alerter.Run(actx, 10*time.Second) })
		alerting.Go(func() { t.Alerter.WatchAgents(actx, time.Minute) })
	}

	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	base := scheme + "://" + ln.Addr().String()
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "url", base+"/", "tenants", len(tenants))
	if link, err := dash.SetupURL(ctx, base); err != nil {
		log.Error("no setup link", "error", err)
	} else if link != "" {
		// The link is a one-time secret for whoever reads the console;
		// it goes to stderr, not through the structured log.
		fmt.Fprintf(stderr, "vigil serve: no dashboard user yet: create the first owner within the hour at\n  %s\n", link)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("reloading the configurations", "tenants", len(tenants))
				for _, t := range tenants {
					_ = t.Scheduler.Reload(ctx) // a refused reload is logged, and keeps that tenant's plan
				}
			}
		}
	}()

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx), "grace", *grace)
	case err := <-served:
		log.Error("HTTP server stopped", "error", err)
		code = exitError
	}
	if err := queue.Stop(bg, *grace, daemon.DefaultCancelWait); err != nil {
		log.Error("shutdown: scans still running; they stay unfinished in the store", "error", err)
		code = exitError
	}
	gctx, cancel := context.WithTimeout(bg, *grace)
	var (
		stopping sync.WaitGroup
		mu       sync.Mutex
	)
	for _, t := range tenants {
		stopping.Go(func() {
			if err := t.Scheduler.Shutdown(gctx); err != nil {
				t.log.Error("shutdown: scans still running; they stay unfinished in the store", "error", err)
				mu.Lock()
				code = exitError
				mu.Unlock()
			}
		})
	}
	stopping.Wait()
	cancel()
	stopAlerts()
	alerting.Wait()
	hctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(hctx); err != nil {
		log.Warn("HTTP connections closed before their requests finished", "error", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) && code == exitOK {
		log.Error("HTTP server", "error", err)
		code = exitError
	}
	return code
}

// build makes the tenant's scan runner, alerter and scheduler. Flags the
// user set (--max-parallel, --max-jitter) override the configuration.
func (t *serveTenant) build(ctx context.Context, set map[string]bool, maxParallel int, jitter time.Duration, only, vantage string, queue *jobs.Queue, dash func() *dashboard.Dashboard) error {
	stored := func(daemon.Job, *scanrun.Result) { t.Alerter.ScanStored() }
	runnerOpts := func(c *config.Config) daemon.ScanRunnerOptions {
		return daemon.ScanRunnerOptions{Config: c, Store: t.store, Logger: t.log, Version: version, Only: only, Vantage: vantage, Stored: stored}
	}
	var err error
	if t.runner, err = daemon.NewScanRunner(ctx, runnerOpts(t.cfg)); err != nil {
		return fmt.Errorf("%s: %w", t.cfg.Path, err)
	}
	t.live.set(t.cfg, t.runner.Engine())
	plan, err := daemon.NewAlertPlan(ctx, t.cfg, t.runner.Engine(), nil, t.log)
	if err != nil {
		return err
	}
	for _, r := range plan.Routes {
		t.log.Info("alert channel", "channel", r.Name, "min_severity", r.MinSeverity, "digest", r.Digest, "window", r.Window)
	}
	t.Alerter = daemon.NewAlerter(daemon.AlerterOptions{Store: t.store, Ledger: alertLedger(t.store), Logger: t.log,
		Queue: queue.AlertCycles(t.ID), AbandonAfter: queue.AbandonAfter(),
		Refreshed: func(string) {
			if d := dash(); d != nil {
				d.Invalidate(users.TenantID(t.ID))
			}
		}}, plan)
	if !set["max-parallel"] {
		maxParallel = t.cfg.Scan.MaxParallel
	}
	running := t.cfg
	t.Scheduler = daemon.New(daemon.Options{
		MaxParallel:    maxParallel,
		MaxJitter:      jitter,
		OverrideJitter: set["max-jitter"],
		Logger:         t.log,
		Queue:          queue.For(t.ID),
		Load: func(ctx context.Context) (daemon.Plan, error) {
			c, err := config.Load(t.ConfigPath)
			if err != nil {
				return daemon.Plan{}, err
			}
			if absDir(c.DataDir) != absDir(running.DataDir) {
				t.log.Warn("data_dir changed: the store and key in use stay until a restart", "running", absDir(running.DataDir), "configured", absDir(c.DataDir))
			}
			if daemon.TenantID(c.Organization) != t.ID {
				t.log.Warn("organization renamed: the tenant id stays until a restart", "tenant", t.ID, "organization", c.Organization)
			}
			if c.Scan.MaxParallel != running.Scan.MaxParallel && !set["max-parallel"] {
				t.log.Warn("scan.max_parallel changed: it applies after a restart", "running", running.Scan.MaxParallel, "configured", c.Scan.MaxParallel)
			}
			r, err := daemon.NewScanRunner(ctx, runnerOpts(c))
			if err != nil {
				return daemon.Plan{}, err
			}
			ap, err := daemon.NewAlertPlan(ctx, c, r.Engine(), nil, t.log)
			if err != nil {
				return daemon.Plan{}, err
			}
			p := r.Plan()
			p.Applied = func() {
				t.Alerter.SetPlan(ap)
				t.live.set(c, r.Engine())
				if err := t.scheduleReports(queue, c.Reports); err != nil {
					t.log.Error("reports not rescheduled", "error", err)
				}
			}
			return p, nil
		},
	})
	return nil
}

// alertLedger is the store's alert ledger (SQLite or PostgreSQL).
func alertLedger(st serveStore) daemon.AlertLedger {
	switch s := st.(type) {
	case *sqlite.Store:
		return s.AlertLedger()
	case *postgres.Store:
		return s.AlertLedger()
	}
	return nil
}

// openUsersDB opens the server-wide users database (modernc SQLite, WAL),
// creating it private to the owner.
func openUsersDB(ctx context.Context, path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("users database %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("users database %s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("users database %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("users database %s: %w", path, err)
	}
	return db, nil
}

// serveProfiler serves net/http/pprof on a loopback address until stop is
// called. The profiles show code paths and timings, not data, but are for
// the operator on the machine only.
func serveProfiler(ctx context.Context, addr string) (stop func(), err error) {
	lb, err := daemon.IsLoopback(ctx, addr)
	if err != nil {
		return nil, err
	}
	if !lb {
		return nil, fmt.Errorf("%s is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	return func() { srv.Close(); wg.Wait() }, nil
}
