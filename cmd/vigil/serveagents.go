package main

import (
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/vigilhq/vigil/agentsrv"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/rules"
)

// liveConfig is a tenant's configuration and rules engine in force: set
// at start and by every applied reload, read by the agent server.
type liveConfig struct{ p atomic.Pointer[configEngine] }

type configEngine struct {
	cfg    *config.Config
	engine *rules.Engine
}

func (l *liveConfig) set(cfg *config.Config, e *rules.Engine) {
	l.p.Store(&configEngine{cfg: cfg, engine: e})
}

func (l *liveConfig) get() (*config.Config, *rules.Engine) {
	c := l.p.Load()
	return c.cfg, c.engine
}

// agentServer is the site-agent endpoints (agentsrv) for every tenant
// whose store keeps agents.
func agentServer(tenants []*serveTenant, log *slog.Logger) (*agentsrv.Server, error) {
	var ts []agentsrv.Tenant
	for _, t := range tenants {
		st, ok := t.store.(agentsrv.Store)
		if !ok {
			t.log.Warn("this store keeps no site agents: their endpoints are off for the tenant")
			continue
		}
		ts = append(ts, agentsrv.Tenant{ID: t.ID, Store: st, Current: t.live.get, Stored: t.Alerter.ScanStored})
	}
	return agentsrv.New(agentsrv.Options{Tenants: ts, Logger: log.With("part", "agents")})
}

// withAgents routes the agent protocol's paths to agents, which
// authenticates them by signature (no dashboard session, no CSRF), and
// everything else to next.
func withAgents(agents http.Handler, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/agent/v1/", agents)
	mux.Handle("/", next)
	return mux
}
