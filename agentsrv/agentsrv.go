// Package agentsrv is the server side of the site-agent protocol
// (agent/protocol): it enrolls agents with one-time tokens, authenticates
// every later request by the agent's Ed25519 signature, hands each agent
// its location's assignment, and stores the scans agents push, judging
// them with the same rules as the server's own scans. An agent only ever
// reads and writes its own location.
package agentsrv

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
)

// Store is what the agent server needs from a tenant's store.
type Store interface {
	store.AgentStore
	Observations(ctx context.Context, scanID string) ([]observe.Observation, error)
}

// Tenant is one organisation whose agents the server accepts.
type Tenant struct {
	// ID is the tenant id agents name in their token and signature
	// (daemon.TenantID of the organisation).
	ID    string
	Store Store
	// Current returns the configuration and rules engine in force now
	// (a reload changes them); assignments and judgements use them.
	Current func() (*config.Config, *rules.Engine)
	// Stored, when set, is called after an agent's scan was finished and
	// stored (the tenant's alerter runs a cycle).
	Stored func()
}

// Options configures New.
type Options struct {
	Tenants []Tenant
	// Logger receives one line per refused request and per stored scan;
	// nil discards. Tokens and keys never reach it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rate and Burst bound each agent's signed requests (default 20/s,
	// burst 60); EnrollRate and EnrollBurst the server's enrollments, all
	// agents together (default 10/s, burst 100).
	Rate        rate.Limit
	Burst       int
	EnrollRate  rate.Limit
	EnrollBurst int
	// BatchTimeout bounds the handling of one batch, its rules included
	// (default 2 minutes); other requests get 15 seconds.
	BatchTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultRate         = 20
	DefaultBurst        = 60
	DefaultEnrollRate   = 10
	DefaultEnrollBurst  = 100
	DefaultBatchTimeout = 2 * time.Minute
	requestTimeout      = 15 * time.Second
	// maxSmallBody bounds the JSON of an enrollment or a heartbeat.
	maxSmallBody = 64 << 10
	// maxLimiters bounds the per-agent limiters kept; past it, idle ones
	// are dropped.
	maxLimiters = 100_000
)

// Server is an http.Handler for protocol.Path*.
type Server struct {
	opts    Options
	tenants map[string]*Tenant
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	enroll  *rate.Limiter

	mu       sync.Mutex
	limiters map[string]*limiter
}

type limiter struct {
	*rate.Limiter
	last time.Time
}

// New returns the agent server for the tenants.
func New(opts Options) (*Server, error) {
	if opts.Rate <= 0 {
		opts.Rate = DefaultRate
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.EnrollRate <= 0 {
		opts.EnrollRate = DefaultEnrollRate
	}
	if opts.EnrollBurst <= 0 {
		opts.EnrollBurst = DefaultEnrollBurst
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = DefaultBatchTimeout
	}
	s := &Server{opts: opts, tenants: map[string]*Tenant{}, log: opts.Logger, now: opts.Now,
		enroll: rate.NewLimiter(opts.EnrollRate, opts.EnrollBurst), limiters: map[string]*limiter{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range opts.Tenants {
		t := &opts.Tenants[i]
		switch {
		case t.ID == "" || t.Store == nil || t.Current == nil:
			return nil, fmt.Errorf("agent server: tenant %d needs an id, a store and its configuration", i)
		case s.tenants[t.ID] != nil:
			return nil, fmt.Errorf("agent server: tenant %q twice", t.ID)
		}
		s.tenants[t.ID] = t
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST "+protocol.PathEnroll, s.handleEnroll)
	s.mux.HandleFunc("GET "+protocol.PathAssignment, s.signed(requestTimeout, s.handleAssignment))
	s.mux.HandleFunc("POST "+protocol.PathBatches, s.signed(opts.BatchTimeout, s.handleBatch))
	s.mux.HandleFunc("POST "+protocol.PathHeartbeat, s.signed(requestTimeout, s.handleHeartbeat))
	s.mux.HandleFunc("/agent/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such agent endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s, nil
}

// ServeHTTP serves the agent endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// writeError answers with a protocol.Error.
func writeError(w http.ResponseWriter, code int, msg string) { writeCoded(w, code, "", msg) }

// writeCoded answers with a protocol.Error carrying one of the protocol's
// error codes.
func writeCoded(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(protocol.Error{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// readBody reads at most limit bytes of r's body; more is errTooLarge.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

var errTooLarge = errors.New("request body too large")

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	if !s.enroll.Allow() {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "too many enrollments at once: try again shortly")
		return
	}
	body, err := readBody(r, maxSmallBody)
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "enrollment request too large")
		return
	} else if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
		return
	}
	var req protocol.EnrollRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "enrollment request is not JSON: "+err.Error())
		return
	}
	if len(req.PublicKey) != ed25519.PublicKeySize {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("public_key must be an Ed25519 public key (%d bytes), not %d bytes", ed25519.PublicKeySize, len(req.PublicKey)))
		return
	}
	tok, err := protocol.ParseToken(req.Token)
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return
	}
	t := s.tenants[tok.Tenant]
	if t == nil {
		s.log.Warn("agent enrollment refused: unknown tenant", "tenant", tok.Tenant, "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "enrollment token unknown: this server does not serve tenant "+tok.Tenant)
		return
	}
	a, err := t.Store.EnrollAgent(ctx, tok.Hash(), store.Agent{Hostname: trim(req.Hostname, 253), PublicKey: req.PublicKey,
		AgentHealth: store.AgentHealth{Version: trim(req.Version, 64)}})
	if err != nil {
		for _, refusal := range []error{store.ErrTokenUnknown, store.ErrTokenUsed, store.ErrTokenExpired} {
			if errors.Is(err, refusal) {
				s.log.Warn("agent enrollment refused", "tenant", t.ID, "reason", refusal.Error(), "hostname", req.Hostname, "remote", r.RemoteAddr)
				writeError(w, http.StatusUnauthorized, refusal.Error()+": create a new token in the dashboard (Agents) or with `vigil agent token create`")
				return
			}
		}
		s.log.Error("agent enrollment failed", "tenant", t.ID, "error", err)
		writeError(w, http.StatusInternalServerError, "enrollment failed on the server: try again later")
		return
	}
	cfg, _ := t.Current()
	s.log.Info("agent enrolled", "tenant", t.ID, "agent", a.ID, "location", a.Location, "hostname", a.Hostname, "version", a.Version)
	writeJSON(w, protocol.EnrollResponse{Tenant: t.ID, AgentID: a.ID, Location: a.Location, Organization: cfg.Organization})
}

// caller is an authenticated agent's request.
type caller struct {
	tenant *Tenant
	agent  store.Agent
	body   []byte // as sent (compressed, if it is)
}

// signed authenticates a request by its signature before h runs, with
// the body read (at most protocol.MaxBatchBytes), and bounds h's time.
func (s *Server) signed(timeout time.Duration, h func(context.Context, http.ResponseWriter, *http.Request, *caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		refuse := func(code, reason string, args ...any) {
			s.log.Warn("agent request refused", append([]any{"path", r.URL.Path, "reason", reason, "remote", r.RemoteAddr}, args...)...)
			writeCoded(w, http.StatusUnauthorized, code, reason)
		}
		sig, err := protocol.ParseSigned(r, s.now())
		if err != nil {
			code := protocol.CodeBadSignature
			if errors.Is(err, protocol.ErrClockSkew) {
				code = protocol.CodeClock
			}
			refuse(code, err.Error())
			return
		}
		t := s.tenants[sig.Tenant]
		if t == nil {
			refuse(protocol.CodeUnknownAgent, "unknown tenant "+sig.Tenant)
			return
		}
		a, err := t.Store.Agent(ctx, sig.AgentID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			refuse(protocol.CodeUnknownAgent, "unknown agent "+sig.AgentID+": enroll it again with a new token", "tenant", t.ID)
			return
		case err != nil:
			s.log.Error("agent lookup failed", "tenant", t.ID, "agent", sig.AgentID, "error", err)
			writeError(w, http.StatusInternalServerError, "the server could not look the agent up: try again later")
			return
		case a.Revoked():
			refuse(protocol.CodeRevoked, "agent "+a.ID+" was revoked: enroll a new one with a new token", "tenant", t.ID, "agent", a.ID)
			return
		}
		// The body is read before the signature over it can be checked:
		// bounded, and within the server's read timeout.
		body, err := readBody(r, protocol.MaxBatchBytes)
		if errors.Is(err, errTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes: send smaller batches", protocol.MaxBatchBytes))
			return
		} else if err != nil {
			writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
			return
		}
		if err := sig.Verify(ed25519.PublicKey(a.PublicKey), r, body); err != nil {
			refuse(protocol.CodeBadSignature, err.Error(), "tenant", t.ID, "agent", a.ID)
			return
		}
		if !s.allow(t.ID + "/" + a.ID) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusTooManyRequests, "too many requests from this agent: slow down")
			return
		}
		h(ctx, w, r, &caller{tenant: t, agent: a, body: body})
	}
}

// allow takes a token from the agent's limiter.
func (s *Server) allow(key string) bool {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[key]
	if l == nil {
		if len(s.limiters) >= maxLimiters {
			for k, o := range s.limiters {
				if now.Sub(o.last) > time.Minute {
					delete(s.limiters, k)
				}
			}
		}
		l = &limiter{Limiter: rate.NewLimiter(s.opts.Rate, s.opts.Burst)}
		s.limiters[key] = l
	}
	l.last = now
	return l.AllowN(now, 1)
}

// assignment is the agent's location's configuration now.
func assignment(t *Tenant, a store.Agent) (protocol.Assignment, error) {
	cfg, _ := t.Current()
	doc, err := config.ForAgent(cfg, a.Location)
	if err != nil {
		return protocol.Assignment{}, err
	}
	sum := sha256.Sum256(doc)
	return protocol.Assignment{AgentID: a.ID, Location: a.Location, Config: doc, Version: hex.EncodeToString(sum[:])}, nil
}

func (s *Server) handleAssignment(_ context.Context, w http.ResponseWriter, _ *http.Request, c *caller) {
	as, err := assignment(c.tenant, c.agent)
	if err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("no assignment for agent %s: %v (the location was removed from the server's configuration?)", c.agent.ID, err))
		return
	}
	writeJSON(w, as)
}

func (s *Server) handleHeartbeat(ctx context.Context, w http.ResponseWriter, _ *http.Request, c *caller) {
	if len(c.body) > maxSmallBody {
		writeError(w, http.StatusRequestEntityTooLarge, "heartbeat too large")
		return
	}
	var hb protocol.Heartbeat
	if err := json.Unmarshal(c.body, &hb); err != nil {
		writeError(w, http.StatusBadRequest, "heartbeat is not JSON: "+err.Error())
		return
	}
	h := store.AgentHealth{Version: trim(hb.Version, 64), QueueDepth: max(hb.QueueDepth, 0), QueueBytes: max(hb.QueueBytes, 0),
		LastScanID: trim(hb.LastScanID, 128), LastScanAt: hb.LastScanAt, AssignmentVersion: trim(hb.AssignmentVersion, 64),
		Host: trim(hb.Hostname, 253)}
	if err := c.tenant.Store.RecordHeartbeat(ctx, c.agent.ID, h); err != nil {
		if errors.Is(err, store.ErrAgentRevoked) {
			writeCoded(w, http.StatusUnauthorized, protocol.CodeRevoked, "agent "+c.agent.ID+" was revoked")
			return
		}
		s.log.Error("heartbeat not recorded", "tenant", c.tenant.ID, "agent", c.agent.ID, "error", err)
		writeError(w, http.StatusInternalServerError, "heartbeat not recorded: try again later")
		return
	}
	ack := protocol.HeartbeatAck{}
	if as, err := assignment(c.tenant, c.agent); err == nil {
		ack.AssignmentVersion = as.Version
	}
	// A scan asked for on the dashboard goes to the first agent of the
	// location to send a heartbeat. Failing to read it only delays it.
	if ok, by, err := c.tenant.Store.TakeScanRequest(ctx, c.agent.ID); err != nil {
		s.log.Error("scan request not read", "tenant", c.tenant.ID, "agent", c.agent.ID, "error", err)
	} else if ok {
		ack.ScanNow, ack.RequestedBy = true, by
		s.log.Info("requested scan handed to agent", "tenant", c.tenant.ID, "agent", c.agent.ID, "location", c.agent.Location, "requested_by", by)
	}
	writeJSON(w, ack)
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
