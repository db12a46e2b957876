package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/lab"
)

// segPolicy is the location policy of TestSegmentation: the guest segment
// may reach the servers on 443 only.
var segPolicy = []lab.Flow{{From: "guest", To: "servers", Ports: []int{443}}}

// routerRules returns the router's nftables forward policy: replies of
// established flows pass, guest reaches servers on TCP 443, extra holes
// (nft match expressions) are accepted too, and everything else between the
// segments is dropped, including new flows from servers to guest.
func routerRules(holes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `table ip vigil_lab {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		ip saddr %[1]s ip daddr %[2]s tcp dport 443 accept
`, lab.GuestCIDR, lab.ServersCIDR)
	for _, h := range holes {
		fmt.Fprintf(&b, "\t\tip saddr %s %s accept\n", lab.GuestCIDR, h)
	}
	fmt.Fprintf(&b, `		ip saddr %[1]s ip daddr %[2]s drop
		ip saddr %[2]s ip daddr %[1]s drop
	}
}
`, lab.GuestCIDR, lab.ServersCIDR)
	return b.String()
}

// TestSegmentation runs its own lab (not the shared env's) behind a router
// that enforces a firewall, and checks vigil judges segmentation against
// the config's policy: (a) a firewall that implements the policy exactly
// gives no flat-network finding and an "allowed" cell; (b) one extra hole
// (guest -> redis 10.77.2.11:6379) gives exactly one finding naming only
// that service. One lab; the ruleset is replaced between the scans.
func TestSegmentation(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping segmentation lab scan in -short mode: it builds vigil and scans the lab")
	}
	skip := func(why string) {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("the lab is required (%s=1) but cannot run here: %s", lab.RequireEnv, why)
		}
		t.Skipf("skipping segmentation lab scan: %s", why)
	}
	if err := lab.Check(); err != nil {
		skip(err.Error())
	}
	if _, err := exec.LookPath("nmap"); err != nil {
		skip("nmap is not installed: run scripts/install-deps.sh")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		if _, err := os.Stat("/usr/sbin/nft"); err != nil {
			skip("nft is not installed (Debian package nftables)")
		}
	}
	tmp := t.TempDir()
	vigil, err := buildVigil(t, tmp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	l, err := lab.Start(ctx, lab.Options{Progress: lab.LogWriter(t), RouterRules: routerRules(), ServersVantage: true})
	if err != nil {
		t.Fatalf("starting lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	t.Logf("lab up with router rules in %s", time.Since(t0).Round(100*time.Millisecond))

	// Each scenario gets its own config and data dir, so neither scan's
	// findings carry over into the other.
	config := func(name string) string {
		path := filepath.Join(tmp, name+".yaml")
		err := l.WriteConfigWith(path, filepath.Join(tmp, "data-"+name), lab.ConfigOptions{
			Ports: "443,6379", UDPPorts: "none", Policy: segPolicy, ServersVantage: true})
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	cell := func(res *scanOutput, from, to string) (string, []string) {
		for _, m := range res.Matrix {
			if m.Location != "lab" {
				continue
			}
			for _, c := range m.Cells {
				if c.From == from && c.To == to {
					var r []string
					for _, x := range c.Reached {
						r = append(r, fmt.Sprintf("%s:%d", x.Host, x.Port))
					}
					return c.Status, r
				}
			}
		}
		return "(no cell)", nil
	}
	flat := func(t *testing.T, res *scanOutput) []finding {
		var out []finding
		for _, f := range res.Findings {
			t.Logf("finding: %s", f)
			if f.Category == "flat-network" {
				out = append(out, f)
			}
		}
		return out
	}

	// The scanner has a leg in each segment: both directions are probed,
	// each from its own source address through the router.
	reverse := func(t *testing.T, res *scanOutput) {
		t.Helper()
		c, ok := cellOf(res, "lab", "servers", "guest")
		t.Logf("servers->guest: %+v", c)
		if !ok || c.Status != "blocked-as-intended" || c.Probes == 0 {
			t.Errorf("servers->guest = %+v, want blocked-as-intended after probing from %s", c, lab.ScannerServersAddr)
		}
		for _, m := range res.Matrix {
			if m.Location == "lab" && strings.Join(m.Vantages, ",") != "guest,servers" {
				t.Errorf("matrix vantages %v, want guest and servers", m.Vantages)
			}
		}
	}

	t.Run("policy implemented", func(t *testing.T) {
		res := segScan(t, l, vigil, config("exact"), filepath.Join(tmp, "exact.json"))
		reverse(t, res)
		status, reached := cell(res, "guest", "servers")
		t.Logf("guest->servers: %s, reached %v", status, reached)
		if fs := flat(t, res); len(fs) > 0 {
			t.Errorf("the router enforces the policy, yet vigil reports %d flat-network findings: %v", len(fs), fs)
		}
		if status != "allowed" {
			t.Errorf("guest->servers is %q, want allowed (443 on 10.77.2.16 and 10.77.2.20 answer, as the policy allows)", status)
		}
		for _, want := range []string{"10.77.2.16:443", "10.77.2.20:443"} {
			if !contains(reached, want) {
				t.Errorf("guest->servers reached %v, want it to include %s", reached, want)
			}
		}
	})

	t.Run("one hole", func(t *testing.T) {
		if err := l.SetRouterRules(ctx, routerRules("ip daddr 10.77.2.11 tcp dport 6379")); err != nil {
			t.Fatal(err)
		}
		res := segScan(t, l, vigil, config("hole"), filepath.Join(tmp, "hole.json"))
		reverse(t, res)
		status, reached := cell(res, "guest", "servers")
		t.Logf("guest->servers: %s, reached %v", status, reached)
		fs := flat(t, res)
		if len(fs) != 1 {
			t.Fatalf("want exactly one flat-network finding (guest->servers), got %d: %v", len(fs), fs)
		}
		f := fs[0]
		if f.Target != "guest->servers" || f.Rule != "net.segmentation-violation" {
			t.Errorf("finding target %q rule %q, want guest->servers net.segmentation-violation", f.Target, f.Rule)
		}
		ev, _ := f.Evidence["reachable_against_policy"].([]any)
		if len(ev) != 1 {
			t.Errorf("reachable_against_policy = %v, want only 10.77.2.11:6379", f.Evidence["reachable_against_policy"])
		} else if s, _ := ev[0].(string); !strings.HasPrefix(s, "10.77.2.11:6379") {
			t.Errorf("reachable_against_policy = %q, want 10.77.2.11:6379 ...", s)
		}
		if status != "reachable-against-policy" {
			t.Errorf("guest->servers is %q, want reachable-against-policy", status)
		}
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// segScan runs `vigil scan` with config cfg in lab l's scanner namespace and
// decodes its JSON. Exit 0 or 1 is a completed scan; 2 (incomplete) or
// anything else fails the test, showing vigil's output.
func segScan(t *testing.T, l *lab.Lab, vigil, cfg, out string) *scanOutput {
	t.Helper()
	return scanWith(t, l.Command, vigil, out, "--config", cfg)
}

// scanWith runs `vigil scan ARGS --format json --output out` through
// command (which places it in a namespace) and decodes its JSON, as
// segScan does.
func scanWith(t *testing.T, command func(ctx context.Context, name string, args ...string) *exec.Cmd, vigil, out string, args ...string) *scanOutput {
	t.Helper()
	cfg := args[len(args)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := command(ctx, vigil, append(append([]string{"scan"}, args...), "--format", "json", "--output", out)...)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	t.Logf("vigil scan took %s", time.Since(t0).Round(100*time.Millisecond))
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() == 1:
	default:
		t.Fatalf("vigil scan --config %s: %v\n--- output ---\n%s", cfg, err, output.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("vigil scan wrote no %s: %v\n--- output ---\n%s", out, err, output.String())
	}
	var res scanOutput
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s is not the contract's JSON: %v\n%s", out, err, b)
	}
	if res.Scan.Complete != nil && !*res.Scan.Complete || len(res.Scan.Errors) > 0 {
		t.Logf("scan reports complete=%v errors=%q", res.Scan.Complete != nil && *res.Scan.Complete, res.Scan.Errors)
	}
	return &res
}
