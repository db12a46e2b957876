package daemon

import (
	"context"
	"time"

	"github.com/vigilhq/vigil/alerts"
	"github.com/vigilhq/vigil/store"
)

// agentLister is the part of a store that keeps site agents; an
// Alerter whose store has it alerts when an agent goes quiet.
type agentLister interface {
	Agents(ctx context.Context) ([]store.Agent, error)
}

// quietAgents are the source-quiet alerts of this cycle: every agent not
// heard from for alerts.agent_quiet_after. The ledger keeps each silence
// to one message per channel.
func (a *Alerter) quietAgents(ctx context.Context, plan AlertPlan, now time.Time) []alerts.Alert {
	al, ok := a.opts.Store.(agentLister)
	if !ok {
		return nil
	}
	agents, err := al.Agents(ctx)
	if err != nil {
		a.log.Error("site agents not read: no quiet-agent alerts this cycle", "error", err)
		return nil
	}
	return alerts.FromAgents(agents, now, plan.Config.Alerts.AgentQuietAfter.Duration, alerts.OptionsFrom(plan.Config.Alerts))
}

// WatchAgents checks the tenant's site agents every interval until ctx is
// done, and asks for a cycle as soon as one goes quiet, so the alert does
// not wait for the hourly timer. Checking is one small read; the cycle
// (which reads the whole posture) runs only when there is news.
func (a *Alerter) WatchAgents(ctx context.Context, every time.Duration) {
	if _, ok := a.opts.Store.(agentLister); !ok || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	known := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		plan, _ := a.current()
		quiet := a.quietAgents(ctx, plan, a.now())
		news := false
		next := make(map[string]bool, len(quiet))
		for _, al := range quiet {
			next[al.Key] = true
			if !known[al.Key] {
				news = true
				a.log.Warn("site agent quiet", "agent", al.Target, "location", al.Location)
			}
		}
		known = next
		if news {
			a.request(ctx, "agent-quiet")
		}
	}
}
