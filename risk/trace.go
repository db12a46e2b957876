package risk

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// Reader is what tracing reads from the store.
type Reader interface {
	FindingHistory(ctx context.Context, findingID string) ([]store.FindingEvent, error)
	ScanObservations(ctx context.Context, scanID, location string) ([]observe.Observation, error)
	EvidenceRefs(ctx context.Context, subjects []string) ([]store.EvidenceRef, error)
	RiskHistory(ctx context.Context, riskID string) ([]observe.RiskTreatment, error)
}

// MaxObservationsPerScan bounds the observations a trace quotes from one
// scan for one finding (a flat-network finding can rest on hundreds of
// probes); Trace says how many more there were.
const MaxObservationsPerScan = 20

// Trace is the chain an auditor follows for one risk: risk → controls →
// findings per location → observations with timestamps and the evidence
// entries that commit to them → treatment, with dates.
type Trace struct {
	Risk Risk `json:"risk"`
	// Controls are the controls the risk's findings cite, with their
	// status for the organisation and each location.
	Controls []ControlLink `json:"controls"`
	// Findings are the risk's findings, by location then target.
	Findings []FindingTrace `json:"findings"`
	// Treatments are every register decision on the risk, oldest first.
	Treatments []observe.RiskTreatment `json:"treatments"`
	// Evidence are the log entries of those decisions.
	Evidence []store.EvidenceRef `json:"evidence,omitempty"`
}

// ControlLink is a control in a trace.
type ControlLink struct {
	ID       string `json:"id"`
	Citation string `json:"citation,omitempty"`
	Title    string `json:"title,omitempty"`
	// Status is the organisation's verdict; ByLocation each location's.
	Status     controls.Verdict  `json:"status,omitempty"`
	ByLocation map[string]string `json:"by_location,omitempty"`
}

// FindingTrace is one finding's part of the chain.
type FindingTrace struct {
	Finding observe.Finding `json:"finding"`
	// Detected is when and by which scan it was first seen.
	Detected     time.Time `json:"detected"`
	DetectedScan string    `json:"detected_scan,omitempty"`
	// Remediated is when it was last resolved (zero while it stands);
	// VerifiedScan the complete scan that no longer saw it (empty when a
	// person marked it fixed and no scan has confirmed it yet).
	Remediated   time.Time `json:"remediated,omitzero"`
	VerifiedScan string    `json:"verified_scan,omitempty"`
	// TimeToRemediate is Remediated - Detected of the latest exposure
	// window (from the last opening or reopening).
	TimeToRemediate time.Duration `json:"time_to_remediate,omitempty"`
	// Decision is the acceptance or false-positive in force, if any.
	Decision *observe.Decision     `json:"decision,omitempty"`
	History  []store.FindingEvent  `json:"history"`
	Observed []ObservationSighting `json:"observed"`
	// Evidence are the log entries about the finding and the scans that
	// saw or resolved it: observation batches, scan ends, events.
	Evidence []store.EvidenceRef `json:"evidence"`
}

// ObservationSighting is the facts one scan recorded about a finding's
// target.
type ObservationSighting struct {
	Scan         string                `json:"scan"`
	Observations []observe.Observation `json:"observations"`
	// More counts matching observations beyond MaxObservationsPerScan.
	More int `json:"more,omitempty"`
}

// TraceRisk builds r's chain. statuses is the organisation's control
// status (controls.Organization), used to show each cited control's
// verdict; findings are the stored findings by id.
func TraceRisk(ctx context.Context, rd Reader, r Risk, findings map[string]observe.Finding, statuses []controls.ControlStatus) (*Trace, error) {
	t := &Trace{Risk: r}
	byID := make(map[string]*controls.ControlStatus, len(statuses))
	for i := range statuses {
		byID[statuses[i].Control.ID] = &statuses[i]
	}
	for _, id := range r.Controls {
		link := ControlLink{ID: id}
		if s, ok := byID[id]; ok {
			link.Citation, link.Title, link.Status = s.Control.Citation, s.Control.Title, s.Status
			for _, l := range s.ByLocation {
				if link.ByLocation == nil {
					link.ByLocation = map[string]string{}
				}
				link.ByLocation[l.Location] = l.Label()
			}
		}
		t.Controls = append(t.Controls, link)
	}
	for _, ref := range r.Findings {
		f, ok := findings[ref.ID]
		if !ok {
			continue
		}
		ft, err := TraceFinding(ctx, rd, f)
		if err != nil {
			return nil, err
		}
		t.Findings = append(t.Findings, *ft)
	}
	slices.SortFunc(t.Findings, func(a, b FindingTrace) int {
		return strings.Compare(a.Finding.Location+"\x00"+a.Finding.Target, b.Finding.Location+"\x00"+b.Finding.Target)
	})
	var err error
	if t.Treatments, err = rd.RiskHistory(ctx, r.ID); err != nil {
		return nil, fmt.Errorf("trace risk %s: %w", r.ID, err)
	}
	if t.Evidence, err = rd.EvidenceRefs(ctx, []string{r.ID}); err != nil {
		return nil, fmt.Errorf("trace risk %s: %w", r.ID, err)
	}
	return t, nil
}

// TraceFinding builds one finding's chain: its history with detection and
// remediation dates, the observations behind it in the scan that first saw
// it and the latest that did, and the evidence entries of all of them.
func TraceFinding(ctx context.Context, rd Reader, f observe.Finding) (*FindingTrace, error) {
	hist, err := rd.FindingHistory(ctx, f.ID)
	if err != nil {
		return nil, fmt.Errorf("trace finding %s: %w", f.ID, err)
	}
	ft := &FindingTrace{Finding: f, History: hist, Detected: f.FirstSeen, Decision: f.Decision}
	var firstScan, lastScan string
	var windowAt time.Time
	subjects := []string{f.ID}
	for _, e := range hist {
		switch e.Event {
		case store.EventOpened, store.EventReopened:
			if e.Event == store.EventOpened {
				ft.Detected, ft.DetectedScan = e.At, e.ScanID
			}
			windowAt = e.At
			ft.Remediated, ft.VerifiedScan, ft.TimeToRemediate = time.Time{}, "", 0
		case store.EventResolved:
			ft.Remediated, ft.VerifiedScan = e.At, e.ScanID
			if !windowAt.IsZero() {
				ft.TimeToRemediate = e.At.Sub(windowAt)
			}
		}
		if e.ScanID == "" {
			continue
		}
		if e.Event != store.EventResolved {
			if firstScan == "" {
				firstScan = e.ScanID
			}
			lastScan = e.ScanID
		}
		if !slices.Contains(subjects, e.ScanID) {
			subjects = append(subjects, e.ScanID)
		}
	}
	for _, scan := range uniq(firstScan, lastScan) {
		obs, err := rd.ScanObservations(ctx, scan, f.Location)
		if err != nil {
			return nil, fmt.Errorf("trace finding %s: scan %s: %w", f.ID, scan, err)
		}
		s := ObservationSighting{Scan: scan}
		for _, o := range obs {
			if !Matches(&f, &o) {
				continue
			}
			if len(s.Observations) == MaxObservationsPerScan {
				s.More++
				continue
			}
			s.Observations = append(s.Observations, o)
		}
		ft.Observed = append(ft.Observed, s)
	}
	if ft.Evidence, err = rd.EvidenceRefs(ctx, subjects); err != nil {
		return nil, fmt.Errorf("trace finding %s: %w", f.ID, err)
	}
	return ft, nil
}

func uniq(ids ...string) []string {
	var out []string
	for _, id := range ids {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Matches reports whether observation o is about finding f's target:
// the same target (IP:PORT, IP, SYSTEM:USER, FILE:PKG@VER), an address in a
// CIDR target, or for a SEGMENT->SEGMENT target a reach probe from the one
// segment that found the other open.
func Matches(f *observe.Finding, o *observe.Observation) bool {
	if o.Target() == f.Target {
		return true
	}
	if from, to, ok := strings.Cut(f.Target, "->"); ok {
		if o.Kind != observe.KindReach || o.Vantage != from {
			return false
		}
		if _, seg, cross := strings.Cut(to, "/"); cross {
			to = seg
		}
		state, _ := o.Attrs["state"].(string)
		return o.Segment == to && state == "open"
	}
	if p, err := netip.ParsePrefix(f.Target); err == nil {
		a, err := netip.ParseAddr(o.Host)
		return err == nil && p.Contains(a) && (o.Kind == observe.KindHost || o.Kind == observe.KindService)
	}
	return o.Port == 0 && o.Host == f.Target || o.Host == f.Target && o.Kind == observe.KindHost
}

// ControlTrace is the chain for one control: its status everywhere and
// every risk whose findings cite it, each traced.
type ControlTrace struct {
	Status controls.ControlStatus `json:"status"`
	Risks  []Trace                `json:"risks"`
}

// TraceControl builds the chain for the control whose organisation status
// is st: every risk in register that cites it, traced.
func TraceControl(ctx context.Context, rd Reader, st controls.ControlStatus, register []Risk, findings map[string]observe.Finding, statuses []controls.ControlStatus) (*ControlTrace, error) {
	ct := &ControlTrace{Status: st}
	for _, r := range register {
		if !slices.Contains(r.Controls, st.Control.ID) {
			continue
		}
		t, err := TraceRisk(ctx, rd, r, findings, statuses)
		if err != nil {
			return nil, err
		}
		ct.Risks = append(ct.Risks, *t)
	}
	return ct, nil
}
