package risk

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

// Status is where a risk stands. Names are part of the public contract.
type Status string

// Risk statuses.
const (
	// StatusOpen: findings or an unmet control stand and nobody has
	// accepted or transferred the risk (or the acceptance ran out).
	StatusOpen Status = "open"
	// StatusAccepted: a person accepted the risk, with a reason, until a
	// date, and every finding under it is accepted or a false positive.
	StatusAccepted Status = "accepted"
	// StatusTransferred: the risk is shared with another party (insurance,
	// a vendor under contract) and still tracked.
	StatusTransferred Status = "transferred"
	// StatusClosed: every finding under it is resolved, or the control is
	// met again.
	StatusClosed Status = "closed"
)

// Source says what a risk was derived from.
type Source string

// Risk sources.
const (
	FromFindings Source = "findings" // findings of one rule at one location
	FromControl  Source = "control"  // controls whose attestation is missing or expired
)

// administrative is the category of control risks.
const administrative observe.Category = "administrative"

// OrgScope is the location part of the id of an organisation-wide risk
// (accounts, software, attestations), whose findings have no location.
const OrgScope = "organisation"

// DefaultDueDays is how long the register gives a risk of each level to be
// mitigated, counted from first detection, when nobody set a due date.
// These are vigil's defaults, in line with common vulnerability-management
// policies (critical in a week, high in a month); set a due date per risk
// to override.
var DefaultDueDays = map[Level]int{VeryHigh: 7, High: 30, Moderate: 90, Low: 180, VeryLow: 365}

// Risk is one entry of the register.
type Risk struct {
	// ID is "RULE@LOCATION" for a finding risk (LOCATION is OrgScope for
	// organisation-wide findings) or "attestation:KIND[+KIND...]" for the
	// controls a missing or expired attestation leaves unmet.
	ID     string `json:"id"`
	Title  string `json:"title"`
	Source Source `json:"source"`
	// Threat is the threat event in plain words; Vulnerability the
	// condition vigil saw that makes it possible.
	Threat        string           `json:"threat"`
	Vulnerability string           `json:"vulnerability"`
	Rule          string           `json:"rule,omitempty"`
	Control       string           `json:"control,omitempty"`
	Category      observe.Category `json:"category"`
	Location      string           `json:"location"`
	// Locations are, for a control risk, the locations where it is unmet.
	Locations []string `json:"locations,omitempty"`
	Controls  []string `json:"controls"`

	Likelihood Level `json:"likelihood"`
	Impact     Level `json:"impact"`
	Level      Level `json:"level"`
	// Rationale says how likelihood and impact were reached, including a
	// person's override.
	Rationale []string `json:"rationale"`

	Owner     string            `json:"owner,omitempty"`
	Treatment observe.Treatment `json:"treatment,omitempty"`
	Due       time.Time         `json:"due,omitzero"`
	// DueDefault is true when Due comes from DefaultDueDays.
	DueDefault bool   `json:"due_default,omitempty"`
	Overdue    bool   `json:"overdue,omitempty"`
	Status     Status `json:"status"`
	// Notes explain the status where it is not obvious (an acceptance
	// that expired, findings the acceptance does not cover).
	Notes []string `json:"notes,omitempty"`
	// Decision is the register entry that set owner, treatment and due
	// date, if anyone did.
	Decision *observe.RiskTreatment `json:"decision,omitempty"`

	Findings      []FindingRef `json:"findings,omitempty"`
	Open          int          `json:"open"`
	Accepted      int          `json:"accepted"`
	Resolved      int          `json:"resolved"`
	FirstDetected time.Time    `json:"first_detected,omitzero"`
	LastSeen      time.Time    `json:"last_seen,omitzero"`
}

// FindingRef is a finding under a risk, as the register lists it.
type FindingRef struct {
	ID        string         `json:"id"`
	Target    string         `json:"target"`
	Location  string         `json:"location"`
	Severity  string         `json:"severity"`
	Status    observe.Status `json:"status"`
	FirstSeen time.Time      `json:"first_seen"`
	LastSeen  time.Time      `json:"last_seen"`
}

// Input is what the register is derived from.
type Input struct {
	// Config gives the locations' segments, to tell a finding on a
	// segment holding ePHI or seen from the guest network. May be nil.
	Config *config.Config
	// Findings are the stored findings, every status.
	Findings []observe.Finding
	// Controls is the organisation's control status (controls.Organization);
	// unmet attestations become control risks. May be nil.
	Controls []controls.ControlStatus
	// Catalog names the attestation kinds in control risks' titles. May
	// be nil.
	Catalog *rules.Catalog
	// Treatments are the current register decisions (store.RiskTreatments).
	Treatments []observe.RiskTreatment
	// Since is when vigil started watching (the first scan): a record
	// that was never made is "detected" then, which starts its due date.
	Since time.Time
	Now   time.Time
}

// FindingRiskID is the id of the risk a finding belongs to.
func FindingRiskID(f *observe.Finding) string {
	loc := f.Location
	if loc == "" {
		loc = OrgScope
	}
	return f.Rule + "@" + loc
}

// ControlRiskID is the id of the risk of controls left unmet by missing
// or expired attestations of kinds ("+"-joined, sorted).
func ControlRiskID(kinds string) string { return "attestation:" + kinds }

// Register derives the register: one risk per rule and location with
// findings, one per control whose attestation is missing or expired,
// each rated and joined with its latest decision. Closed risks last;
// otherwise highest level first, then open before treated, then oldest.
func Register(in Input) []Risk {
	treat := make(map[string]*observe.RiskTreatment, len(in.Treatments))
	for i := range in.Treatments {
		treat[in.Treatments[i].Risk] = &in.Treatments[i]
	}
	groups := map[string][]*observe.Finding{}
	var order []string
	for i := range in.Findings {
		f := &in.Findings[i]
		id := FindingRiskID(f)
		if _, ok := groups[id]; !ok {
			order = append(order, id)
		}
		groups[id] = append(groups[id], f)
	}
	out := make([]Risk, 0, len(order))
	for _, id := range order {
		r := fromFindings(id, groups[id], in)
		r.apply(treat[id], in.Now)
		out = append(out, r)
	}
	for _, r := range controlRisks(in) {
		r.apply(treat[r.ID], in.Now)
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b Risk) int {
		return cmp.Or(cmp.Compare(closed(a), closed(b)), cmp.Compare(b.Level, a.Level), cmp.Compare(statusOrder(a.Status), statusOrder(b.Status)),
			a.FirstDetected.Compare(b.FirstDetected), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func closed(r Risk) int {
	if r.Status == StatusClosed {
		return 1
	}
	return 0
}

func statusOrder(s Status) int {
	switch s {
	case StatusOpen:
		return 0
	case StatusTransferred:
		return 1
	case StatusAccepted:
		return 2
	}
	return 3
}

// Find returns the risk with id.
func Find(rs []Risk, id string) (*Risk, bool) {
	for i := range rs {
		if rs[i].ID == id {
			return &rs[i], true
		}
	}
	return nil, false
}

func fromFindings(id string, fs []*observe.Finding, in Input) Risk {
	first := fs[0]
	r := Risk{ID: id, Source: FromFindings, Rule: first.Rule, Category: first.Category, Location: first.Location,
		Threat: threats[first.Category].threat, Title: first.Title}
	var (
		worst    observe.Severity
		internet bool
		exposure string
		ephi     string
		controls = map[string]bool{}
	)
	loc := location(in.Config, first.Location)
	for _, f := range fs {
		st := f.StatusAt(in.Now)
		r.Findings = append(r.Findings, FindingRef{ID: f.ID, Target: f.Target, Location: f.Location, Severity: string(f.Severity),
			Status: st, FirstSeen: f.FirstSeen, LastSeen: f.LastSeen})
		if r.FirstDetected.IsZero() || f.FirstSeen.Before(r.FirstDetected) {
			r.FirstDetected = f.FirstSeen
		}
		if f.LastSeen.After(r.LastSeen) {
			r.LastSeen = f.LastSeen
		}
		for _, c := range f.Controls {
			controls[c] = true
		}
		switch st {
		case observe.StatusResolved:
			r.Resolved++
			continue
		case observe.StatusAccepted, observe.StatusFalsePositive:
			r.Accepted++
			continue
		}
		// Only what stands now rates the risk.
		r.Open++
		if f.Severity.Rank() > worst.Rank() {
			worst = f.Severity
		}
		if v, _ := f.Evidence["internet_facing"].(bool); v {
			internet = true
		}
		if loc != nil {
			if seg, ok := loc.Segment(f.Vantage); ok && (seg.Role == "guest" || seg.Role == "iot") {
				exposure = seg.Role
			}
			if ephi == "" {
				ephi = ephiSegment(loc, f.Target)
			}
		}
	}
	if worst == "" { // nothing stands: rate by what was there
		for _, f := range fs {
			if f.Severity.Rank() > worst.Rank() {
				worst = f.Severity
			}
		}
	}
	r.Controls = sortedKeys(controls)
	r.Vulnerability = vulnerability(first, len(fs))
	r.Likelihood, r.Impact, r.Rationale = rate(first.Category, worst, internet, exposure, ephi)
	return r
}

// controlRisks makes one risk per set of attestation kinds that unmet
// controls need: a missing training record is one risk citing every
// control it leaves unmet (HIPAA, CPG, insurance, state), not one per
// control. A HIPAA standard judged by its specifications joins their risk.
func controlRisks(in Input) []Risk {
	byKey := map[string]*Risk{}
	var order []string
	for _, s := range in.Controls {
		if s.Status != controls.AttestationMissing && s.Status != controls.AttestationExpired {
			continue
		}
		k := s.Control
		if len(k.Attestations) == 0 {
			continue // a standard whose specifications carry the evidence
		}
		if a := s.Attestation; a != nil && a.Counts() && (a.ExpiresAt.IsZero() || a.ExpiresAt.After(in.Now)) {
			// Its own record is current: what is unmet is a specification
			// (a standard), which has its own risk.
			continue
		}
		kinds := slices.Sorted(slices.Values(k.Attestations))
		id := ControlRiskID(strings.Join(kinds, "+"))
		r, ok := byKey[id]
		if !ok {
			var titles []string
			for _, kind := range kinds {
				title := kind
				if in.Catalog != nil {
					if a, ok := in.Catalog.AttestationKind(kind); ok {
						title = a.Title
					}
				}
				titles = append(titles, title)
			}
			r = &Risk{ID: id, Source: FromControl, Control: k.ID, Category: administrative, Open: 1,
				Title: "No current record: " + strings.Join(titles, " / "), Threat: threats[administrative].threat,
				Likelihood: Moderate, Impact: Moderate}
			byKey[id] = r
			order = append(order, id)
		}
		r.Controls = appendNew(r.Controls, k.ID)
		if k.Standard != "" {
			r.Controls = appendNew(r.Controls, k.Standard)
		}
		for _, why := range s.Reasons {
			if !strings.Contains(r.Vulnerability, why) {
				r.Vulnerability = strings.TrimSpace(r.Vulnerability + " " + why)
			}
		}
		for _, l := range s.ByLocation {
			if l.Status == controls.AttestationMissing || l.Status == controls.AttestationExpired {
				r.Locations = appendNew(r.Locations, l.Location)
			}
		}
		if k.Framework == "hipaa" && (k.ROrA == "R" || k.ROrA == "S") {
			r.Impact = High
		}
		if a := s.Attestation; a != nil && !a.ExpiresAt.IsZero() && (r.FirstDetected.IsZero() || a.ExpiresAt.Before(r.FirstDetected)) {
			r.FirstDetected = a.ExpiresAt
		}
	}
	out := make([]Risk, 0, len(order))
	for _, id := range order {
		r := byKey[id]
		if r.FirstDetected.IsZero() {
			r.FirstDetected = in.Since
		}
		slices.Sort(r.Controls)
		slices.Sort(r.Locations)
		r.Rationale = []string{"likelihood moderate: a safeguard nobody has confirmed is in place (NIST SP 800-30 Table G-5)"}
		if r.Impact == High {
			r.Rationale = append(r.Rationale, "impact high: a required HIPAA safeguard (Table H-3)")
		} else {
			r.Rationale = append(r.Rationale, "impact moderate (Table H-3)")
		}
		out = append(out, *r)
	}
	return out
}

func appendNew(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// apply joins the latest decision and settles level, due date and status.
func (r *Risk) apply(t *observe.RiskTreatment, now time.Time) {
	if t != nil {
		r.Decision = t
		r.Owner, r.Treatment = t.Owner, t.Treatment
		if l, err := ParseLevel(t.Likelihood); err == nil && t.Likelihood != "" {
			r.Rationale = append(r.Rationale, fmt.Sprintf("likelihood set to %s by %s (derived: %s): %s", l, t.By, r.Likelihood, t.Reason))
			r.Likelihood = l
		}
		if l, err := ParseLevel(t.Impact); err == nil && t.Impact != "" {
			r.Rationale = append(r.Rationale, fmt.Sprintf("impact set to %s by %s (derived: %s): %s", l, t.By, r.Impact, t.Reason))
			r.Impact = l
		}
		r.Due = t.Due
	}
	r.Level = Combine(r.Likelihood, r.Impact)
	if r.Due.IsZero() && !r.FirstDetected.IsZero() {
		r.Due, r.DueDefault = r.FirstDetected.AddDate(0, 0, DefaultDueDays[r.Level]), true
	}
	switch {
	case r.Open == 0 && r.Accepted == 0 && r.Source == FromFindings:
		r.Status = StatusClosed
	case r.Treatment == observe.TreatAccept && t != nil && !t.Expires.IsZero() && !now.Before(t.Expires):
		r.Status = StatusOpen
		r.Notes = append(r.Notes, fmt.Sprintf("acceptance by %s expired %s", t.By, t.Expires.UTC().Format(time.DateOnly)))
	case r.Treatment == observe.TreatAccept && r.Open > 0 && r.Source == FromFindings:
		r.Status = StatusOpen
		r.Notes = append(r.Notes, fmt.Sprintf("%d finding(s) not covered by the acceptance: accept again to cover them, or fix them", r.Open))
	case r.Treatment == observe.TreatAccept:
		r.Status = StatusAccepted
	case r.Treatment == observe.TreatTransfer:
		r.Status = StatusTransferred
	case r.Open == 0 && r.Source == FromFindings:
		r.Status = StatusAccepted // every finding accepted or a false positive, one by one
	default:
		r.Status = StatusOpen
	}
	r.Overdue = (r.Status == StatusOpen || r.Status == StatusTransferred) && !r.Due.IsZero() && now.After(r.Due)
}

// rate derives likelihood and impact for a finding risk. The rules'
// severity already weighs what the weakness allows; exposure and what sits
// on the segment refine it.
func rate(cat observe.Category, sev observe.Severity, internet bool, exposure, ephi string) (likelihood, impact Level, why []string) {
	likelihood = threats[cat].likelihood
	if likelihood == 0 {
		likelihood = Moderate
	}
	why = append(why, fmt.Sprintf("likelihood %s: base for %s (NIST SP 800-30 Table G-5)", likelihood, cat))
	switch {
	case internet:
		likelihood = VeryHigh
		why = append(why, "likelihood very-high: reachable on a public address")
	case exposure != "" && likelihood < High:
		likelihood = High
		why = append(why, "likelihood high: reachable from the "+exposure+" network")
	}
	if sev == observe.Critical && likelihood < High {
		likelihood = High
		why = append(why, "likelihood high: a critical finding")
	}
	impact = map[observe.Severity]Level{observe.Critical: VeryHigh, observe.High: High, observe.Medium: Moderate,
		observe.Low: Low, observe.Info: VeryLow}[sev]
	if impact == 0 {
		impact = Moderate
	}
	why = append(why, fmt.Sprintf("impact %s: the rule's severity %s (Table H-3)", impact, sev))
	if ephi != "" && impact < High {
		impact = High
		why = append(why, "impact high: on the "+ephi+" segment, which holds ePHI")
	}
	return likelihood, impact, why
}

// threats are the threat events per finding category and their base
// likelihood: how often the weakness is exploited in practice.
var threats = map[observe.Category]struct {
	threat     string
	likelihood Level
}{
	"flat-network":        {"Malware or an intruder on one segment reaches systems holding ePHI on another", Moderate},
	"exposed-service":     {"An attacker reaches a remote-access, file-sharing or database service from where it should not answer", Moderate},
	"plaintext-protocol":  {"Credentials or ePHI are read or altered in transit", Moderate},
	"weak-tls":            {"Traffic carrying ePHI is intercepted through weak or invalid TLS", Low},
	"default-credentials": {"Someone logs in without a password or with a vendor default", High},
	"missing-mfa":         {"An account is taken over with a stolen or guessed password", High},
	"stale-account":       {"An account nobody uses or watches (former staff, old vendors) is misused", Moderate},
	"shared-account":      {"Actions cannot be traced to a person; a login outlives staff changes", Moderate},
	"vulnerable-software": {"A known vulnerability is exploited", Moderate},
	"unknown-asset":       {"An unmanaged device holds or reaches ePHI", Low},
	administrative:        {"A safeguard nobody has confirmed is in place fails when needed", Moderate},
}

func vulnerability(f *observe.Finding, n int) string {
	if n == 1 {
		return f.Title + " (" + f.Target + ")"
	}
	return fmt.Sprintf("%s (%d targets)", f.Title, n)
}

// ephiSegment names the clinical or servers segment a finding's address is
// on, "" when it is not on one or the target is not an address.
func ephiSegment(loc *config.Location, target string) string {
	host := target
	if ap, err := netip.ParseAddrPort(target); err == nil {
		host = ap.Addr().String()
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	if seg, ok := loc.SegmentOf(addr); ok && (seg.Role == "clinical" || seg.Role == "servers") {
		return seg.Name
	}
	return ""
}

func location(c *config.Config, id string) *config.Location {
	if c == nil || id == "" {
		return nil
	}
	l, _ := c.Location(id)
	return l
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Summary counts risks by status and level, for reports and dashboards.
type Summary struct {
	ByStatus map[Status]int `json:"by_status"`
	// OpenByLevel counts open and transferred risks by level.
	OpenByLevel map[string]int `json:"open_by_level"`
	Overdue     int            `json:"overdue"`
	Unowned     int            `json:"unowned"`
}

// Summarize counts rs.
func Summarize(rs []Risk) Summary {
	s := Summary{ByStatus: map[Status]int{}, OpenByLevel: map[string]int{}}
	for _, r := range rs {
		s.ByStatus[r.Status]++
		if r.Status == StatusOpen || r.Status == StatusTransferred {
			s.OpenByLevel[r.Level.String()]++
			if r.Owner == "" {
				s.Unowned++
			}
		}
		if r.Overdue {
			s.Overdue++
		}
	}
	return s
}

// MaxAcceptance is the longest a person may accept a risk or call a
// finding a false positive before it is looked at again: a year, the
// cadence at which 164.308(a)(8) evaluations and most carriers' renewals
// come round.
const MaxAcceptance = 366 * 24 * time.Hour

// CheckExpiry validates the expiry of an acceptance or false positive
// recorded at now: after now, and no more than MaxAcceptance later.
func CheckExpiry(expires, now time.Time) error {
	switch {
	case expires.IsZero():
		return fmt.Errorf("an expiry is required: the risk reopens then")
	case !expires.After(now):
		return fmt.Errorf("expiry %s is not in the future", expires.Format(time.DateOnly))
	case expires.Sub(now) > MaxAcceptance:
		return fmt.Errorf("expiry %s is more than a year away: accept for at most a year and review it then", expires.Format(time.DateOnly))
	}
	return nil
}
