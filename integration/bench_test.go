package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkLabScanVsNmap measures `vigil scan` of the lab against the plain
// nmap command vigil runs (as printed by --dry-run: same targets, ports and
// options), alternating which goes first, in the lab's scanner namespace.
// nmap is the floor; the target is vigil <= 1.25x nmap.
//
//	go test ./integration -run '^$' -bench LabScanVsNmap -benchtime 3x
func BenchmarkLabScanVsNmap(b *testing.B) {
	setup(b)
	ctx := context.Background()
	plan, err := env.lab.Command(ctx, env.vigil, "scan", "--config", env.cfg, "--dry-run").Output()
	if err != nil {
		b.Fatalf("dry-run: %v", err)
	}
	var nmapArgs []string
	sc := bufio.NewScanner(bytes.NewReader(plan))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "nmap ") && strings.Contains(l, " -p ") {
			nmapArgs = strings.Fields(l)[1:]
		}
	}
	if nmapArgs == nil {
		b.Fatalf("no nmap command in the dry-run output:\n%s", plan)
	}
	b.Logf("nmap %s", strings.Join(nmapArgs, " "))
	runVigil := func() time.Duration {
		t0 := time.Now()
		cmd := env.lab.Command(ctx, env.vigil, "scan", "--config", env.cfg, "--format", "json", "--quiet",
			"--output", filepath.Join(env.tmp, "bench.json"), "--fail-on", "critical")
		if out, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() != 1 {
			b.Fatalf("vigil scan: %v\n%s", err, out)
		}
		return time.Since(t0)
	}
	runNmap := func() time.Duration {
		t0 := time.Now()
		args := append(append([]string{}, nmapArgs...), "-oX", os.DevNull)
		if out, err := env.lab.Command(ctx, "nmap", args...).CombinedOutput(); err != nil {
			b.Fatalf("nmap: %v\n%s", err, out)
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
	n := float64(b.N)
	b.ReportMetric(vigilT.Seconds()/n, "vigil-s/op")
	b.ReportMetric(nmapT.Seconds()/n, "nmap-s/op")
	b.ReportMetric(vigilT.Seconds()/nmapT.Seconds(), "vigil/nmap")
}
