package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/lab"
)

// topoVigil is one vigil build shared by the topology tests.
var topoVigil struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// needTopology skips (or, with VIGIL_LAB_REQUIRED=1, fails) when the
// machine cannot build namespaced labs, and returns a vigil binary.
func needTopology(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping topology lab scan in -short mode: it builds vigil and scans namespaces")
	}
	skip := func(why string) {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("the lab is required (%s=1) but cannot run here: %s", lab.RequireEnv, why)
		}
		t.Skipf("skipping topology lab scan: %s", why)
	}
	if err := lab.Check(); err != nil {
		skip(err.Error())
	}
	if _, err := exec.LookPath("nmap"); err != nil {
		skip("nmap is not installed: run scripts/install-deps.sh")
	}
	topoVigil.once.Do(func() {
		topoVigil.dir, topoVigil.err = os.MkdirTemp("", "vigil-topo-")
		if topoVigil.err == nil {
			topoVigil.path, topoVigil.err = buildVigil(t, topoVigil.dir)
		}
	})
	if topoVigil.err != nil {
		t.Fatal(topoVigil.err)
	}
	return topoVigil.path
}

// inHost runs commands in a topology host's namespace, for scanWith.
func inHost(l *lab.Lab, host string) func(ctx context.Context, name string, args ...string) *exec.Cmd {
	return func(ctx context.Context, name string, args ...string) *exec.Cmd {
		return l.CommandIn(ctx, host, name, args...)
	}
}

func startTopology(t *testing.T, topo lab.Topology) *lab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := lab.StartTopology(ctx, topo, lab.Options{Progress: lab.LogWriter(t)})
	if err != nil {
		t.Fatalf("starting topology: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	return l
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// flatFindings returns the flat-network findings by "rule target".
func flatFindings(t *testing.T, res *scanOutput) map[string]finding {
	out := map[string]finding{}
	for _, f := range res.Findings {
		if f.Category == "flat-network" {
			t.Logf("finding: %s %s [%s] %v", f.Rule, f.Target, f.Severity, f.Evidence)
			out[f.Rule+" "+f.Target] = f
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func evidenceStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
	case string:
		out = append(out, x)
	}
	return out
}

func cellOf(res *scanOutput, loc, from, to string) (matrixCell, bool) {
	for _, m := range res.Matrix {
		if m.Location != loc {
			continue
		}
		for _, c := range append(m.Cells, m.Remote...) {
			if c.From == from && c.To == to {
				return c, true
			}
		}
	}
	return matrixCell{}, false
}

// TestFlatLocation: three declared segments on one bridge. The sensor sits
// in front-desk; clinical holds a database (Redis) and an MQTT device; a
// guest phone answers only ARP. Every pair is a flat network (directly
// probed from front-desk, inferred from ARP for clinical<->guest), and
// clinical mixes ePHI and IoT.
func TestFlatLocation(t *testing.T) {
	vigil := needTopology(t)
	const gw = "10.78.0.1"
	link := func(addr string) []lab.HostLink {
		return []lab.HostLink{{Router: "sw", Bridge: "br0", Addr: addr + "/24", Gateway: gw}}
	}
	l := startTopology(t, lab.Topology{
		Routers: []lab.Router{{Name: "sw", Bridges: []lab.Bridge{{Name: "br0", GW: gw + "/24"}}}},
		Hosts: []lab.TopoHost{
			{Name: "sensor", Links: link("10.78.0.50")},
			{Name: "emr-db", Links: link("10.78.0.70"), Daemon: lab.DaemonRedis},
			{Name: "camera", Links: link("10.78.0.71"), Daemon: lab.DaemonMosquitto},
			{Name: "phone", Links: link("10.78.0.130")},
		},
	})
	tmp := t.TempDir()
	cfg := writeFile(t, filepath.Join(tmp, "flat.yaml"), fmt.Sprintf(`organization: Flat Lab
data_dir: %s
scan: {rate: 2000, udp_ports: none, probe_timeout: 3s}
locations:
  - id: flat
    segments:
      - {name: front-desk, cidr: 10.78.0.0/26, role: front-desk}
      - {name: clinical, cidr: 10.78.0.64/26, role: clinical}
      - {name: guest, cidr: 10.78.0.128/26, role: guest}
    vantage:
      - {segment: front-desk, source: 10.78.0.50}
    ports: "22,80,443,1883,6379"
`, filepath.Join(tmp, "data")))
	res := scanWith(t, inHost(l, "sensor"), vigil, filepath.Join(tmp, "flat.json"), "--config", cfg)
	fs := flatFindings(t, res)

	v, ok := fs["net.segmentation-violation front-desk->clinical"]
	if !ok {
		t.Fatalf("no front-desk->clinical violation; flat-network findings: %v", sortedKeys(fs))
	}
	got := evidenceStrings(v.Evidence["reachable_against_policy"])
	for _, want := range []string{"10.78.0.70:6379", "10.78.0.71:1883"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("front-desk->clinical evidence %v lacks %s", got, want)
		}
	}
	for _, pair := range []string{"clinical<->front-desk", "clinical<->guest", "front-desk<->guest"} {
		f, ok := fs["net.shared-broadcast-domain "+pair]
		if !ok {
			t.Errorf("no shared-broadcast-domain finding for %s; have %v", pair, sortedKeys(fs))
			continue
		}
		hosts := strings.Join(evidenceStrings(f.Evidence["layer2_neighbours"]), " ")
		for _, seg := range strings.Split(pair, "<->") {
			want := map[string]string{"clinical": "10.78.0.70", "guest": "10.78.0.130", "front-desk": ""}[seg]
			if want != "" && !strings.Contains(hosts, want) {
				t.Errorf("%s evidence %q does not name %s's host %s", pair, hosts, seg, want)
			}
		}
	}
	if f := fs["net.shared-broadcast-domain clinical<->guest"]; f.Severity != "critical" {
		t.Errorf("guest sharing a broadcast domain with clinical: severity %q, want critical", f.Severity)
	}
	mixed, ok := fs["net.mixed-roles clinical"]
	if !ok {
		t.Fatalf("no mixed-roles finding for clinical; have %v", sortedKeys(fs))
	}
	phi := strings.Join(evidenceStrings(mixed.Evidence["phi_systems"]), " ")
	iot := strings.Join(evidenceStrings(mixed.Evidence["guest_or_iot_devices"]), " ")
	if !strings.Contains(phi, "10.78.0.70") || !strings.Contains(iot, "10.78.0.71") {
		t.Errorf("mixed-roles evidence: phi %q, iot %q; want 10.78.0.70 and 10.78.0.71", phi, iot)
	}
	if c, _ := cellOf(res, "flat", "clinical", "guest"); c.Status != "reachable-against-policy" || len(c.Inferred) == 0 {
		t.Errorf("clinical->guest cell = %+v, want reachable-against-policy, inferred", c)
	}
}

// TestMultiHomedHost: a machine with one leg in guest and one in servers
// (one sshd, one host key, both addresses) bridges the two segments even
// though the router between them forwards nothing from guest.
func TestMultiHomedHost(t *testing.T) {
	vigil := needTopology(t)
	l := startTopology(t, lab.Topology{
		Routers: []lab.Router{{Name: "rt", Bridges: []lab.Bridge{
			{Name: "br-guest", GW: "10.79.1.1/24"}, {Name: "br-srv", GW: "10.79.2.1/24"}}}},
		Hosts: []lab.TopoHost{
			{Name: "sensor", Links: []lab.HostLink{{Router: "rt", Bridge: "br-guest", Addr: "10.79.1.50/24", Gateway: "10.79.1.1"}}},
			{Name: "dual", Daemon: lab.DaemonSSHKeys, Links: []lab.HostLink{
				{Router: "rt", Bridge: "br-guest", Addr: "10.79.1.30/24", Gateway: "10.79.1.1"},
				{Router: "rt", Bridge: "br-srv", Addr: "10.79.2.30/24", Gateway: "10.79.2.1"}}},
			{Name: "db", Daemon: lab.DaemonRedis, Links: []lab.HostLink{{Router: "rt", Bridge: "br-srv", Addr: "10.79.2.11/24", Gateway: "10.79.2.1"}}},
		},
	})
	// The router lets the guest segment reach only SSH on the servers
	// segment (the policy), so the sensor can see the dual host's second
	// address, but not Redis.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.SetRulesOn(ctx, "rt", `table ip vigil_lab {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ip saddr 10.79.1.0/24 ip daddr 10.79.2.0/24 tcp dport 22 accept
		ip saddr 10.79.1.0/24 ip daddr 10.79.2.0/24 drop
		ip saddr 10.79.2.0/24 ip daddr 10.79.1.0/24 drop
	}
}`); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cfg := writeFile(t, filepath.Join(tmp, "mh.yaml"), fmt.Sprintf(`organization: Multi-homed Lab
data_dir: %s
scan: {rate: 2000, udp_ports: none, probe_timeout: 3s}
locations:
  - id: mh
    segments:
      - {name: guest, cidr: 10.79.1.0/24, role: guest}
      - {name: servers, cidr: 10.79.2.0/24, role: servers}
    vantage:
      - {segment: guest, source: 10.79.1.50}
    policy:
      - {from: guest, to: servers, ports: [22]}
    ports: "22,6379"
`, filepath.Join(tmp, "data")))
	res := scanWith(t, inHost(l, "sensor"), vigil, filepath.Join(tmp, "mh.json"), "--config", cfg)
	fs := flatFindings(t, res)
	f, ok := fs["net.multi-homed-host guest<->servers"]
	if !ok {
		t.Fatalf("no multi-homed finding guest<->servers; have %v", sortedKeys(fs))
	}
	lines := evidenceStrings(f.Evidence["bridging_hosts"])
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "10.79.1.30 (guest) and 10.79.2.30 (servers): same SSH host key SHA256:") {
		t.Errorf("bridging evidence %q, want 10.79.1.30 (guest) and 10.79.2.30 (servers) with the SSH host key", lines)
	}
	if _, ok := fs["net.segmentation-violation guest->servers"]; ok {
		t.Errorf("the router implements the policy (SSH only), yet a segmentation violation was reported")
	}
	if c, _ := cellOf(res, "mh", "guest", "servers"); c.Status != "allowed" {
		t.Errorf("guest->servers = %+v, want allowed (SSH answers, as the policy allows; Redis is filtered)", c)
	}
}

// wanRules is a site router's forward policy: replies pass; new flows from
// the other site pass only when open.
func wanRules(remote string, open bool) string {
	verdict := "drop"
	if open {
		verdict = "accept"
	}
	return fmt.Sprintf(`table ip vigil_lab {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ip saddr %s %s
	}
}`, remote, verdict)
}

// TestCrossLocationWAN: two clinics joined by a site-to-site link, one
// sensor at each. With ACLs on both routers nothing crosses; with north's
// traffic allowed into south (and not the reverse), north's scan reports
// north staff reaching south's servers and south's scan reports nothing.
func TestCrossLocationWAN(t *testing.T) {
	vigil := needTopology(t)
	l := startTopology(t, lab.Topology{
		Routers: []lab.Router{
			{Name: "north", Bridges: []lab.Bridge{{Name: "br-staff", GW: "10.80.1.1/24"}, {Name: "br-srv", GW: "10.80.2.1/24"}}},
			{Name: "south", Bridges: []lab.Bridge{{Name: "br-staff", GW: "10.81.1.1/24"}, {Name: "br-srv", GW: "10.81.2.1/24"}}},
		},
		WAN: []lab.WANLink{{A: "north", B: "south", AAddr: "10.99.0.1/30", BAddr: "10.99.0.2/30",
			ARoutes: []string{"10.80.0.0/16"}, BRoutes: []string{"10.81.0.0/16"}}},
		Hosts: []lab.TopoHost{
			{Name: "sensor-n", Links: []lab.HostLink{{Router: "north", Bridge: "br-staff", Addr: "10.80.1.50/24", Gateway: "10.80.1.1"}}},
			{Name: "db-n", Daemon: lab.DaemonRedis, Links: []lab.HostLink{{Router: "north", Bridge: "br-srv", Addr: "10.80.2.11/24", Gateway: "10.80.2.1"}}},
			{Name: "sensor-s", Links: []lab.HostLink{{Router: "south", Bridge: "br-staff", Addr: "10.81.1.50/24", Gateway: "10.81.1.1"}}},
			{Name: "db-s", Daemon: lab.DaemonRedis, Links: []lab.HostLink{{Router: "south", Bridge: "br-srv", Addr: "10.81.2.11/24", Gateway: "10.81.2.1"}}},
		},
	})
	tmp := t.TempDir()
	cfg := writeFile(t, filepath.Join(tmp, "wan.yaml"), fmt.Sprintf(`organization: Two Clinics
data_dir: %s
scan: {rate: 2000, udp_ports: none, probe_timeout: 3s}
locations:
  - id: north
    segments:
      - {name: staff, cidr: 10.80.1.0/24, role: front-desk}
      - {name: servers, cidr: 10.80.2.0/24, role: servers}
    vantage: [{segment: staff, source: 10.80.1.50}]
    policy: [{from: staff, to: servers}]
    ports: "22,6379"
  - id: south
    segments:
      - {name: staff, cidr: 10.81.1.0/24, role: front-desk}
      - {name: servers, cidr: 10.81.2.0/24, role: servers}
    vantage: [{segment: staff, source: 10.81.1.50}]
    policy: [{from: staff, to: servers}]
    ports: "22,6379"
`, filepath.Join(tmp, "data")))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	setWAN := func(northIntoSouth bool) {
		t.Helper()
		if err := l.SetRulesOn(ctx, "north", wanRules("10.81.0.0/16", false)); err != nil {
			t.Fatal(err)
		}
		if err := l.SetRulesOn(ctx, "south", wanRules("10.80.0.0/16", northIntoSouth)); err != nil {
			t.Fatal(err)
		}
	}
	scanFrom := func(t *testing.T, sensor, loc, name string) map[string]finding {
		res := scanWith(t, inHost(l, sensor), vigil, filepath.Join(tmp, name+".json"), "--location", loc, "--db", "sqlite://"+filepath.Join(tmp, name+".db"), "--config", cfg)
		if c, ok := cellOf(res, loc, "staff", map[string]string{"north": "south", "south": "north"}[loc]+"/servers"); ok {
			t.Logf("%s: staff -> other site's servers: %s, %d probes (%d open)", name, c.Status, c.Probes, c.Open)
		} else {
			t.Errorf("%s: no remote cell staff -> other site's servers in the matrix", name)
		}
		return flatFindings(t, res)
	}

	t.Run("ACLs both ways", func(t *testing.T) {
		setWAN(false)
		for _, s := range []struct{ sensor, loc string }{{"sensor-n", "north"}, {"sensor-s", "south"}} {
			if fs := scanFrom(t, s.sensor, s.loc, "closed-"+s.loc); len(fs) > 0 {
				t.Errorf("%s: the WAN is closed, yet flat-network findings %v", s.loc, sortedKeys(fs))
			}
		}
	})
	t.Run("open north to south", func(t *testing.T) {
		setWAN(true)
		fs := scanFrom(t, "sensor-n", "north", "open-north")
		f, ok := fs["net.cross-location-reach staff->south/servers"]
		if !ok || len(fs) != 1 {
			t.Fatalf("want exactly net.cross-location-reach staff->south/servers from north, got %v", sortedKeys(fs))
		}
		if ev := evidenceStrings(f.Evidence["reachable_against_policy"]); len(ev) != 1 || !strings.HasPrefix(ev[0], "10.81.2.11:6379") {
			t.Errorf("cross-location evidence %v, want 10.81.2.11:6379", ev)
		}
		if fs := scanFrom(t, "sensor-s", "south", "open-south"); len(fs) > 0 {
			t.Errorf("south cannot reach north (only replies pass), yet findings %v", sortedKeys(fs))
		}
	})
}
