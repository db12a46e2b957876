package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// checkDecision enforces what every stored decision has: who and why, and
// for an acceptance or a false positive an expiry after now.
func checkDecision(d observe.Decision, now time.Time) error {
	var errs []string
	switch d.Status {
	case observe.StatusAccepted, observe.StatusFalsePositive:
		if d.Expires.IsZero() {
			errs = append(errs, "an expiry is required (the finding reopens then)")
		} else if !d.Expires.After(now) {
			errs = append(errs, fmt.Sprintf("expiry %s is not in the future", d.Expires.UTC().Format(time.DateOnly)))
		}
	case observe.StatusOpen, observe.StatusResolved:
	default:
		errs = append(errs, fmt.Sprintf("unknown status %q (want accepted, false-positive, open or resolved)", d.Status))
	}
	if strings.TrimSpace(d.By) == "" {
		errs = append(errs, "who decides is required")
	}
	if strings.TrimSpace(d.Reason) == "" {
		errs = append(errs, "a reason is required")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", store.ErrInvalidDecision, strings.Join(errs, "; "))
	}
	return nil
}

// DecideFinding records a person's decision about a finding: accepted or
// false-positive (with an expiry, after which it reopens), resolved (fixed;
// a later scan that sees it reopens it) or open (undo a decision). The
// decision goes into the finding's history and the evidence log in the
// same transaction. It returns the finding as stored afterwards.
func (d *DB) DecideFinding(ctx context.Context, findingID string, dec observe.Decision) (observe.Finding, error) {
	now := d.now()
	if dec.At.IsZero() {
		dec.At = now
	}
	dec.At = dec.At.UTC()
	if !dec.Expires.IsZero() {
		dec.Expires = dec.Expires.UTC()
	}
	if err := checkDecision(dec, now); err != nil {
		return observe.Finding{}, d.errorf("finding %s: %w", findingID, err)
	}
	var out observe.Finding
	err := d.write(ctx, func(tx *sql.Tx) error {
		rec, err := d.decide(ctx, tx, findingID, dec)
		if err != nil {
			return err
		}
		if err := d.appendEvidence(ctx, tx, []evidence.Record{rec}); err != nil {
			return err
		}
		out, err = scanFinding(tx.QueryRowContext(ctx, `SELECT `+findingCols+` FROM findings WHERE id = $1`, findingID))
		return err
	})
	if err != nil {
		return observe.Finding{}, d.errorf("finding %s: set %s: %w", findingID, dec.Status, err)
	}
	return out, nil
}

// decide applies dec to one finding inside tx and returns the evidence
// record to append.
func (d *DB) decide(ctx context.Context, tx *sql.Tx, findingID string, dec observe.Decision) (evidence.Record, error) {
	at := formatTime(dec.At)
	p := findingEventPayload{FindingID: findingID, At: at, Status: string(dec.Status), Note: decisionNote(dec)}
	err := tx.QueryRowContext(ctx, `SELECT status, rule, category, severity, location, target, vantage FROM findings WHERE id = $1`, findingID).
		Scan(&p.Previous, &p.Rule, &p.Category, &p.Severity, &p.Location, &p.Target, &p.Vantage)
	if errors.Is(err, sql.ErrNoRows) {
		return evidence.Record{}, store.ErrNotFound
	}
	if err != nil {
		return evidence.Record{}, err
	}
	var (
		ev                          store.Event
		kind                        = evidence.KindFindingEvent
		decision, expires, resolved any
	)
	switch dec.Status {
	case observe.StatusAccepted, observe.StatusFalsePositive:
		ev, kind = store.EventAccepted, evidence.KindAcceptance
		if dec.Status == observe.StatusFalsePositive {
			ev = store.EventFalsePositive
		}
		b, err := json.Marshal(dec)
		if err != nil {
			return evidence.Record{}, err
		}
		decision, expires = string(b), formatTime(dec.Expires)
	case observe.StatusResolved:
		ev, resolved = store.EventResolved, at
	case observe.StatusOpen:
		ev = store.EventReopened
	}
	p.Event = string(ev)
	if _, err := tx.ExecContext(ctx, `UPDATE findings SET status = $2, resolved_at = $3, decision = $4, decision_expires = $5 WHERE id = $1`,
		findingID, string(dec.Status), resolved, decision, expires); err != nil {
		return evidence.Record{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO finding_events (finding_id, scan_id, event_at, event, note) VALUES ($1, NULL, $2, $3, $4)`,
		findingID, at, string(ev), p.Note); err != nil {
		return evidence.Record{}, err
	}
	return findingRecord(kind, p)
}

// decisionNote is the history line of a decision: who, why, until when.
func decisionNote(dec observe.Decision) string {
	var b strings.Builder
	b.WriteString(dec.By)
	b.WriteString(": ")
	b.WriteString(dec.Reason)
	if !dec.Expires.IsZero() {
		b.WriteString(" (until ")
		b.WriteString(dec.Expires.UTC().Format(time.DateOnly))
		b.WriteString(")")
	}
	if dec.Risk != "" {
		b.WriteString(" [risk ")
		b.WriteString(dec.Risk)
		b.WriteString("]")
	}
	return b.String()
}

// ExpireDecisions reopens every accepted or false-positive finding whose
// decision expired at or before now, recording a decision-expired event
// in its history and the evidence log. It returns the reopened findings.
// FinishScan does the same at the scan's end; the daemon calls this on a
// timer so that a finding reopens on the day, not at the next scan.
func (d *DB) ExpireDecisions(ctx context.Context, now time.Time) ([]observe.Finding, error) {
	var out []observe.Finding
	err := d.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = d.expireDecisions(ctx, tx, now)
		return err
	})
	if err != nil {
		return nil, d.errorf("expire decisions: %w", err)
	}
	return out, nil
}

func (d *DB) expireDecisions(ctx context.Context, tx *sql.Tx, now time.Time) ([]observe.Finding, error) {
	ts := formatTime(now)
	rows, err := tx.QueryContext(ctx, `SELECT `+findingCols+` FROM findings
		WHERE decision_expires IS NOT NULL AND decision_expires <= $1 AND status IN ($2, $3) ORDER BY id`,
		ts, string(observe.StatusAccepted), string(observe.StatusFalsePositive))
	if err != nil {
		return nil, err
	}
	var expired []observe.Finding
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		expired = append(expired, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(expired) == 0 {
		return nil, nil
	}
	recs := make([]evidence.Record, 0, len(expired))
	for i := range expired {
		f := &expired[i]
		prev := f.Status
		note := "decision expired"
		if dec := f.Decision; dec != nil {
			note = fmt.Sprintf("%s by %s expired %s: %s", dec.Status, dec.By, dec.Expires.UTC().Format(time.DateOnly), dec.Reason)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE findings SET status = $2, decision = NULL, decision_expires = NULL WHERE id = $1`,
			f.ID, string(observe.StatusOpen)); err != nil {
			return nil, fmt.Errorf("finding %s: %w", f.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO finding_events (finding_id, scan_id, event_at, event, note) VALUES ($1, NULL, $2, $3, $4)`,
			f.ID, ts, string(store.EventExpired), note); err != nil {
			return nil, fmt.Errorf("finding %s: %w", f.ID, err)
		}
		f.Status, f.Decision = observe.StatusOpen, nil
		rec, err := findingRecord(evidence.KindFindingEvent, findingEventPayload{FindingID: f.ID, Event: string(store.EventExpired),
			At: ts, Status: string(observe.StatusOpen), Previous: string(prev), Note: note, Rule: f.Rule, Category: string(f.Category),
			Severity: string(f.Severity), Location: f.Location, Target: f.Target, Vantage: f.Vantage})
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if err := d.appendEvidence(ctx, tx, recs); err != nil {
		return nil, err
	}
	return expired, nil
}

// Events returns finding events f selects, oldest first.
func (d *DB) Events(ctx context.Context, f store.EventFilter) ([]store.FindingEvent, error) {
	q := d.query()
	q.WriteString(`SELECT finding_id, scan_id, event_at, event, note FROM finding_events WHERE 1 = 1`)
	if len(f.FindingIDs) > 0 {
		q.WriteString(` AND finding_id IN (` + listArgs(q, f.FindingIDs) + `)`)
	}
	if len(f.Events) > 0 {
		q.WriteString(` AND event IN (` + listArgs(q, f.Events) + `)`)
	}
	if !f.Since.IsZero() {
		q.WriteString(` AND event_at >= ` + q.arg(formatTime(f.Since)))
	}
	if !f.Until.IsZero() {
		q.WriteString(` AND event_at <= ` + q.arg(formatTime(f.Until)))
	}
	q.WriteString(` ORDER BY event_at, finding_id, event`)
	rows, err := d.db.QueryContext(ctx, q.String(), q.args...)
	if err != nil {
		return nil, d.errorf("finding events: %w", err)
	}
	defer rows.Close()
	var out []store.FindingEvent
	for rows.Next() {
		var (
			e      store.FindingEvent
			scanID sql.NullString
			at, ev string
		)
		if err := rows.Scan(&e.FindingID, &scanID, &at, &ev, &e.Note); err != nil {
			return nil, d.errorf("finding events: %w", err)
		}
		e.ScanID, e.Event = scanID.String, store.Event(ev)
		if e.At, err = parseTime(at); err != nil {
			return nil, d.errorf("finding events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("finding events: %w", err)
	}
	return out, nil
}

// EvidenceRefs returns the evidence-log entries about the subjects (scan,
// finding, risk or attestation ids), in log order.
func (d *DB) EvidenceRefs(ctx context.Context, subjects []string) ([]store.EvidenceRef, error) {
	var out []store.EvidenceRef
	for start := 0; start < len(subjects); start += batchRows {
		end := min(start+batchRows, len(subjects))
		q := d.query()
		q.WriteString(`SELECT seq, kind, subject, at, hash FROM evidence_log WHERE subject IN (` +
			listArgs(q, subjects[start:end]) + `) ORDER BY seq`)
		rows, err := d.db.QueryContext(ctx, q.String(), q.args...)
		if err != nil {
			return nil, d.errorf("evidence entries: %w", err)
		}
		for rows.Next() {
			var (
				r  store.EvidenceRef
				at string
			)
			if err := rows.Scan(&r.Seq, &r.Kind, &r.Subject, &at, &r.Hash); err != nil {
				rows.Close()
				return nil, d.errorf("evidence entries: %w", err)
			}
			if r.At, err = parseTime(at); err != nil {
				rows.Close()
				return nil, d.errorf("evidence entry %d: %w", r.Seq, err)
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, d.errorf("evidence entries: %w", err)
		}
	}
	if len(subjects) > batchRows {
		slices.SortFunc(out, func(a, b store.EvidenceRef) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return out, nil
}
