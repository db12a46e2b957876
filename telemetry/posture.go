package telemetry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	influxser "github.com/influxdata/telegraf/plugins/serializers/influx"
	promser "github.com/influxdata/telegraf/plugins/serializers/prometheus"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// Posture metric names (measurements). In Prometheus text each field
// becomes MEASUREMENT_FIELD: vigil_findings_count, vigil_scan_duration_seconds,
// vigil_scan_complete, vigil_scan_finished_at, vigil_control_open_findings.
const (
	MeasurementFindings = "vigil_findings"
	MeasurementScan     = "vigil_scan"
	MeasurementControl  = "vigil_control"
)

// OrgLocation is the location tag of findings that belong to no single
// location. Location ids are [a-z0-9-]+, so it cannot clash with one.
const OrgLocation = "_org"

// Posture turns the open findings, the scans and the controls the loaded
// rules cite into metrics stamped now. Series are bounded by the
// configuration, never by the data: vigil_findings has one per (location,
// category, severity) with open findings, vigil_scan one per location (its
// latest finished scan; the standing telegraf records never finish),
// vigil_control one per control.
func Posture(findings []observe.Finding, scans []observe.Scan, controls []string, now time.Time) []telegraf.Metric {
	var out []telegraf.Metric

	type key struct {
		loc string
		cat observe.Category
		sev observe.Severity
	}
	counts := map[key]int64{}
	gaps := map[string]int64{}
	for _, f := range findings {
		if f.Status != observe.StatusOpen {
			continue
		}
		loc := f.Location
		if loc == "" {
			loc = OrgLocation
		}
		counts[key{loc, f.Category, f.Severity}]++
		for _, c := range f.Controls {
			gaps[c]++
		}
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.loc, b.loc); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.cat), string(b.cat)); c != 0 {
			return c
		}
		return b.sev.Rank() - a.sev.Rank()
	})
	for _, k := range keys {
		out = append(out, metric.New(MeasurementFindings,
			map[string]string{"location": k.loc, "category": string(k.cat), "severity": string(k.sev), "status": string(observe.StatusOpen)},
			map[string]any{"count": counts[k]}, now, telegraf.Gauge))
	}

	latest := map[string]observe.Scan{}
	for _, s := range scans {
		if s.FinishedAt.IsZero() || strings.HasPrefix(s.ID, "telegraf-") {
			continue
		}
		for _, l := range s.Locations {
			if prev, ok := latest[l]; !ok || s.FinishedAt.After(prev.FinishedAt) {
				latest[l] = s
			}
		}
	}
	locs := make([]string, 0, len(latest))
	for l := range latest {
		locs = append(locs, l)
	}
	slices.Sort(locs)
	for _, l := range locs {
		s := latest[l]
		complete := int64(0)
		if s.Complete {
			complete = 1
		}
		out = append(out, metric.New(MeasurementScan,
			map[string]string{"location": l},
			map[string]any{
				"duration_seconds": s.FinishedAt.Sub(s.StartedAt).Seconds(),
				"complete":         complete,
				"finished_at":      s.FinishedAt.Unix(),
			}, now, telegraf.Gauge))
	}

	all := slices.Clone(controls)
	for c := range gaps {
		all = append(all, c)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	for _, c := range all {
		if c == "" {
			continue
		}
		status := "ok"
		if gaps[c] > 0 {
			status = "gap"
		}
		out = append(out, metric.New(MeasurementControl,
			map[string]string{"control": c, "status": status},
			map[string]any{"open_findings": gaps[c]}, now, telegraf.Gauge))
	}
	return out
}

// WriteInflux writes ms as InfluxDB line protocol with telegraf's
// serializer, fields sorted so the output is stable.
func WriteInflux(w io.Writer, ms []telegraf.Metric) error {
	s := &influxser.Serializer{SortFields: true, UintSupport: true}
	if err := s.Init(); err != nil {
		return err
	}
	b, err := s.SerializeBatch(ms)
	if err != nil {
		return fmt.Errorf("serialize line protocol: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// WritePrometheus writes ms in the Prometheus text exposition format
// (0.0.4) with telegraf's serializer: MEASUREMENT_FIELD{tags} value.
func WritePrometheus(w io.Writer, ms []telegraf.Metric) error {
	// Compact: no HELP lines, which would all read "Telegraf collected metric".
	s := &promser.Serializer{FormatConfig: promser.FormatConfig{SortMetrics: true, CompactEncoding: true}}
	if err := s.Init(); err != nil {
		return err
	}
	b, err := s.SerializeBatch(ms)
	if err != nil {
		return fmt.Errorf("serialize prometheus text: %w", err)
	}
	_, err = w.Write(b)
	return err
}

// PostureSource produces the posture metrics at the moment of a scrape.
type PostureSource interface {
	PostureMetrics(ctx context.Context) ([]telegraf.Metric, error)
}

// PostureStore is the part of the store StorePosture reads.
type PostureStore interface {
	Findings(ctx context.Context, f store.FindingFilter) ([]observe.Finding, error)
	Scans(ctx context.Context, limit int) ([]observe.Scan, error)
}

// DefaultPostureScans is how many recent scans StorePosture reads to find
// each location's latest.
const DefaultPostureScans = 200

// StorePosture reads the open findings and recent scans from the store.
type StorePosture struct {
	Store PostureStore
	// Controls are the controls the loaded rules cite (every
	// RuleMeta.Controls); the ones no open finding cites report status ok.
	Controls []string
	// Scans is how many recent scans to read; zero means DefaultPostureScans.
	Scans int
	// Now stamps the metrics; nil means time.Now.
	Now func() time.Time
}

// PostureMetrics implements PostureSource.
func (p StorePosture) PostureMetrics(ctx context.Context) ([]telegraf.Metric, error) {
	fs, err := p.Store.Findings(ctx, store.FindingFilter{Statuses: []observe.Status{observe.StatusOpen}})
	if err != nil {
		return nil, err
	}
	n := p.Scans
	if n <= 0 {
		n = DefaultPostureScans
	}
	scans, err := p.Store.Scans(ctx, n)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	return Posture(fs, scans, p.Controls, now()), nil
}

// Content types MetricsHandler answers with.
const (
	ContentTypePrometheus = "text/plain; version=0.0.4; charset=utf-8"
	ContentTypeInflux     = "text/plain; charset=utf-8"
)

// MetricsHandler serves GET /metrics: Prometheus text by default, line
// protocol with ?format=influx. It does no authentication; mount it behind
// the dashboard's.
func MetricsHandler(src PostureSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		write, ctype := WritePrometheus, ContentTypePrometheus
		switch f := r.URL.Query().Get("format"); f {
		case "", "prometheus":
		case "influx":
			write, ctype = WriteInflux, ContentTypeInflux
		default:
			http.Error(w, "format must be prometheus or influx", http.StatusBadRequest)
			return
		}
		ms, err := src.PostureMetrics(r.Context())
		if err != nil {
			// Behind the dashboard's authentication: the reader may see why.
			http.Error(w, "posture metrics are unavailable: "+err.Error(), http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		if err := write(&buf, ms); err != nil {
			http.Error(w, "posture metrics could not be written", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(buf.Bytes())
		}
	})
}
