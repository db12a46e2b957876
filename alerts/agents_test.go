package alerts

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
)

// A quiet agent alerts once per silence; a revoked or recently heard one
// never does.
func TestFromAgents(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	agents := []store.Agent{
		{ID: "ag-quiet", Location: "downtown", Hostname: "sensor-1", LastSeen: now.Add(-45 * time.Minute)},
		{ID: "ag-fine", Location: "uptown", LastSeen: now.Add(-5 * time.Minute)},
		{ID: "ag-gone", Location: "uptown", LastSeen: now.Add(-48 * time.Hour), RevokedAt: now.Add(-47 * time.Hour)},
	}
	got := FromAgents(agents, now, 30*time.Minute, Options{DashboardURL: "https://vigil.example"})
	if len(got) != 1 || got[0].Kind != SourceQuiet || got[0].Location != "downtown" || got[0].Target != "ag-quiet" || len(got[0].Links) != 1 {
		t.Fatalf("alerts %+v", got)
	}
	// Still quiet ten minutes later: the same key, so it is not sent again.
	later := FromAgents(agents, now.Add(10*time.Minute), 30*time.Minute, Options{})
	if len(later) != 1 || later[0].Key != got[0].Key {
		t.Errorf("later %+v, want the same key %s", later, got[0].Key)
	}
	// Back, then quiet again: a new silence, a new key.
	agents[0].LastSeen = now.Add(20 * time.Minute)
	again := FromAgents(agents[:1], now.Add(time.Hour), 30*time.Minute, Options{})
	if len(again) != 1 || again[0].Key == got[0].Key {
		t.Errorf("second silence %+v, want a new key", again)
	}
}
