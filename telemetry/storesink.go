package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// ObservationStore is the part of the store StoreSink writes through.
type ObservationStore interface {
	BeginScan(ctx context.Context, scan observe.Scan) error
	AddObservations(ctx context.Context, scanID string, obs []observe.Observation) error
}

// DayScanVersion is the Version of the standing per-day scan records that
// hold ingested metrics, so lists of scans can tell them from real scans.
const DayScanVersion = "telegraf"

// DayScanID is the id of the standing scan record that holds the metrics
// received on t's UTC day: "telegraf-YYYYMMDD".
func DayScanID(t time.Time) string {
	return "telegraf-" + t.UTC().Format("20060102")
}

// StoreSink stores ingested metrics in the standing scan record of the
// UTC day they arrive on (DayScanID), creating it on first use. The record
// is begun at 00:00 UTC and never finished: it resolves no finding, and
// rules can read its observations like any scan's.
type StoreSink struct {
	Store ObservationStore
	// Now picks the day; nil means time.Now.
	Now func() time.Time
}

// AddMetrics appends obs to today's record in one transaction (all or
// none, as the store's AddObservations guarantees).
func (s StoreSink) AddMetrics(ctx context.Context, obs []observe.Observation) error {
	if len(obs) == 0 {
		return nil
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	day := now().UTC()
	id := DayScanID(day)
	err := s.Store.AddObservations(ctx, id, obs)
	if !errors.Is(err, store.ErrUnknownScan) {
		return err
	}
	// First metrics of the day. Two requests may both get here; beginning
	// a running scan again with the same values changes nothing.
	midnight := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	if err := s.Store.BeginScan(ctx, observe.Scan{ID: id, StartedAt: midnight, Version: DayScanVersion, Locations: []string{}}); err != nil {
		return fmt.Errorf("telegraf: start the day's record %s: %w", id, err)
	}
	return s.Store.AddObservations(ctx, id, obs)
}
