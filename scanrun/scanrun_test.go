package scanrun

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/csvidentity"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/scanner"
	"github.com/vigilhq/vigil/store/sqlite"
)

// fakeScanner returns canned observations, standing in for the network.
type fakeScanner struct {
	obs    []observe.Observation
	errors []string
}

func (f *fakeScanner) ScanLocation(_ context.Context, loc *config.Location) scanner.LocationResult {
	return scanner.LocationResult{Location: loc.ID, Observations: f.obs, Errors: f.errors, Complete: len(f.errors) == 0}
}

func (f *fakeScanner) Reach(context.Context, *config.Location, []observe.Observation) scanner.ReachResult {
	return scanner.ReachResult{}
}

func telnet(host string) observe.Observation {
	return observe.Observation{Kind: observe.KindService, Location: "a", Host: host, Port: 23, Proto: "tcp", Source: "nmap",
		At: time.Now(), Attrs: map[string]any{"service": "telnet"}}
}

// A finding stays open through an incomplete scan that did not see it, and
// is resolved only by a complete one.
func TestLifecycleAcrossRuns(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte("organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: servers}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs := &fakeScanner{}
	run := func() *Result {
		r := &Run{Config: cfg, Scanner: fs, Rules: eng, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"}
		res, err := r.Do(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	fs.obs = []observe.Observation{telnet("10.0.0.5")}
	first := run()
	if len(first.Findings) != 1 || first.Findings[0].Rule != "svc.telnet-plaintext" || !first.Scan.Complete {
		t.Fatalf("first scan: %+v", first)
	}
	fs.obs, fs.errors = nil, []string{"nmap: host 10.0.0.5 hit scan.host_timeout"}
	second := run()
	if second.Scan.Complete || len(second.Resolved) != 0 {
		t.Fatalf("an incomplete scan resolved %d finding(s)", len(second.Resolved))
	}
	fs.errors = nil
	third := run()
	if !third.Scan.Complete || len(third.Resolved) != 1 || third.Resolved[0].ID != first.Findings[0].ID {
		t.Fatalf("a complete scan that no longer sees the finding must resolve it: resolved %+v", third.Resolved)
	}
}

func TestInterruptedRunScansNothingMore(t *testing.T) {
	cfg, _ := config.Parse("t.yaml", []byte("organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: servers}]}, {id: b, segments: [{name: s, cidr: 10.0.1.0/24, role: servers}]}]\n"))
	eng, _ := rules.Load(rules.Options{})
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Run{Config: cfg, Scanner: &fakeScanner{obs: []observe.Observation{telnet("10.0.0.5")}}, Rules: eng, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res, err := r.Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Scan.Complete || len(res.Scan.Errors) != 2 {
		t.Fatalf("cancelled run: interrupted=%v complete=%v errors=%v", res.Interrupted, res.Scan.Complete, res.Scan.Errors)
	}
	scans, _ := st.Scans(context.Background(), 5)
	if len(scans) != 1 || scans[0].Complete {
		t.Fatalf("stored scans: %+v", scans)
	}
}

func TestSelectUnknownLocation(t *testing.T) {
	cfg, _ := config.Parse("t.yaml", []byte("organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: servers}]}]\n"))
	if _, err := Select(cfg, []string{"zz"}); err == nil {
		t.Fatal("unknown location accepted")
	}
}

// failingSource stands in for a directory that refused the bind.
type failingSource struct{}

func (failingSource) Name() string { return "ldap:ad" }
func (failingSource) Collect(context.Context) ([]observe.Observation, error) {
	return nil, errors.New("ldap:ad: bind refused: wrong bind DN or password")
}

// Account findings come from the sources a run reads, are judged against
// the roster, and are resolved only when their source was read in full.
func TestIdentitySourcesAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	emr := filepath.Join(dir, "emr.csv")
	roster := filepath.Join(dir, "staff.csv")
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(roster, "email,username\njane@glow.example,jane\n")
	write(emr, "username,email,mfa,last_login\njane,jane@glow.example,false,2025-03-01\nmallory,,true,2025-03-01\n")
	cfg, err := config.Parse(filepath.Join(dir, "vigil.yaml"), []byte(`organization: T
locations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: servers}]}]
identity: [{type: csv, system: emr, path: emr.csv}]
roster: staff.csv
`))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	fs := &fakeScanner{obs: []observe.Observation{telnet("10.0.0.5")}}
	run := func(skipNetwork bool, sources ...collectors.Collector) *Result {
		t.Helper()
		now = now.Add(time.Hour)
		r := &Run{Config: cfg, Scanner: fs, Rules: eng, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Version: "test", Sources: sources, SkipNetwork: skipNetwork, Now: func() time.Time { return now }}
		res, err := r.Do(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	csv := csvidentity.Source{Config: cfg.Identity[0], Now: func() time.Time { return now }}
	open := func(res *Result) []string {
		var out []string
		for _, f := range res.Findings {
			out = append(out, f.Rule+" "+f.Target)
		}
		sort.Strings(out)
		return out
	}
	res := run(false, csv, failingSource{})
	want := []string{"id.leaver-account emr:mallory", "id.no-mfa emr:jane", "svc.telnet-plaintext 10.0.0.5:23"}
	if got := open(res); !slices.Equal(got, want) {
		t.Fatalf("first run: %v, want %v", got, want)
	}
	if !slices.Equal(res.Scan.Sources, []string{"csv:emr"}) || len(res.Scan.SourceErrors) != 1 || !res.Scan.Complete {
		t.Errorf("scan sources %v, source errors %v, complete %v", res.Scan.Sources, res.Scan.SourceErrors, res.Scan.Complete)
	}
	for _, f := range res.Findings {
		if f.Rule == "id.no-mfa" && (f.Location != "" || f.Vantage != "csv:emr") {
			t.Errorf("account finding location %q vantage %q, want none and csv:emr", f.Location, f.Vantage)
		}
	}

	// Jane enrolls in MFA, Mallory goes; an identity-only run resolves
	// both account findings and leaves the network finding alone.
	write(emr, "username,email,mfa,last_login\njane,jane@glow.example,true,2025-03-01\n")
	res = run(true, csv)
	if len(res.Findings) != 0 || len(res.Resolved) != 2 {
		t.Errorf("identity-only run: findings %v, resolved %d, want none and 2", open(res), len(res.Resolved))
	}
	for _, f := range res.Resolved {
		if f.Category == "plaintext-protocol" {
			t.Errorf("identity-only run resolved %s", f.Rule)
		}
	}

	// A broken roster: nobody can be cleared of being a leaver, so the
	// source does not count as read and nothing of it is resolved.
	write(emr, "username,email,mfa,last_login\njane,jane@glow.example,true,2025-03-01\nmallory,,true,2025-03-01\n")
	run(true, csv)
	write(emr, "username,email,mfa,last_login\njane,jane@glow.example,true,2025-03-01\n")
	write(roster, "nothing,useful\n1,2\n")
	res = run(true, csv)
	if len(res.Resolved) != 0 || len(res.Scan.Sources) != 0 || len(res.Scan.SourceErrors) != 1 {
		t.Errorf("broken roster: resolved %d, sources %v, errors %v", len(res.Resolved), res.Scan.Sources, res.Scan.SourceErrors)
	}
}
