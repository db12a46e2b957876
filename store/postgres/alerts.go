package postgres

import "github.com/vigilhq/vigil/store/internal/sqlstore"

// AlertLedger is the store's record of alert deliveries (alerts.Ledger and
// daemon.AlertLedger): which alerts each channel was sent and which it
// still owes, shared by every process on the database.
type AlertLedger = sqlstore.AlertLedger

// AlertLedger returns the store's alert ledger.
func (s *Store) AlertLedger() *AlertLedger { return s.DB.AlertLedger() }
