package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// ErrSuperseded is returned for a correction of a record that another
// correction already replaced: correct the newest one instead.
var ErrSuperseded = errors.New("attestation already superseded")

// attestationPayload is the payload of an attestation entry: the record as
// stored, so the entry reads on its own.
type attestationPayload struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Location   string `json:"location,omitempty"`
	At         string `json:"at"`
	ExpiresAt  string `json:"expires_at,omitempty"`
	By         string `json:"by,omitempty"`
	Owner      string `json:"owner,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Result     string `json:"result,omitempty"`
	Note       string `json:"note,omitempty"`
	Document   string `json:"document,omitempty"`
	Supersedes string `json:"supersedes,omitempty"`
	RecordedAt string `json:"recorded_at"`
}

// newID returns a random id with prefix that sorts by the time recorded.
func newID(prefix string, now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// AddAttestation stores r, assigning its ID and RecordedAt, and appends an
// attestation entry to the evidence log in the same transaction. The
// caller validates r (attest.Validate) against the catalog.
func (d *DB) AddAttestation(ctx context.Context, r observe.Attestation) (observe.Attestation, error) {
	return d.addAttestation(ctx, r, "")
}

// CorrectAttestation stores r as a correction of the record with id
// supersedes: the rows stay, and Attestations returns only the correction.
// An unknown id is store.ErrNotFound; a record already corrected is
// ErrSuperseded.
func (d *DB) CorrectAttestation(ctx context.Context, supersedes string, r observe.Attestation) (observe.Attestation, error) {
	if supersedes == "" {
		return observe.Attestation{}, d.errorf("correct attestation: no id to supersede")
	}
	return d.addAttestation(ctx, r, supersedes)
}

func (d *DB) addAttestation(ctx context.Context, r observe.Attestation, supersedes string) (observe.Attestation, error) {
	now := d.now()
	r.ID, r.RecordedAt = newID("att", now), now.UTC()
	p := attestationPayload{ID: r.ID, Kind: r.Kind, Location: r.Location, At: formatTime(r.At), By: r.By, Owner: r.Owner,
		Subject: r.Subject, Result: r.Result, Note: r.Note, Document: r.Document, Supersedes: supersedes, RecordedAt: formatTime(r.RecordedAt)}
	if !r.ExpiresAt.IsZero() {
		p.ExpiresAt = formatTime(r.ExpiresAt)
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		var super any
		if supersedes != "" {
			super = supersedes
			var by sql.NullString
			err := tx.QueryRowContext(ctx, `SELECT (SELECT id FROM attestations WHERE supersedes = $1) FROM attestations WHERE id = $1`,
				supersedes).Scan(&by)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("supersedes %s: %w", supersedes, store.ErrNotFound)
			case err != nil:
				return err
			case by.Valid:
				return fmt.Errorf("supersedes %s: %w by %s", supersedes, ErrSuperseded, by.String)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO attestations
			(id, kind, location, at, expires_at, by_name, owner, subject, result, note, document, supersedes, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			r.ID, r.Kind, r.Location, p.At, nullTime(r.ExpiresAt), r.By, r.Owner, r.Subject, r.Result, r.Note, r.Document,
			super, p.RecordedAt); err != nil {
			return err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return d.appendEvidence(ctx, tx, []evidence.Record{{Kind: evidence.KindAttestation, Subject: r.ID, Payload: b}})
	})
	if err != nil {
		return observe.Attestation{}, d.errorf("add attestation %s: %w", r.Kind, err)
	}
	// As Attestations will read it back.
	r.At = r.At.UTC()
	if !r.ExpiresAt.IsZero() {
		r.ExpiresAt = r.ExpiresAt.UTC()
	}
	return r, nil
}

// Attestations returns the records in force, those no correction
// superseded, oldest first.
func (d *DB) Attestations(ctx context.Context) ([]observe.Attestation, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, kind, location, at, expires_at, by_name, owner, subject, result, note, document, recorded_at
		FROM attestations a WHERE NOT EXISTS (SELECT 1 FROM attestations c WHERE c.supersedes = a.id)
		ORDER BY at, recorded_at, id`)
	if err != nil {
		return nil, d.errorf("attestations: %w", err)
	}
	defer rows.Close()
	var out []observe.Attestation
	for rows.Next() {
		var (
			r            observe.Attestation
			at, recorded string
			expires      sql.NullString
		)
		if err := rows.Scan(&r.ID, &r.Kind, &r.Location, &at, &expires, &r.By, &r.Owner, &r.Subject, &r.Result, &r.Note,
			&r.Document, &recorded); err != nil {
			return nil, d.errorf("attestations: %w", err)
		}
		if r.At, err = parseTime(at); err != nil {
			return nil, d.errorf("attestation %s: %w", r.ID, err)
		}
		if expires.Valid {
			if r.ExpiresAt, err = parseTime(expires.String); err != nil {
				return nil, d.errorf("attestation %s: %w", r.ID, err)
			}
		}
		if r.RecordedAt, err = parseTime(recorded); err != nil {
			return nil, d.errorf("attestation %s: %w", r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("attestations: %w", err)
	}
	return out, nil
}
