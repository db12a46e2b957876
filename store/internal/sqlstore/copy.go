package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// copyTables lists every table a move copies, in an order that satisfies
// their foreign keys, with the order rows are read in (the evidence log in
// sequence, so the destination's append-only triggers accept each entry).
var copyTables = []struct{ name, order string }{
	{"scans", "started_at, id"},
	{"observations", "scan_id, seq"},
	{"findings", "id"},
	{"finding_events", "event_at, finding_id, event"},
	{"evidence_log", "seq"},
	{"evidence_checkpoints", "seq"},
	{"attestations", "recorded_at, id"},
	{"risk_treatments", "recorded_at, id"},
	{"alert_deliveries", "channel, alert_key"},
	{"agents", "enrolled_at, id"},
	{"agent_tokens", "created_at, hash"},
	{"agent_batches", "received_at, agent_id, batch_id"},
}

// CopyReport is what a move copied.
type CopyReport struct {
	// Rows counts the rows copied per table.
	Rows map[string]int64 `json:"rows"`
	// EvidenceHead is the hash of the last evidence-log entry, the same in
	// both databases after the move.
	EvidenceHead string `json:"evidence_head,omitempty"`
	EvidenceSeq  int64  `json:"evidence_seq"`
}

// CopyTo copies everything in d into dst, an empty database at the same
// schema version, in one transaction of dst: a move from SQLite to
// PostgreSQL (or back) that loses nothing. Rows are copied as stored, so
// the evidence log keeps its hashes and signatures and verifies the same
// afterwards; CopyTo checks the row counts and the log's head on both
// sides before committing. progress, if not nil, is told each table's
// count as it finishes.
func (d *DB) CopyTo(ctx context.Context, dst *DB, progress func(table string, rows int64)) (*CopyReport, error) {
	sv, err := d.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	dv, err := dst.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if sv != dv || sv != LatestVersion {
		return nil, fmt.Errorf("copy %s to %s: schema v%d to v%d: both must be v%d (open each once with this vigil to migrate)",
			d.name, dst.name, sv, dv, LatestVersion)
	}
	rep := &CopyReport{Rows: map[string]int64{}}
	err = dst.write(ctx, func(tx *sql.Tx) error {
		for _, t := range copyTables {
			var n int64
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.name).Scan(&n); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if n > 0 {
				return fmt.Errorf("the destination is not empty: %s has %d rows (copy into a new database)", t.name, n)
			}
		}
		for _, t := range copyTables {
			n, err := d.copyTable(ctx, tx, dst, t.name, t.order)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			rep.Rows[t.name] = n
			if progress != nil {
				progress(t.name, n)
			}
		}
		// Check before committing: the same counts and the same chain head.
		for _, t := range copyTables {
			var n int64
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.name).Scan(&n); err != nil {
				return err
			}
			if n != rep.Rows[t.name] {
				return fmt.Errorf("%s: %d rows arrived of %d", t.name, n, rep.Rows[t.name])
			}
		}
		var srcSeq, dstSeq int64
		var srcHash, dstHash sql.NullString
		if err := d.db.QueryRowContext(ctx, `SELECT seq, hash FROM evidence_log ORDER BY seq DESC LIMIT 1`).Scan(&srcSeq, &srcHash); err != nil && err != sql.ErrNoRows {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM evidence_log ORDER BY seq DESC LIMIT 1`).Scan(&dstSeq, &dstHash); err != nil && err != sql.ErrNoRows {
			return err
		}
		if srcSeq != dstSeq || srcHash != dstHash {
			return fmt.Errorf("evidence log head differs after the copy: entry %d %s, want %d %s", dstSeq, dstHash.String, srcSeq, srcHash.String)
		}
		rep.EvidenceSeq, rep.EvidenceHead = srcSeq, srcHash.String
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", d.name, dst.name, err)
	}
	return rep, nil
}

// copyTable streams one table into tx in batches, converting what the two
// drivers represent differently (SQLite's 0/1 booleans).
func (d *DB) copyTable(ctx context.Context, tx *sql.Tx, dst *DB, table, order string) (int64, error) {
	// The destination's column types decide conversions.
	probe, err := tx.QueryContext(ctx, `SELECT * FROM `+table+` LIMIT 0`)
	if err != nil {
		return 0, err
	}
	types, err := probe.ColumnTypes()
	probe.Close()
	if err != nil {
		return 0, err
	}
	dstBool := map[string]bool{}
	for _, ct := range types {
		if n := strings.ToUpper(ct.DatabaseTypeName()); n == "BOOL" || n == "BOOLEAN" {
			dstBool[ct.Name()] = true
		}
	}
	rows, err := d.db.QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY `+order)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	var (
		n     int64
		batch [][]any
	)
	per := max(1, batchRows*4/len(cols)) // keep well under the bind-parameter limits
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		q := dst.query()
		q.WriteString(`INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES `)
		for i, r := range batch {
			if i > 0 {
				q.WriteString(", ")
			}
			q.row(r...)
		}
		_, err := tx.ExecContext(ctx, q.String(), q.args...)
		batch = batch[:0]
		return err
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, c := range cols {
			switch v := vals[i].(type) {
			case []byte:
				vals[i] = string(v)
			case int64:
				if dstBool[c] {
					vals[i] = v != 0
				}
			case bool:
				if !dstBool[c] && dst.placeholders == Question {
					vals[i] = map[bool]int64{false: 0, true: 1}[v]
				}
			}
		}
		batch = append(batch, vals)
		n++
		if len(batch) == per {
			if err := flush(); err != nil {
				return n, err
			}
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}
