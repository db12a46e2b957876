package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store/storetest"
)

func benchFindings(n int) []observe.Finding {
	fs := make([]observe.Finding, n)
	for i := range fs {
		fs[i] = finding("bench.rule", "exposed-service", observe.Severities[i%5], "downtown",
			fmt.Sprintf("10.10.%d.%d:3389", i/250, i%250))
	}
	return fs
}

// BenchmarkFinishScan reconciles a scan of 2000 findings against 2000 stored
// ones: a tenth are new, a tenth are gone (resolved), the rest seen again.
func BenchmarkFinishScan(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "vigil.db"))
	ctx := context.Background()
	all := benchFindings(2200)
	scan := func(i int) observe.Scan {
		return observe.Scan{ID: fmt.Sprintf("s%d", i), StartedAt: at(i), FinishedAt: at(i), Locations: []string{"downtown"}, Complete: true}
	}
	if _, _, err := s.FinishScan(ctx, scan(0), all[:2000]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Alternate which 200 are missing so every scan resolves and reopens some.
		fs := all[200:]
		if i%2 == 1 {
			fs = all[:2000]
		}
		if _, _, err := s.FinishScan(ctx, scan(i+1), fs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddObservations stores 10,000 observations in one call.
func BenchmarkAddObservations(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "vigil.db"))
	ctx := context.Background()
	obs := make([]observe.Observation, 10000)
	for i := range obs {
		obs[i] = observe.Observation{Kind: observe.KindService, Location: "downtown", Segment: "clinical", Vantage: "front-desk",
			Host: fmt.Sprintf("10.10.%d.%d", i/250, i%250), Port: 443, Proto: "tcp", Source: "nmap", At: base.Add(time.Duration(i)),
			Attrs: map[string]any{"service": "https", "product": "nginx", "version": "1.24.0"}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("s%d", i)
		if err := s.BeginScan(ctx, observe.Scan{ID: id, StartedAt: at(i)}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.AddObservations(ctx, id, obs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAgentIngest: 100 agents push scans at once (begin, 130
// observations, finish with 30 findings); see storetest.BenchAgentIngest.
func BenchmarkAgentIngest(b *testing.B) { storetest.BenchAgentIngest(b, harness, 100) }
