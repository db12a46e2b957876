package sqlstore

import (
	"context"
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

// SetEvidenceKey gives the store the key that signs the evidence log's
// checkpoints. Without one, entries are still appended and chained but not
// signed; the first write with a key appends a key entry and a checkpoint
// that vouches for everything before it.
func (d *DB) SetEvidenceKey(k *evidence.Key) { d.evidenceKey = k }

// appendEvidence links recs after the log's head and inserts them, and the
// checkpoints they need when the store has a key, inside tx: the log
// changes exactly when the data it describes does.
func (d *DB) appendEvidence(ctx context.Context, tx *sql.Tx, recs []evidence.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// The head and the key entry in one statement: a round trip fewer to
	// PostgreSQL under the write lock. An empty log has no row.
	var (
		head    evidence.Head
		hash    string
		payload sql.NullString
	)
	err := tx.QueryRowContext(ctx, `SELECT seq, hash, (SELECT payload FROM evidence_log WHERE kind = $1 ORDER BY seq DESC LIMIT 1)
		FROM evidence_log ORDER BY seq DESC LIMIT 1`, string(evidence.KindKey)).Scan(&head.Seq, &hash, &payload)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("evidence log head: %w", err)
	default:
		if head.Hash, err = evidence.ParseDigest(hash); err != nil {
			return fmt.Errorf("evidence log entry %d: %w", head.Seq, err)
		}
	}
	key := d.evidenceKey
	if key != nil {
		// The key signing from here on must be the one the chain names.
		if cur, perr := evidence.ParseKeyPayload([]byte(payload.String)); !payload.Valid || perr != nil || !cur.Equal(key.Public()) {
			recs = append([]evidence.Record{evidence.KeyRecord(key.Public())}, recs...)
		}
	}
	at := d.now()
	entries := evidence.Link(head, at, recs)
	for start := 0; start < len(entries); start += batchRows {
		end := min(start+batchRows, len(entries))
		q := d.query()
		q.WriteString(`INSERT INTO evidence_log (seq, at, kind, subject, payload, payload_digest, prev_hash, hash) VALUES `)
		for i := start; i < end; i++ {
			e := &entries[i]
			if i > start {
				q.WriteString(", ")
			}
			q.row(e.Seq, e.At, string(e.Kind), e.Subject, string(e.Payload), e.PayloadDigest.String(), e.Prev.String(), e.Hash.String())
		}
		if _, err := tx.ExecContext(ctx, q.String(), q.args...); err != nil {
			return fmt.Errorf("append to evidence log: %w", err)
		}
	}
	if key == nil {
		return nil
	}
	cps := key.CheckpointBatch(entries, at)
	for start := 0; start < len(cps); start += batchRows {
		end := min(start+batchRows, len(cps))
		q := d.query()
		q.WriteString(`INSERT INTO evidence_checkpoints (seq, hash, at, public_key, signature) VALUES `)
		for i := start; i < end; i++ {
			c := &cps[i]
			if i > start {
				q.WriteString(", ")
			}
			q.row(c.Seq, c.Hash.String(), c.At, evidence.FormatPublicKey(c.PublicKey), hex.EncodeToString(c.Signature))
		}
		if _, err := tx.ExecContext(ctx, q.String(), q.args...); err != nil {
			return fmt.Errorf("evidence checkpoints at entries %d to %d: %w", cps[start].Seq, cps[end-1].Seq, err)
		}
	}
	return nil
}

// findingEventPayload is the payload of finding-event and acceptance
// entries: what happened, to which finding, and the finding's identity so
// the entry reads on its own.
type findingEventPayload struct {
	FindingID string `json:"finding_id"`
	Event     string `json:"event"`
	At        string `json:"at"`                // when it happened (a scan's finish, a person's decision)
	ScanID    string `json:"scan_id,omitempty"` // empty for a person's decision
	Status    string `json:"status"`            // the finding's status after the event
	Previous  string `json:"previous_status,omitempty"`
	Note      string `json:"note,omitempty"` // who and why, for a person's decision
	Rule      string `json:"rule"`
	Category  string `json:"category"`
	Severity  string `json:"severity"`
	Location  string `json:"location"`
	Target    string `json:"target"`
	Vantage   string `json:"vantage,omitempty"`
}

func findingRecord(kind evidence.Kind, p findingEventPayload) (evidence.Record, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return evidence.Record{}, fmt.Errorf("evidence for finding %s: %w", p.FindingID, err)
	}
	return evidence.Record{Kind: kind, Subject: p.FindingID, Payload: b}, nil
}

func findingEvent(f *observe.Finding, ev store.Event, scanID, at string) (evidence.Record, error) {
	return findingRecord(evidence.KindFindingEvent, findingEventPayload{FindingID: f.ID, Event: string(ev), At: at, ScanID: scanID,
		Status: string(f.Status), Rule: f.Rule, Category: string(f.Category), Severity: string(f.Severity),
		Location: f.Location, Target: f.Target, Vantage: f.Vantage})
}

// scanPayload is the payload of a scan entry.
type scanPayload struct {
	ScanID       string              `json:"scan_id"`
	StartedAt    string              `json:"started_at"`
	FinishedAt   string              `json:"finished_at"`
	Version      string              `json:"version,omitempty"`
	Locations    []string            `json:"locations"`
	Complete     bool                `json:"complete"`
	Errors       []string            `json:"errors,omitempty"`
	Vantages     map[string][]string `json:"vantages,omitempty"`
	Sources      []string            `json:"sources,omitempty"`
	SourceErrors []string            `json:"source_errors,omitempty"`
	Findings     int                 `json:"findings"` // seen by this scan
	Resolved     int                 `json:"resolved"` // resolved by it
}

func scanRecord(scan observe.Scan, findings, resolved int) (evidence.Record, error) {
	b, err := json.Marshal(scanPayload{ScanID: scan.ID, StartedAt: formatTime(scan.StartedAt), FinishedAt: formatTime(scan.FinishedAt),
		Version: scan.Version, Locations: scan.Locations, Complete: scan.Complete, Errors: scan.Errors, Vantages: scan.Vantages,
		Sources: scan.Sources, SourceErrors: scan.SourceErrors, Findings: findings, Resolved: resolved})
	if err != nil {
		return evidence.Record{}, fmt.Errorf("evidence for scan %s: %w", scan.ID, err)
	}
	return evidence.Record{Kind: evidence.KindScan, Subject: scan.ID, Payload: b}, nil
}

// The methods below are evidence.Source: what `vigil evidence export`
// reads. They read outside any transaction; the log only grows, so the
// range up to the head read first stays as it was.

var _ evidence.Source = (*DB)(nil)

// EvidenceHead returns the seq of the last entry, 0 when the log is empty.
func (d *DB) EvidenceHead(ctx context.Context) (int64, error) {
	var seq int64
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM evidence_log`).Scan(&seq); err != nil {
		return 0, d.errorf("evidence log head: %w", err)
	}
	return seq, nil
}

// EvidenceFirstSince returns the first entry appended at or after t, 0 if
// none was.
func (d *DB) EvidenceFirstSince(ctx context.Context, t time.Time) (int64, error) {
	var seq int64
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0) FROM evidence_log WHERE at >= $1`, formatTime(t)).Scan(&seq); err != nil {
		return 0, d.errorf("evidence log since %s: %w", formatTime(t), err)
	}
	return seq, nil
}

const entryCols = `seq, at, kind, subject, payload, payload_digest, prev_hash, hash`

// EvidenceLastKey returns the last key entry before seq, nil if none.
func (d *DB) EvidenceLastKey(ctx context.Context, before int64) (*evidence.Entry, error) {
	row := d.db.QueryRowContext(ctx, `SELECT `+entryCols+` FROM evidence_log WHERE kind = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1`,
		string(evidence.KindKey), before)
	var e evidence.Entry
	err := scanEntry(row, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, d.errorf("evidence log key: %w", err)
	}
	return &e, nil
}

// EvidenceEntries calls fn for the entries from..to in seq order, only
// those of kind unless kind is empty.
func (d *DB) EvidenceEntries(ctx context.Context, from, to int64, kind evidence.Kind, fn func(*evidence.Entry) error) error {
	q := `SELECT ` + entryCols + ` FROM evidence_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq`
	args := []any{from, to}
	if kind != "" {
		q = `SELECT ` + entryCols + ` FROM evidence_log WHERE kind = $3 AND seq >= $1 AND seq <= $2 ORDER BY seq`
		args = append(args, string(kind))
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return d.errorf("evidence log: %w", err)
	}
	defer rows.Close()
	var e evidence.Entry
	for rows.Next() {
		if err := scanEntry(rows, &e); err != nil {
			return d.errorf("evidence log: %w", err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.errorf("evidence log: %w", err)
	}
	return nil
}

// scanEntry reads an entry as stored. A digest that is not hex is kept as
// zeros rather than refused: the export carries the log as it is and the
// verifier names the broken entry.
func scanEntry(r rowScanner, e *evidence.Entry) error {
	var kind, payload, digest, prev, hash string
	if err := r.Scan(&e.Seq, &e.At, &kind, &e.Subject, &payload, &digest, &prev, &hash); err != nil {
		return err
	}
	e.Kind, e.Payload = evidence.Kind(kind), []byte(payload)
	e.PayloadDigest, _ = evidence.ParseDigest(digest)
	e.Prev, _ = evidence.ParseDigest(prev)
	e.Hash, _ = evidence.ParseDigest(hash)
	return nil
}

// EvidenceCheckpoints calls fn for the checkpoints of entries from..to.
func (d *DB) EvidenceCheckpoints(ctx context.Context, from, to int64, fn func(*evidence.Checkpoint) error) error {
	rows, err := d.db.QueryContext(ctx, `SELECT seq, hash, at, public_key, signature FROM evidence_checkpoints
		WHERE seq >= $1 AND seq <= $2 ORDER BY seq`, from, to)
	if err != nil {
		return d.errorf("evidence checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c                    evidence.Checkpoint
			hash, pub, signature string
		)
		if err := rows.Scan(&c.Seq, &hash, &c.At, &pub, &signature); err != nil {
			return d.errorf("evidence checkpoints: %w", err)
		}
		// As in scanEntry, what does not parse is exported as found.
		c.Hash, _ = evidence.ParseDigest(hash)
		c.PublicKey, _ = evidence.ParsePublicKey(pub)
		c.Signature, _ = hex.DecodeString(signature)
		if err := fn(&c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.errorf("evidence checkpoints: %w", err)
	}
	return nil
}

// EvidenceObservations calls fn for the stored observations of scanID with
// seq in [firstSeq, firstSeq+count), as stored.
func (d *DB) EvidenceObservations(ctx context.Context, scanID string, firstSeq int64, count int, fn func(*evidence.ObservationRow) error) error {
	rows, err := d.db.QueryContext(ctx, `SELECT `+observationCols+` FROM observations
		WHERE scan_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`, scanID, firstSeq, firstSeq+int64(count))
	if err != nil {
		return d.errorf("observations of scan %s: %w", scanID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r     evidence.ObservationRow
			attrs sql.NullString
		)
		if err := rows.Scan(&r.ScanID, &r.Seq, &r.Kind, &r.Location, &r.Segment, &r.SegmentRole, &r.Vantage, &r.VantageRole,
			&r.InternetFacing, &r.Host, &r.Port, &r.Proto, &r.Source, &r.ObservedAt, &attrs); err != nil {
			return d.errorf("observations of scan %s: %w", scanID, err)
		}
		if attrs.Valid {
			r.Attrs = &attrs.String
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.errorf("observations of scan %s: %w", scanID, err)
	}
	return nil
}
