package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/vigilhq/vigil/telemetry"
)

// Scheduler metric names (measurements). In Prometheus text each field
// becomes MEASUREMENT_FIELD: vigil_daemon_scans_started_total,
// vigil_daemon_scans_failed_total, vigil_daemon_scans_skipped_total,
// vigil_daemon_scans_succeeded_total (counters, per location),
// vigil_daemon_last_scan_started_seconds,
// vigil_daemon_last_scan_finished_seconds, vigil_daemon_last_scan_ok
// (gauges, per location), vigil_daemon_running_scans,
// vigil_daemon_queued_scans and vigil_daemon_reloads_ok_total,
// vigil_daemon_reloads_failed_total.
const (
	MeasurementScans    = "vigil_daemon_scans"
	MeasurementLastScan = "vigil_daemon_last_scan"
	MeasurementDaemon   = "vigil_daemon"
	MeasurementReloads  = "vigil_daemon_reloads"
)

// Metrics returns the scheduler's counters and gauges stamped now. Series
// are bounded by the configured locations.
func (s *Scheduler) Metrics(now time.Time) []telegraf.Metric {
	stats := s.Stats()
	progress := s.Running()
	okReloads, failedReloads, _ := s.ReloadStatus()
	locs := make([]string, 0, len(stats))
	for l := range stats {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	var out []telegraf.Metric
	for _, l := range locs {
		st := stats[l]
		tags := map[string]string{"location": l}
		out = append(out, metric.New(MeasurementScans, tags, map[string]any{
			"started_total":   st.Started,
			"succeeded_total": st.Succeeded,
			"failed_total":    st.Failed,
			"skipped_total":   st.Skipped,
		}, now, telegraf.Counter))
		if st.LastFinished.IsZero() {
			continue
		}
		ok := int64(0)
		if st.LastOK {
			ok = 1
		}
		out = append(out, metric.New(MeasurementLastScan, tags, map[string]any{
			"started_seconds":  st.LastStarted.Unix(),
			"finished_seconds": st.LastFinished.Unix(),
			"ok":               ok,
		}, now, telegraf.Gauge))
	}
	var running, queued int64
	for _, p := range progress {
		if p.Running() {
			running++
		} else {
			queued++
		}
	}
	out = append(out,
		metric.New(MeasurementDaemon, nil, map[string]any{"running_scans": running, "queued_scans": queued}, now, telegraf.Gauge),
		metric.New(MeasurementReloads, nil, map[string]any{"ok_total": okReloads, "failed_total": failedReloads}, now, telegraf.Counter),
	)
	return out
}

// controlLister is a Runner that knows the controls its rules cite.
type controlLister interface{ Controls() []string }

// MetricsSource serves the posture metrics (telemetry.Posture: open
// findings, last scans, control gaps) followed by the scheduler's, for
// telemetry.MetricsHandler.
type MetricsSource struct {
	Store     telemetry.PostureStore
	Scheduler *Scheduler
	// Now stamps the metrics; nil means time.Now.
	Now func() time.Time
}

// PostureMetrics implements telemetry.PostureSource. The controls are
// those of the running configuration's rules, so a reload that changes
// the rules changes the vigil_control series.
func (m MetricsSource) PostureMetrics(ctx context.Context) ([]telegraf.Metric, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	p := telemetry.StorePosture{Store: m.Store, Now: now}
	if cl, ok := m.Scheduler.Runner().(controlLister); ok {
		p.Controls = cl.Controls()
	}
	ms, err := p.PostureMetrics(ctx)
	if err != nil {
		return nil, err
	}
	return append(ms, m.Scheduler.Metrics(now())...), nil
}
