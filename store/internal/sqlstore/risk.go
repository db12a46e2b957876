package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// riskPayload is the payload of a risk entry: the treatment as stored and
// the findings an acceptance covered.
type riskPayload struct {
	observe.RiskTreatment
	Accepted []string `json:"accepted_findings,omitempty"`
}

const riskCols = `id, risk_id, by_name, owner, treatment, due, likelihood, impact, reason, expires_at, recorded_at`

func scanTreatment(r rowScanner) (observe.RiskTreatment, error) {
	var (
		t              observe.RiskTreatment
		treatment, rec string
		due, expires   sql.NullString
		err            error
	)
	if err := r.Scan(&t.ID, &t.Risk, &t.By, &t.Owner, &treatment, &due, &t.Likelihood, &t.Impact, &t.Reason, &expires, &rec); err != nil {
		return t, err
	}
	t.Treatment = observe.Treatment(treatment)
	if due.Valid {
		if t.Due, err = parseTime(due.String); err != nil {
			return t, fmt.Errorf("risk treatment %s: %w", t.ID, err)
		}
	}
	if expires.Valid {
		if t.Expires, err = parseTime(expires.String); err != nil {
			return t, fmt.Errorf("risk treatment %s: %w", t.ID, err)
		}
	}
	if t.RecordedAt, err = parseTime(rec); err != nil {
		return t, fmt.Errorf("risk treatment %s: %w", t.ID, err)
	}
	return t, nil
}

// AddRiskTreatment appends t (the full new state of risk t.Risk) to the
// register and the evidence log. An acceptance (treatment accept) needs a
// person, a reason and an expiry, and marks the findings in accept as
// accepted until then, in the same transaction; an unknown finding id
// fails the whole call.
func (d *DB) AddRiskTreatment(ctx context.Context, t observe.RiskTreatment, accept []string) (observe.RiskTreatment, error) {
	now := d.now()
	t.ID, t.RecordedAt = newID("rt", now), now.UTC()
	var errs []string
	if strings.TrimSpace(t.Risk) == "" {
		errs = append(errs, "no risk id")
	}
	if strings.TrimSpace(t.By) == "" {
		errs = append(errs, "who decides is required")
	}
	switch t.Treatment {
	case "", observe.TreatMitigate, observe.TreatTransfer:
		if len(accept) > 0 {
			errs = append(errs, "findings are accepted only by an accept treatment")
		}
	case observe.TreatAccept:
		if strings.TrimSpace(t.Reason) == "" {
			errs = append(errs, "accepting a risk needs a reason")
		}
		if t.Expires.IsZero() {
			errs = append(errs, "accepting a risk needs an expiry (it reopens then)")
		} else if !t.Expires.After(now) {
			errs = append(errs, "the acceptance's expiry is not in the future")
		}
	default:
		errs = append(errs, fmt.Sprintf("unknown treatment %q (want mitigate, accept or transfer)", t.Treatment))
	}
	if len(errs) > 0 {
		return observe.RiskTreatment{}, d.errorf("risk %s: %w: %s", t.Risk, store.ErrInvalidDecision, strings.Join(errs, "; "))
	}
	var due, expires any
	if !t.Due.IsZero() {
		t.Due = t.Due.UTC()
		due = formatTime(t.Due)
	}
	if !t.Expires.IsZero() {
		t.Expires = t.Expires.UTC()
		expires = formatTime(t.Expires)
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO risk_treatments (`+riskCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			t.ID, t.Risk, t.By, t.Owner, string(t.Treatment), due, t.Likelihood, t.Impact, t.Reason, expires, formatTime(t.RecordedAt)); err != nil {
			return err
		}
		b, err := json.Marshal(riskPayload{RiskTreatment: t, Accepted: accept})
		if err != nil {
			return err
		}
		recs := []evidence.Record{{Kind: evidence.KindRisk, Subject: t.Risk, Payload: b}}
		for _, id := range accept {
			rec, err := d.decide(ctx, tx, id, observe.Decision{Status: observe.StatusAccepted, By: t.By, Reason: t.Reason,
				At: t.RecordedAt, Expires: t.Expires, Risk: t.Risk})
			if err != nil {
				return fmt.Errorf("accept finding %s: %w", id, err)
			}
			recs = append(recs, rec)
		}
		return d.appendEvidence(ctx, tx, recs)
	})
	if err != nil {
		return observe.RiskTreatment{}, d.errorf("risk %s: %w", t.Risk, err)
	}
	return t, nil
}

// RiskTreatments returns the current treatment of every risk that has
// one: the newest entry per risk, ordered by risk id.
func (d *DB) RiskTreatments(ctx context.Context) ([]observe.RiskTreatment, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+riskCols+` FROM risk_treatments ORDER BY risk_id, recorded_at, id`)
	if err != nil {
		return nil, d.errorf("risk treatments: %w", err)
	}
	defer rows.Close()
	var out []observe.RiskTreatment
	for rows.Next() {
		t, err := scanTreatment(rows)
		if err != nil {
			return nil, d.errorf("risk treatments: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].Risk == t.Risk {
			out[n-1] = t
			continue
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("risk treatments: %w", err)
	}
	return out, nil
}

// RiskHistory returns every treatment recorded for a risk, oldest first.
func (d *DB) RiskHistory(ctx context.Context, riskID string) ([]observe.RiskTreatment, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+riskCols+` FROM risk_treatments WHERE risk_id = $1 ORDER BY recorded_at, id`, riskID)
	if err != nil {
		return nil, d.errorf("history of risk %s: %w", riskID, err)
	}
	defer rows.Close()
	var out []observe.RiskTreatment
	for rows.Next() {
		t, err := scanTreatment(rows)
		if err != nil {
			return nil, d.errorf("history of risk %s: %w", riskID, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("history of risk %s: %w", riskID, err)
	}
	return out, nil
}
