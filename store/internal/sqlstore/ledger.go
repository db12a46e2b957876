package sqlstore

import (
	"context"
	"time"

	"github.com/vigilhq/vigil/store"
)

// AlertLedger is the store's record of alert deliveries: which alerts each
// channel was sent (alerts.Ledger: Sent, Record), and which it still owes
// (Hold, Pending), so that neither a restart re-sends an alert nor a
// failed delivery loses one. Each backend hands it out as Store.AlertLedger.
type AlertLedger struct{ core *DB }

// AlertLedger returns the database's alert ledger.
func (d *DB) AlertLedger() *AlertLedger { return &AlertLedger{core: d} }

// Sent reports whether the alert key was delivered to channel.
func (l *AlertLedger) Sent(ctx context.Context, channel, key string) (bool, error) {
	return l.core.AlertSent(ctx, channel, key)
}

// Record notes that key was delivered to channel at at; a pending alert
// for that channel is pending no more.
func (l *AlertLedger) Record(ctx context.Context, channel, key string, at time.Time) error {
	return l.core.RecordAlertSent(ctx, channel, key, at)
}

// Hold keeps alerts pending for their channels until Record; one already
// pending or sent is left as it is.
func (l *AlertLedger) Hold(ctx context.Context, alerts []store.PendingAlert) error {
	return l.core.HoldAlerts(ctx, alerts)
}

// Pending returns the alerts not yet delivered, oldest first.
func (l *AlertLedger) Pending(ctx context.Context) ([]store.PendingAlert, error) {
	return l.core.PendingAlerts(ctx)
}

// Attempted counts a failed delivery cycle for channel's pending keys.
func (l *AlertLedger) Attempted(ctx context.Context, channel string, keys []string, at time.Time) error {
	return l.core.AlertsAttempted(ctx, channel, keys, at)
}

// DropPending gives up on alerts pending since before before and returns
// them.
func (l *AlertLedger) DropPending(ctx context.Context, before time.Time) ([]store.PendingAlert, error) {
	return l.core.DropPendingAlerts(ctx, before)
}
