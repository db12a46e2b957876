package reports

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/store"
)

// DiligenceSummary is the one-page summary a buyer's due-diligence team
// reads: posture across all locations, breach-relevant exposures, the trend
// over the last twelve months, time to remediate, open risks with owners.
type DiligenceSummary struct{}

// DiligenceData is the summary's JSON.
type DiligenceData struct {
	Locations   []LocationPosture  `json:"locations"`
	Exposures   []observe.Finding  `json:"exposures"`
	Trend       []TrendPoint       `json:"trend"`
	Remediation []risk.Remediation `json:"time_to_remediate"`
	OpenRisks   []risk.Risk        `json:"open_risks"`
	Risks       risk.Summary       `json:"risk_summary"`
	Controls    map[string]int     `json:"controls"`
	Open        map[string]int     `json:"open_findings"`
}

// LocationPosture is one location's line in the summary.
type LocationPosture struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	OpenFindings int       `json:"open_findings"`
	CriticalHigh int       `json:"critical_high"`
	OpenRisks    int       `json:"open_risks"`
	RiskScore    int       `json:"risk_score"`
	Gaps         int       `json:"control_gaps"`
	Satisfied    int       `json:"controls_satisfied"`
	LastScan     time.Time `json:"last_scan,omitzero"`
}

// TrendPoint is the open findings at one moment, by severity, and what
// was found and fixed in the month before it.
type TrendPoint struct {
	At         time.Time      `json:"at"`
	Open       map[string]int `json:"open"`
	Opened     int            `json:"opened"`
	Remediated int            `json:"remediated"`
}

// breachCategories are the finding categories behind most breaches of
// small healthcare practices: exposed remote access, stolen or default
// credentials, unpatched software.
var breachCategories = []observe.Category{"exposed-service", "default-credentials", "missing-mfa", "vulnerable-software", "flat-network"}

// Data computes the summary's content.
func (DiligenceSummary) Data(f *Facts) *DiligenceData {
	s := f.Snapshot
	d := &DiligenceData{Risks: risk.Summarize(s.Register), Controls: map[string]int{}, Open: map[string]int{}}
	for v, n := range s.ControlCounts("") {
		d.Controls[string(v)] = n
	}
	for _, l := range s.Config.Locations {
		lp := LocationPosture{ID: l.ID, Name: l.Name}
		for _, x := range s.Findings {
			if x.Location == l.ID && x.Status == observe.StatusOpen {
				lp.OpenFindings++
				if x.Severity.Rank() >= observe.High.Rank() {
					lp.CriticalHigh++
				}
			}
		}
		for _, r := range s.Register {
			if (r.Location == l.ID || slices.Contains(r.Locations, l.ID)) && (r.Status == risk.StatusOpen || r.Status == risk.StatusTransferred) {
				lp.OpenRisks++
				lp.RiskScore += r.Level.Score()
			}
		}
		c := s.ControlCounts(l.ID)
		lp.Gaps, lp.Satisfied = c[controls.Gap], c[controls.Satisfied]
		for _, sc := range s.Scans {
			if sc.Complete && slices.Contains(sc.Locations, l.ID) && sc.FinishedAt.After(lp.LastScan) {
				lp.LastScan = sc.FinishedAt
			}
		}
		d.Locations = append(d.Locations, lp)
	}
	slices.SortStableFunc(d.Locations, func(a, b LocationPosture) int {
		return cmp.Or(cmp.Compare(b.RiskScore, a.RiskScore), cmp.Compare(b.CriticalHigh, a.CriticalHigh), cmp.Compare(a.ID, b.ID))
	})
	for _, x := range s.Findings {
		if x.Status == observe.StatusOpen {
			d.Open[string(x.Severity)]++
		}
		internet, _ := x.Evidence["internet_facing"].(bool)
		if x.Status == observe.StatusOpen && slices.Contains(breachCategories, x.Category) && (x.Severity.Rank() >= observe.High.Rank() || internet) {
			d.Exposures = append(d.Exposures, x)
		}
	}
	slices.SortStableFunc(d.Exposures, func(a, b observe.Finding) int {
		return cmp.Or(cmp.Compare(b.Severity.Rank(), a.Severity.Rank()), a.FirstSeen.Compare(b.FirstSeen), cmp.Compare(a.ID, b.ID))
	})
	d.Trend = trend(s.Findings, f.Events, f.AsOf, 12)
	d.Remediation, _ = risk.TimeToRemediate(s.Findings, f.Events, f.AsOf)
	for _, r := range s.Register {
		if r.Status == risk.StatusOpen || r.Status == risk.StatusTransferred {
			d.OpenRisks = append(d.OpenRisks, r)
		}
	}
	return d
}

// trend counts open findings at the end of each of the last months
// months (the last point is at), replaying each finding's events.
func trend(findings []observe.Finding, events []store.FindingEvent, at time.Time, months int) []TrendPoint {
	byID := map[string][]store.FindingEvent{}
	for _, e := range events {
		byID[e.FindingID] = append(byID[e.FindingID], e)
	}
	// Each point is the end of a month (the first moment of the next);
	// the last is at itself, the month to date.
	first := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	out := make([]TrendPoint, months)
	for i := range out {
		out[i] = TrendPoint{At: first.AddDate(0, i-months+2, 0), Open: map[string]int{}}
	}
	out[months-1].At = at
	from := func(i int) time.Time {
		if i == 0 {
			return first.AddDate(0, 2-months-1, 0)
		}
		return out[i-1].At
	}
	for _, x := range findings {
		evs := byID[x.ID]
		for i := range out {
			g, ok := posture.Replay(x, evs, out[i].At)
			if ok && g.StatusAt(out[i].At) == observe.StatusOpen {
				out[i].Open[string(x.Severity)]++
			}
		}
		for _, e := range evs {
			for i := range out {
				if e.At.After(from(i)) && !e.At.After(out[i].At) {
					switch e.Event {
					case store.EventOpened, store.EventReopened:
						out[i].Opened++
					case store.EventResolved:
						out[i].Remediated++
					}
				}
			}
		}
	}
	return out
}

// trendLabel names the month a trend point ends.
func trendLabel(p TrendPoint, last bool) string {
	if last {
		return p.At.UTC().Format("Jan 06")
	}
	return p.At.UTC().Add(-time.Nanosecond).Format("Jan 06")
}

// Generate implements Generator.
func (g DiligenceSummary) Generate(f *Facts) (*Document, error) {
	data := g.Data(f)
	s := f.Snapshot
	d := newDocument(f, "diligence", "Security due-diligence summary", "Posture across all locations, exposures, trend and remediation")
	d.Data, d.CSVTable, d.Compact = data, "open-risks", true

	openRisks := data.Risks.ByStatus[risk.StatusOpen] + data.Risks.ByStatus[risk.StatusTransferred]
	total := 0
	for _, n := range data.Controls {
		total += n
	}
	posture := Section{ID: "posture", Title: "Posture across all locations"}
	posture.Blocks = append(posture.Blocks, &KeyValues{Items: []KV{
		{Key: "Locations", Value: fmt.Sprint(len(s.Config.Locations))},
		{Key: "Open findings", Value: fmt.Sprintf("%d critical, %d high, %d medium, %d low", data.Open["critical"], data.Open["high"],
			data.Open["medium"], data.Open["low"]), Tone: toneIf(data.Open["critical"]+data.Open["high"] > 0, ToneBad)},
		{Key: "Open risks", Value: fmt.Sprintf("%d (%d high or very-high); %d overdue; %d without an owner", openRisks,
			data.Risks.OpenByLevel["high"]+data.Risks.OpenByLevel["very-high"], data.Risks.Overdue, data.Risks.Unowned)},
		{Key: "Controls", Value: fmt.Sprintf("%d of %d satisfied; %d gaps; %d attestations missing or expired; %d not assessed",
			data.Controls[string(controls.Satisfied)], total, data.Controls[string(controls.Gap)],
			data.Controls[string(controls.AttestationMissing)]+data.Controls[string(controls.AttestationExpired)], data.Controls[string(controls.NotAssessed)])},
	}})
	const maxLocations = 6
	lt := &Table{Name: "locations", Columns: []Column{{Title: "Location", Width: 2}, {Title: "Open findings", Width: 0.9},
		{Title: "Critical/high", Width: 0.9}, {Title: "Open risks", Width: 0.8}, {Title: "Control gaps", Width: 0.8}, {Title: "Last complete scan", Width: 1.1}}}
	if n := len(data.Locations); n > maxLocations {
		lt.Caption = fmt.Sprintf("The %d locations with the most risk; %d more in the CSV and JSON output.", maxLocations, n-maxLocations)
	}
	for i, l := range data.Locations {
		lt.add(i < maxLocations, []Cell{C(l.Name + " (" + l.ID + ")"), C(fmt.Sprint(l.OpenFindings)),
			{Text: fmt.Sprint(l.CriticalHigh), Tone: toneIf(l.CriticalHigh > 0, ToneBad)}, C(fmt.Sprint(l.OpenRisks)),
			C(fmt.Sprint(l.Gaps)), {Text: dateOr(l.LastScan, "never"), Tone: toneIf(l.LastScan.IsZero() || f.AsOf.Sub(l.LastScan) > controls.DefaultMaxScanAge, ToneWarn)}})
	}
	posture.Blocks = append(posture.Blocks, lt)

	exp := Section{ID: "exposures", Title: "Breach-relevant exposures"}
	const maxExposures = 5
	et := &Table{Name: "exposures", Columns: []Column{{Title: "Severity", Width: 0.7}, {Title: "Exposure", Width: 3}, {Title: "Location", Width: 1.2},
		{Title: "Target", Width: 1.5}, {Title: "Open since", Width: 0.9}}, Empty: "No open high or critical exposure of remote access, credentials, MFA, software or segmentation."}
	if n := len(data.Exposures); n > maxExposures {
		et.Caption = fmt.Sprintf("%d more open exposures in the OCR pack and the JSON output.", n-maxExposures)
	}
	for i, x := range data.Exposures {
		et.add(i < maxExposures, []Cell{{Text: string(x.Severity), Tone: ToneBad}, C(x.Title), C(locationLabel(x.Location)), C(x.Target),
			C(dateOr(x.FirstSeen, "-"))})
	}
	exp.Blocks = append(exp.Blocks, et)

	tr := Section{ID: "trend", Title: "Trend over the last 12 months"}
	chart := &BarChart{Title: "Open findings at each month's end (the last month to date), by severity"}
	sevs := []struct {
		name string
		tone Tone
	}{{"critical", ToneBad}, {"high", ToneWarn}, {"medium", ToneMuted}, {"low", ToneGood}}
	for _, sv := range sevs {
		chart.Series = append(chart.Series, Series{Name: sv.name, Tone: sv.tone})
	}
	opened, fixed := 0, 0
	for i, p := range data.Trend {
		chart.Labels = append(chart.Labels, trendLabel(p, i == len(data.Trend)-1))
		for i, sv := range sevs {
			chart.Series[i].Values = append(chart.Series[i].Values, float64(p.Open[sv.name]))
		}
		opened += p.Opened
		fixed += p.Remediated
	}
	chart.Note = fmt.Sprintf("Over the 12 months: %d exposures found or found again, %d remediated.", opened, fixed)
	tr.Blocks = append(tr.Blocks, chart)

	ttr := Section{ID: "time-to-remediate", Title: "Time to remediate"}
	rt := &Table{Name: "time-to-remediate", Columns: []Column{{Title: "Category", Width: 1.6}, {Title: "Remediated", Width: 0.8},
		{Title: "Median days", Width: 0.8}, {Title: "90th pct days", Width: 0.8}, {Title: "Still open", Width: 0.8}, {Title: "Oldest open (days)", Width: 0.9}},
		Empty: "Nothing found yet."}
	for _, r := range data.Remediation {
		med, p90 := "-", "-"
		if r.Remediated > 0 {
			med, p90 = fmt.Sprint(risk.Days(r.Median)), fmt.Sprint(risk.Days(r.P90))
		}
		oldest := "-"
		if r.Open > 0 {
			oldest = fmt.Sprint(risk.Days(r.OldestOpen))
		}
		rt.Rows = append(rt.Rows, []Cell{C(r.Key), C(fmt.Sprint(r.Remediated)), C(med), C(p90), C(fmt.Sprint(r.Open)), C(oldest)})
	}
	ttr.Blocks = append(ttr.Blocks, rt)

	or := Section{ID: "open-risks", Title: "Open risks with owners"}
	const maxRisks = 5
	ot := &Table{Name: "open-risks", Columns: []Column{{Title: "Risk", Width: 3}, {Title: "Level", Width: 0.8}, {Title: "Owner", Width: 1.2},
		{Title: "Treatment", Width: 0.9}, {Title: "Due", Width: 0.9}}, Empty: "No open risk."}
	if n := len(data.OpenRisks); n > maxRisks {
		ot.Caption = fmt.Sprintf("%d more open risks in the CSV output and the OCR pack's register.", n-maxRisks)
	}
	for i, r := range data.OpenRisks {
		due := dateOr(r.Due, "-")
		if r.Overdue {
			due += " (overdue)"
		}
		where := locationLabel(r.Location)
		switch {
		case r.Source == risk.FromControl && len(r.Locations) == len(s.Config.Locations):
			where = "all locations"
		case r.Source == risk.FromControl && len(r.Locations) > 0:
			where = strings.Join(r.Locations, ", ")
		}
		ot.add(i < maxRisks, []Cell{C(r.Title + " @ " + where), {Text: r.Level.String(), Tone: levelTone(r.Level)},
			{Text: dash(r.Owner), Tone: toneIf(r.Owner == "", ToneWarn)}, C(dash(string(r.Treatment))), {Text: due, Tone: toneIf(r.Overdue, ToneBad)}})
	}
	or.Blocks = append(or.Blocks, ot)
	d.Sections = []Section{posture, exp, tr, ttr, or}
	return d, nil
}
