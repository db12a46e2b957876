package scanrun

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store/sqlite"
)

// The daemon shares one rules.Engine between the scans it runs at once:
// Evaluate and Segmentation must be safe to call concurrently and give
// each caller the findings of its own observations. Run with -race.
func TestEngineConcurrentEvaluate(t *testing.T) {
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	batch := func(loc string, n int) []observe.Observation {
		var out []observe.Observation
		for i := range n {
			o := telnet(fmt.Sprintf("10.0.%d.%d", len(loc), i+1))
			o.Location = loc
			out = append(out, o)
		}
		return out
	}
	want := map[string]int{"a": 40, "bb": 25}
	policy := rules.SegmentPolicy{Location: "a", Segments: []string{"s"}, Roles: map[string]string{"s": "servers"}, RemoteRoles: map[string]string{}}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for round := range 8 {
		for loc, n := range want {
			wg.Add(1)
			go func() {
				defer wg.Done()
				obs := batch(loc, n)
				got := eng.Evaluate(obs, now)
				eng.Segmentation(policy, obs, now)
				if len(got) != n {
					errs <- fmt.Sprintf("round %d location %s: %d findings, want %d", round, loc, len(got), n)
					return
				}
				for _, f := range got {
					if f.Location != loc || f.Rule != "svc.telnet-plaintext" {
						errs <- fmt.Sprintf("round %d location %s: got %s at %s", round, loc, f.Rule, f.Location)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// OnPhase hears the phases a run goes through, in order, and only those
// it has something for.
func TestRunPhases(t *testing.T) {
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
	cases := []struct {
		name string
		run  Run
		want []string
	}{
		{"network", Run{Scanner: &fakeScanner{obs: []observe.Observation{telnet("10.0.0.5")}}},
			[]string{PhaseNetwork, PhaseSegmentation, PhaseRules, PhaseStore}},
		{"segmentation only", Run{Scanner: &fakeScanner{}, SegmentationOnly: true},
			[]string{PhaseSegmentation, PhaseRules, PhaseStore}},
		{"sources only", Run{SkipNetwork: true, Sources: []collectors.Collector{failingSource{}}},
			[]string{PhaseSources, PhaseRules, PhaseStore}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu  sync.Mutex
				got []string
			)
			r := tc.run
			r.Config, r.Rules, r.Store, r.Logger = cfg, eng, st, slog.New(slog.NewTextHandler(io.Discard, nil))
			r.OnPhase = func(p string) { mu.Lock(); got = append(got, p); mu.Unlock() }
			if _, err := r.Do(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("phases %v, want %v", got, tc.want)
			}
		})
	}
}
