// Package scanrun runs one scan end to end: the scanner over each chosen
// location, the rules over what it saw, and the store reconciling findings
// with their history. `vigil scan` and, later, the daemon's scheduler both
// call it, so a scheduled scan and a CI scan behave the same.
package scanrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/accounts"
	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/scanner"
)

// Store is what a scan run needs from persistence.
type Store interface {
	BeginScan(ctx context.Context, scan observe.Scan) error
	AddObservations(ctx context.Context, scanID string, obs []observe.Observation) error
	FinishScan(ctx context.Context, scan observe.Scan, findings []observe.Finding) (current, resolved []observe.Finding, err error)
}

// LocationScanner scans one location (scanner.Scanner in production).
type LocationScanner interface {
	ScanLocation(ctx context.Context, loc *config.Location) scanner.LocationResult
	// Reach runs the segmentation test of loc from its vantage points,
	// given the observations of the scan so far.
	Reach(ctx context.Context, loc *config.Location, known []observe.Observation) scanner.ReachResult
}

// Run is one scan: which locations, with which pieces.
type Run struct {
	Config    *config.Config
	Locations []string // ids; empty means every location
	Scanner   LocationScanner
	// Rules judge what the scan saw. A site agent leaves it nil: the
	// server evaluates the rules centrally (Evaluate) over what the agent
	// pushed, and the scan is finished with no findings here.
	Rules   *rules.Engine
	Store   Store
	Logger  *slog.Logger
	Version string
	Now     func() time.Time
	// SegmentationOnly runs only the segmentation test (host discovery
	// and the reach probes from each vantage point), not the main scan:
	// a quick check after a firewall change. It resolves only
	// flat-network findings.
	SegmentationOnly bool
	// Sources are the identity, software and telegraf collectors to read
	// (collectors/sources.FromConfig). Every one is read once per scan.
	Sources []collectors.Collector
	// Services, when set, looks up the service versions the network scan
	// found in the local vulnerability database.
	Services ServiceMatcher
	// SkipNetwork leaves out the network scan and the segmentation test:
	// only Sources are read (vigil scan --only identity|software).
	SkipNetwork bool
	// SourceTimeout bounds the reading of one source (default 10 minutes).
	SourceTimeout time.Duration
	// OnPhase, when set, is told each phase as the run enters it (one of
	// the Phase constants), so a daemon can show how far a scan got. It
	// is called from the goroutine running Do.
	OnPhase func(phase string)
}

// Phases a run goes through, in order; a run skips those it has nothing
// for.
const (
	PhaseNetwork      = "network"      // the main scan of each location
	PhaseSegmentation = "segmentation" // the reach probes from each vantage point
	PhaseServices     = "services"     // service versions against the vulnerability database
	PhaseSources      = "sources"      // identity, software and telegraf sources
	PhaseRules        = "rules"        // the rules over everything seen
	PhaseStore        = "store"        // reconciling findings in the store
)

func (r *Run) phase(p string) {
	if r.OnPhase != nil {
		r.OnPhase(p)
	}
}

// ServiceMatcher finds known-vulnerable versions among scanned services.
type ServiceMatcher interface {
	MatchServices(ctx context.Context, obs []observe.Observation) ([]observe.Observation, error)
}

// Result is what a run produced.
type Result struct {
	Scan observe.Scan
	// Findings are this scan's findings with their history (first seen,
	// status) from the store.
	Findings []observe.Finding
	// Resolved are findings this scan no longer saw.
	Resolved []observe.Finding
	// Observations counts what was stored.
	Observations int
	// Hosts counts hosts found up.
	Hosts int
	// Matrices are the reachability matrices, one per scanned location.
	Matrices []observe.Matrix
	// Notes are planning notes worth telling the user.
	Notes []string
	// Interrupted is true when ctx was cancelled before the end.
	Interrupted bool
}

// ErrUnknownLocation is returned for a --location that is not in the config.
var ErrUnknownLocation = errors.New("unknown location")

// NewScanID returns a random, sortable-by-time scan id.
func NewScanID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Select resolves location ids against the config, in config order.
func Select(cfg *config.Config, ids []string) ([]*config.Location, error) {
	if len(ids) == 0 {
		out := make([]*config.Location, len(cfg.Locations))
		for i := range cfg.Locations {
			out[i] = &cfg.Locations[i]
		}
		return out, nil
	}
	var out []*config.Location
	for _, id := range ids {
		l, ok := cfg.Location(id)
		if !ok {
			var known []string
			for _, k := range cfg.Locations {
				known = append(known, k.ID)
			}
			return nil, fmt.Errorf("%w %q (the config has: %v)", ErrUnknownLocation, id, known)
		}
		out = append(out, l)
	}
	return out, nil
}

// Do runs the scan. Observations are stored as each location finishes, so
// an interrupted scan keeps what finished; findings are then evaluated over
// everything seen and reconciled in one transaction. A scan that was
// interrupted or had failing checks is recorded as incomplete and resolves
// nothing.
func (r *Run) Do(ctx context.Context) (*Result, error) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	locs, err := Select(r.Config, r.Locations)
	if err != nil {
		return nil, err
	}
	start := now().UTC()
	scan := observe.Scan{ID: NewScanID(start), StartedAt: start, Version: r.Version}
	for _, l := range locs {
		if !r.SkipNetwork { // nothing about the locations is checked, so nothing there is resolved
			scan.Locations = append(scan.Locations, l.ID)
		}
	}
	// The store's writes must finish even after Ctrl-C, so they use a
	// context that is not cancelled with the scan.
	storeCtx := context.WithoutCancel(ctx)
	if err := r.Store.BeginScan(storeCtx, scan); err != nil {
		return nil, err
	}
	res := &Result{}
	var all []observe.Observation
	if r.SegmentationOnly {
		scan.Categories = []observe.Category{"flat-network"}
	}
	if !r.SegmentationOnly && !r.SkipNetwork && len(locs) > 0 {
		r.phase(PhaseNetwork)
	}
	for _, l := range locs {
		if r.SegmentationOnly || r.SkipNetwork {
			break
		}
		if ctx.Err() != nil {
			scan.Errors = append(scan.Errors, fmt.Sprintf("location %s: not scanned: interrupted", l.ID))
			continue
		}
		lr := r.Scanner.ScanLocation(ctx, l)
		res.Notes = append(res.Notes, lr.Notes...)
		scan.Errors = append(scan.Errors, lr.Errors...)
		if err := r.Store.AddObservations(storeCtx, scan.ID, lr.Observations); err != nil {
			return nil, err
		}
		for _, o := range lr.Observations {
			if o.Kind == observe.KindHost {
				res.Hosts++
			}
		}
		all = append(all, lr.Observations...)
		r.Logger.Info("location scanned", "location", l.ID, "observations", len(lr.Observations), "complete", lr.Complete)
	}
	// The segmentation test runs once every location's main scan is done,
	// so it can sample the hosts they found instead of sweeping again.
	scan.Vantages = map[string][]string{}
	if !r.SkipNetwork && ctx.Err() == nil && len(locs) > 0 {
		r.phase(PhaseSegmentation)
	}
	for _, l := range locs {
		if ctx.Err() != nil || r.SkipNetwork {
			break
		}
		rr := r.Scanner.Reach(ctx, l, all)
		scan.Errors = append(scan.Errors, rr.Errors...)
		if r.SegmentationOnly && len(rr.Vantages) == 0 && len(l.Vantage) > 0 {
			scan.Errors = append(scan.Errors, fmt.Sprintf("location %s: this sensor is at none of the location's vantage points, so its segmentation cannot be tested (run it from a vantage source address, or pass --vantage SEGMENT)", l.ID))
		}
		if err := r.Store.AddObservations(storeCtx, scan.ID, rr.Observations); err != nil {
			return nil, err
		}
		all = append(all, rr.Observations...)
		for _, v := range rr.Vantages {
			if !slices.Contains(scan.Vantages[l.ID], v) {
				scan.Vantages[l.ID] = append(scan.Vantages[l.ID], v)
			}
		}
		r.Logger.Info("segmentation tested", "location", l.ID, "vantages", rr.Vantages, "probes", len(rr.Observations))
	}
	for _, o := range all {
		if o.Vantage != "" && !slices.Contains(scan.Vantages[o.Location], o.Vantage) {
			scan.Vantages[o.Location] = append(scan.Vantages[o.Location], o.Vantage)
		}
	}
	if r.Services != nil && !r.SkipNetwork && !r.SegmentationOnly && ctx.Err() == nil {
		r.phase(PhaseServices)
		pkgs, err := r.Services.MatchServices(ctx, all)
		if err != nil {
			// Vulnerable-service findings belong to the locations: a failed
			// lookup makes the network part incomplete, so none of them is
			// resolved by mistake.
			scan.Errors = append(scan.Errors, "service versions: "+err.Error())
		}
		if err := r.Store.AddObservations(storeCtx, scan.ID, pkgs); err != nil {
			return nil, err
		}
		all = append(all, pkgs...)
	}
	if !r.SegmentationOnly {
		if len(r.Sources) > 0 {
			r.phase(PhaseSources)
		}
		obs, err := r.collect(ctx, &scan)
		if err != nil {
			return nil, err
		}
		all = append(all, obs...)
	}
	res.Interrupted = ctx.Err() != nil
	scan.FinishedAt = now().UTC()
	scan.Complete = len(scan.Errors) == 0 && !res.Interrupted
	var findings []observe.Finding
	if r.Rules != nil {
		r.phase(PhaseRules)
		ev := Evaluate(ctx, r.Config, r.Rules, &scan, locs, all)
		findings, res.Matrices = ev.Findings, ev.Matrices
	}
	r.phase(PhaseStore)
	current, resolved, err := r.Store.FinishScan(storeCtx, scan, findings)
	if err != nil {
		return nil, err
	}
	res.Scan, res.Findings, res.Resolved, res.Observations = scan, current, resolved, len(all)
	return res, nil
}

// collect reads every source, stores what it yields, and records which
// were read in full (scan.Sources) and what went wrong with the others
// (scan.SourceErrors). Only a store failure is returned.
func (r *Run) collect(ctx context.Context, scan *observe.Scan) ([]observe.Observation, error) {
	timeout := r.SourceTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	storeCtx := context.WithoutCancel(ctx)
	var all []observe.Observation
	for _, src := range r.Sources {
		name := src.Name()
		if ctx.Err() != nil {
			scan.SourceErrors = append(scan.SourceErrors, name+": not read: interrupted")
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		obs, err := src.Collect(sctx)
		if err == nil && sctx.Err() != nil {
			err = fmt.Errorf("gave up after %s", timeout)
		}
		cancel()
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, name) {
				msg = name + ": " + msg
			}
			scan.SourceErrors = append(scan.SourceErrors, msg)
			r.Logger.Warn("source not read in full", "source", name, "observations", len(obs), "error", msg)
		} else {
			scan.Sources = append(scan.Sources, name)
			r.Logger.Info("source read", "source", name, "observations", len(obs), "took", time.Since(start).Round(time.Millisecond))
		}
		// What a source reports is seen from that source: only a scan
		// that read it in full may resolve the findings it led to.
		for i := range obs {
			if obs[i].Vantage == "" {
				obs[i].Vantage = name
			}
		}
		if err := r.Store.AddObservations(storeCtx, scan.ID, obs); err != nil {
			return nil, err
		}
		all = append(all, obs...)
	}
	return all, nil
}

// Evaluation is what the rules made of one scan's observations.
type Evaluation struct {
	Findings []observe.Finding
	// Matrices are the reachability matrices, one per network-scanned
	// location.
	Matrices []observe.Matrix
}

// Evaluate runs the rules over everything a scan saw: accounts are
// enriched (with the roster, when the configuration names one), the
// engine judges the observations, and each of locs gets its segmentation
// verdict. A roster that cannot be read is recorded in scan.SourceErrors
// and the identity sources are dropped from scan.Sources, so nobody is
// judged a leaver, or cleared of being one, without it. vigil scan and
// the server finishing an agent's scan both call it.
func Evaluate(ctx context.Context, cfg *config.Config, engine *rules.Engine, scan *observe.Scan, locs []*config.Location, all []observe.Observation) Evaluation {
	var roster *csvidentity.Roster
	if hasAccounts(all) && cfg.Roster != "" {
		ro, rowErrs, err := csvidentity.LoadRoster(ctx, cfg.Roster)
		if err = errors.Join(append([]error{err}, rowErrs...)...); err != nil {
			scan.SourceErrors = append(scan.SourceErrors, "roster: "+err.Error())
			scan.Sources = slices.DeleteFunc(scan.Sources, func(s string) bool { return isIdentity(s) })
		}
		roster = ro
	}
	all = accounts.Enrich(all, roster, accounts.SettingsFrom(cfg), scan.FinishedAt)
	ev := Evaluation{Findings: engine.Evaluate(all, scan.FinishedAt)}
	for _, l := range locs {
		if !slices.Contains(scan.Locations, l.ID) {
			continue
		}
		m, fs := engine.Segmentation(PolicyOf(cfg, l), all, scan.FinishedAt)
		ev.Matrices = append(ev.Matrices, m)
		ev.Findings = append(ev.Findings, fs...)
	}
	return ev
}

func hasAccounts(obs []observe.Observation) bool {
	return slices.ContainsFunc(obs, func(o observe.Observation) bool { return o.Kind == observe.KindAccount })
}

// isIdentity reports whether a source name is an identity system's.
func isIdentity(name string) bool {
	typ, _, _ := strings.Cut(name, ":")
	return slices.Contains(config.IdentityTypes, typ)
}

// PolicyOf describes a location's segments and allowed flows for the
// segmentation judgement.
func PolicyOf(cfg *config.Config, l *config.Location) rules.SegmentPolicy {
	p := rules.SegmentPolicy{Location: l.ID, Roles: map[string]string{}, RemoteRoles: map[string]string{}}
	for _, o := range cfg.Locations {
		if o.ID != l.ID {
			for _, s := range o.Segments {
				p.RemoteRoles[o.ID+"/"+s.Name] = s.Role
			}
		}
	}
	for _, s := range l.Segments {
		p.Segments = append(p.Segments, s.Name)
		p.Roles[s.Name] = s.Role
	}
	for _, f := range l.Policy {
		p.Allow = append(p.Allow, rules.AllowedFlow{From: f.From, To: f.To, Ports: f.Ports})
	}
	return p
}
