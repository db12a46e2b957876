package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// Sizes of one agent scan in BenchAgentIngest, close to what
// vigil-agentload's synthetic sites push: one observations batch of about
// 130 observations, a few dozen findings.
const (
	benchObsPerScan      = 130
	benchFindingsPerScan = 30
)

// BenchAgentIngest measures the store's side of agent ingest: agents
// agents, each on its own location, push scans concurrently as three
// batches (begin, observations, finish with findings), as agentsrv
// stores them. One b.N is one scan; it reports observations/s. The store
// signs its evidence log, as vigil serve's does.
func BenchAgentIngest(b *testing.B, h Harness, agents int) {
	key, err := evidence.NewKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	s := h.open(b, h.New(b), WithEvidenceKey(key))
	ctx := context.Background()
	ids := make([]string, agents)
	for i := range ids {
		hash := fmt.Sprintf("bench-token-%d", i)
		if err := s.CreateEnrollToken(ctx, store.EnrollToken{Hash: hash, Location: fmt.Sprintf("site-%03d", i), CreatedBy: "bench",
			ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		a, err := s.EnrollAgent(ctx, hash, store.Agent{Hostname: "sensor", PublicKey: make([]byte, 32)})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.ID
	}
	var (
		next   atomic.Int64 // agent index handed to each worker
		scans  atomic.Int64
		failed atomic.Value
	)
	b.SetParallelism(max(1, (agents+3)/4)) // GOMAXPROCS × this goroutines, about one per agent
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % agents
		agent, loc := ids[i], fmt.Sprintf("site-%03d", i)
		for pb.Next() {
			n := scans.Add(1)
			if err := benchScan(ctx, s, agent, loc, n); err != nil {
				failed.CompareAndSwap(nil, err)
				return
			}
		}
	})
	el := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(scans.Load()*benchObsPerScan)/el.Seconds(), "obs/s")
}

// benchScan pushes scan n of the agent at loc.
func benchScan(ctx context.Context, s Backend, agent, loc string, n int64) error {
	scanID := fmt.Sprintf("%s-scan-%d", loc, n)
	t := base.Add(time.Duration(n) * time.Minute)
	scan := observe.Scan{ID: scanID, StartedAt: t, Locations: []string{loc}, Version: "bench"}
	if dup, err := s.BeginAgentScan(ctx, agent, scanID+"-b", scan); err != nil || dup {
		return fmt.Errorf("begin %s: dup %v, %w", scanID, dup, err)
	}
	obs := make([]observe.Observation, benchObsPerScan)
	for i := range obs {
		obs[i] = observe.Observation{Kind: observe.KindService, Location: loc, Segment: "servers", SegmentRole: "servers",
			Host: fmt.Sprintf("10.%d.%d.%d", n%200, i/25, i%25), Port: 443 + i%7, Proto: "tcp", Source: "nmap", At: t,
			Attrs: map[string]any{"service": "https", "product": "nginx", "version": "1.24.0"}}
	}
	if dup, err := s.AddAgentObservations(ctx, agent, scanID+"-o", scanID, obs); err != nil || dup {
		return fmt.Errorf("observations %s: dup %v, %w", scanID, dup, err)
	}
	fs := make([]observe.Finding, benchFindingsPerScan)
	for i := range fs {
		fs[i] = finding("bench.rule", observe.Categories[1], observe.Severities[i%5], loc, fmt.Sprintf("10.0.%d.%d:3389", i/25, i%25))
	}
	scan.FinishedAt, scan.Complete = t.Add(time.Second), true
	if _, _, dup, err := s.FinishAgentScan(ctx, agent, scanID+"-f", scan, fs); err != nil || dup {
		return fmt.Errorf("finish %s: dup %v, %w", scanID, dup, err)
	}
	return nil
}
