package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/lab"
	"github.com/vigilhq/vigil/scanner"
)

// BenchmarkSegmentationVsNmap is issue 3's benchmark: one location with 4
// segments of 30 live hosts each, a sensor with a leg (vantage point) in
// two of them, and `vigil scan --only segmentation` (host discovery, then
// the reach ports on every live host of every other segment, from both
// vantage points) against the equivalent hand-written nmap commands over
// the same hosts and ports, run in the same namespace, alternating which
// goes first. The target is vigil <= 1.5x nmap.
//
//	go test ./integration -run '^$' -bench SegmentationVsNmap -benchtime 3x
func BenchmarkSegmentationVsNmap(b *testing.B) {
	vigil := needTopology(b)
	const perSegment = 30
	topo := lab.Topology{Routers: []lab.Router{{Name: "rt"}}}
	seg := func(i int) string { return fmt.Sprintf("10.82.%d", i) }
	for i := 1; i <= 4; i++ {
		topo.Routers[0].Bridges = append(topo.Routers[0].Bridges, lab.Bridge{Name: fmt.Sprintf("br%d", i), GW: seg(i) + ".1/24"})
		for h := 0; h < perSegment; h++ {
			topo.Hosts = append(topo.Hosts, lab.TopoHost{Name: fmt.Sprintf("s%dh%d", i, h),
				Links: []lab.HostLink{{Router: "rt", Bridge: fmt.Sprintf("br%d", i), Addr: fmt.Sprintf("%s.%d/24", seg(i), 11+h), Gateway: seg(i) + ".1"}}})
		}
	}
	topo.Hosts = append(topo.Hosts, lab.TopoHost{Name: "sensor", Sensor: true, Links: []lab.HostLink{
		{Router: "rt", Bridge: "br1", Addr: seg(1) + ".50/24", Gateway: seg(1) + ".1"},
		{Router: "rt", Bridge: "br2", Addr: seg(2) + ".50/24", Gateway: seg(2) + ".1"}}})
	ctx := context.Background()
	l, err := lab.StartTopology(ctx, topo, lab.Options{Progress: lab.LogWriter(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()

	tmp := b.TempDir()
	const rate = 5000
	cfg := filepath.Join(tmp, "bench.yaml")
	conf := fmt.Sprintf("organization: Bench\ndata_dir: %s\nscan: {rate: %d, udp_ports: none}\nlocations:\n  - id: bench\n    segments:\n", filepath.Join(tmp, "data"), rate)
	for i := 1; i <= 4; i++ {
		conf += fmt.Sprintf("      - {name: seg%d, cidr: %s.0/24, role: other}\n", i, seg(i))
	}
	conf += fmt.Sprintf("    vantage:\n      - {segment: seg1, source: %s.50}\n      - {segment: seg2, source: %s.50}\n", seg(1), seg(2))
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	var ports []string
	for _, p := range scanner.ReachPorts {
		ports = append(ports, strconv.Itoa(p))
	}
	portList := strings.Join(ports, ",")

	runVigil := func() time.Duration {
		t0 := time.Now()
		cmd := l.CommandIn(ctx, "sensor", vigil, "scan", "--config", cfg, "--only", "segmentation", "--format", "json",
			"--quiet", "--output", filepath.Join(tmp, "bench.json"), "--fail-on", "critical")
		if out, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() != 1 {
			b.Fatalf("vigil scan --only segmentation: %v\n%s", err, out)
		}
		return time.Since(t0)
	}
	// The hand-written equivalent: from each vantage point, discover the
	// other segments, then probe every live host on the same ports.
	nmap := func(args ...string) string {
		cmd := l.CommandIn(ctx, "sensor", "nmap", args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("nmap %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	runNmap := func() time.Duration {
		t0 := time.Now()
		for v := 1; v <= 2; v++ {
			src := seg(v) + ".50"
			var others []string
			for i := 1; i <= 4; i++ {
				if i != v {
					others = append(others, seg(i)+".0/24")
				}
			}
			self := seg(3-v) + ".50"
			disc := nmap(append([]string{"--unprivileged", "-sn", "-T4", "-PS21,22,23,80,443,445,3389", "--max-retries", "1",
				"-n", "--max-rate", strconv.Itoa(rate), "-S", src, "--exclude", self, "-oG", "-"}, others...)...)
			var live []string
			for _, line := range strings.Split(disc, "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "Host:" && strings.Contains(line, "Status: Up") {
					live = append(live, f[1])
				}
			}
			if len(live) < 3*perSegment {
				b.Fatalf("hand-written discovery from %s found %d hosts, want at least %d", src, len(live), 3*perSegment)
			}
			nmap(append([]string{"--unprivileged", "-sT", "-Pn", "-T4", "--max-retries", "1", "-n", "--max-rate", strconv.Itoa(rate),
				"-S", src, "-p", portList, "-oX", os.DevNull}, live...)...)
		}
		return time.Since(t0)
	}
	var vigilT, nmapT time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			vigilT += runVigil()
			nmapT += runNmap()
		} else {
			nmapT += runNmap()
			vigilT += runVigil()
		}
	}
	b.StopTimer()
	var res scanOutput
	if raw, err := os.ReadFile(filepath.Join(tmp, "bench.json")); err != nil {
		b.Fatal(err)
	} else if err := json.Unmarshal(raw, &res); err != nil {
		b.Fatal(err)
	}
	probes := 0
	for _, m := range res.Matrix {
		for _, c := range m.Cells {
			probes += c.Probes
		}
	}
	if probes < 2*3*perSegment*len(ports) {
		b.Fatalf("vigil sent %d probes, want %d (every live host of every other segment on %d ports, from 2 vantage points)",
			probes, 2*3*perSegment*len(ports), len(ports))
	}
	n := float64(b.N)
	b.ReportMetric(vigilT.Seconds()/n, "vigil-s/op")
	b.ReportMetric(nmapT.Seconds()/n, "nmap-s/op")
	b.ReportMetric(vigilT.Seconds()/nmapT.Seconds(), "vigil/nmap")
	b.ReportMetric(float64(probes), "probes")
}
