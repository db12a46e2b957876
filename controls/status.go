package controls

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

// softwareSource is the name a software scan records in Scan.Sources when
// it read its inputs in full (collectors/software.Name; not imported, to
// keep osv-scanner out of everything that reports control status).
const softwareSource = "osv-scanner"

// Input is everything a control status is computed from.
type Input struct {
	Catalog *rules.Catalog
	// Rules are the loaded rules (rules.Engine.Rules()): which rules cite
	// a control decides which scans can evidence it.
	Rules []*rules.Rule
	// Findings are the stored findings, any status; open ones are gaps.
	Findings []observe.Finding
	// Scans are the recorded scans; only complete ones (or, for identity,
	// software and telegraf rules, ones that read such a source in full)
	// finished within MaxScanAge of Now count as evidence.
	Scans []observe.Scan
	// Attestations may be nil: none recorded.
	Attestations AttestationSource
	// OverdueTraining are the people past a state's new-hire training
	// deadline (attest.OverdueTraining); nil when nobody is, or no roster
	// with hire dates is configured. Each makes the control that sets the
	// deadline attestation-missing at the person's location, whatever
	// the organisation's own training records say.
	OverdueTraining []OverdueTraining
	Settings        config.ControlSettings
	Now             time.Time
	// MaxScanAge is how recent a scan must be; zero means DefaultMaxScanAge.
	MaxScanAge time.Duration
}

// Status judges every control of the catalog that applies at loc (state
// overlays only where loc.State is listed), in catalog order.
//
// A control is never satisfied without evidence. Rule evidence: every rule
// citing the control ran over the location in a complete scan that
// finished within MaxScanAge, and no open finding cites it; an open finding
// citing it is a gap whatever the catalog says; a control no loaded rule
// cites, or whose rules no such scan ran, is not assessed. Attestation
// evidence: a current attestation of one of its kinds, recorded for the
// location or the whole organisation. A control evidenced by both needs
// both; a HIPAA standard also needs its implementation specifications.
// The worst part decides. Findings with no location (accounts, software)
// count at every location.
func Status(in Input, loc config.Location) []ControlStatus {
	return newJudge(in).location(loc)
}

// Organization judges every control for the organisation: per location,
// then rolled up with the worst verdict winning. A state overlay is rolled
// up over the locations in its states and left out when there are none.
// With no locations, only organisation-wide evidence (accounts, software,
// organisation attestations) counts.
func Organization(in Input, locs []config.Location) []ControlStatus {
	j := newJudge(in)
	if len(locs) == 0 {
		return j.location(config.Location{})
	}
	per := make([]map[string]ControlStatus, len(locs))
	for i, l := range locs {
		per[i] = map[string]ControlStatus{}
		for _, s := range j.location(l) {
			per[i][s.Control.ID] = s
		}
	}
	var out []ControlStatus
	for _, k := range in.Catalog.Controls {
		org := ControlStatus{Control: k, CatalogVersion: in.Catalog.Version, Status: Satisfied, Addressable: j.addressable(k)}
		seen := map[string]bool{}
		byVerdict := map[Verdict][]string{}
		for i := range locs {
			s, ok := per[i][k.ID]
			if !ok {
				continue // a state overlay for another state
			}
			org.ByLocation = append(org.ByLocation, s)
			if s.Status.Worse(org.Status) {
				org.Status = s.Status
			}
			byVerdict[s.Status] = append(byVerdict[s.Status], s.Location)
			for _, f := range s.Open {
				if !seen[f.ID] {
					seen[f.ID] = true
					org.Open = append(org.Open, f)
				}
			}
			for _, f := range s.Accepted {
				if !seen[f.ID] {
					seen[f.ID] = true
					org.Accepted = append(org.Accepted, f)
				}
			}
		}
		if len(org.ByLocation) == 0 {
			continue
		}
		for i := len(Verdicts) - 1; i >= 0; i-- {
			if ls := byVerdict[Verdicts[i]]; len(ls) > 0 {
				org.Reasons = append(org.Reasons, fmt.Sprintf("%s at %s", Verdicts[i], strings.Join(ls, ", ")))
			}
		}
		out = append(out, org)
	}
	return out
}

// judge holds the indexes one Status or Organization call shares.
type judge struct {
	in     Input
	maxAge time.Duration
	citing map[string][]*rules.Rule // control id → rules citing it
	kinds  map[*rules.Rule][]observe.Kind
	scans  []observe.Scan // finished within maxAge, newest first
}

func newJudge(in Input) *judge {
	j := &judge{in: in, maxAge: in.MaxScanAge, citing: map[string][]*rules.Rule{}, kinds: map[*rules.Rule][]observe.Kind{}}
	if j.maxAge <= 0 {
		j.maxAge = DefaultMaxScanAge
	}
	for _, r := range in.Rules {
		j.kinds[r] = r.Kinds()
		for _, c := range r.Controls {
			if !slices.Contains(j.citing[c], r) {
				j.citing[c] = append(j.citing[c], r)
			}
		}
	}
	for _, s := range in.Scans {
		if s.FinishedAt.IsZero() || s.FinishedAt.After(in.Now) || in.Now.Sub(s.FinishedAt) > j.maxAge {
			continue
		}
		j.scans = append(j.scans, s)
	}
	sort.SliceStable(j.scans, func(a, b int) bool { return j.scans[a].FinishedAt.After(j.scans[b].FinishedAt) })
	return j
}

func (j *judge) addressable(k rules.Control) bool {
	return k.Framework == rules.FrameworkHIPAA && k.ROrA == rules.Addressable && !j.in.Settings.AddressableAsRequired
}

// location judges every applicable control at one location.
func (j *judge) location(loc config.Location) []ControlStatus {
	// The findings that count here, by control.
	open, accepted := map[string][]FindingRef{}, map[string][]FindingRef{}
	for _, f := range j.in.Findings {
		if f.Location != "" && f.Location != loc.ID {
			continue
		}
		var into map[string][]FindingRef
		switch f.Status {
		case observe.StatusOpen:
			into = open
		case observe.StatusAccepted:
			into = accepted
		default:
			continue
		}
		ref := FindingRef{ID: f.ID, Rule: f.Rule, Location: f.Location, Target: f.Target, Severity: string(f.Severity)}
		for _, c := range f.Controls {
			into[c] = append(into[c], ref)
		}
	}
	// The latest scan that ran each rule here.
	runs := map[*rules.Rule]*RuleRun{}
	for _, r := range j.in.Rules {
		for _, s := range j.scans {
			if covers(s, r.Category, j.kinds[r], loc.ID) {
				runs[r] = &RuleRun{Rule: r.ID, Scan: s.ID, At: s.FinishedAt}
				break
			}
		}
	}

	cat := j.in.Catalog
	done := map[string]ControlStatus{}
	judgeOne := func(k rules.Control) ControlStatus {
		s := ControlStatus{Control: k, CatalogVersion: cat.Version, Location: loc.ID, Status: Satisfied, Addressable: j.addressable(k)}
		worst := func(v Verdict, why string) {
			if v.Worse(s.Status) {
				s.Status = v
			}
			if why != "" {
				s.Reasons = append(s.Reasons, why)
			}
		}
		s.Open, s.Accepted = open[k.ID], accepted[k.ID]
		sortRefs(s.Open)
		sortRefs(s.Accepted)
		if len(s.Open) > 0 {
			worst(Gap, fmt.Sprintf("%s open: %s", plural(len(s.Open), "finding"), refList(s.Open)))
		}
		if len(s.Accepted) > 0 {
			s.Reasons = append(s.Reasons, fmt.Sprintf("%s accepted as a risk: %s", plural(len(s.Accepted), "finding"), refList(s.Accepted)))
		}
		if k.EvidencedBy.Rules() {
			j.ruleEvidence(&s, runs, worst)
		}
		if k.EvidencedBy.Attestation() {
			j.attestationEvidence(&s, loc.ID, worst)
		}
		for _, id := range cat.Specifications(k.ID) {
			spec, ok := done[id]
			if !ok {
				continue
			}
			s.Specifications = append(s.Specifications, SpecVerdict{Control: id, Status: spec.Status})
			if spec.Status != Satisfied {
				worst(spec.Status, fmt.Sprintf("specification %s (%s): %s", id, spec.Control.Title, spec.Label()))
			}
		}
		if s.Status == Satisfied && len(s.Reasons) == 0 {
			s.Reasons = []string{"every implementation specification is satisfied"}
		}
		return s
	}
	// Specifications first: a standard's verdict includes theirs.
	for _, k := range cat.Controls {
		if k.Standard != "" {
			done[k.ID] = judgeOne(k)
		}
	}
	var out []ControlStatus
	for _, k := range cat.Controls {
		if !k.AppliesIn(loc.State) {
			continue
		}
		s, ok := done[k.ID]
		if !ok {
			s = judgeOne(k)
		}
		out = append(out, s)
	}
	return out
}

// ruleEvidence judges the scan-evidenced part of a control.
func (j *judge) ruleEvidence(s *ControlStatus, runs map[*rules.Rule]*RuleRun, worst func(Verdict, string)) {
	citing := j.citing[s.Control.ID]
	if len(citing) == 0 {
		worst(NotAssessed, "no loaded rule cites this control: vigil cannot assess it yet")
		return
	}
	for _, r := range citing {
		if run := runs[r]; run != nil {
			s.Evaluated = append(s.Evaluated, *run)
		} else {
			s.NotRun = append(s.NotRun, r.ID)
		}
	}
	sort.Slice(s.Evaluated, func(a, b int) bool { return s.Evaluated[a].Rule < s.Evaluated[b].Rule })
	sort.Strings(s.NotRun)
	if len(s.NotRun) > 0 {
		worst(NotAssessed, fmt.Sprintf("no complete scan in the last %s ran %s here", days(j.maxAge), strings.Join(s.NotRun, ", ")))
	}
	if len(s.Evaluated) > 0 && len(s.Open) == 0 {
		latest := s.Evaluated[0]
		for _, e := range s.Evaluated {
			if e.At.After(latest.At) {
				latest = e
			}
		}
		s.Reasons = append(s.Reasons, fmt.Sprintf("%s found nothing open (latest scan %s, %s)",
			plural(len(s.Evaluated), "rule"), latest.Scan, latest.At.UTC().Format(time.RFC3339)))
	}
}

// attestationEvidence judges the attested part of a control: the current
// attestation of any of its kinds, for this location or the organisation.
func (j *judge) attestationEvidence(s *ControlStatus, loc string, worst func(Verdict, string)) {
	kinds := s.Control.Attestations
	var current, expired *Attestation
	var currentExp time.Time
	if j.in.Attestations != nil {
		for _, kind := range kinds {
			ak, _ := j.in.Catalog.AttestationKind(kind)
			for _, a := range j.in.Attestations.Attestations(kind) {
				if a.Kind != kind || (a.Location != "" && a.Location != loc) || a.At.IsZero() || a.At.After(j.in.Now) {
					continue
				}
				exp := a.ExpiresAt
				if exp.IsZero() {
					exp = a.At.AddDate(0, 0, ak.ValidDays)
				}
				a := a
				if j.in.Now.Before(exp) {
					if current == nil || exp.After(currentExp) {
						current, currentExp = &a, exp
					}
				} else if expired == nil || a.At.After(expired.At) {
					expired = &a
				}
			}
		}
	}
	switch {
	case current != nil:
		s.Attestation = current
		s.Reasons = append(s.Reasons, fmt.Sprintf("attested (%s) on %s, valid until %s", current.Kind,
			current.At.UTC().Format(time.DateOnly), currentExp.UTC().Format(time.DateOnly)))
	case expired != nil:
		s.Attestation = expired
		worst(AttestationExpired, fmt.Sprintf("the latest attestation (%s, %s) has expired: record it again", expired.Kind,
			expired.At.UTC().Format(time.DateOnly)))
	default:
		worst(AttestationMissing, fmt.Sprintf("no attestation recorded: record one of %s", strings.Join(kinds, ", ")))
	}
	j.overdueTraining(s, loc, worst)
}

// overdueTraining holds a state overlay with a new-hire training deadline
// to it: each person at loc past the deadline without a training record
// naming them leaves the attested part missing, named in the reason.
func (j *judge) overdueTraining(s *ControlStatus, loc string, worst func(Verdict, string)) {
	d := s.Control.NewHireTraining
	if d == nil {
		return
	}
	// The deadline is a day: overdue once it has passed.
	y, m, dd := j.in.Now.UTC().Date()
	today := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
	for _, o := range j.in.OverdueTraining {
		if o.Control == s.Control.ID && o.Location == loc && o.Deadline.Before(today) {
			s.OverdueTraining = append(s.OverdueTraining, o)
		}
	}
	if len(s.OverdueTraining) == 0 {
		return
	}
	sort.Slice(s.OverdueTraining, func(a, b int) bool {
		oa, ob := s.OverdueTraining[a], s.OverdueTraining[b]
		if !oa.Deadline.Equal(ob.Deadline) {
			return oa.Deadline.Before(ob.Deadline)
		}
		return oa.Person < ob.Person
	})
	var names []string
	for i, o := range s.OverdueTraining {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(s.OverdueTraining)-5))
			break
		}
		names = append(names, fmt.Sprintf("%s (hired %s, due %s)", o.Person, o.Hired.UTC().Format(time.DateOnly), o.Deadline.UTC().Format(time.DateOnly)))
	}
	worst(AttestationMissing, fmt.Sprintf("new-hire training overdue at %s (%s: within %d days of hire): %s; record %s with --subject naming each",
		loc, d.Citation, d.WithinDays, strings.Join(names, ", "), d.Kind))
}

// covers reports whether scan s ran a rule (of category, over kinds; nil
// for any kind or a native evaluator) over location loc: a complete
// scan of the location for rules over what the network scan sees (and for
// native and kind-agnostic rules); a source read in full for rules over
// accounts (identity sources), packages (the software scan) and telegraf
// metrics, which are the organisation's, not one location's. A scan limited
// to some categories (vigil scan --only segmentation) ran only those.
func covers(s observe.Scan, category observe.Category, kinds []observe.Kind, loc string) bool {
	if len(s.Categories) > 0 && !slices.Contains(s.Categories, category) {
		return false
	}
	network := s.Complete && loc != "" && slices.Contains(s.Locations, loc)
	if len(kinds) == 0 {
		return network
	}
	for _, k := range kinds {
		switch k {
		case observe.KindAccount:
			if slices.ContainsFunc(s.Sources, isIdentity) {
				return true
			}
		case observe.KindPackage:
			// Versions behind service banners are looked up during the
			// network scan only when an OSV database is there, which the
			// scan does not record: only the software scan counts.
			if slices.Contains(s.Sources, softwareSource) {
				return true
			}
		case observe.KindMetric:
			if slices.ContainsFunc(s.Sources, func(src string) bool { return strings.HasPrefix(src, "telegraf:") }) {
				return true
			}
		default:
			if network {
				return true
			}
		}
	}
	return false
}

// isIdentity reports whether a source name ("csv:emr") is an identity
// system's.
func isIdentity(name string) bool {
	typ, _, ok := strings.Cut(name, ":")
	return ok && slices.Contains(config.IdentityTypes, typ)
}

func sortRefs(fs []FindingRef) {
	sort.Slice(fs, func(a, b int) bool {
		if fs[a].Rule != fs[b].Rule {
			return fs[a].Rule < fs[b].Rule
		}
		return fs[a].Target < fs[b].Target
	})
}

// refList names up to three findings.
func refList(fs []FindingRef) string {
	var parts []string
	for i, f := range fs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(fs)-3))
			break
		}
		parts = append(parts, f.Rule+" at "+f.Target)
	}
	return strings.Join(parts, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return plural(int(d/(24*time.Hour)), "day")
	}
	return d.String()
}
