package risk

import (
	"cmp"
	"slices"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// RemediationEvents are the finding events time to remediate reads
// (store.EventFilter.Events).
var RemediationEvents = []store.Event{store.EventOpened, store.EventReopened, store.EventResolved}

// Remediation is time to remediate for one group of findings (a category
// or a location): how long exposures lasted from the scan that found them
// (or found them again) to the one that no longer saw them.
type Remediation struct {
	// Key is the category or location id (OrgScope for organisation-wide
	// findings).
	Key string `json:"key"`
	// Remediated counts closed exposure windows; Verified those a scan
	// closed (the rest a person marked fixed).
	Remediated int           `json:"remediated"`
	Verified   int           `json:"verified"`
	Median     time.Duration `json:"median"`
	Mean       time.Duration `json:"mean"`
	P90        time.Duration `json:"p90"`
	Max        time.Duration `json:"max"`
	// Open counts exposures still standing; OldestOpen is the age of the
	// oldest.
	Open       int           `json:"open"`
	OldestOpen time.Duration `json:"oldest_open"`
}

// Days is d in whole and half days, for tables.
func Days(d time.Duration) float64 {
	return float64((d+6*time.Hour)/(12*time.Hour)) / 2
}

type window struct {
	category, location string
	took               time.Duration
	verified, open     bool
}

// TimeToRemediate measures, per category and per location, the exposure
// windows in events (opened or reopened → resolved; a finding can have
// several) of the findings given. Accepted and false-positive findings'
// windows stay open until resolved: accepting a risk does not remediate
// it. Groups are sorted by key.
func TimeToRemediate(findings []observe.Finding, events []store.FindingEvent, now time.Time) (byCategory, byLocation []Remediation) {
	type meta struct{ category, location string }
	info := make(map[string]meta, len(findings))
	for _, f := range findings {
		loc := f.Location
		if loc == "" {
			loc = OrgScope
		}
		info[f.ID] = meta{string(f.Category), loc}
	}
	start := map[string]time.Time{}
	var ws []window
	for _, e := range events {
		m, ok := info[e.FindingID]
		if !ok {
			continue
		}
		switch e.Event {
		case store.EventOpened, store.EventReopened:
			if _, open := start[e.FindingID]; !open {
				start[e.FindingID] = e.At
			}
		case store.EventResolved:
			if s, open := start[e.FindingID]; open {
				ws = append(ws, window{m.category, m.location, e.At.Sub(s), e.ScanID != "", false})
				delete(start, e.FindingID)
			}
		}
	}
	for id, s := range start {
		m := info[id]
		ws = append(ws, window{m.category, m.location, now.Sub(s), false, true})
	}
	return group(ws, func(w window) string { return w.category }), group(ws, func(w window) string { return w.location })
}

func group(ws []window, key func(window) string) []Remediation {
	byKey := map[string][]window{}
	for _, w := range ws {
		byKey[key(w)] = append(byKey[key(w)], w)
	}
	out := make([]Remediation, 0, len(byKey))
	for k, list := range byKey {
		r := Remediation{Key: k}
		var took []time.Duration
		var sum time.Duration
		for _, w := range list {
			if w.open {
				r.Open++
				r.OldestOpen = max(r.OldestOpen, w.took)
				continue
			}
			r.Remediated++
			if w.verified {
				r.Verified++
			}
			took = append(took, w.took)
			sum += w.took
		}
		if n := len(took); n > 0 {
			slices.Sort(took)
			r.Median, r.P90, r.Max = percentile(took, 50), percentile(took, 90), took[n-1]
			r.Mean = sum / time.Duration(n)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Remediation) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(0, min(len(sorted)-1, rank-1))]
}
