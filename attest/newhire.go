package attest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/rules"
)

// Person is one member of the workforce as the staff roster lists them
// (cmd/vigil fills it from csvidentity.StaffMember, so that this package
// does not read CSV).
type Person struct {
	Email, Username, Name string
	// Locations are the location ids the person works at; none means the
	// roster does not say, and the person counts at every location.
	Locations []string
	// Hired is the date of hire; without it no deadline can be counted.
	Hired time.Time
	// Left, when set and not after now, means the person has left.
	Left time.Time
}

// label names the person as a reminder shows them: the email, else the
// username.
func (p Person) label() string {
	if p.Email != "" {
		return p.Email
	}
	return p.Username
}

// NewHireCheck is what the new-hire training deadlines are checked over.
type NewHireCheck struct {
	People []Person
	// Records are the attestations in force (any kind; those of the
	// deadline's kind are read).
	Records   []Record
	Catalog   *rules.Catalog
	Locations []config.Location
	// Since is when the organisation started keeping attestations in
	// vigil (FirstRecorded). A deadline that passed more than one
	// refresher cycle (the kind's valid_days) before it is judged
	// leniently: any training record for the person's location or the
	// whole organisation dated on or after the hire counts, because
	// attendance was not recorded per person then and the person has
	// since had the organisation's periodic training. A later deadline
	// needs a record naming the person: their signed completion
	// statement is kept six years (§181.101(d)), so it can be recorded
	// with its own date. Zero: every deadline needs a named record.
	Since time.Time
	// Warn is how long before a deadline to remind.
	Warn time.Duration
	Now  time.Time
}

// FirstRecorded is when the earliest of records was entered into vigil
// (its RecordedAt, else its date); now when there are none.
func FirstRecorded(records []Record, now time.Time) time.Time {
	first := now
	for _, r := range records {
		t := r.RecordedAt
		if t.IsZero() {
			t = r.At
		}
		if !t.IsZero() && t.Before(first) {
			first = t
		}
	}
	return first
}

// NewHireDue lists the people whose state's new-hire training deadline
// (a state overlay's new_hire_training in the catalog: Texas, 90 days
// after hire) has passed, state "missing", or falls within Warn of Now,
// state "expiring", with no training attestation naming them dated on or
// after their hire date: one reminder per person and location.
//
// A training attestation names the people trained in its Subject, one or
// a list separated by ';' or ',' ("Name <email>" is read as the email),
// matched case-insensitively on email or username; its Location does not
// matter, the training is the person's. A late training still counts: the
// statute asks that the training happen, and the record shows when. People
// without a hire date, or who have left, are not listed. Deadlines that
// passed long before vigil kept records are judged leniently, see
// NewHireCheck.Since.
func NewHireDue(in NewHireCheck) []Reminder {
	type deadline struct {
		control rules.Control
		rule    rules.TrainingDeadline
		// lenientBefore: deadlines before it passed a refresher cycle
		// before vigil kept records (NewHireCheck.Since).
		lenientBefore time.Time
	}
	// Rosters are typed by people: "Austin" is the location austin.
	byLoc := map[string][]deadline{}
	ids := map[string]string{}
	var locIDs []string
	for _, l := range in.Locations {
		locIDs = append(locIDs, l.ID)
		ids[strings.ToLower(l.ID)] = l.ID
		for _, k := range in.Catalog.TrainingDeadlines() {
			if k.AppliesIn(l.State) {
				d := deadline{control: k, rule: *k.NewHireTraining}
				if !in.Since.IsZero() {
					ak, _ := in.Catalog.AttestationKind(d.rule.Kind)
					d.lenientBefore = day(in.Since).AddDate(0, 0, -ak.ValidDays)
				}
				byLoc[strings.ToLower(l.ID)] = append(byLoc[strings.ToLower(l.ID)], d)
			}
		}
	}
	if len(byLoc) == 0 {
		return nil
	}
	today := day(in.Now)
	var out []Reminder
	for _, p := range in.People {
		if p.Hired.IsZero() || (!p.Left.IsZero() && !p.Left.After(in.Now)) {
			continue
		}
		locs := p.Locations
		if len(locs) == 0 {
			locs = locIDs
		}
		hired := day(p.Hired)
		seen := map[string]bool{}
		for _, l := range locs {
			key := strings.ToLower(strings.TrimSpace(l))
			loc, ok := ids[key]
			if !ok || seen[key] {
				continue // not a configured location, or listed twice
			}
			seen[key] = true
			for _, d := range byLoc[key] {
				due := d.rule.Deadline(hired)
				if in.trained(p, d.rule.Kind, hired) {
					continue
				}
				if due.Before(d.lenientBefore) && in.trainedAt(loc, d.rule.Kind, hired) {
					continue
				}
				// The deadline is a day: overdue once it has passed.
				if due.Sub(today) > in.Warn {
					continue
				}
				title := fmt.Sprintf("New-hire training of %s, hired %s, due within %d days of hire (%s)",
					p.label(), hired.Format(time.DateOnly), d.rule.WithinDays, d.rule.Citation)
				r := Reminder{Kind: d.rule.Kind, Title: title, Location: loc, Expires: due,
					Person: p.label(), Hired: hired, Control: d.control.ID, Citation: d.rule.Citation,
					Days: int(due.Sub(today).Hours() / 24), State: "expiring"}
				if due.Before(today) {
					r.State = "missing"
				}
				out = append(out, r)
			}
		}
	}
	SortReminders(out)
	return out
}

// trained reports whether a counting record of kind, dated on or after
// hired (and not in the future), names p.
func (in NewHireCheck) trained(p Person, kind string, hired time.Time) bool {
	for _, r := range in.Records {
		if r.Kind == kind && r.Counts() && !day(r.At).Before(hired) && !r.At.After(in.Now) && names(r.Subject, p) {
			return true
		}
	}
	return false
}

// trainedAt reports whether any counting record of kind for loc or the
// whole organisation is dated on or after hired: the lenient test for
// deadlines that passed before vigil kept the records.
func (in NewHireCheck) trainedAt(loc, kind string, hired time.Time) bool {
	for _, r := range in.Records {
		if r.Kind == kind && r.Counts() && (r.Location == "" || r.Location == loc) && !day(r.At).Before(hired) && !r.At.After(in.Now) {
			return true
		}
	}
	return false
}

// Attendees splits a training record's subject into the people it names:
// separated by ';' or ',', trimmed, lower case, "Name <email>" read as the
// email.
func Attendees(subject string) []string {
	var out []string
	for _, a := range strings.FieldsFunc(subject, func(r rune) bool { return r == ';' || r == ',' }) {
		if i, j := strings.LastIndexByte(a, '<'), strings.LastIndexByte(a, '>'); i >= 0 && j > i {
			a = a[i+1 : j]
		}
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// names reports whether subject names p by email or username.
func names(subject string, p Person) bool {
	return slices.ContainsFunc(Attendees(subject), func(a string) bool {
		return (p.Email != "" && a == strings.ToLower(p.Email)) || (p.Username != "" && a == strings.ToLower(p.Username))
	})
}

// OverdueTraining turns the new-hire reminders past their deadline into
// what control status reads (controls.Input.OverdueTraining).
func OverdueTraining(reminders []Reminder) []controls.OverdueTraining {
	var out []controls.OverdueTraining
	for _, r := range reminders {
		if r.Person != "" && r.State == "missing" {
			out = append(out, controls.OverdueTraining{Control: r.Control, Location: r.Location, Person: r.Person,
				Hired: r.Hired, Deadline: r.Expires, Citation: r.Citation})
		}
	}
	return out
}

// day is t's calendar date (UTC midnight): hire and training dates are
// dates, and a training on the day of hire counts.
func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
