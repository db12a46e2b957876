// Package dashboard serves vigil's web interface and JSON API over one or
// more tenants (organisations): portfolio, locations with their
// reachability matrix, findings, controls and their traceability chain,
// the risk register, identities, scans, reports and settings. Pages are
// rendered on the server with html/template from an in-memory posture
// snapshot per tenant, and every sign-in, view of PHI-adjacent data,
// export and change goes through package users.
//
// # How vigil serve constructs it
//
//	usersDB, _ := sql.Open("sqlite", path)          // the server-wide users database
//	ustore, _ := usersqlite.Open(ctx, usersDB)      // users/sqlite
//	usvc, _ := users.New(users.Config{Store: ustore, Logger: log})
//	dash, err := dashboard.New(dashboard.Options{
//		Tenants: []dashboard.Tenant{{             // one per --config
//			ID:     "glow",                       // users.TenantID: a slug, stable across restarts
//			Name:   cfg.Organization,
//			Config: cfg,
//			Store:  st,                           // *store/sqlite.Store of that config
//			Scans:  sched,                        // *daemon.Scheduler of that config (nil: no scan control)
//		}},
//		Users:     usvc,
//		UserStore: ustore,
//		TokenDB:   usersDB,                       // personal API tokens live here (table dashboard_api_tokens)
//		Telemetry: dashboard.TelemetryRoutes{Ingest: ingest, Metrics: metrics},
//		Logger:    log,
//	})
//	defer dash.Close()                           // waits for background snapshot rebuilds
//	if link, err := dash.SetupURL(ctx, "https://host:8443"); err == nil && link != "" {
//		fmt.Fprintln(stderr, "no dashboard users yet: create the first owner at", link)
//	}
//	// after every scan of a tenant finishes (daemon hook):
//	dash.Invalidate("glow")
//	// mount dash (an http.Handler) as daemon.HTTPOptions.Dashboard.
//
// The dashboard never runs posture per request: Invalidate (and every
// decision made in the dashboard) rebuilds the tenant's snapshot in the
// background, one rebuild at a time, and pages read the latest one.
package dashboard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/users"
)

// Store is what the dashboard reads from and records in one tenant's
// store. *store/sqlite.Store provides it.
type Store interface {
	posture.Reader
	risk.Reader
	Observations(ctx context.Context, scanID string) ([]observe.Observation, error)
	Events(ctx context.Context, f store.EventFilter) ([]store.FindingEvent, error)
	DecideFinding(ctx context.Context, findingID string, d observe.Decision) (observe.Finding, error)
	AddRiskTreatment(ctx context.Context, t observe.RiskTreatment, accept []string) (observe.RiskTreatment, error)
	AddAttestation(ctx context.Context, r observe.Attestation) (observe.Attestation, error)
}

// ScanControl is the scheduler of one tenant, as the scans page uses it.
// *daemon.Scheduler provides it.
type ScanControl interface {
	ScanNow(location string) error
	Running() []daemon.Progress
	Planned() []daemon.PlannedJob
	Stats() map[string]daemon.LocationStats
}

// Tenant is one organisation the dashboard serves: one configuration, one
// store, one scheduler. A signed-in user sees only their tenant's.
type Tenant struct {
	// ID is the users.TenantID users of this organisation carry. Required.
	ID users.TenantID
	// Name is shown in page titles; "" means Config.Organization.
	Name string
	// Config is the tenant's loaded configuration. Required.
	Config *config.Config
	// Store is the tenant's store. Required.
	Store Store
	// Scans starts and reports scans; nil hides "scan now" and the schedule.
	Scans ScanControl
	// Catalog and Rules judge controls; nil loads the embedded catalog and
	// the rules Config names (as `vigil controls` does).
	Catalog *rules.Catalog
	Rules   *rules.Engine
	// Documents keeps attestation documents; zero means
	// DATA_DIR/documents of Config.
	Documents attest.Documents
	// ReportsDir is where vigil serve writes the scheduled reports the
	// Reports page lists; "" means Config.ReportsDir (DATA_DIR/reports).
	ReportsDir string
	// Metrics serves this tenant's posture metrics at GET /metrics
	// (telemetry.MetricsHandler); nil falls back to
	// Options.Telemetry.Metrics when there is only one tenant.
	Metrics http.Handler
}

// Options configures New.
type Options struct {
	// Tenants are the organisations served. At least one is required.
	Tenants []Tenant
	// Users signs people in and keeps the audit trail. Required.
	Users *users.Service
	// UserStore is the store behind Users (users/sqlite), read to list a
	// tenant's accounts in settings and to resolve API tokens. Required.
	UserStore users.Store
	// TokenDB is the users database; the dashboard keeps personal API
	// tokens (hashed) in its own table dashboard_api_tokens there. Nil
	// turns bearer-token access off: the API then takes the session only.
	TokenDB *sql.DB
	// SecureCookies marks cookies Secure (and names the session cookie
	// __Host-) even on plain-HTTP requests: set it behind a TLS-terminating
	// proxy. Requests that arrive over TLS always get Secure cookies.
	SecureCookies bool
	// Telemetry mounts the telegraf ingest and /metrics (telemetry.go).
	Telemetry TelemetryRoutes
	// Logger receives one line per request and background errors; nil
	// discards. Secrets are never logged.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Version is vigil's version, printed on every page of a report.
	Version string
	// SnapshotMaxAge rebuilds a tenant's posture in the background when the
	// one served is older, so time-based states (expiries, due dates)
	// move on without a scan; zero means 5 minutes.
	SnapshotMaxAge time.Duration
	// AgentServerFingerprint is the SHA-256 fingerprint of the certificate
	// vigil serve presents (daemon.Fingerprint), added to the enrollment
	// command the Agents page shows so the agent pins it; "" leaves it out.
	AgentServerFingerprint string
}

// Dashboard is the web interface. It is an http.Handler; Invalidate tells
// it a tenant's store changed, Close stops its background work.
type Dashboard struct {
	h http.Handler
	s *server
}

// ServeHTTP serves the dashboard.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.h.ServeHTTP(w, r) }

// Invalidate schedules a rebuild of tenant's posture snapshot, because its
// store changed (a scan finished). It returns at once; pages keep showing
// the previous snapshot until the new one is ready. An unknown tenant is
// ignored.
func (d *Dashboard) Invalidate(tenant users.TenantID) {
	if t := d.s.tenants[tenant]; t != nil {
		t.invalidate()
	}
}

// SetupURL returns the one-time link that creates the first owner, when
// the users database has no user at all; "" when it has users. baseURL is
// the dashboard's external URL (scheme://host:port). vigil serve prints
// the link on the console.
func (d *Dashboard) SetupURL(ctx context.Context, baseURL string) (string, error) {
	tok, _, err := d.s.users.BeginSetup(ctx)
	if errors.Is(err, users.ErrSetupUnavailable) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("dashboard setup link: %w", err)
	}
	return users.SetupURL(baseURL, tok), nil
}

// Close waits for background snapshot rebuilds to end; call it before
// closing the stores.
func (d *Dashboard) Close() error {
	d.s.closeOnce.Do(func() { close(d.s.done) })
	d.s.wg.Wait()
	return nil
}

// New returns the dashboard. It checks the options and loads each tenant's
// rule catalog; the first posture snapshots are built in the background.
//
// It sets gin's process-wide mode to release: the dashboard logs through
// Options.Logger, and gin's debug output would only duplicate it.
func New(opts Options) (*Dashboard, error) {
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	h, err := s.routes(opts.Telemetry)
	if err != nil {
		return nil, err
	}
	for _, t := range s.order {
		t.invalidate()
	}
	return &Dashboard{h: h, s: s}, nil
}
