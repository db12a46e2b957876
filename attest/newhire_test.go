package attest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/rules"
)

var (
	austin = config.Location{ID: "austin", State: "TX"}
	sf     = config.Location{ID: "sf", State: "CA"}
)

// training is a workforce-training record dated at naming subject.
func training(at time.Time, subject string) Record {
	r := rec("workforce-training", at)
	r.Subject = subject
	return r
}

func TestNewHireDue(t *testing.T) {
	cat := catalog(t)
	ana := Person{Email: "ana@glow.example", Username: "ana", Locations: []string{"austin"}, Hired: daysAgo(100)}
	with := func(p Person, f func(*Person)) Person { f(&p); return p }
	failed := training(daysAgo(70), "ana@glow.example")
	failed.Result = "fail"
	wide := training(daysAgo(200), "all staff, annual refresher")

	for _, tc := range []struct {
		name    string
		people  []Person
		records []Record
		locs    []config.Location
		since   time.Time
		want    []string // "state person location days"
	}{
		{name: "hired 100 days ago, untrained",
			people: []Person{ana}, want: []string{"missing ana@glow.example austin -10"}},
		{name: "trained on day 30",
			people: []Person{ana}, records: []Record{training(daysAgo(70), "ana@glow.example")}},
		{name: "trained on the day of hire",
			people: []Person{ana}, records: []Record{training(day(daysAgo(100)), "ana@glow.example")}},
		{name: "trained late, on day 95: the training happened",
			people: []Person{ana}, records: []Record{training(daysAgo(5), "ana@glow.example")}},
		{name: "trained before the hire date",
			people: []Person{ana}, records: []Record{training(daysAgo(101), "ana@glow.example")},
			want: []string{"missing ana@glow.example austin -10"}},
		{name: "left",
			people: []Person{with(ana, func(p *Person) { p.Left = daysAgo(3) })}},
		{name: "leaving next week is still here",
			people: []Person{with(ana, func(p *Person) { p.Left = daysAgo(-7) })},
			want:   []string{"missing ana@glow.example austin -10"}},
		{name: "CA location: no statutory deadline",
			people: []Person{with(ana, func(p *Person) { p.Locations = []string{"sf"} })}},
		{name: "no hire date",
			people: []Person{with(ana, func(p *Person) { p.Hired = time.Time{} })}},
		{name: "attendee list, username in another case",
			people:  []Person{ana},
			records: []Record{training(daysAgo(60), "bo@glow.example; Cy Diaz <cy@glow.example>, ANA")}},
		{name: "attendee list by email in brackets",
			people:  []Person{ana},
			records: []Record{training(daysAgo(60), "Bo <bo@glow.example>; Ana Ruiz <Ana@Glow.example>")}},
		{name: "a longer name containing hers does not count",
			people:  []Person{ana},
			records: []Record{training(daysAgo(60), "xana@glow.example; anabel")},
			want:    []string{"missing ana@glow.example austin -10"}},
		{name: "failed training does not count",
			people: []Person{ana}, records: []Record{failed},
			want: []string{"missing ana@glow.example austin -10"}},
		{name: "another kind naming her does not count",
			people: []Person{ana}, records: []Record{with2(rec("sanction-policy", daysAgo(60)), "ana@glow.example")},
			want: []string{"missing ana@glow.example austin -10"}},
		{name: "an all-staff record does not name a recent hire",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(300) })}, records: []Record{wide},
			want: []string{"missing ana@glow.example austin -210"}},
		{name: "deadline in 20 days: reminded",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(70) })}, want: []string{"expiring ana@glow.example austin 20"}},
		{name: "deadline today: still in time",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(90) })}, want: []string{"expiring ana@glow.example austin 0"}},
		{name: "deadline in 50 days: not yet",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(40) })}},
		{name: "no location on the roster: every TX location, not CA",
			people: []Person{with(ana, func(p *Person) { p.Locations = nil })},
			locs:   []config.Location{sf, austin, {ID: "dallas", State: "tx"}},
			want:   []string{"missing ana@glow.example austin -10", "missing ana@glow.example dallas -10"}},
		{name: "location typed in another case, twice",
			people: []Person{with(ana, func(p *Person) { p.Locations = []string{"Austin", "austin", "nowhere"} })},
			want:   []string{"missing ana@glow.example austin -10"}},
		{name: "username only",
			people: []Person{{Username: "bo", Locations: []string{"austin"}, Hired: daysAgo(91)}},
			want:   []string{"missing bo austin -1"}},
		{name: "vigil started today: a recent hire still needs her name on a record",
			people: []Person{ana}, records: []Record{wide}, since: now,
			want: []string{"missing ana@glow.example austin -10"}},
		{name: "vigil started today: a hire whose deadline passed over a year ago is covered by a training since",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(500) })}, records: []Record{wide}, since: now},
		{name: "hired before vigil, a training since covers her",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(2000) })}, records: []Record{wide}, since: daysAgo(365)},
		{name: "hired before vigil, no training record at all",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(2000) })}, since: daysAgo(365),
			want: []string{"missing ana@glow.example austin -1910"}},
		{name: "hired before vigil, only a training before her hire",
			people: []Person{with(ana, func(p *Person) { p.Hired = daysAgo(2000) })}, records: []Record{training(daysAgo(2100), "all staff")},
			since: daysAgo(365), want: []string{"missing ana@glow.example austin -1910"}},
		{name: "hired before vigil, a training at another location only",
			people:  []Person{with(ana, func(p *Person) { p.Hired = daysAgo(2000) })},
			records: []Record{with3(training(daysAgo(200), "all staff"), "sf")}, since: daysAgo(365),
			want: []string{"missing ana@glow.example austin -1910"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			locs := tc.locs
			if locs == nil {
				locs = []config.Location{austin, sf}
			}
			got := NewHireDue(NewHireCheck{People: tc.people, Records: tc.records, Catalog: cat, Locations: locs,
				Since: tc.since, Warn: 30 * 24 * time.Hour, Now: now})
			var lines []string
			for _, r := range got {
				lines = append(lines, strings.Join([]string{r.State, r.Person, r.Location, strconv.Itoa(r.Days)}, " "))
				if r.Kind != "workforce-training" || r.Control != "state:tx-hb300" || !strings.Contains(r.Citation, "181.101(b)") ||
					!strings.Contains(r.Title, r.Person) || !r.Expires.Equal(r.Hired.AddDate(0, 0, 90)) {
					t.Errorf("reminder %+v: want workforce-training under state:tx-hb300, deadline 90 days after hire, citing §181.101(b)", r)
				}
			}
			if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func with2(r Record, subject string) Record { r.Subject = subject; return r }
func with3(r Record, loc string) Record     { r.Location = loc; return r }

// A new hire past the Texas deadline holds the TX overlay's attested part
// missing at their location, even with the organisation's annual training
// current; a CA location has no TX overlay, and nobody overdue leaves it
// to the training record.
func TestOverdueTrainingInControlStatus(t *testing.T) {
	cat := catalog(t)
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	records := []Record{training(daysAgo(200), "all staff, annual refresher")}
	people := []Person{
		{Email: "ana@glow.example", Locations: []string{"austin"}, Hired: daysAgo(100)},
		{Email: "bo@glow.example", Locations: []string{"austin"}, Hired: daysAgo(70)}, // due in 20 days: not overdue
		{Email: "cy@glow.example", Locations: []string{"sf"}, Hired: daysAgo(100)},
	}
	due := NewHireDue(NewHireCheck{People: people, Records: records, Catalog: cat, Locations: []config.Location{austin, sf},
		Since: daysAgo(365), Warn: 30 * 24 * time.Hour, Now: now})
	overdue := OverdueTraining(due)
	if len(due) != 2 || len(overdue) != 1 || overdue[0].Person != "ana@glow.example" || overdue[0].Location != "austin" {
		t.Fatalf("due %+v, overdue %+v: want ana overdue and bo reminded", due, overdue)
	}
	in := controls.Input{Catalog: cat, Rules: eng.Rules(), Attestations: Source(records, cat), Now: now, OverdueTraining: overdue}
	var tx *controls.ControlStatus
	for _, s := range controls.Status(in, austin) {
		if s.Control.ID == "state:tx-hb300" {
			tx = &s
		}
	}
	if tx == nil {
		t.Fatal("no state:tx-hb300 status at a TX location")
	}
	why := strings.Join(tx.Reasons, "; ")
	if tx.Status != controls.AttestationMissing || !strings.Contains(why, "ana@glow.example (hired") ||
		!strings.Contains(why, "181.101(b)") || strings.Contains(why, "bo@glow.example") || len(tx.OverdueTraining) != 1 {
		t.Errorf("TX overlay at austin: %s (%s), want attestation-missing naming ana only", tx.Status, why)
	}
	for _, s := range controls.Status(in, sf) {
		if s.Control.ID == "state:tx-hb300" {
			t.Error("the TX overlay applies at a CA location")
		}
	}
	in.OverdueTraining = nil
	for _, s := range controls.Status(in, austin) {
		if s.Control.ID == "state:tx-hb300" && s.Status == controls.AttestationMissing {
			t.Errorf("nobody overdue, training current: %s (%s)", s.Status, strings.Join(s.Reasons, "; "))
		}
	}
}
