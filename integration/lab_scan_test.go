package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/lab"
)

// planted lists the weaknesses the lab plants and vigil must report, one
// row per finding: this table is the test's definition of "vigil works".
var planted = []struct {
	target, rule, category string
}{
	{"10.77.2.10:21", "cred.ftp-anonymous", "default-credentials"},
	{"10.77.2.10:21", "svc.ftp-plaintext", "plaintext-protocol"},
	{"10.77.2.11:6379", "cred.redis-unauthenticated", "default-credentials"},
	{"10.77.2.11:6379", "net.database-exposed", "exposed-service"},
	{"10.77.2.12:1883", "cred.mqtt-anonymous", "default-credentials"},
	{"10.77.2.12:1883", "svc.mqtt-plaintext", "plaintext-protocol"},
	{"10.77.2.13:161", "cred.snmp-public", "default-credentials"},
	{"10.77.2.14:23", "svc.telnet-plaintext", "plaintext-protocol"},
	{"10.77.2.14:23", "net.remote-access-exposed", "exposed-service"},
	{"10.77.2.15:445", "cred.smb-guest", "default-credentials"},
	{"10.77.2.15:445", "svc.smb-signing-not-required", "exposed-service"},
	{"10.77.2.15:445", "net.file-sharing-exposed", "exposed-service"},
	{"10.77.2.16:443", "tls.deprecated-protocol", "weak-tls"},
	{"10.77.2.16:443", "tls.cert-expired", "weak-tls"},
	{"10.77.2.16:443", "tls.cert-self-signed", "weak-tls"},
	{"10.77.2.16:443", "tls.weak-key", "weak-tls"},
	{"10.77.2.16:80", "web.login-form-plaintext", "plaintext-protocol"},
	{"10.77.2.17:22", "svc.ssh-password-auth", "exposed-service"},
}

// cleanHosts are configured well: any finding on them is a false positive.
var cleanHosts = []string{"10.77.2.20", "10.77.2.21"}

// alsoAcceptable lists findings beyond the planted table that are true of
// the lab, so vigil may report them. Anything not in either list fails the
// test: a scanner that cries wolf is not trusted. An empty rule or
// category matches any.
var alsoAcceptable = []struct {
	target, rule, category, why string
}{
	{"10.77.2.13:161", "svc.snmp-v1v2c", "", "snmpd answers SNMP v1/v2c"},
	{"10.77.2.13:161", "net.iot-protocol-exposed", "", "SNMP reachable from the guest segment"},
	{"10.77.2.12:1883", "net.iot-protocol-exposed", "", "MQTT reachable from the guest segment"},
	{"10.77.2.10:21", "net.file-sharing-exposed", "", "FTP reachable from the guest segment"},
	{"10.77.2.15:139", "net.file-sharing-exposed", "", "SMB over NetBIOS reachable from guest"},
	{"10.77.2.15:139", "cred.smb-guest", "", "the guest share is also served on 139"},
	{"10.77.2.15:139", "svc.smb-signing-not-required", "", "signing is off on 139 too"},
	{"10.77.2.16:443", "tls.weak-cipher", "", "ssl_ciphers DEFAULT:@SECLEVEL=0 accepts CBC/RSA-kex suites"},
	{"10.77.2.16:443", "tls.cert-untrusted", "", "self-signed, so no chain to a trusted root"},
	{"10.77.2.16:443", "tls.sha1-signature", "", "some old-TLS handshakes sign with SHA-1"},
	{"guest->servers", "", "flat-network", "the lab config has no policy, and guest does reach servers"},
	{"servers", "net.mixed-roles", "flat-network", "the servers segment holds Redis and SMB next to an MQTT broker"},
}

// scanOutput is the CONTRACT.md JSON output of `vigil scan --format json`,
// decoded independently of vigil's own types so the contract is what is tested.
type scanOutput struct {
	Scan struct {
		ID         string    `json:"id"`
		StartedAt  time.Time `json:"started_at"`
		FinishedAt time.Time `json:"finished_at"`
		Version    string    `json:"version"`
		Locations  []string  `json:"locations"`
		Complete   *bool     `json:"complete"`
		Errors     []string  `json:"errors"`
	} `json:"scan"`
	Findings []finding      `json:"findings"`
	Summary  map[string]int `json:"summary"`
	Matrix   []struct {
		Location string       `json:"location"`
		Segments []string     `json:"segments"`
		Vantages []string     `json:"vantages"`
		Cells    []matrixCell `json:"cells"`
		Remote   []matrixCell `json:"remote"`
	} `json:"matrix"`
}

type matrixCell struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Status  string `json:"status"`
	Reached []struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	} `json:"reached"`
	Probes   int      `json:"probes"`
	Open     int      `json:"open"`
	Closed   int      `json:"closed"`
	Filtered int      `json:"filtered"`
	Inferred []string `json:"inferred"`
}

type finding struct {
	ID        string         `json:"id"`
	Rule      string         `json:"rule"`
	Category  string         `json:"category"`
	Severity  string         `json:"severity"`
	Title     string         `json:"title"`
	Location  string         `json:"location"`
	Target    string         `json:"target"`
	Controls  []string       `json:"controls"`
	Evidence  map[string]any `json:"evidence"`
	FirstSeen time.Time      `json:"first_seen"`
	LastSeen  time.Time      `json:"last_seen"`
	Status    string         `json:"status"`
}

func (f finding) String() string {
	ev, _ := json.Marshal(f.Evidence)
	return fmt.Sprintf("%s %s [%s/%s] %q controls=%v evidence=%s", f.Target, f.Rule, f.Category, f.Severity, f.Title, f.Controls, ev)
}

// env is what the tests share: one vigil build, one lab, one data dir and
// the first scan, so the whole package costs one lab and two scans.
var env struct {
	once     sync.Once
	skip     string // reason to skip, if the environment cannot run the lab
	err      error
	tmp      string
	vigil    string
	lab      *lab.Lab
	cfg      string
	first    *scanOutput
	firstErr error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if env.lab != nil {
		if err := env.lab.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "closing lab: %v\n", err)
			code = 1
		}
	}
	if env.tmp != "" {
		os.RemoveAll(env.tmp)
	}
	os.Exit(code)
}

// setup builds vigil and starts the lab once; it skips (or, with
// VIGIL_LAB_REQUIRED=1, fails) when the machine cannot run the lab.
func setup(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping end-to-end lab scan in -short mode: it builds vigil and scans for minutes")
	}
	env.once.Do(func() {
		if err := lab.Check(); err != nil {
			env.skip = err.Error()
			return
		}
		if _, err := exec.LookPath("nmap"); err != nil {
			env.skip = "nmap is not installed: run scripts/install-deps.sh"
			return
		}
		var err error
		if env.tmp, err = os.MkdirTemp("", "vigil-integration-"); err != nil {
			env.err = err
			return
		}
		if env.vigil, err = buildVigil(t, env.tmp); err != nil {
			env.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		t0 := time.Now()
		if env.lab, err = lab.Start(ctx, lab.Options{Progress: os.Stderr}); err != nil {
			env.err = fmt.Errorf("starting lab: %w", err)
			return
		}
		t.Logf("lab up in %s", time.Since(t0).Round(100*time.Millisecond))
		env.cfg = filepath.Join(env.tmp, "vigil.yaml")
		env.err = env.lab.WriteConfig(env.cfg, filepath.Join(env.tmp, "data"))
	})
	if env.skip != "" {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("the lab is required (%s=1) but cannot run here: %s", lab.RequireEnv, env.skip)
		}
		t.Skipf("skipping end-to-end lab scan: %s", env.skip)
	}
	if env.err != nil {
		t.Fatal(env.err)
	}
}

// buildVigil compiles ./cmd/vigil into dir.
func buildVigil(t testing.TB, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "vigil")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmd/vigil")
	cmd.Dir = ".." // the module root: this package lives in integration/
	t0 := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/vigil: %v\n%s", err, b)
	}
	t.Logf("built vigil in %s", time.Since(t0).Round(100*time.Millisecond))
	return out, nil
}

// scan runs `vigil scan` in the lab's scanner namespace and decodes its JSON.
// Exit status 0 or 1 is a completed scan; 2 (or anything else) fails.
func scan(t *testing.T, name string) (*scanOutput, error) {
	t.Helper()
	out := filepath.Join(env.tmp, name+".json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := env.lab.Command(ctx, env.vigil, "scan", "--config", env.cfg, "--format", "json", "--output", out)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	t.Logf("%s: vigil scan took %s", name, time.Since(t0).Round(time.Second))
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() == 1:
	default:
		return nil, fmt.Errorf("vigil scan (%s): %v\n--- output ---\n%s", name, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("vigil scan wrote no %s: %v\n--- output ---\n%s", out, err, stderr.String())
	}
	var res scanOutput
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s is not the contract's JSON: %v\n%s", out, err, b)
	}
	if res.Scan.Complete != nil && !*res.Scan.Complete || len(res.Scan.Errors) > 0 {
		t.Logf("%s: scan reports complete=%v errors=%q", name, res.Scan.Complete != nil && *res.Scan.Complete, res.Scan.Errors)
	}
	return &res, nil
}

// firstScan runs the shared first scan once.
func firstScan(t *testing.T) *scanOutput {
	t.Helper()
	setup(t)
	if env.first == nil && env.firstErr == nil {
		env.first, env.firstErr = scan(t, "first")
	}
	if env.firstErr != nil {
		t.Fatal(env.firstErr)
	}
	return env.first
}

// hostOf returns the IP of an "IP" or "IP:PORT" target, or "" for other
// targets (segments, accounts, files).
func hostOf(target string) string {
	if h, _, err := net.SplitHostPort(target); err == nil && net.ParseIP(h) != nil {
		return h
	}
	if net.ParseIP(target) != nil {
		return target
	}
	return ""
}

func hasHIPAA(controls []string) bool {
	return slices.ContainsFunc(controls, func(c string) bool { return strings.HasPrefix(c, "hipaa:") })
}

// TestLabScan scans the lab from its guest segment and checks vigil reports
// every planted weakness, nothing on the well-configured hosts, nothing it
// cannot justify, and output in the contract's shape.
func TestLabScan(t *testing.T) {
	res := firstScan(t)
	for _, f := range res.Findings {
		t.Logf("finding: %s", f)
	}

	// The contract's shape.
	if res.Scan.ID == "" {
		t.Errorf("scan.id is empty")
	}
	if !slices.Equal(res.Scan.Locations, []string{"lab"}) {
		t.Errorf("scan.locations = %q, want [lab]", res.Scan.Locations)
	}
	if res.Scan.StartedAt.IsZero() || res.Scan.FinishedAt.Before(res.Scan.StartedAt) {
		t.Errorf("scan.started_at %s, finished_at %s", res.Scan.StartedAt, res.Scan.FinishedAt)
	}
	counts := map[string]int{}
	for _, f := range res.Findings {
		counts[f.Severity]++
		if f.ID == "" || f.Location != "lab" || f.Status != "open" || f.FirstSeen.IsZero() || f.LastSeen.IsZero() {
			t.Errorf("finding lacks id/location lab/status open/first_seen/last_seen: %s (id %q location %q status %q first_seen %s last_seen %s)",
				f, f.ID, f.Location, f.Status, f.FirstSeen, f.LastSeen)
		}
	}
	for _, sev := range []string{"critical", "high", "medium", "low", "info"} {
		got, ok := res.Summary[sev]
		if !ok {
			t.Errorf("summary has no %q count: %v", sev, res.Summary)
		}
		if got != counts[sev] {
			t.Errorf("summary.%s = %d, but %d findings have severity %s", sev, got, counts[sev], sev)
		}
	}
	for sev := range counts {
		if _, ok := res.Summary[sev]; !ok {
			t.Errorf("findings with severity %q not in summary %v", sev, res.Summary)
		}
	}

	// Recall: every planted weakness is reported, correctly labelled.
	byTarget := map[string][]finding{}
	for _, f := range res.Findings {
		byTarget[f.Target] = append(byTarget[f.Target], f)
	}
	for _, p := range planted {
		i := slices.IndexFunc(byTarget[p.target], func(f finding) bool { return f.Rule == p.rule })
		if i < 0 {
			var rules []string
			for _, f := range byTarget[p.target] {
				rules = append(rules, f.Rule)
			}
			t.Errorf("missed planted weakness: %s %s (%s); vigil's findings on %s: %v",
				p.target, p.rule, p.category, p.target, rules)
			continue
		}
		f := byTarget[p.target][i]
		if f.Category != p.category {
			t.Errorf("%s %s: category %q, want %q", p.target, p.rule, f.Category, p.category)
		}
		if !hasHIPAA(f.Controls) {
			t.Errorf("%s %s: no hipaa: control among %v", p.target, p.rule, f.Controls)
		}
	}

	// Precision: nothing on the clean hosts, nothing unjustified elsewhere.
	for _, f := range res.Findings {
		if isPlanted(f) {
			continue
		}
		if slices.Contains(cleanHosts, hostOf(f.Target)) {
			t.Errorf("false positive on a well-configured host: %s", f)
			continue
		}
		if why, ok := acceptable(f); ok {
			t.Logf("accepted extra finding (%s): %s %s", why, f.Target, f.Rule)
			continue
		}
		t.Errorf("unexpected finding (neither planted nor in alsoAcceptable): %s", f)
	}
}

func isPlanted(f finding) bool {
	return slices.ContainsFunc(planted, func(p struct{ target, rule, category string }) bool {
		return p.target == f.Target && p.rule == f.Rule
	})
}

func acceptable(f finding) (string, bool) {
	for _, a := range alsoAcceptable {
		if a.target == f.Target && (a.rule == "" || a.rule == f.Rule) && (a.category == "" || a.category == f.Category) {
			return a.why, true
		}
	}
	return "", false
}

// TestLabScanTwiceLifecycle scans again with the same data directory: the
// same weaknesses keep their ids and first_seen, and last_seen moves on.
func TestLabScanTwiceLifecycle(t *testing.T) {
	first := firstScan(t)
	time.Sleep(1100 * time.Millisecond) // timestamps may have second resolution
	second, err := scan(t, "second")
	if err != nil {
		t.Fatal(err)
	}
	if second.Scan.ID == first.Scan.ID {
		t.Errorf("both scans have id %q", first.Scan.ID)
	}
	ids := func(r *scanOutput) []string {
		var out []string
		for _, f := range r.Findings {
			out = append(out, f.ID)
		}
		sort.Strings(out)
		return out
	}
	if a, b := ids(first), ids(second); !slices.Equal(a, b) {
		t.Errorf("finding ids differ between scans of an unchanged lab:\nfirst:  %v\nsecond: %v\n%s", a, b, diffFindings(first, second))
	}
	prev := map[string]finding{}
	for _, f := range first.Findings {
		prev[f.ID] = f
	}
	for _, f := range second.Findings {
		p, ok := prev[f.ID]
		if !ok {
			continue
		}
		if !f.FirstSeen.Equal(p.FirstSeen) {
			t.Errorf("%s %s: first_seen changed from %s to %s", f.Target, f.Rule, p.FirstSeen, f.FirstSeen)
		}
		if !f.LastSeen.After(p.LastSeen) {
			t.Errorf("%s %s: last_seen %s is not later than the first scan's %s", f.Target, f.Rule, f.LastSeen, p.LastSeen)
		}
		if f.Status != "open" {
			t.Errorf("%s %s: status %q after the second scan, want open", f.Target, f.Rule, f.Status)
		}
	}
}

// diffFindings names the findings only one of two scans has.
func diffFindings(a, b *scanOutput) string {
	in := func(r *scanOutput) map[string]finding {
		m := map[string]finding{}
		for _, f := range r.Findings {
			m[f.ID] = f
		}
		return m
	}
	ma, mb := in(a), in(b)
	var s strings.Builder
	for id, f := range ma {
		if _, ok := mb[id]; !ok {
			fmt.Fprintf(&s, "only in first:  %s\n", f)
		}
	}
	for id, f := range mb {
		if _, ok := ma[id]; !ok {
			fmt.Fprintf(&s, "only in second: %s\n", f)
		}
	}
	return s.String()
}

// The lab has no flow policy and its guest segment reaches the servers: the
// matrix must say so with the services as evidence, and must call the
// direction nobody probed from "not-assessed", never compliant.
func TestLabMatrix(t *testing.T) {
	setup(t)
	res := firstScan(t)
	if len(res.Matrix) != 1 || res.Matrix[0].Location != "lab" {
		t.Fatalf("matrix = %+v, want one for location lab", res.Matrix)
	}
	m := res.Matrix[0]
	if !slices.Equal(m.Vantages, []string{"guest"}) {
		t.Errorf("vantages = %v, want [guest]", m.Vantages)
	}
	status := map[string]string{}
	reached := map[string]int{}
	for _, c := range m.Cells {
		status[c.From+"->"+c.To] = c.Status
		reached[c.From+"->"+c.To] = len(c.Reached)
	}
	if status["guest->servers"] != "reachable-against-policy" || reached["guest->servers"] < 10 {
		t.Errorf("guest->servers: %q with %d services reached; want reachable-against-policy with every lab service", status["guest->servers"], reached["guest->servers"])
	}
	if status["servers->guest"] != "not-assessed" {
		t.Errorf("servers->guest: %q, want not-assessed (no vantage in servers)", status["servers->guest"])
	}
	var flat *finding
	for i := range res.Findings {
		if res.Findings[i].Target == "guest->servers" {
			flat = &res.Findings[i]
		}
	}
	if flat == nil || flat.Category != "flat-network" || flat.Severity != "critical" || !hasHIPAA(flat.Controls) {
		t.Fatalf("want a critical flat-network finding guest->servers with HIPAA controls, got %+v", flat)
	}
	if ev, _ := flat.Evidence["reachable_against_policy"].([]any); len(ev) < 10 {
		t.Errorf("the finding's evidence lists %d services, want the lab's services", len(ev))
	}
}
