package rules

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
)

func svcObs(vantage, segment, host string, port int, service string) observe.Observation {
	return observe.Observation{Kind: observe.KindService, Location: "a", Vantage: vantage, Segment: segment,
		Host: host, Port: port, Proto: "tcp", Source: "nmap", Attrs: map[string]any{"service": service}}
}

func TestSegmentation(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pol := SegmentPolicy{
		Location: "a",
		Segments: []string{"front-desk", "clinical", "guest"},
		Roles:    map[string]string{"front-desk": "front-desk", "clinical": "clinical", "guest": "guest"},
		Allow:    []AllowedFlow{{From: "front-desk", To: "clinical", Ports: []int{443}}},
	}
	obs := []observe.Observation{
		svcObs("front-desk", "clinical", "10.0.2.5", 443, "https"),          // allowed
		svcObs("front-desk", "clinical", "10.0.2.5", 3389, "ms-wbt-server"), // hole
		svcObs("front-desk", "front-desk", "10.0.1.7", 445, "microsoft-ds"), // same segment: not judged
		{Kind: observe.KindHost, Location: "a", Vantage: "guest", Segment: "guest", Host: "10.0.9.1"},
		svcObs("guest", "clinical", "10.0.2.9", 6379, "redis"), // guest → clinical: critical
	}
	m, fs := e.Segmentation(pol, obs, time.Unix(0, 0))
	status := map[string]observe.CellStatus{}
	for _, c := range m.Cells {
		status[c.From+"->"+c.To] = c.Status
	}
	want := map[string]observe.CellStatus{
		"front-desk->clinical": observe.CellViolation,
		"front-desk->guest":    observe.CellBlocked,
		"guest->clinical":      observe.CellViolation,
		"guest->front-desk":    observe.CellBlocked,
		"clinical->front-desk": observe.CellNotAssessed, // no vantage in clinical: never "compliant"
		"clinical->guest":      observe.CellNotAssessed,
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("cell %s = %q, want %q", k, status[k], v)
		}
	}
	if len(fs) != 2 {
		t.Fatalf("want 2 flat-network findings, got %d: %+v", len(fs), fs)
	}
	for _, f := range fs {
		if f.Category != "flat-network" || f.Rule != "net.segmentation-violation" {
			t.Errorf("finding %+v", f)
		}
		bad := f.Evidence["reachable_against_policy"].([]string)
		switch f.Target {
		case "front-desk->clinical":
			if f.Severity != observe.High || len(bad) != 1 || bad[0] != "10.0.2.5:3389 ms-wbt-server" {
				t.Errorf("front-desk->clinical: severity %s, evidence %v (the allowed 443 must not be listed)", f.Severity, bad)
			}
		case "guest->clinical":
			if f.Severity != observe.Critical {
				t.Errorf("guest->clinical severity %s, want critical", f.Severity)
			}
		default:
			t.Errorf("unexpected target %s", f.Target)
		}
	}

	// The policy implemented exactly: no finding, cells allowed or blocked.
	_, fs = e.Segmentation(pol, obs[:1], time.Unix(0, 0))
	if len(fs) != 0 {
		t.Errorf("allowed flow produced findings: %+v", fs)
	}
}
