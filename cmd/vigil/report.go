package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/reports"
	"github.com/vigilhq/vigil/rules"
)

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report", "report --config FILE --kind ocr|insurance|diligence [--format html|pdf|csv|json] --output FILE [--as-of DATE] [--since-pack FILE] [--db URL]\n\n"+
		"Writes a document from the store, as it stood at --as-of (default now), so a pack can be\n"+
		"generated again later with the same content:\n"+
		"  ocr        HIPAA audit pack: risk analysis, register, traceability, Security Rule status,\n"+
		"             attestations, changes since the previous pack, evidence appendix\n"+
		"  insurance  cyber-insurance questionnaire answered Yes/No/Partially/Unknown with evidence\n"+
		"  diligence  one-page due-diligence summary across all locations\n"+
		"--format defaults to the --output extension (.html .pdf .csv .json), else html. The store is\n"+
		"opened read-only. Who generated what (user, host, kind, as-of, output SHA-256) is logged to\n"+
		"stderr. See docs/reports.md.\n\n"+
		"Exit codes: 0 written; 2 could not write it.",
		"vigil report --config vigil.yaml --kind ocr --format pdf --output ocr-2026-03.pdf --as-of 2026-03-31", stderr)
	var (
		cfgPath   = fs.String("config", "", "configuration file (required)")
		kind      = fs.String("kind", "", "report kind: "+strings.Join(reports.Kinds(), ", ")+" (required)")
		format    = fs.String("format", "", "output format: "+strings.Join(reports.DocumentFormats(), ", ")+" (default: from --output's extension, else html)")
		output    = fs.String("output", "", "file to write (required)")
		asOfFlag  = fs.String("as-of", "", "report the store as it stood at DATE (YYYY-MM-DD: the end of that day, UTC; or RFC 3339)")
		sincePack = fs.String("since-pack", "", "ocr: the JSON of a previous pack to list changes against (default: the state a month before --as-of)")
		db        = fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db)")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil report")
	switch {
	case *cfgPath == "":
		return fail("--config is required (see `vigil report --help`)")
	case *kind == "":
		return fail("--kind is required: %s", strings.Join(reports.Kinds(), ", "))
	case *output == "":
		return fail("--output is required (see `vigil report --help`)")
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if _, err := reports.GeneratorFor(*kind); err != nil {
		return fail("--kind: %v", err)
	}
	if *format == "" {
		*format = strings.TrimPrefix(strings.ToLower(filepath.Ext(*output)), ".")
		if _, err := reports.DocumentWriterFor(*format); err != nil {
			*format = "html"
		}
	}
	if _, err := reports.DocumentWriterFor(*format); err != nil {
		return fail("--format: %v", err)
	}
	now := time.Now()
	asOf := now
	var err error
	if *asOfFlag != "" {
		if asOf, err = parseAsOf(*asOfFlag); err != nil {
			return fail("--as-of: %v", err)
		}
		if asOf.After(now) {
			return fail("--as-of %s is in the future", *asOfFlag)
		}
	}
	var prev *reports.PackState
	if *sincePack != "" {
		f, err := os.Open(*sincePack)
		if err != nil {
			return fail("--since-pack: %v", err)
		}
		prev, err = reports.ReadPackState(f)
		f.Close()
		if err != nil {
			return fail("--since-pack %s: %v", *sincePack, err)
		}
	}

	cfg := loadConfig(*cfgPath, "vigil report", stderr)
	if cfg == nil {
		return exitError
	}
	engine, err := rules.Load(rules.Options{Dirs: cfg.Rules.Dirs, Disable: cfg.Rules.Disable})
	if err != nil {
		return fail("rules:\n%v", err)
	}
	st, err := openReadStore(ctx, cfg, *db)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()
	src, in, err := reportInput(ctx, cfg, engine, st, asOf, func(err error) {
		fmt.Fprintf(stderr, "vigil report: roster: %v (row skipped)\n", err)
	})
	if err != nil {
		return fail("%v", err)
	}
	in.Previous, in.Generated = prev, now
	doc, err := reports.Make(ctx, src, *kind, in)
	if err != nil {
		return fail("%v", err)
	}
	out, err := reports.WriteFile(*output, *format, doc, 0o600)
	if err != nil {
		return fail("--output: %v", err)
	}
	sum, size := out.SHA256, out.Bytes
	// Who took which document of the organisation's posture is worth a
	// record, as for evidence exports; the dashboard logs its downloads.
	recordCopy(stderr, "report generated", "kind", doc.Kind, "format", strings.ToLower(*format),
		"as_of", asOf.UTC().Format(time.RFC3339), "output", absDir(*output), "sha256", sum, "bytes", size,
		"organization", cfg.Organization)
	fmt.Fprintf(stdout, "wrote %s (%s %s as of %s, %d bytes, sha256 %s)\n", *output, doc.Kind, strings.ToLower(*format),
		asOf.UTC().Format(time.DateOnly), size, sum)
	return exitOK
}

// parseAsOf reads --as-of: a day means the end of it (UTC), so that the
// day's scans and decisions are in; RFC 3339 is taken as it is.
func parseAsOf(s string) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d.Add(24*time.Hour - time.Nanosecond), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: use YYYY-MM-DD or RFC 3339 (2026-03-31T23:59:59Z)", s)
	}
	return t, nil
}

// reportInput is what a report of cfg's organisation is made from, as
// vigil report and vigil serve's scheduled reports make it: the store
// (st must be a reports.Source), its evidence log, and the posture input
// with engine's rules and the roster's people, as of asOf. Roster rows
// that cannot be read are passed to skipped.
func reportInput(ctx context.Context, cfg *config.Config, engine *rules.Engine, st any, asOf time.Time, skipped func(error)) (reports.Source, reports.BuildInput, error) {
	src, ok := st.(reports.Source)
	if !ok {
		return nil, reports.BuildInput{}, errors.New("this store cannot produce reports (it lacks finding events or evidence references)")
	}
	in := reports.BuildInput{Version: version,
		Posture: posture.Input{Config: cfg, Catalog: engine.Catalog(), Rules: engine.Rules(), Now: asOf}}
	if e, ok := st.(interface{ Evidence() evidence.Source }); ok {
		in.Evidence = e.Evidence()
	}
	if cfg.Roster != "" {
		ro, rowErrs, err := csvidentity.LoadRoster(ctx, cfg.Roster)
		for _, e := range rowErrs {
			skipped(e)
		}
		if err != nil {
			return nil, reports.BuildInput{}, err
		}
		for _, m := range ro.Staff {
			in.Posture.People = append(in.Posture.People, attest.Person{Email: m.Email, Username: m.Username, Name: m.Name,
				Locations: m.Locations, Hired: m.StartDate, Left: m.EndDate})
		}
	}
	return src, in, nil
}
