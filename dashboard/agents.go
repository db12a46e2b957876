package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/users"
)

// AgentStore is what the Agents page needs from a tenant's store; a
// tenant whose Store also provides it gets the page (store/sqlite and
// store/postgres do).
type AgentStore interface {
	Agents(ctx context.Context) ([]store.Agent, error)
	CreateEnrollToken(ctx context.Context, t store.EnrollToken) error
	RevokeAgent(ctx context.Context, id, by string) (store.Agent, error)
	RequestScan(ctx context.Context, location, by string) (int, error)
}

// Bounds of an enrollment token's life, as the form offers them.
const (
	defaultAgentTokenLife = 24 * time.Hour
	maxAgentTokenLife     = 30 * 24 * time.Hour
)

func (s *server) mountAgents(a *gin.RouterGroup) {
	a.GET("/agents", s.agentsPage)
	a.GET("/api/v1/agents", s.agentsPage)
	a.POST("/agents/tokens", s.createAgentToken)
	a.POST("/agents/:id/revoke", s.revokeAgent)
}

// agentsPage lists the site agents per location.
type agentsPage struct {
	base       `json:"-"`
	Agents     []agentRow `json:"agents"`
	QuietAfter string     `json:"quiet_after"`
	// Locations the reader may create tokens for (admins: all).
	Locations []string `json:"-"`
	Notice    string   `json:"-"`
	Error     string   `json:"-"`
	// NewToken and Command are shown once, right after creation.
	NewToken        string    `json:"-"`
	NewTokenFor     string    `json:"-"`
	NewTokenExpires time.Time `json:"-"`
	Command         string    `json:"-"`
	// ServerAlsoScans are locations with enrolled agents that vigil serve
	// scans too (no scanned_by: agent): both scan, from two places.
	ServerAlsoScans []string `json:"server_also_scans,omitempty"`
}

type agentRow struct {
	store.Agent
	Status string `json:"status"`
}

func agentStoreOf(t *tenant) (AgentStore, bool) {
	as, ok := t.Store.(AgentStore)
	return as, ok
}

func (s *server) agentsPage(c *gin.Context) {
	s.renderAgents(c, http.StatusOK, agentsPage{Notice: c.Query("notice")})
}

func (s *server) renderAgents(c *gin.Context, status int, d agentsPage) {
	t, p := tenantOf(c), principal(c)
	as, ok := agentStoreOf(t)
	if !ok {
		s.notFound(c)
		return
	}
	all, err := as.Agents(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	d.base = s.page(c, "agents", "Agents")
	quiet := t.Config.Alerts.AgentQuietAfter.Duration
	d.QuietAfter = quiet.String()
	d.Agents = []agentRow{}
	sc, now := p.Scope(), s.now()
	for _, a := range all {
		if sc.AllowsLocation(a.Location) {
			d.Agents = append(d.Agents, agentRow{Agent: a, Status: a.Status(now, quiet)})
			if l, ok := t.location(a.Location); ok && !l.ByAgent() && !a.Revoked() && !slices.Contains(d.ServerAlsoScans, a.Location) {
				d.ServerAlsoScans = append(d.ServerAlsoScans, a.Location)
			}
		}
	}
	if p.Allowed(users.PermSettings, "") {
		d.Locations = t.visibleLocations(p)
	}
	if wantsJSON(c) {
		c.JSON(status, d)
		return
	}
	s.render(c, status, "agents.html", d)
}

// createAgentToken makes a one-time enrollment token for a location and
// shows it, with the command to run on the sensor, once.
func (s *server) createAgentToken(c *gin.Context) {
	t, p := tenantOf(c), principal(c)
	as, ok := agentStoreOf(t)
	if !ok {
		s.notFound(c)
		return
	}
	loc := c.PostForm("location")
	if _, found := t.location(loc); !found || !p.Scope().AllowsLocation(loc) {
		s.renderAgents(c, http.StatusBadRequest, agentsPage{Error: "choose one of the organisation's locations"})
		return
	}
	if !p.Allowed(users.PermSettings, loc) {
		s.notAllowed(c)
		return
	}
	life := defaultAgentTokenLife
	if v := strings.TrimSpace(c.PostForm("expires")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxAgentTokenLife {
			s.renderAgents(c, http.StatusBadRequest, agentsPage{Error: "expiry: a duration such as 24h, at most 720h"})
			return
		}
		life = d
	}
	tok := protocol.NewToken(string(t.ID))
	now := s.now()
	if err := as.CreateEnrollToken(c.Request.Context(), store.EnrollToken{Hash: tok.Hash(), Location: loc, CreatedBy: p.Username,
		CreatedAt: now, ExpiresAt: now.Add(life)}); err != nil {
		s.fail(c, err)
		return
	}
	// The hash's prefix names the token in the audit trail; the secret
	// never reaches it.
	if !s.audit(c, users.ActionChange, "agent-token:"+tok.Hash()[:12], "created for "+loc+", expires "+now.Add(life).UTC().Format(time.RFC3339)) {
		return
	}
	s.renderAgents(c, http.StatusOK, agentsPage{Notice: "Enrollment token created: copy it now, it is not shown again",
		NewToken: tok.String(), NewTokenFor: loc, NewTokenExpires: now.Add(life),
		Command: agentCommand(serverURL(c), tok.String(), s.agentFingerprint)})
}

// serverURL is the dashboard's own address as the browser reached it,
// which is where agents reach the server too.
func serverURL(c *gin.Context) string {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: c.Request.Host}
	return u.String()
}

// agentCommand is what an administrator pastes on the site sensor.
func agentCommand(server, token, fingerprint string) string {
	cmd := "vigil agent --server " + server + " --token " + token
	if fingerprint != "" {
		cmd += " --server-fingerprint " + fingerprint
	}
	return cmd
}

// requestAgentScan asks a location's site agents for a scan now ("Scan
// now" on the Scans page for a location with scanned_by: agent): the
// first of them to send a heartbeat starts it.
func (s *server) requestAgentScan(c *gin.Context, t *tenant, loc string) {
	p := principal(c)
	as, ok := agentStoreOf(t)
	if !ok {
		s.notFound(c)
		return
	}
	if !p.Allowed(users.PermScanNow, loc) {
		s.notAllowed(c)
		return
	}
	n, err := as.RequestScan(c.Request.Context(), loc, p.Username)
	if err != nil {
		s.fail(c, err)
		return
	}
	if n == 0 {
		c.Redirect(http.StatusSeeOther, "/scans?notice="+url.QueryEscape(loc+" is scanned by its site agents and none is enrolled: enroll one on the Agents page"))
		return
	}
	if !s.audit(c, users.ActionChange, "scan-now:"+loc, "asked of its site agent") {
		return
	}
	c.Redirect(http.StatusSeeOther, "/scans?notice="+url.QueryEscape("scan of "+loc+" asked of its site agent: it starts at the agent's next heartbeat (within a minute by default)"))
}

func (s *server) revokeAgent(c *gin.Context) {
	t, p := tenantOf(c), principal(c)
	as, ok := agentStoreOf(t)
	if !ok {
		s.notFound(c)
		return
	}
	id := c.Param("id")
	// Find the agent first: its location decides who may revoke it, and
	// an agent of another location is not found for this reader.
	all, err := as.Agents(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	var loc string
	for _, a := range all {
		if a.ID == id {
			loc = a.Location
		}
	}
	if loc == "" || !p.Scope().AllowsLocation(loc) {
		s.notFound(c)
		return
	}
	if !p.Allowed(users.PermSettings, loc) {
		s.notAllowed(c)
		return
	}
	a, err := as.RevokeAgent(c.Request.Context(), id, p.Username)
	if errors.Is(err, store.ErrNotFound) {
		s.notFound(c)
		return
	} else if err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionChange, "agent:"+a.ID, "revoked ("+a.Hostname+" at "+a.Location+")") {
		return
	}
	c.Redirect(http.StatusSeeOther, "/agents?notice="+url.QueryEscape("agent "+a.ID+" revoked"))
}
