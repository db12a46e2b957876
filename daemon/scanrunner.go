package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/sources"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/scanner"
	"github.com/vigilhq/vigil/scanrun"
)

// Parts a ScanRunner can be limited to (ScanRunnerOptions.Only), as
// `vigil scan --only`.
const (
	PartNetwork      = "network"
	PartSegmentation = "segmentation"
)

// Parts lists the values ScanRunnerOptions.Only accepts besides "".
var Parts = []string{PartNetwork, PartSegmentation, sources.PartIdentity, sources.PartSoftware, sources.PartTelegraf}

// ErrIncomplete is wrapped by RunJob's error when the scan was stored but
// is incomplete: interrupted, a check failed, or a source was not read in
// full. Such a scan resolves nothing.
var ErrIncomplete = errors.New("scan incomplete")

// ScanRunnerOptions configures NewScanRunner.
type ScanRunnerOptions struct {
	Config  *config.Config
	Store   scanrun.Store
	Logger  *slog.Logger
	Version string
	// Only limits every job to one part of the scan, as `vigil scan
	// --only`: network or segmentation (location jobs only), identity,
	// software or telegraf (the organisation job only). Empty runs all.
	Only string
	// Vantage names the segment this sensor probes from (vigil scan
	// --vantage); empty detects it from local addresses.
	Vantage string
	// Stored, when set, is told about every scan the runner stored,
	// complete or not, once it is in the store: the daemon's alerts and
	// the dashboard's refresh hang off it. It runs in the job's goroutine,
	// so it should hand the work on rather than do it.
	Stored func(job Job, res *scanrun.Result)
}

// ScanRunner runs jobs with scanrun, as `vigil scan` does: a location job
// is the network scan and segmentation test of that location; the
// Organization job reads the identity, software and telegraf sources.
// Everything it needs is built and checked by NewScanRunner, so a
// configuration that cannot scan is refused at start or reload, not at
// 02:00.
type ScanRunner struct {
	opts     ScanRunnerOptions
	log      *slog.Logger
	engine   *rules.Engine
	sources  []collectors.Collector
	scanner  *scanner.Scanner // nil when the network part is off
	services scanrun.ServiceMatcher
	network  bool

	mu       sync.Mutex
	progress map[string]ProgressFunc // by location, for the shared scanner's events
}

// NewScanRunner loads the rules, builds the configured sources and, when
// the network part runs, finds nmap; any failure is returned.
func NewScanRunner(ctx context.Context, opts ScanRunnerOptions) (*ScanRunner, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("daemon: scan runner needs a config and a store")
	}
	if opts.Only != "" && !slices.Contains(Parts, opts.Only) {
		return nil, fmt.Errorf("only %q: use one of %s", opts.Only, strings.Join(Parts, ", "))
	}
	r := &ScanRunner{opts: opts, log: opts.Logger, progress: map[string]ProgressFunc{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	var err error
	if r.engine, err = rules.Load(rules.Options{Dirs: cfg.Rules.Dirs, Disable: cfg.Rules.Disable}); err != nil {
		return nil, fmt.Errorf("rules:\n%w", err)
	}
	srcs, err := sources.FromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	// The telegraf inputs of a location its agents scan are theirs.
	all := srcs
	srcs = sources.ServerSide(srcs)
	switch opts.Only {
	case "":
		r.sources = sources.Select(srcs)
	case sources.PartIdentity, sources.PartSoftware, sources.PartTelegraf:
		if r.sources = sources.Select(srcs, opts.Only); len(r.sources) == 0 {
			why, _ := sources.NoneOf(all, opts.Only)
			return nil, fmt.Errorf("only %s: %s", opts.Only, why)
		}
	}
	r.network = opts.Only == "" || opts.Only == PartNetwork || opts.Only == PartSegmentation
	if r.network {
		r.scanner, err = scanner.New(ctx, scanner.Options{Config: cfg, Logger: r.log, Vantage: opts.Vantage, Progress: r.scannerEvent})
		if err != nil {
			return nil, err
		}
		if opts.Vantage != "" {
			for _, l := range cfg.Locations {
				if _, ok := l.Segment(opts.Vantage); !ok {
					return nil, fmt.Errorf("vantage %q: location %q has no such segment", opts.Vantage, l.ID)
				}
			}
		}
		if opts.Only != PartSegmentation {
			if svc, why := sources.Services(cfg); svc != nil {
				r.services = svc
			} else {
				r.log.Info("service versions not checked", "reason", why)
			}
		}
	}
	return r, nil
}

// Plan returns the schedules of the runner's configuration, run by r.
func (r *ScanRunner) Plan() Plan {
	p := Plan{Schedules: r.opts.Config.Schedules, Organization: len(r.sources) > 0, Runner: r}
	if r.network {
		for _, l := range r.opts.Config.Locations {
			if !l.ByAgent() { // its site agents scan it on the same schedules
				p.Locations = append(p.Locations, l.ID)
			}
		}
	}
	return p
}

// Config returns the configuration the runner scans with.
func (r *ScanRunner) Config() *config.Config { return r.opts.Config }

// Controls lists the controls the loaded rules cite, for the posture
// metrics.
func (r *ScanRunner) Controls() []string {
	var out []string
	for _, rule := range r.engine.Rules() {
		out = append(out, rule.Controls...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (r *ScanRunner) scannerEvent(e scanner.Event) {
	r.mu.Lock()
	p := r.progress[e.Location]
	r.mu.Unlock()
	if p != nil {
		p(e.Check, e.Done, e.Total)
	}
}

// RunJob implements Runner with one scanrun.Run.
func (r *ScanRunner) RunJob(ctx context.Context, job Job, progress ProgressFunc) error {
	log := r.log.With("location", job.Location, "trigger", string(job.Trigger))
	run := &scanrun.Run{Config: r.opts.Config, Rules: r.engine, Store: r.opts.Store, Logger: log, Version: r.opts.Version,
		OnPhase: func(phase string) { progress(phase, 0, 0) }}
	if job.Location == Organization {
		if len(r.sources) == 0 {
			return errors.New("the configuration has no identity, software or telegraf source to read")
		}
		run.SkipNetwork = true
		for i, src := range r.sources {
			run.Sources = append(run.Sources, progressSource{src, func() { progress("source "+src.Name(), i, len(r.sources)) }})
		}
	} else {
		if !r.network {
			return fmt.Errorf("location %q: the network part is off (only %s)", job.Location, r.opts.Only)
		}
		l, ok := r.opts.Config.Location(job.Location)
		if !ok {
			return fmt.Errorf("%w %q", ErrUnknownLocation, job.Location)
		}
		if l.ByAgent() {
			return fmt.Errorf("location %q is scanned by its site agents (scanned_by: agent), not by this server", job.Location)
		}
		run.Locations = []string{job.Location}
		run.Scanner = r.scanner
		run.Services = r.services
		run.SegmentationOnly = r.opts.Only == PartSegmentation
		r.mu.Lock()
		r.progress[job.Location] = progress
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.progress, job.Location)
			r.mu.Unlock()
		}()
	}
	progress("scan", 0, 0)
	res, err := run.Do(ctx)
	if err != nil {
		return err
	}
	if r.opts.Stored != nil {
		r.opts.Stored(job, res)
	}
	sum := map[observe.Severity]int{}
	for _, f := range res.Findings {
		sum[f.Severity]++
	}
	log.Info("scan stored", "scan", res.Scan.ID, "complete", res.Scan.Complete, "observations", res.Observations,
		"findings", len(res.Findings), "critical", sum[observe.Critical], "high", sum[observe.High],
		"resolved", len(res.Resolved))
	for _, n := range res.Notes {
		log.Info("scan note", "note", n)
	}
	switch {
	case res.Interrupted:
		return fmt.Errorf("scan %s: %w: interrupted (stored as incomplete)", res.Scan.ID, ErrIncomplete)
	case !res.Scan.Complete:
		return fmt.Errorf("scan %s: %w: %d check(s) failed: %s", res.Scan.ID, ErrIncomplete, len(res.Scan.Errors), strings.Join(res.Scan.Errors, "; "))
	case len(res.Scan.SourceErrors) > 0:
		return fmt.Errorf("scan %s: %w: %d source(s) not read in full: %s", res.Scan.ID, ErrIncomplete, len(res.Scan.SourceErrors), strings.Join(res.Scan.SourceErrors, "; "))
	}
	return nil
}

// progressSource reports when its source starts being read.
type progressSource struct {
	collectors.Collector
	start func()
}

func (p progressSource) Collect(ctx context.Context) ([]observe.Observation, error) {
	p.start()
	return p.Collector.Collect(ctx)
}

// Engine returns the rules the runner evaluates with.
func (r *ScanRunner) Engine() *rules.Engine { return r.engine }
