package daemon

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/store"
)

// A site agent unheard from for alerts.agent_quiet_after raises one
// source-quiet alert as soon as the watcher notices, not on the hourly
// timer, and not again on later cycles of the same silence.
func TestQuietAgentAlerts(t *testing.T) {
	t.Setenv("VIGIL_TEST_HOOK_SECRET", hookSecret)
	dir := t.TempDir()
	hook := newReceiver(t)
	cfg := alertConfig(t, dir, hook.srv.URL)
	// Source-quiet alerts are high: let the channel take them.
	body, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	yml := strings.Replace(string(body), "min_severity: critical", "min_severity: high\n  agent_quiet_after: 10m", 1)
	if err := os.WriteFile(cfg.Path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(cfg.Path); err != nil {
		t.Fatal(err)
	}
	writeUsers(t, dir)
	rig := startTenant(t, cfg)
	defer rig.close()

	ctx := context.Background()
	if err := rig.store.CreateEnrollToken(ctx, store.EnrollToken{Hash: "h", Location: "a", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ag, err := rig.store.EnrollAgent(ctx, "h", store.Agent{Hostname: "sensor-a", PublicKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { rig.alerter.WatchAgents(wctx, 20*time.Millisecond); close(watched) }()
	defer func() { stop(); <-watched }()

	// Heard from just now: a few checks pass without a cycle.
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-rig.cycles:
		t.Fatalf("cycle %q while the agent is heard from", r)
	default:
	}
	// Silent for 20 minutes (set behind the store's back).
	if _, err := rig.store.SQL().ExecContext(ctx, `UPDATE agents SET last_seen = $1 WHERE id = $2`,
		time.Now().Add(-20*time.Minute).UTC().Format("2006-01-02T15:04:05.000000000Z"), ag.ID); err != nil {
		t.Fatal(err)
	}
	rig.waitCycle("agent-quiet")
	if got := hook.got(); len(got) != 1 || !strings.HasPrefix(got[0], "source-quiet high") || !strings.HasSuffix(got[0], ag.ID) {
		t.Fatalf("delivered %v, want one source-quiet alert for %s", got, ag.ID)
	}
	// Still quiet: the watcher stays silent, and a timer cycle sends nothing new.
	time.Sleep(100 * time.Millisecond)
	rig.alerter.cycleNow()
	rig.waitCycle("timer")
	if got := hook.got(); len(got) != 1 {
		t.Errorf("delivered %v after another cycle, want the one alert only", got)
	}
	// Revoked: never quiet.
	if _, err := rig.store.RevokeAgent(ctx, ag.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if al := rig.alerter.quietAgents(ctx, cfgPlan(rig), time.Now()); len(al) != 0 {
		t.Errorf("revoked agent alerts: %+v", al)
	}
}

func cfgPlan(r *tenantRig) AlertPlan { p, _ := r.alerter.current(); return p }
