// Package controls judges every control in the catalog at every location:
// satisfied, gap, not assessed, or an attestation missing or expired, with
// the findings, scans and attestations that show it. It only reads what
// rules, scans and people recorded; it never scans and never stores.
package controls

import (
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

// Verdict is the status of one control at one location (or for the
// organisation). Names are part of the public contract.
type Verdict string

// Verdicts, from best to worst; Worse orders them.
const (
	// Satisfied: every part of the control's evidence is there and current.
	Satisfied Verdict = "satisfied"
	// NotAssessed: vigil has no evidence either way: no rule cites the
	// control, or no recent complete scan ran those rules here.
	NotAssessed Verdict = "not-assessed"
	// AttestationExpired: the latest attestation is past its expiry.
	AttestationExpired Verdict = "attestation-expired"
	// AttestationMissing: nobody recorded an attestation that satisfies it.
	AttestationMissing Verdict = "attestation-missing"
	// Gap: an open finding cites the control.
	Gap Verdict = "gap"
)

// Verdicts lists every verdict, best first.
var Verdicts = []Verdict{Satisfied, NotAssessed, AttestationExpired, AttestationMissing, Gap}

func (v Verdict) rank() int {
	for i, w := range Verdicts {
		if v == w {
			return i
		}
	}
	return len(Verdicts)
}

// Worse reports whether v is worse than w: a gap is worse than a missing
// attestation, which is worse than an expired one, which is worse than no
// evidence, which is worse than satisfied.
func (v Verdict) Worse(w Verdict) bool { return v.rank() > w.rank() }

// unmet reports whether v is a failure the entity must act on (as opposed
// to satisfied, or unknown).
func (v Verdict) unmet() bool { return v == Gap || v == AttestationMissing || v == AttestationExpired }

// DefaultMaxScanAge is how recent a complete scan must be to count as
// evidence when Input.MaxScanAge is zero.
const DefaultMaxScanAge = 30 * 24 * time.Hour

// AddressableNote qualifies an unmet addressable specification: 45 CFR
// 164.306(d)(3) lets the entity document why it is not reasonable and
// appropriate, and what equivalent it does instead.
const AddressableNote = "addressable: document why not implemented or the alternative"

// ControlStatus is the verdict on one control at one location, or for the
// organisation (Location "", with ByLocation), and why.
type ControlStatus struct {
	Control rules.Control `json:"control"`
	// CatalogVersion is the version of the catalog that judged it.
	CatalogVersion string `json:"catalog_version"`
	// Location is the location id; "" for the organisation's roll-up.
	Location string  `json:"location"`
	Status   Verdict `json:"status"`
	// Addressable is true for an addressable HIPAA specification reported
	// as addressable (controls.addressable_as_required is off): when it is
	// unmet, documenting why and the alternative is an answer too.
	Addressable bool `json:"addressable,omitempty"`
	// Reasons explain the status in plain sentences.
	Reasons []string `json:"reasons"`
	// Open are the open findings citing the control here (the location's
	// and the organisation-wide ones); Accepted those accepted as risks.
	Open     []FindingRef `json:"open_findings,omitempty"`
	Accepted []FindingRef `json:"accepted_findings,omitempty"`
	// Evaluated are the rules citing the control and the latest recent
	// complete scan that ran each here; NotRun the citing rules none ran.
	Evaluated []RuleRun `json:"evaluated,omitempty"`
	NotRun    []string  `json:"not_run,omitempty"`
	// Attestation is the record that counts (the current one, else the
	// latest expired one).
	Attestation *Attestation `json:"attestation,omitempty"`
	// Specifications are a HIPAA standard's implementation
	// specifications, whose verdicts count towards its own.
	Specifications []SpecVerdict `json:"specifications,omitempty"`
	// OverdueTraining are the people at the location past the new-hire
	// training deadline this control (a state overlay) sets.
	OverdueTraining []OverdueTraining `json:"overdue_training,omitempty"`
	// ByLocation is the per-location breakdown of an organisation roll-up.
	ByLocation []ControlStatus `json:"by_location,omitempty"`
}

// Label is the status as a report shows it: the verdict, qualified for an
// unmet addressable specification.
func (s ControlStatus) Label() string {
	if s.Addressable && s.Status.unmet() {
		return string(s.Status) + " (" + AddressableNote + ")"
	}
	return string(s.Status)
}

// FindingRef names a finding that counts towards a control's status.
type FindingRef struct {
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	Location string `json:"location"`
	Target   string `json:"target"`
	Severity string `json:"severity"`
}

// RuleRun is a rule that cites a control and the scan that last ran it
// over the location.
type RuleRun struct {
	Rule string    `json:"rule"`
	Scan string    `json:"scan"`
	At   time.Time `json:"at"`
}

// SpecVerdict is an implementation specification's verdict inside its
// standard's status.
type SpecVerdict struct {
	Control string  `json:"control"`
	Status  Verdict `json:"status"`
}

// Attestation is a person's dated record that an administrative safeguard
// is in place (see observe.Attestation). Status reads Kind, Location, At
// and ExpiresAt, which the caller has filled with the computed expiry.
type Attestation = observe.Attestation

// AttestationSource gives the attestations recorded so far. Status reads it
// many times per call, so it should answer from memory: load the records
// first (AttestationList) when they live in a store.
type AttestationSource interface {
	// Attestations returns every attestation of kind, for any location.
	Attestations(kind string) []Attestation
}

// AttestationList is an AttestationSource over records already loaded.
type AttestationList []Attestation

// Attestations implements AttestationSource.
func (l AttestationList) Attestations(kind string) []Attestation {
	var out []Attestation
	for _, a := range l {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// OverdueTraining is a workforce member at a location past a state's
// new-hire training deadline with no training attestation naming them
// (attest.NewHireDue computes it from the roster's hire dates).
type OverdueTraining struct {
	// Control is the state overlay that sets the deadline.
	Control  string `json:"control"`
	Location string `json:"location"`
	// Person is the email, else the username, the roster gives.
	Person   string    `json:"person"`
	Hired    time.Time `json:"hired"`
	Deadline time.Time `json:"deadline"`
	// Citation is the provision that sets the deadline.
	Citation string `json:"citation,omitempty"`
}
