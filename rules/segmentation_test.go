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

func reachObs(vantage, toLoc, segment, host string, port int, state string) observe.Observation {
	o := observe.Observation{Kind: observe.KindReach, Location: "a", Vantage: vantage, Segment: segment,
		Host: host, Port: port, Proto: "tcp", Source: "nmap", Attrs: map[string]any{"state": state}}
	if toLoc != "" {
		o.Attrs["to_location"] = toLoc
	}
	return o
}

func findingsByTarget(fs []observe.Finding) map[string]observe.Finding {
	out := map[string]observe.Finding{}
	for _, f := range fs {
		out[f.Rule+" "+f.Target] = f
	}
	return out
}

// The segmentation test's probes count per cell, and an open port in
// another location is a cross-location finding in that direction only.
func TestSegmentationReachAndCrossLocation(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pol := SegmentPolicy{
		Location: "a", Segments: []string{"guest", "servers"},
		Roles:       map[string]string{"guest": "guest", "servers": "servers"},
		Allow:       []AllowedFlow{{From: "servers", To: "b/emr", Ports: []int{443}}},
		RemoteRoles: map[string]string{"b/emr": "servers", "b/staff": "front-desk"},
	}
	obs := []observe.Observation{
		reachObs("guest", "", "servers", "10.0.2.5", 22, "filtered"),
		reachObs("guest", "", "servers", "10.0.2.5", 443, "closed"),
		reachObs("guest", "b", "emr", "10.9.2.5", 3389, "open"),
		reachObs("guest", "b", "emr", "10.9.2.5", 22, "filtered"),
		reachObs("guest", "b", "staff", "10.9.1.5", 22, "filtered"),
		reachObs("servers", "b", "emr", "10.9.2.5", 443, "open"), // allowed by the policy
	}
	m, fs := e.Segmentation(pol, obs, time.Unix(0, 0))
	cells := map[string]observe.MatrixCell{}
	for _, c := range append(m.Cells, m.Remote...) {
		cells[c.From+"->"+c.To] = c
	}
	if c := cells["guest->servers"]; c.Status != observe.CellBlocked || c.Probes != 2 || c.Closed != 1 || c.Filtered != 1 || c.HostsProbed != 1 {
		t.Errorf("guest->servers = %+v, want blocked with 2 probes (1 closed, 1 filtered) to 1 host", c)
	}
	if c := cells["guest->b/emr"]; c.Status != observe.CellViolation || c.Open != 1 {
		t.Errorf("guest->b/emr = %+v, want reachable-against-policy", c)
	}
	if c := cells["guest->b/staff"]; c.Status != observe.CellBlocked {
		t.Errorf("guest->b/staff = %+v, want blocked", c)
	}
	if c := cells["servers->b/emr"]; c.Status != observe.CellAllowed {
		t.Errorf("servers->b/emr = %+v, want allowed", c)
	}
	byT := findingsByTarget(fs)
	f, ok := byT["net.cross-location-reach guest->b/emr"]
	if !ok || len(fs) != 1 {
		t.Fatalf("want exactly the cross-location finding guest->b/emr, got %v", keys(byT))
	}
	if f.Severity != observe.Critical || f.Vantage != "guest" || f.Evidence["to_location"] != "b" {
		t.Errorf("cross-location finding %+v", f)
	}
	if bad := f.Evidence["reachable_against_policy"].([]string); len(bad) != 1 || bad[0] != "10.9.2.5:3389" {
		t.Errorf("evidence %v", bad)
	}
}

// Hosts of three segments answering ARP on the sensor's link make every
// pair one broadcast domain; the pairs with no vantage become inferred
// violations instead of "not assessed".
func TestSegmentationSharedL2(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pol := SegmentPolicy{Location: "a", Segments: []string{"front-desk", "clinical", "guest"},
		Roles: map[string]string{"front-desk": "front-desk", "clinical": "clinical", "guest": "guest"}}
	host := func(seg, addr, mac string) observe.Observation {
		return observe.Observation{Kind: observe.KindHost, Location: "a", Vantage: "front-desk", Segment: seg, Host: addr,
			Attrs: map[string]any{"mac": mac}}
	}
	obs := []observe.Observation{
		host("clinical", "10.0.0.70", "02:00:00:00:00:70"),
		host("guest", "10.0.0.130", "02:00:00:00:01:30"),
	}
	m, fs := e.Segmentation(pol, obs, time.Unix(0, 0))
	byT := findingsByTarget(fs)
	for _, want := range []string{"clinical<->front-desk", "clinical<->guest", "front-desk<->guest"} {
		f, ok := byT["net.shared-broadcast-domain "+want]
		if !ok {
			t.Errorf("no shared-broadcast-domain finding %s (have %v)", want, keys(byT))
			continue
		}
		if want == "clinical<->guest" && f.Severity != observe.Critical {
			t.Errorf("%s severity %s, want critical (guest with clinical)", want, f.Severity)
		}
	}
	for _, c := range m.Cells {
		if c.From == "clinical" && c.To == "guest" && (c.Status != observe.CellViolation || len(c.Inferred) == 0) {
			t.Errorf("clinical->guest = %+v, want an inferred violation", c)
		}
	}
	// A policy that opens both ways makes the shared domain no finding.
	pol.Allow = []AllowedFlow{{From: "clinical", To: "guest"}, {From: "guest", To: "clinical"}}
	_, fs = e.Segmentation(pol, obs, time.Unix(0, 0))
	if _, ok := findingsByTarget(fs)["net.shared-broadcast-domain clinical<->guest"]; ok {
		t.Error("shared domain between segments the policy opens both ways was reported")
	}
}

func TestSegmentationMixedRolesAndMultiHomed(t *testing.T) {
	e, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	pol := SegmentPolicy{Location: "a", Segments: []string{"guest", "servers"},
		Roles: map[string]string{"guest": "guest", "servers": "servers"}}
	obs := []observe.Observation{
		svcObs("guest", "servers", "10.0.2.11", 6379, "redis"),
		svcObs("guest", "servers", "10.0.2.12", 1883, "mqtt"),
		svcObs("guest", "guest", "10.0.1.40", 445, "microsoft-ds"), // a file server on the guest Wi-Fi
		{Kind: observe.KindSSH, Location: "a", Vantage: "guest", Segment: "guest", Host: "10.0.1.30", Port: 22,
			Attrs: map[string]any{"host_key_sha256": "SHA256:abc"}},
		{Kind: observe.KindSSH, Location: "a", Vantage: "guest", Segment: "servers", Host: "10.0.2.30", Port: 22,
			Attrs: map[string]any{"host_key_sha256": "SHA256:abc"}},
		{Kind: observe.KindSSH, Location: "a", Vantage: "guest", Segment: "servers", Host: "10.0.2.31", Port: 22,
			Attrs: map[string]any{"host_key_sha256": "SHA256:other"}},
	}
	_, fs := e.Segmentation(pol, obs, time.Unix(0, 0))
	byT := findingsByTarget(fs)
	if f, ok := byT["net.mixed-roles servers"]; !ok || f.Severity != observe.High {
		t.Errorf("servers mixed roles: %+v (have %v)", f, keys(byT))
	} else if iot := f.Evidence["guest_or_iot_devices"].([]string); len(iot) != 1 || iot[0] != "10.0.2.12: IoT (MQTT) 1883" {
		t.Errorf("servers mixed-roles evidence %v", iot)
	}
	if f, ok := byT["net.mixed-roles guest"]; !ok || f.Severity != observe.Critical {
		t.Errorf("guest segment with a file server: %+v, want critical", f)
	}
	f, ok := byT["net.multi-homed-host guest<->servers"]
	if !ok {
		t.Fatalf("no multi-homed finding (have %v)", keys(byT))
	}
	if lines := f.Evidence["bridging_hosts"].([]string); len(lines) != 1 || lines[0] != "10.0.1.30 (guest) and 10.0.2.30 (servers): same SSH host key SHA256:abc" {
		t.Errorf("bridging evidence %v", lines)
	}
	if f.Severity != observe.Critical {
		t.Errorf("guest<->servers bridge severity %s, want critical", f.Severity)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
