package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/sources"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/internal/termui"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/reports"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/scanner"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/postgres"
	"github.com/vigilhq/vigil/store/sqlite"
)

func runScan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("scan",
		"scan --config FILE [--location ID]... [--format json|sarif|junit|text] [--output FILE] [--fail-on SEVERITY] [--baseline FILE]",
		"vigil scan --config vigil.yaml --location downtown --format sarif --output vigil.sarif --fail-on high",
		stderr)
	var (
		cfgPath  = fs.String("config", "", "configuration file (required)")
		format   = fs.String("format", "text", "output format: "+strings.Join(reports.Formats(), ", "))
		output   = fs.String("output", "", "write the report to FILE instead of standard output")
		failOn   = fs.String("fail-on", "high", "exit 1 when an open finding is at or above this severity (critical, high, medium, low, info)")
		baseline = fs.String("baseline", "", "a previous `--format json` output: only findings not in it count for --fail-on")
		db       = fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db)")
		vantage  = fs.String("vantage", "", "the segment this sensor probes from (default: detected from local addresses)")
		dryRun   = fs.Bool("dry-run", false, "print what would be scanned (targets, ports, nmap command) and send nothing")
		only     = fs.String("only", "", "run only one part of the scan: network (hosts, services, checks and the segmentation test), segmentation (host discovery and reach probes from each vantage point; resolves only flat-network findings), identity (the identity sources and roster), software (osv-scanner over the software paths), telegraf (the telegraf inputs)")
		quiet    = fs.Bool("quiet", false, "no progress on stderr")
		verbose  = fs.Bool("verbose", false, "debug logging on stderr")
		locs     multiFlag
	)
	fs.Var(&locs, "location", "scan only this location id (repeatable; default all)")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil scan")
	if *cfgPath == "" {
		return fail("--config is required (see `vigil scan --help`)")
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (flags go before nothing else; see --help)", fs.Arg(0))
	}
	cfg := loadConfig(*cfgPath, "vigil scan", stderr)
	if cfg == nil {
		return exitError
	}
	writer, err := reports.WriterFor(*format)
	if err != nil {
		return fail("%v", err)
	}
	threshold := observe.Severity(strings.ToLower(*failOn))
	if !threshold.Valid() {
		return fail("--fail-on %q: use critical, high, medium, low or info", *failOn)
	}
	parts := []string{"network", "segmentation", sources.PartIdentity, sources.PartSoftware, sources.PartTelegraf}
	if *only != "" && !slices.Contains(parts, *only) {
		return fail("--only %q: use one of %s", *only, strings.Join(parts, ", "))
	}
	srcs, err := sources.FromConfig(cfg)
	if err != nil {
		return fail("%s: %v", *cfgPath, err)
	}
	// A location its site agents scan (scanned_by: agent) is left to
	// them, with its telegraf inputs, unless named with --location: then
	// this machine is taken to be at the site.
	var agentLocs []string
	if len(locs) == 0 {
		for _, l := range cfg.Locations {
			if l.ByAgent() {
				agentLocs = append(agentLocs, l.ID)
			} else {
				locs = append(locs, l.ID)
			}
		}
	}
	all := srcs
	srcs = sources.ServerSide(srcs, locs...)
	var collect []collectors.Collector
	switch *only {
	case "":
		collect = sources.Select(srcs)
	case sources.PartIdentity, sources.PartSoftware, sources.PartTelegraf:
		collect = sources.Select(srcs, *only)
		if len(collect) == 0 {
			why, onAgent := sources.NoneOf(all, *only)
			if onAgent {
				why += " (name its location with --location to read it from this machine)"
			}
			return fail("--only %s: %s", *only, why)
		}
	}
	network := *only == "" || *only == "network" || *only == "segmentation"
	if len(agentLocs) > 0 && network {
		if len(locs) == 0 && *only != "" {
			return fail("--only %s: every location is scanned by its site agents (scanned_by: agent); name one with --location to scan it from this machine", *only)
		}
		if !*quiet {
			fmt.Fprintf(stderr, "note: not scanning %s: scanned by site agents (scanned_by: agent); name one with --location to scan it from this machine\n", strings.Join(agentLocs, ", "))
		}
		if len(locs) == 0 {
			network = false // only the sources are left to read
			if len(collect) == 0 {
				return fail("nothing to scan: every location is scanned by its site agents and the configuration has no identity, software or telegraf source (name a location with --location to scan it from this machine)")
			}
		}
	}
	var base map[string]bool
	if *baseline != "" {
		if base, err = reports.LoadBaseline(*baseline); err != nil {
			return fail("--baseline: %v", err)
		}
	}
	locations, err := scanrun.Select(cfg, locs)
	if err != nil {
		return fail("--location: %v", err)
	}
	if *vantage != "" {
		for _, l := range locations {
			if _, ok := l.Segment(*vantage); !ok {
				return fail("--vantage %q: location %q has no such segment (use --location to pick locations that have it)", *vantage, l.ID)
			}
		}
	}
	if *output != "" {
		if err := checkWritable(*output); err != nil {
			return fail("--output: %v", err)
		}
	}
	engine, err := rules.Load(rules.Options{Dirs: cfg.Rules.Dirs, Disable: cfg.Rules.Disable})
	if err != nil {
		return fail("rules:\n%v", err)
	}
	log := newLogger(stderr, *verbose)
	var prog *termui.Progress
	if !*quiet {
		prog = termui.New(stderr)
	}
	var sc *scanner.Scanner
	if network {
		sc, err = scanner.New(ctx, scanner.Options{
			Config: cfg, Logger: log, Vantage: *vantage,
			Progress: func(e scanner.Event) {
				if prog != nil {
					prog.Event(e)
				}
			},
		})
		if err != nil {
			return fail("%v", err)
		}
	}
	if *dryRun {
		if network {
			if code := printPlan(stdout, sc, locations); code != exitOK {
				return code
			}
		}
		printSources(stdout, collect, cfg)
		return exitOK
	}
	st, err := openStore(ctx, *db, cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()

	r := &scanrun.Run{Config: cfg, Locations: locs, Rules: engine, Store: st, Logger: log, Version: version,
		SegmentationOnly: *only == "segmentation", SkipNetwork: !network, Sources: collect}
	if sc != nil {
		r.Scanner = sc
	}
	if network && *only != "segmentation" {
		if svc, why := sources.Services(cfg); svc != nil {
			r.Services = svc
		} else if !*quiet {
			fmt.Fprintf(stderr, "note: %s\n", why)
		}
	}
	res, err := r.Do(ctx)
	if prog != nil {
		prog.Done()
	}
	if err != nil {
		return fail("%v", err)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	result := reports.ScanResult{Scan: res.Scan, Findings: res.Findings, Rules: ruleMetas(engine, res.Findings), New: reports.MarkNew(res.Findings, base), Matrices: res.Matrices}
	if err := writeReport(writer, result, *output, stdout); err != nil {
		return fail("%v", err)
	}
	if !*quiet {
		summarize(stderr, res, st.Path())
	}
	// Errors are printed even with --quiet: they change what the exit code means.
	for _, e := range res.Scan.Errors {
		fmt.Fprintf(stderr, "vigil scan: error: %s\n", e)
	}
	for _, e := range res.Scan.SourceErrors {
		fmt.Fprintf(stderr, "vigil scan: source not read in full: %s\n", e)
	}
	switch {
	case res.Interrupted:
		fmt.Fprintf(stderr, "vigil scan: interrupted: scan %s is stored as incomplete (it resolves no earlier finding)\n", res.Scan.ID)
		return exitError
	case reports.FailCount(result, threshold) > 0:
		return exitFindings
	case !res.Scan.Complete:
		fmt.Fprintf(stderr, "vigil scan: scan %s is incomplete (%d check(s) failed); its findings are reported but it resolves nothing\n", res.Scan.ID, len(res.Scan.Errors))
		return exitError
	case len(res.Scan.SourceErrors) > 0:
		fmt.Fprintf(stderr, "vigil scan: %d source(s) not read in full; their findings are reported but none of theirs is resolved\n", len(res.Scan.SourceErrors))
		return exitError
	}
	return exitOK
}

// storeCloser is what the scan command needs from a store.
type storeCloser interface {
	scanrun.Store
	Path() string
	Close() error
}

func openStore(ctx context.Context, url string, cfg *config.Config) (storeCloser, error) {
	// The evidence log's checkpoints are signed with the data directory's
	// key (docs/evidence.md).
	key, err := evidence.LoadOrCreateKey(absDir(cfg.DataDir))
	if err != nil {
		return nil, fmt.Errorf("evidence key: %w", err)
	}
	if url == "" {
		return sqlite.Open(ctx, filepath.Join(absDir(cfg.DataDir), store.DefaultFileName), sqlite.WithEvidenceKey(key))
	}
	driver, dsn, err := store.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("--db: %w", err)
	}
	if driver == store.DriverPostgres {
		return postgres.Open(ctx, dsn, postgres.WithEvidenceKey(key))
	}
	return sqlite.Open(ctx, dsn, sqlite.WithEvidenceKey(key))
}

func absDir(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func ruleMetas(e *rules.Engine, fs []observe.Finding) []observe.RuleMeta {
	seen := map[string]bool{}
	var out []observe.RuleMeta
	for _, f := range fs {
		if seen[f.Rule] {
			continue
		}
		seen[f.Rule] = true
		if r, ok := e.Rule(f.Rule); ok {
			out = append(out, r.RuleMeta)
		}
	}
	return out
}

// writeReport writes to stdout, or to path through a temporary file renamed
// into place so that a failed write never leaves half a report.
func writeReport(w reports.Writer, r reports.ScanResult, path string, stdout io.Writer) error {
	if path == "" {
		return w.Write(stdout, r)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vigil-report-*")
	if err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := w.Write(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("--output %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func summarize(w io.Writer, res *scanrun.Result, dbPath string) {
	sum := reports.Summary(res.Findings)
	var parts []string
	for _, s := range observe.Severities {
		if sum[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", sum[s], s))
		}
	}
	counts := "none"
	if len(parts) > 0 {
		counts = strings.Join(parts, ", ")
	}
	state := "complete"
	if !res.Scan.Complete {
		state = "INCOMPLETE"
	}
	srcs := ""
	if n := len(res.Scan.Sources) + len(res.Scan.SourceErrors); n > 0 {
		srcs = fmt.Sprintf(", %d of %d source(s) read in full", len(res.Scan.Sources), n)
	}
	fmt.Fprintf(w, "scan %s %s: %d location(s), %d host(s) up%s, %d observation(s), %d finding(s) (%s), %d resolved since last scan, in %s; stored in %s\n",
		res.Scan.ID, state, len(res.Scan.Locations), res.Hosts, srcs, res.Observations, len(res.Findings), counts, len(res.Resolved),
		res.Scan.FinishedAt.Sub(res.Scan.StartedAt).Round(time.Second), dbPath)
}

// checkWritable fails early when the report could not be written at the
// end of a long scan.
func checkWritable(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".vigil-write-test-*")
	if err != nil {
		return fmt.Errorf("cannot write next to %s: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// printSources lists what a scan would read besides the network.
func printSources(w io.Writer, srcs []collectors.Collector, cfg *config.Config) {
	if len(srcs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nsources read after the network scan:\n")
	for _, s := range srcs {
		fmt.Fprintf(w, "  %s\n", s.Name())
	}
	if cfg.Roster != "" {
		fmt.Fprintf(w, "  roster: %s (accounts matching nobody on it are leavers' accounts)\n", cfg.Roster)
	}
}

func printPlan(w io.Writer, sc *scanner.Scanner, locs []*config.Location) int {
	fmt.Fprintf(w, "nmap %s at %s (raw sockets: %v)\n", sc.Nmap().Version, sc.Nmap().Path, sc.Nmap().Privileged)
	for _, l := range locs {
		p, err := sc.PlanLocation(l)
		if err != nil {
			fmt.Fprintf(w, "location %s: %v\n", l.ID, err)
			return exitError
		}
		v := "none (this sensor is in no configured segment)"
		if p.Vantage != nil {
			v = p.Vantage.Segment
		}
		fmt.Fprintf(w, "\nlocation %s (%s)\n  targets: %s\n  vantage: %s\n  tcp ports: %d, udp ports: %d\n  nmap %s\n",
			l.ID, l.Name, strings.Join(p.Targets, " "), v, len(p.Job.TCPPorts), len(p.Job.UDPPorts), strings.Join(sc.Nmap().Args(p.Job), " "))
		if p.VantageMissing {
			fmt.Fprintf(w, "  note: this sensor is at none of %q's vantage points (none of their source addresses is local): a scan from here would be incomplete; pass --vantage SEGMENT if it is in fact inside one\n", l.ID)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		// The segmentation test samples hosts the main scans find; before
		// any scan, every pair would need host discovery first.
		for _, rp := range sc.PlanReach(l, nil) {
			fmt.Fprintf(w, "  segmentation test from %s: %d ports x up to %d live hosts per segment (scan.reach_budget %d) into:\n",
				rp.Vantage.Segment, len(rp.Ports), rp.HostsPerPair, sc.Config().Scan.ReachBudget)
			for _, pr := range rp.Pairs {
				to := pr.ToSegment
				if pr.ToLocation != l.ID {
					to = pr.ToLocation + "/" + pr.ToSegment
				}
				var pfx []string
				for _, p := range pr.Prefixes {
					pfx = append(pfx, p.String())
				}
				fmt.Fprintf(w, "    %s (%s): host discovery, then sampled hosts\n", to, strings.Join(pfx, " "))
			}
		}
	}
	return exitOK
}
