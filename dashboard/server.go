package dashboard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/users"
)

// server holds what the handlers share. It is built once by New.
type server struct {
	tenants map[users.TenantID]*tenant
	order   []*tenant
	users   *users.Service
	ustore  users.Store
	tokens  *apiTokens
	log     *slog.Logger
	now     func() time.Time
	version string
	secure  bool
	maxAge  time.Duration
	pages   *pages
	// agentFingerprint is the server certificate's SHA-256, for the
	// command the Agents page shows (Options.AgentServerFingerprint).
	agentFingerprint string
	done             chan struct{}
	closeOnce        sync.Once
	wg               sync.WaitGroup
}

func newServer(opts Options) (*server, error) {
	if len(opts.Tenants) == 0 {
		return nil, errors.New("dashboard: no tenant: give at least one organisation")
	}
	if opts.Users == nil || opts.UserStore == nil {
		return nil, errors.New("dashboard: Users and UserStore are required: every request is signed in through package users")
	}
	s := &server{
		tenants: map[users.TenantID]*tenant{}, users: opts.Users, ustore: opts.UserStore,
		log: opts.Logger, now: opts.Now, version: opts.Version, secure: opts.SecureCookies, maxAge: opts.SnapshotMaxAge,
		agentFingerprint: opts.AgentServerFingerprint,
		done:             make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxAge <= 0 {
		s.maxAge = 5 * time.Minute
	}
	for _, tc := range opts.Tenants {
		t, err := newTenant(s, tc)
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		if s.tenants[t.ID] != nil {
			return nil, fmt.Errorf("dashboard: tenant %s given twice", t.ID)
		}
		s.tenants[t.ID] = t
		s.order = append(s.order, t)
	}
	if opts.TokenDB != nil {
		tk, err := newAPITokens(opts.TokenDB)
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		s.tokens = tk
	}
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return s, nil
}

// routes builds the gin engine.
func (s *server) routes(tel TelemetryRoutes) (http.Handler, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(nil); err != nil { // ClientIP is the peer address
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	r.Use(s.recoverer, s.logRequests, s.securityHeaders)
	r.NoRoute(func(c *gin.Context) { s.notFound(c) })
	r.HandleMethodNotAllowed = false

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.StaticFS("/static", staticFS())
	s.mountAuth(r)
	s.mountPages(r)
	s.mountTelemetry(r, tel)
	return r, nil
}

// securityHeaders is set on every response, including errors and /healthz.
// The CSP allows same-origin scripts and styles only (no inline), images
// from the dashboard and data: (the enrollment QR code), and no framing.
func (s *server) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if c.Request.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
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
