// Package dashboard serves vigil's web interface and JSON API: findings by
// location, a finding's evidence and history, and the scans that produced
// them. It reads through the store and renders HTML on the server with
// html/template, so it needs no JavaScript and never changes what rules decide.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// FindingsReader is the part of the store the dashboard reads.
// *sqlite.Store provides it.
type FindingsReader interface {
	Findings(ctx context.Context, f store.FindingFilter) ([]observe.Finding, error)
	Scans(ctx context.Context, limit int) ([]observe.Scan, error)
	FindingHistory(ctx context.Context, findingID string) ([]store.FindingEvent, error)
}

// AuditFunc records that actor did action on target (a finding id, a
// filter, a scan list). It is called for every page view and API export and
// for every login attempt, and must not block for long.
type AuditFunc func(ctx context.Context, actor, action, target string)

// Options configures New.
type Options struct {
	// Store is where findings and scans are read from. Required.
	Store FindingsReader
	// Organization is the tenant name shown in every page title.
	Organization string
	// Token is the shared secret every request except /healthz and the
	// login page must present, either as "Authorization: Bearer <token>" or
	// through the session cookie POST /login sets. Required.
	Token string
	// SecureCookies marks cookies Secure. Set it when the dashboard is
	// reached over HTTPS through a proxy; requests that arrive over TLS get
	// Secure cookies regardless.
	SecureCookies bool
	// SessionTTL is how long a login lasts; zero means 12 hours.
	SessionTTL time.Duration
	// Logger receives one line per request; nil discards. Secrets (the
	// token, cookies, form bodies) are never logged.
	Logger *slog.Logger
	// Audit is told about every view and export; nil records nothing.
	Audit AuditFunc
	// Now is the clock for sessions; nil means time.Now.
	Now func() time.Time
	// Telemetry mounts the telegraf ingest and /metrics (telemetry.go).
	Telemetry TelemetryRoutes
}

// Audit actions.
const (
	ActionViewFindings   = "view.findings"
	ActionViewFinding    = "view.finding"
	ActionViewScans      = "view.scans"
	ActionExportFindings = "export.findings"
	ActionExportScans    = "export.scans"
	ActionLogin          = "login"
	ActionLoginFailed    = "login.failed"
	ActionLogout         = "logout"
)

// server holds what the handlers share. It is built once by New and never
// changed afterwards.
type server struct {
	store  FindingsReader
	org    string
	auth   *authenticator
	log    *slog.Logger
	audit  AuditFunc
	pages  *pages
	secure bool
}

// New returns the dashboard as an http.Handler.
//
// It sets gin's process-wide mode to release: the dashboard logs through
// Options.Logger, and gin's debug output would only duplicate it.
func New(opts Options) (http.Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("dashboard: no store")
	}
	if opts.Token == "" {
		return nil, errors.New("dashboard: empty token: every request must be authenticated; generate one with `openssl rand -hex 32`")
	}
	s := &server{
		store:  opts.Store,
		org:    opts.Organization,
		log:    opts.Logger,
		audit:  opts.Audit,
		secure: opts.SecureCookies,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.audit == nil {
		s.audit = func(context.Context, string, string, string) {}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ttl := opts.SessionTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	s.auth = newAuthenticator(opts.Token, ttl, now)
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil { // ClientIP is the peer address
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	r.Use(s.recoverer, s.logRequests, securityHeaders)
	r.NoRoute(func(c *gin.Context) { s.notFound(c) })

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.StaticFileFS("/static/style.css", "style.css", staticFS())
	r.GET("/login", s.loginForm)
	r.POST("/login", s.login)

	authed := r.Group("/", s.requireAuth)
	authed.POST("/logout", s.logout)
	authed.GET("/", s.findingsPage)
	authed.GET("/findings/:id", s.findingPage)
	authed.GET("/scans", s.scansPage)
	authed.GET("/api/v1/findings", s.apiFindings)
	authed.GET("/api/v1/scans", s.apiScans)
	s.mountTelemetry(r, opts.Telemetry)
	return r, nil
}

// securityHeaders is set on every response, including errors and /healthz.
// The CSP allows nothing but same-origin resources: no inline script or
// style, no framing.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	// Findings describe how to attack the clinic: keep them out of caches.
	h.Set("Cache-Control", "no-store")
	c.Next()
}

// logRequests writes one line per request. It logs the path without the
// query string and never headers, cookies or bodies.
func (s *server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "http request",
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("duration", time.Since(start)),
		slog.String("client", c.ClientIP()),
	)
}

// recoverer turns a panic in a handler into a 500 and a log line, without
// gin's request dump.
func (s *server) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("dashboard handler panicked", "path", c.Request.URL.Path, "panic", fmt.Sprint(v))
			c.AbortWithStatus(http.StatusInternalServerError)
		}
	}()
	c.Next()
}
