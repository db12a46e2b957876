package evidence

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// genLog generates a log of n entries the way a busy store writes one,
// without holding it in memory: scans of batchLen entries (an
// observations entry of obsPerScan rows, a scan entry, finding events of
// realistic size), each batch checkpointed at its end and every
// CheckpointEvery entries.
type genLog struct {
	n, batchLen, obsPerScan int64
	key                     *Key
	cps                     []Checkpoint // filled by the first full walk
}

func (g *genLog) scanID(batch int64) string { return fmt.Sprintf("scan-%08d", batch) }

func (g *genLog) rows(batch int64) []ObservationRow {
	rows := make([]ObservationRow, g.obsPerScan)
	at := FormatTime(t0.Add(time.Duration(batch) * time.Hour))
	for i := range rows {
		attrs := fmt.Sprintf(`{"product":"nginx","service":"https","version":"1.24.%d"}`, i)
		rows[i] = ObservationRow{ScanID: g.scanID(batch), Seq: int64(i), Kind: "service", Location: "downtown", Segment: "clinical",
			SegmentRole: "clinical", Vantage: "front-desk", VantageRole: "front-desk", Host: fmt.Sprintf("10.10.%d.%d", i/250, i%250),
			Port: 443, Proto: "tcp", Source: "nmap", ObservedAt: at, Attrs: &attrs}
	}
	return rows
}

// walk calls fn for every entry in order.
func (g *genLog) walk(fn func(e *Entry) error) error {
	var head Head
	record := g.cps == nil
	for batch := int64(0); head.Seq < g.n; batch++ {
		at := t0.Add(time.Duration(batch) * time.Hour)
		recs := make([]Record, 0, g.batchLen)
		if batch == 0 {
			recs = append(recs, KeyRecord(g.key.Public()))
		}
		obs, err := ObservationRecords(g.scanID(batch), g.rows(batch))
		if err != nil {
			return err
		}
		recs = append(recs, obs...)
		scan, _ := json.Marshal(map[string]any{"scan_id": g.scanID(batch), "complete": true, "locations": []string{"downtown"}})
		recs = append(recs, Record{Kind: KindScan, Subject: g.scanID(batch), Payload: scan})
		for i := int64(len(recs)); i < g.batchLen && head.Seq+i < g.n; i++ {
			id := fmt.Sprintf("%016x", i*7919)
			p, _ := json.Marshal(map[string]string{"finding_id": id, "event": "seen", "at": FormatTime(at), "scan_id": g.scanID(batch),
				"status": "open", "rule": "tls.v1.0-accepted", "category": "weak-tls", "severity": "medium", "location": "downtown",
				"target": fmt.Sprintf("10.10.%d.%d:443", i/250, i%250)})
			recs = append(recs, Record{Kind: KindFindingEvent, Subject: id, Payload: p})
		}
		if rest := g.n - head.Seq; int64(len(recs)) > rest {
			recs = recs[:rest]
		}
		es := Link(head, at, recs)
		if record {
			g.cps = append(g.cps, g.key.CheckpointBatch(es, at)...)
		}
		for i := range es {
			if err := fn(&es[i]); err != nil {
				return err
			}
		}
		head = Head{Seq: es[len(es)-1].Seq, Hash: es[len(es)-1].Hash}
	}
	return nil
}

func (g *genLog) EvidenceHead(context.Context) (int64, error)                  { return g.n, nil }
func (g *genLog) EvidenceFirstSince(context.Context, time.Time) (int64, error) { return 1, nil }
func (g *genLog) EvidenceLastKey(context.Context, int64) (*Entry, error) {
	return &Link(Head{}, t0, []Record{KeyRecord(g.key.Public())})[0], nil
}
func (g *genLog) EvidenceCheckpoints(_ context.Context, _, _ int64, fn func(*Checkpoint) error) error {
	for i := range g.cps {
		if err := fn(&g.cps[i]); err != nil {
			return err
		}
	}
	return nil
}

func (g *genLog) EvidenceEntries(_ context.Context, _, _ int64, kind Kind, fn func(*Entry) error) error {
	return g.walk(func(e *Entry) error {
		if kind != "" && e.Kind != kind {
			return nil
		}
		return fn(e)
	})
}

func (g *genLog) EvidenceObservations(_ context.Context, scan string, first int64, count int, fn func(*ObservationRow) error) error {
	var batch int64
	fmt.Sscanf(scan, "scan-%d", &batch)
	rows := g.rows(batch)[first : first+int64(count)]
	for i := range rows {
		if err := fn(&rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkVerify1M verifies an export of 1,000,000 entries: 2,000 scans of
// 500 entries (100 observations each, so 200,000 observations), 2,000
// checkpoints. The archive is built once, before the timer starts.
//
//	go test ./evidence -run '^$' -bench Verify1M -benchtime 1x -cpu 1
func BenchmarkVerify1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "evidence-1m.zip")
	g := &genLog{n: 1_000_000, batchLen: 500, obsPerScan: 100, key: testKey(b, 1)}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := Export(context.Background(), f, g, g.key, ExportOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	b.Logf("built a %d-entry archive of %.1f MB in %s", g.n, float64(fi.Size())/1e6, time.Since(start).Round(time.Millisecond))

	b.ResetTimer()
	var sum *Summary
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if sum, err = VerifyArchive(context.Background(), f, fi.Size(), VerifyOptions{Key: g.key.Public()}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	if sum.Entries != g.n || sum.Checkpoints != int64(len(g.cps)) {
		b.Fatalf("verified %d entries, %d checkpoints; want %d, %d", sum.Entries, sum.Checkpoints, g.n, len(g.cps))
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(g.n)/perOp, "entries/s")
	b.ReportMetric(perOp, "s/verify")
}
