package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/vigilhq/vigil/store"
)

// AlertSent reports whether the alert key was delivered to channel.
func (d *DB) AlertSent(ctx context.Context, channel, key string) (bool, error) {
	var state string
	err := d.db.QueryRowContext(ctx, `SELECT state FROM alert_deliveries WHERE channel = $1 AND alert_key = $2`, channel, key).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, d.errorf("alert ledger: %w", err)
	}
	return state == store.AlertSent, nil
}

// RecordAlertSent notes that key was delivered to channel at at: a pending
// row becomes sent (and drops the alert it held), or a sent row is added.
func (d *DB) RecordAlertSent(ctx context.Context, channel, key string, at time.Time) error {
	err := d.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_deliveries (channel, alert_key, state, alert, created_at, sent_at)
			VALUES ($1, $2, $3, NULL, $4, $4)
			ON CONFLICT (channel, alert_key) DO UPDATE SET state = $3, alert = NULL, sent_at = $4`,
			channel, key, store.AlertSent, formatTime(at))
		return err
	})
	if err != nil {
		return d.errorf("alert ledger: record %s: %w", channel, err)
	}
	return nil
}

// HoldAlerts keeps alerts as pending for their channels. A (channel, key)
// that is already pending or sent is left as it is, so holding the same
// alert again changes nothing.
func (d *DB) HoldAlerts(ctx context.Context, alerts []store.PendingAlert) error {
	if len(alerts) == 0 {
		return nil
	}
	now := d.now()
	err := d.write(ctx, func(tx *sql.Tx) error {
		for _, a := range alerts {
			created := a.Created
			if created.IsZero() {
				created = now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO alert_deliveries (channel, alert_key, state, alert, created_at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, alert_key) DO NOTHING`,
				a.Channel, a.Key, store.AlertPending, string(a.Alert), formatTime(created)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return d.errorf("alert ledger: hold: %w", err)
	}
	return nil
}

// PendingAlerts returns the alerts not yet delivered, oldest first.
func (d *DB) PendingAlerts(ctx context.Context) ([]store.PendingAlert, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT channel, alert_key, alert, created_at, attempts, last_attempt
		FROM alert_deliveries WHERE state = $1 ORDER BY created_at, channel, alert_key`, store.AlertPending)
	if err != nil {
		return nil, d.errorf("alert ledger: %w", err)
	}
	defer rows.Close()
	var out []store.PendingAlert
	for rows.Next() {
		var (
			a             store.PendingAlert
			body          sql.NullString
			created       string
			lastAttempted sql.NullString
		)
		if err := rows.Scan(&a.Channel, &a.Key, &body, &created, &a.Attempts, &lastAttempted); err != nil {
			return nil, d.errorf("alert ledger: %w", err)
		}
		a.Alert = []byte(body.String)
		if a.Created, err = parseTime(created); err != nil {
			return nil, d.errorf("alert ledger: %s %s: %w", a.Channel, a.Key, err)
		}
		if lastAttempted.Valid {
			if a.LastAttempt, err = parseTime(lastAttempted.String); err != nil {
				return nil, d.errorf("alert ledger: %s %s: %w", a.Channel, a.Key, err)
			}
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, d.errorf("alert ledger: %w", err)
	}
	return out, nil
}

// AlertsAttempted counts a failed delivery cycle at at for the pending
// alerts keys of channel.
func (d *DB) AlertsAttempted(ctx context.Context, channel string, keys []string, at time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	err := d.write(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET attempts = attempts + 1, last_attempt = $4
				WHERE channel = $1 AND alert_key = $2 AND state = $3`, channel, k, store.AlertPending, formatTime(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return d.errorf("alert ledger: attempted %s: %w", channel, err)
	}
	return nil
}

// DropPendingAlerts gives up on the pending alerts created before before
// and returns them, so the caller can say what was never delivered.
func (d *DB) DropPendingAlerts(ctx context.Context, before time.Time) ([]store.PendingAlert, error) {
	all, err := d.PendingAlerts(ctx)
	if err != nil {
		return nil, err
	}
	var old []store.PendingAlert
	for _, a := range all {
		if a.Created.Before(before) {
			old = append(old, a)
		}
	}
	if len(old) == 0 {
		return nil, nil
	}
	err = d.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM alert_deliveries WHERE state = $1 AND created_at < $2`, store.AlertPending, formatTime(before))
		return err
	})
	if err != nil {
		return nil, d.errorf("alert ledger: drop: %w", err)
	}
	return old, nil
}
