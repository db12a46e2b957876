// Command samples regenerates docs/samples: each report kind in HTML, PDF
// and CSV over a seeded six-clinic year of weekly scans
// (reports/internal/demodata), on a fixed clock so the files only change
// when the reports do.
//
//	go run ./reports/cmd/samples [-out docs/samples] [-keep DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/reports"
	"github.com/vigilhq/vigil/reports/internal/demodata"
)

func main() {
	out := flag.String("out", "docs/samples", "directory to write the samples to")
	keep := flag.String("keep", "", "seed the store into DIR and keep it (default: a temporary directory)")
	flag.Parse()
	if err := run(*out, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "samples:", err)
		os.Exit(1)
	}
}

func run(out, keep string) error {
	ctx := context.Background()
	dir := keep
	if dir == "" {
		tmp, err := os.MkdirTemp("", "vigil-samples-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	end := time.Date(2026, 3, 30, 2, 0, 0, 0, time.UTC)
	ds, err := demodata.Seed(ctx, dir, demodata.Options{Locations: 6, Weeks: 52, End: end, Seed: 1})
	if err != nil {
		return err
	}
	defer ds.Store.Close()
	asOf := time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
	facts, err := reports.Build(ctx, ds.Store, reports.BuildInput{
		Posture:  posture.Input{Config: ds.Config, Catalog: ds.Engine.Catalog(), Rules: ds.Engine.Rules(), Now: asOf},
		Evidence: ds.Store.Evidence(), Generated: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC), Version: "sample"})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, kind := range reports.Kinds() {
		g, _ := reports.GeneratorFor(kind)
		doc, err := g.Generate(facts)
		if err != nil {
			return err
		}
		for _, format := range []string{"html", "pdf", "csv"} {
			w, _ := reports.DocumentWriterFor(format)
			path := filepath.Join(out, kind+"."+format)
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			err = w.WriteDocument(f, doc)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Println("wrote", path)
		}
	}
	return nil
}
