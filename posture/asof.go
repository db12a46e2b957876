package posture

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// HistoryReader is what a snapshot as of a past moment reads besides
// Reader: the findings' histories and the register's.
type HistoryReader interface {
	Reader
	Events(ctx context.Context, f store.EventFilter) ([]store.FindingEvent, error)
	RiskHistory(ctx context.Context, riskID string) ([]observe.RiskTreatment, error)
}

// LoadAsOf computes the snapshot as it stood at in.Now, from what the store
// had recorded by then, so that a report can be generated again later with
// the same content: findings first seen after it are left out and every
// other finding's status, last sighting and decision are replayed from its
// events up to it; only scans finished by then count, and only the
// attestations and register decisions recorded by then. A zero in.Now is
// now, and then LoadAsOf is Load.
//
// Two things are read as they stand today: a rule's title and remediation
// (the latest scan's wording), and attestations a correction later
// superseded (the corrected record is shown, as the correction says the
// original was wrong).
func LoadAsOf(ctx context.Context, rd HistoryReader, in Input) (*Snapshot, error) {
	if in.Now.IsZero() {
		return Load(ctx, rd, in)
	}
	v := &asOfReader{rd: rd, at: in.Now}
	return Load(ctx, v, in)
}

// asOfReader answers Reader as of at.
type asOfReader struct {
	rd HistoryReader
	at time.Time
}

// Findings replays each finding's events up to at.
func (v *asOfReader) Findings(ctx context.Context, f store.FindingFilter) ([]observe.Finding, error) {
	all, err := v.rd.Findings(ctx, f)
	if err != nil {
		return nil, err
	}
	events, err := v.rd.Events(ctx, store.EventFilter{Until: v.at})
	if err != nil {
		return nil, fmt.Errorf("as of %s: %w", v.at.UTC().Format(time.RFC3339), err)
	}
	byID := map[string][]store.FindingEvent{}
	for _, e := range events {
		byID[e.FindingID] = append(byID[e.FindingID], e)
	}
	out := make([]observe.Finding, 0, len(all))
	for _, f := range all {
		if g, ok := Replay(f, byID[f.ID], v.at); ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// Replay returns finding f as it stood at at, from its events up to then
// (oldest first; later ones are ignored), and false when it had not been
// seen yet. A decision in force then is the stored one when it is the same
// decision, else it is read back from the event's note (who, why, until
// which day).
func Replay(f observe.Finding, events []store.FindingEvent, at time.Time) (observe.Finding, bool) {
	var (
		status     observe.Status
		first      time.Time
		last       time.Time
		decisionAt store.FindingEvent
	)
	for _, e := range events {
		if e.At.After(at) {
			break
		}
		switch e.Event {
		case store.EventOpened:
			status = observe.StatusOpen
			if first.IsZero() || e.At.Before(first) {
				first = e.At
			}
			last = latest(last, e.At)
		case store.EventReopened, store.EventExpired:
			status = observe.StatusOpen
			decisionAt = store.FindingEvent{}
			if e.ScanID != "" {
				last = latest(last, e.At)
			}
		case store.EventSeen:
			if status == "" {
				status = observe.StatusOpen
			}
			last = latest(last, e.At)
		case store.EventResolved:
			status = observe.StatusResolved
			decisionAt = store.FindingEvent{}
		case store.EventAccepted:
			status, decisionAt = observe.StatusAccepted, e
		case store.EventFalsePositive:
			status, decisionAt = observe.StatusFalsePositive, e
		}
		if first.IsZero() && e.ScanID != "" {
			first = e.At
		}
	}
	if status == "" {
		return f, false
	}
	g := f
	g.Status, g.Decision = status, nil
	if !first.IsZero() {
		g.FirstSeen = first
	}
	if !last.IsZero() {
		g.LastSeen = last
	}
	if status == observe.StatusAccepted || status == observe.StatusFalsePositive {
		g.Decision = decisionFrom(f.Decision, decisionAt, status)
	}
	return g, true
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// noteRE reads a decision's history note: "BY: REASON (until DATE) [risk ID]".
var noteRE = regexp.MustCompile(`^(.*?): (.*?)(?: \(until (\d{4}-\d{2}-\d{2})\))?(?: \[risk (.+)\])?$`)

// decisionFrom is the decision the event e recorded: the stored decision
// when it is that one, else what the note says. An expiry read from a note
// is the end of that day (UTC), as the note keeps only the day.
func decisionFrom(stored *observe.Decision, e store.FindingEvent, status observe.Status) *observe.Decision {
	if stored != nil && stored.At.Equal(e.At) && stored.Status == status {
		d := *stored
		return &d
	}
	d := &observe.Decision{Status: status, At: e.At}
	if m := noteRE.FindStringSubmatch(e.Note); m != nil {
		d.By, d.Reason, d.Risk = m[1], m[2], m[4]
		if day, err := time.Parse(time.DateOnly, m[3]); err == nil {
			d.Expires = day.Add(24*time.Hour - time.Nanosecond)
		}
	} else {
		d.Reason = e.Note
	}
	return d
}

// Scans keeps the scans finished by at.
func (v *asOfReader) Scans(ctx context.Context, limit int) ([]observe.Scan, error) {
	all, err := v.rd.Scans(ctx, 0)
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, s := range all {
		if !s.FinishedAt.IsZero() && !s.FinishedAt.After(v.at) {
			out = append(out, s)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Attestations keeps the records made by at.
func (v *asOfReader) Attestations(ctx context.Context) ([]observe.Attestation, error) {
	all, err := v.rd.Attestations(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(a observe.Attestation) bool { return recordedAfter(a.RecordedAt, a.At, v.at) }), nil
}

// RiskTreatments returns each risk's latest decision recorded by at.
func (v *asOfReader) RiskTreatments(ctx context.Context) ([]observe.RiskTreatment, error) {
	current, err := v.rd.RiskTreatments(ctx)
	if err != nil {
		return nil, err
	}
	var out []observe.RiskTreatment
	for _, c := range current {
		if !recordedAfter(c.RecordedAt, time.Time{}, v.at) {
			out = append(out, c)
			continue
		}
		hist, err := v.rd.RiskHistory(ctx, c.Risk)
		if err != nil {
			return nil, err
		}
		var then *observe.RiskTreatment
		for i := range hist {
			if !recordedAfter(hist[i].RecordedAt, time.Time{}, v.at) {
				then = &hist[i]
			}
		}
		if then != nil {
			out = append(out, *then)
		}
	}
	return out, nil
}

// recordedAfter reports whether a record made at recorded (or, when that
// is unknown, about fallback) was made after at.
func recordedAfter(recorded, fallback, at time.Time) bool {
	if recorded.IsZero() {
		recorded = fallback
	}
	return recorded.After(at)
}
