package scanrun

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

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
