package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/dashboard"
	"github.com/vigilhq/vigil/telemetry"
)

// serveStore is what the daemon needs from the store openStore returns:
// scans are written and the dashboard reads.
type serveStore interface {
	storeCloser
	dashboard.FindingsReader
}

// DefaultTokenEnv names the environment variable holding the dashboard's
// shared token unless --token-env or --token-file says otherwise.
const defaultTokenEnv = "VIGIL_DASHBOARD_TOKEN"

func runServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := newFlags("serve",
		"serve --config FILE [--listen ADDR] [--db URL] [--tls-cert FILE --tls-key FILE] [--grace DURATION] [--max-parallel N] [--max-jitter DURATION] [--only PART]",
		"VIGIL_DASHBOARD_TOKEN=$(cat /etc/vigil/token) vigil serve --config /etc/vigil/vigil.yaml --listen 0.0.0.0:8443 --grace 2m",
		stderr)
	var (
		cfgPath     = fs.String("config", "", "configuration file (required); reloaded on SIGHUP")
		listen      = fs.String("listen", "127.0.0.1:8080", "address to serve the dashboard, API, /healthz, /readyz and /metrics on; plain HTTP only on a loopback address, HTTPS otherwise")
		db          = fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db)")
		tlsCert     = fs.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS with; with --tls-key")
		tlsKey      = fs.String("tls-key", "", "PEM private key of --tls-cert")
		grace       = fs.Duration("grace", 60*time.Second, "on SIGTERM/SIGINT, how long running scans may take to finish before they are cancelled and stored as incomplete")
		maxParallel = fs.Int("max-parallel", daemon.DefaultMaxParallel, "most scans running at once")
		maxJitter   = fs.Duration("max-jitter", daemon.DefaultMaxJitter, "most a location's scheduled scan starts after the schedule's time (also at most 10% of the schedule's interval); 0s for none")
		only        = fs.String("only", "", "run only one part of every scheduled scan: "+strings.Join(daemon.Parts, ", ")+" (as vigil scan --only)")
		vantage     = fs.String("vantage", "", "the segment this sensor probes from (default: detected from local addresses)")
		tokenEnv    = fs.String("token-env", defaultTokenEnv, "environment variable holding the dashboard's shared token")
		tokenFile   = fs.String("token-file", "", "file holding the dashboard's shared token (instead of --token-env)")
		logFormat   = fs.String("log-format", "text", "log format on stderr: text or json")
		verbose     = fs.Bool("verbose", false, "debug logging")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "vigil serve: "+format+"\n", a...)
		return exitError
	}
	switch {
	case *cfgPath == "":
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
	}
	jitter := *maxJitter
	if jitter == 0 {
		jitter = -1 // daemon.Options: negative is none, zero the default
	}
	cfg := loadConfig(*cfgPath, "vigil serve", stderr)
	if cfg == nil {
		return exitError
	}
	token, err := readToken(*tokenEnv, *tokenFile)
	if err != nil {
		return fail("%v", err)
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

	// The store and the daemon outlive the signal that stops them: they
	// shut down in order below, not on cancellation.
	bg := context.WithoutCancel(ctx)
	opened, err := openStore(ctx, *db, cfg)
	if err != nil {
		return fail("%v", err)
	}
	st, ok := opened.(serveStore)
	if !ok {
		opened.Close()
		return fail("the store at %s cannot serve the dashboard", opened.Path())
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("store not closed cleanly", "error", err)
		} else {
			log.Info("store closed", "path", st.Path())
		}
		log.Info("stopped")
	}()

	runnerOpts := func(c *config.Config) daemon.ScanRunnerOptions {
		return daemon.ScanRunnerOptions{Config: c, Store: st, Logger: log, Version: version, Only: *only, Vantage: *vantage}
	}
	runner, err := daemon.NewScanRunner(ctx, runnerOpts(cfg))
	if err != nil {
		return fail("%v", err)
	}
	sched := daemon.New(daemon.Options{
		MaxParallel: *maxParallel,
		MaxJitter:   jitter,
		Logger:      log,
		Load: func(ctx context.Context) (daemon.Plan, error) {
			c, err := config.Load(*cfgPath)
			if err != nil {
				return daemon.Plan{}, err
			}
			if absDir(c.DataDir) != absDir(cfg.DataDir) {
				log.Warn("data_dir changed: the store and key in use stay until a restart", "running", absDir(cfg.DataDir), "configured", absDir(c.DataDir))
			}
			r, err := daemon.NewScanRunner(ctx, runnerOpts(c))
			if err != nil {
				return daemon.Plan{}, err
			}
			return r.Plan(), nil
		},
	})

	var tlsConf *tls.Config
	scheme := "http"
	switch {
	case *tlsCert != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fail("--tls-cert/--tls-key: %v", err)
		}
		tlsConf, scheme = daemon.TLSConfig(cert), "https"
	case !loopback:
		ss, err := daemon.LoadOrCreateSelfSigned(filepath.Join(absDir(cfg.DataDir), "tls"), daemon.CertHosts(*listen), time.Now())
		if err != nil {
			return fail("%s is not a loopback address, so vigil serves HTTPS only, and %v; pass --tls-cert and --tls-key, or listen on 127.0.0.1", *listen, err)
		}
		msg := "using the self-signed certificate generated on first start: browsers will warn; check its fingerprint, or pass --tls-cert and --tls-key"
		if ss.Created {
			msg = "generated a self-signed certificate: browsers will warn; check its fingerprint, or pass --tls-cert and --tls-key"
		}
		log.Warn(msg, "cert", ss.CertFile, "sha256", ss.Fingerprint, "not_after", ss.NotAfter.Format(time.DateOnly))
		tlsConf, scheme = daemon.TLSConfig(ss.Certificate), "https"
	}

	var ingest http.Handler
	if cfg.Telegraf.TokenEnv != "" || cfg.Telegraf.TokenFile != "" {
		var locs []string
		for _, l := range cfg.Locations {
			locs = append(locs, l.ID)
		}
		ingest = telemetry.IngestHandler(telemetry.ConfigToken(cfg.Telegraf), telemetry.StoreSink{Store: st},
			telemetry.IngestOptions{Locations: locs, Logger: log})
	}
	dash, err := dashboard.New(dashboard.Options{
		Store:        st,
		Organization: cfg.Organization,
		Token:        token,
		Logger:       log,
		Audit: func(ctx context.Context, actor, action, target string) {
			log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("actor", actor), slog.String("action", action), slog.String("target", target))
		},
		Telemetry: dashboard.TelemetryRoutes{
			Ingest:  ingest,
			Metrics: telemetry.MetricsHandler(daemon.MetricsSource{Store: st, Scheduler: sched}),
		},
	})
	if err != nil {
		return fail("%v", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail("--listen: %v", err)
	}
	srv := &http.Server{
		Handler:           daemon.Handler(daemon.HTTPOptions{Scheduler: sched, Store: st, Dashboard: dash}),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return bg },
	}
	if err := sched.Start(runner.Plan()); err != nil {
		ln.Close()
		return fail("%v", err)
	}
	for _, pj := range sched.Planned() {
		log.Info("scheduled", "location", pj.Location, "schedule", pj.Schedule, "jitter", pj.Jitter, "next", pj.Next)
	}
	if len(cfg.Schedules) == 0 {
		log.Warn("the configuration has no schedules: nothing will be scanned until one is added (then send SIGHUP)")
	}

	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "url", scheme+"://"+ln.Addr().String()+"/")

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go sched.ReloadOn(ctx, hup)

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx), "grace", *grace)
	case err := <-served:
		log.Error("HTTP server stopped", "error", err)
		code = exitError
	}
	gctx, cancel := context.WithTimeout(bg, *grace)
	err = sched.Shutdown(gctx)
	cancel()
	if err != nil {
		log.Error("shutdown: scans still running; they stay unfinished in the store", "error", err)
		code = exitError
	}
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

// readToken reads the dashboard's shared token from file, or else from
// the environment variable env. The token never appears in an error.
func readToken(env, file string) (string, error) {
	var tok string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--token-file %s is empty: put a token in it (openssl rand -hex 32)", file)
		}
	case env != "":
		tok = strings.TrimSpace(os.Getenv(env))
		if tok == "" {
			return "", fmt.Errorf("no dashboard token: set %s or pass --token-file FILE (generate one with openssl rand -hex 32)", env)
		}
	default:
		return "", errors.New("no dashboard token: pass --token-env NAME or --token-file FILE")
	}
	if len(tok) < telemetry.MinTokenLength {
		return "", fmt.Errorf("the dashboard token is %d characters; use at least %d (openssl rand -hex 32)", len(tok), telemetry.MinTokenLength)
	}
	return tok, nil
}
