package posture

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// Replay reconstructs a finding's status, sightings and the decision in
// force at a moment from its events, ignoring what came later.
func TestReplayAsOf(t *testing.T) {
	d := func(day int) time.Time { return time.Date(2026, 1, day, 2, 0, 0, 0, time.UTC) }
	exp := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	// As stored today: resolved, after an acceptance that a later scan's
	// resolution ended.
	stored := observe.Finding{ID: "f1", Status: observe.StatusResolved, FirstSeen: d(1), LastSeen: d(10)}
	events := []store.FindingEvent{
		{FindingID: "f1", ScanID: "s1", At: d(1), Event: store.EventOpened},
		{FindingID: "f1", ScanID: "s2", At: d(5), Event: store.EventSeen},
		{FindingID: "f1", At: d(6), Event: store.EventAccepted, Note: "dr. lee: vendor access (until 2026-06-01) [risk net.x@downtown]"},
		{FindingID: "f1", ScanID: "s3", At: d(10), Event: store.EventSeen},
		{FindingID: "f1", ScanID: "s4", At: d(20), Event: store.EventResolved},
	}
	tests := []struct {
		at       time.Time
		ok       bool
		status   observe.Status
		lastSeen time.Time
	}{
		{d(1).Add(-time.Hour), false, "", time.Time{}},
		{d(3), true, observe.StatusOpen, d(1)},
		{d(7), true, observe.StatusAccepted, d(5)},
		{d(15), true, observe.StatusAccepted, d(10)},
		{d(25), true, observe.StatusResolved, d(10)},
	}
	for _, tt := range tests {
		g, ok := Replay(stored, events, tt.at)
		if ok != tt.ok || (ok && (g.Status != tt.status || !g.LastSeen.Equal(tt.lastSeen) || !g.FirstSeen.Equal(d(1)))) {
			t.Errorf("at %s: ok=%v %+v, want ok=%v %s last seen %s", tt.at, ok, g, tt.ok, tt.status, tt.lastSeen)
		}
		if ok && g.Status == observe.StatusAccepted {
			dec := g.Decision
			if dec == nil || dec.By != "dr. lee" || dec.Reason != "vendor access" || dec.Risk != "net.x@downtown" || dec.Expires.Before(exp) {
				t.Errorf("at %s: decision %+v", tt.at, dec)
			}
		}
	}
	// An acceptance past its expiry reads as open, as Load does for now.
	g, _ := Replay(stored, events[:3], time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	if st := g.StatusAt(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)); st != observe.StatusOpen {
		t.Errorf("expired acceptance as of July = %s, want open", st)
	}
}
