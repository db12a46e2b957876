// Package alerts tells people when vigil's picture of an organisation gets
// worse: a new critical or high finding, a control that was satisfied and no
// longer is, an attestation about to expire. It computes alerts from what
// changed, remembers what it already sent, and delivers them over signed
// webhooks, Slack or Teams webhooks and SMTP email, retrying with backoff
// and combining one scan's alerts into one message.
package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
)

// Kind names what an alert is about. Names are part of the public contract
// (the webhook payload and docs/alerts.md).
type Kind string

// Alert kinds.
const (
	// NewFinding: an open finding at or above the minimum severity that the
	// previous scan did not have open (new, or reopened after resolution).
	NewFinding Kind = "new-finding"
	// ControlRegressed: a control that was satisfied at a location now has
	// a gap, or its attestation is missing or expired.
	ControlRegressed Kind = "control-regressed"
	// AttestationExpiring: an attestation expires within the warning window.
	AttestationExpiring Kind = "attestation-expiring"
	// AttestationExpired: an attestation has expired.
	AttestationExpired Kind = "attestation-expired"
	// SourceQuiet is reserved for site agents that stop reporting.
	SourceQuiet Kind = "source-quiet"
)

// Kinds lists every alert kind.
var Kinds = []Kind{NewFinding, ControlRegressed, AttestationExpiring, AttestationExpired, SourceQuiet}

// Link is a place a person can open to see more.
type Link struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Alert is one thing that got worse. Key identifies it for deduplication:
// the same Key is never delivered twice to the same channel.
type Alert struct {
	Kind     Kind             `json:"kind"`
	Key      string           `json:"key"`
	Severity observe.Severity `json:"severity"`
	// Location is the location id; "" for the organisation as a whole.
	Location string `json:"location,omitempty"`
	Title    string `json:"title"`
	Details  string `json:"details,omitempty"`
	// FindingID, Rule and Target name the finding (new-finding).
	FindingID string `json:"finding_id,omitempty"`
	Rule      string `json:"rule,omitempty"`
	Target    string `json:"target,omitempty"`
	// Control and From/To describe a control regression.
	Control string `json:"control,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	// Attestation is the attestation kind (attestation-expiring, -expired);
	// Expires its expiry.
	Attestation string    `json:"attestation,omitempty"`
	Expires     time.Time `json:"expires,omitzero"`
	Links       []Link    `json:"links,omitempty"`
	// At is when the change was seen (the scan's time, or now for reminders).
	At time.Time `json:"at"`
}

// Options tune how alerts are computed.
type Options struct {
	// MinSeverity is the lowest finding severity that alerts (default high).
	MinSeverity observe.Severity
	// DashboardURL, when set, adds links to the dashboard's pages.
	DashboardURL string
}

func (o Options) min() observe.Severity {
	if o.MinSeverity.Valid() {
		return o.MinSeverity
	}
	return observe.High
}

func (o Options) link(title, path string) []Link {
	if o.DashboardURL == "" {
		return nil
	}
	return []Link{{Title: title, URL: strings.TrimRight(o.DashboardURL, "/") + path}}
}

// FromScan returns an alert for every finding open in current, at or above
// the minimum severity, that was not open in previous: new findings, and
// findings reopened after being resolved. Accepted and false-positive
// findings never alert. at is the time of the current scan.
func FromScan(previous, current []observe.Finding, at time.Time, o Options) []Alert {
	was := make(map[string]observe.Finding, len(previous))
	for _, f := range previous {
		was[f.ID] = f
	}
	min := o.min().Rank()
	var out []Alert
	for _, f := range current {
		if f.Status != observe.StatusOpen || f.Severity.Rank() < min {
			continue
		}
		p, seen := was[f.ID]
		if seen && p.Status == observe.StatusOpen {
			continue
		}
		// A reopened finding keeps its first_seen, so its key carries the
		// time it was reopened: reopening twice alerts twice.
		since := f.FirstSeen
		verb := "New"
		if seen {
			since = at
			verb = "Reopened"
		}
		loc := f.Location
		where := loc
		if where == "" {
			where = "organisation"
		}
		details := fmt.Sprintf("%s %s finding at %s: %s (rule %s, category %s).", verb, f.Severity, where, f.Target, f.Rule, f.Category)
		if f.Remediation != "" {
			details += " Fix: " + f.Remediation
		}
		out = append(out, Alert{
			Kind:      NewFinding,
			Key:       key("new-finding", f.ID, stamp(since)),
			Severity:  f.Severity,
			Location:  loc,
			Title:     f.Title,
			Details:   details,
			FindingID: f.ID,
			Rule:      f.Rule,
			Target:    f.Target,
			Links:     o.link("Finding", "/findings/"+url.PathEscape(f.ID)),
			At:        at,
		})
	}
	sortAlerts(out)
	return out
}

// FromControls returns an alert for every control that was satisfied in
// previous and, in current, has a gap or a missing or expired attestation,
// per location (organisation roll-ups are compared by their ByLocation
// breakdown, so a regression is named once, where it happened). A
// regression to a gap is high; to a missing or expired attestation medium.
func FromControls(previous, current []controls.ControlStatus, at time.Time, o Options) []Alert {
	type ck struct{ control, loc string }
	flatten := func(list []controls.ControlStatus) map[ck]controls.ControlStatus {
		m := map[ck]controls.ControlStatus{}
		var walk func(controls.ControlStatus)
		walk = func(s controls.ControlStatus) {
			if s.Location == "" && len(s.ByLocation) > 0 {
				for _, b := range s.ByLocation {
					walk(b)
				}
				return
			}
			m[ck{s.Control.ID, s.Location}] = s
		}
		for _, s := range list {
			walk(s)
		}
		return m
	}
	was, now := flatten(previous), flatten(current)
	var out []Alert
	for k, cur := range now {
		p, ok := was[k]
		if !ok || p.Status != controls.Satisfied {
			continue
		}
		sev := observe.Medium
		switch cur.Status {
		case controls.Gap:
			sev = observe.High
		case controls.AttestationMissing, controls.AttestationExpired:
		default:
			continue
		}
		title := fmt.Sprintf("Control %s is no longer satisfied: %s", k.control, cur.Status)
		if cur.Control.Title != "" {
			title = fmt.Sprintf("%s (%s) is no longer satisfied: %s", cur.Control.Title, k.control, cur.Status)
		}
		details := strings.Join(cur.Reasons, " ")
		if len(cur.Open) > 0 {
			ids := make([]string, 0, len(cur.Open))
			for _, f := range cur.Open {
				ids = append(ids, f.Rule+" on "+f.Target)
			}
			details = strings.TrimSpace(details + " Open findings: " + strings.Join(ids, ", ") + ".")
		}
		out = append(out, Alert{
			Kind:     ControlRegressed,
			Key:      key("control-regressed", k.control, k.loc, string(cur.Status), stamp(at)),
			Severity: sev,
			Location: k.loc,
			Title:    title,
			Details:  details,
			Control:  k.control,
			From:     string(p.Status),
			To:       string(cur.Status),
			At:       at,
		})
	}
	sortAlerts(out)
	return out
}

// Reminder stages: an expiring attestation is reminded about once when it
// enters the warning window, again a week before, and again the day before.
func stage(days int) string {
	switch {
	case days <= 1:
		return "1d"
	case days <= 7:
		return "7d"
	}
	return "window"
}

// FromReminders turns attestation reminders (attest.Due, attest.NewHireDue)
// into alerts: expiring ones are medium (high in the last week), expired
// ones high. A new hire's training whose deadline passed (state missing,
// with a Person) alerts as attestation-expired. Missing attestations with
// no person are not alerts here: control status reports them, and
// FromControls when a satisfied control loses one.
func FromReminders(rems []attest.Reminder, now time.Time, o Options) []Alert {
	var out []Alert
	for _, r := range rems {
		where := r.Location
		if where == "" {
			where = "organisation"
		}
		subject := where
		if r.Person != "" {
			subject = r.Person + ", " + where
		}
		exp := r.Expires.UTC().Format(time.DateOnly)
		a := Alert{
			Location:    r.Location,
			Attestation: r.Kind,
			Control:     r.Control,
			Expires:     r.Expires,
			At:          now,
		}
		switch {
		case r.State == "expiring":
			a.Kind = AttestationExpiring
			a.Severity = observe.Medium
			if r.Days <= 7 {
				a.Severity = observe.High
			}
			a.Key = key("attestation-expiring", r.Kind, r.Location, r.Person, exp, stage(r.Days))
			a.Title = fmt.Sprintf("%s expires in %d days (%s)", r.Title, r.Days, subject)
			a.Details = fmt.Sprintf("The %s attestation for %s expires on %s. Record a new one with vigil attest add.", r.Kind, subject, exp)
			if r.Person != "" {
				a.Title = fmt.Sprintf("%s due in %d days (%s)", r.Title, r.Days, subject)
				a.Details = fmt.Sprintf("%s must complete %s by %s%s. Record it with vigil attest add.", r.Person, r.Kind, exp, cites(r.Citation))
			}
		case r.State == "expired", r.State == "missing" && r.Person != "":
			a.Kind = AttestationExpired
			a.Severity = observe.High
			a.Key = key("attestation-expired", r.Kind, r.Location, r.Person, exp)
			a.Title = fmt.Sprintf("%s expired %d days ago (%s)", r.Title, -r.Days, subject)
			a.Details = fmt.Sprintf("The %s attestation for %s expired on %s. Record a new one with vigil attest add.", r.Kind, subject, exp)
			if r.Person != "" {
				a.Title = fmt.Sprintf("%s overdue by %d days (%s)", r.Title, -r.Days, subject)
				a.Details = fmt.Sprintf("%s was due to complete %s by %s%s. Record it with vigil attest add.", r.Person, r.Kind, exp, cites(r.Citation))
			}
		default:
			continue
		}
		out = append(out, a)
	}
	sortAlerts(out)
	return out
}

func cites(citation string) string {
	if citation == "" {
		return ""
	}
	return " (" + citation + ")"
}

// key joins the parts of an alert's identity and hashes the long ones so
// keys stay short and carry nothing a log should not show.
func key(kind string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return kind + ":" + hex.EncodeToString(h[:12])
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// sortAlerts orders alerts worst first, then by location and title, so
// digests and tests are stable.
func sortAlerts(as []Alert) {
	sort.SliceStable(as, func(i, j int) bool {
		a, b := as[i], as[j]
		if ra, rb := a.Severity.Rank(), b.Severity.Rank(); ra != rb {
			return ra > rb
		}
		if a.Location != b.Location {
			return a.Location < b.Location
		}
		if a.Title != b.Title {
			return a.Title < b.Title
		}
		return a.Key < b.Key
	})
}
