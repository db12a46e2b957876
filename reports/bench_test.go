package reports

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/reports/internal/demodata"
)

// BenchmarkOCRPackPDF: the OCR pack for 50 locations with a year of weekly
// scans, from the store to PDF bytes (facts as of the date, the pack, the
// layout). The budget is 10 s.
func BenchmarkOCRPackPDF(b *testing.B) {
	ctx := context.Background()
	ds, err := demodata.Seed(ctx, b.TempDir(), demodata.Options{Locations: 50, Weeks: 52, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Store.Close()
	asOf := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for b.Loop() {
		f, err := Build(ctx, ds.Store, BuildInput{Posture: posture.Input{Config: ds.Config, Catalog: ds.Engine.Catalog(),
			Rules: ds.Engine.Rules(), Now: asOf}, Evidence: ds.Store.Evidence(), Generated: asOf, Version: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		d, err := OCRPack{}.Generate(f)
		if err != nil {
			b.Fatal(err)
		}
		cw := &byteCounter{}
		pages, err := RenderPDF(cw, d)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(pages), "pages")
		b.ReportMetric(float64(cw.n), "pdf-bytes")
	}
}

type byteCounter struct{ n int }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var _ io.Writer = (*byteCounter)(nil)
