package telegrafin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
)

// accumulator collects what one Gather adds. Once closed (the gather ran
// past its timeout) it drops whatever the abandoned plugin adds later, so
// a late metric never lands in the next collection.
type accumulator struct {
	now       func() time.Time
	max       int
	mu        sync.Mutex
	closed    bool
	metrics   []telegraf.Metric
	errs      []error
	dropped   int
	precision time.Duration
}

func newAccumulator(now func() time.Time, max int) *accumulator {
	return &accumulator{now: now, max: max}
}

func (a *accumulator) add(m telegraf.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if len(a.metrics) >= a.max {
		a.dropped++
		return
	}
	if a.precision > 0 {
		m.SetTime(m.Time().Round(a.precision))
	}
	a.metrics = append(a.metrics, m)
}

func (a *accumulator) addFields(name string, fields map[string]any, tags map[string]string, tp telegraf.ValueType, t []time.Time) {
	tm := a.now()
	if len(t) > 0 && !t[0].IsZero() {
		tm = t[0]
	}
	a.add(metric.New(name, tags, fields, tm, tp))
}

func (a *accumulator) AddFields(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.addFields(name, fields, tags, telegraf.Untyped, t)
}

func (a *accumulator) AddGauge(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.addFields(name, fields, tags, telegraf.Gauge, t)
}

func (a *accumulator) AddCounter(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.addFields(name, fields, tags, telegraf.Counter, t)
}

func (a *accumulator) AddSummary(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.addFields(name, fields, tags, telegraf.Summary, t)
}

func (a *accumulator) AddHistogram(name string, fields map[string]any, tags map[string]string, t ...time.Time) {
	a.addFields(name, fields, tags, telegraf.Histogram, t)
}

func (a *accumulator) AddMetric(m telegraf.Metric) { a.add(m) }

func (a *accumulator) SetPrecision(p time.Duration) {
	a.mu.Lock()
	a.precision = p
	a.mu.Unlock()
}

func (a *accumulator) AddError(err error) {
	if err == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.errs = append(a.errs, err)
	}
}

// WithTracking exists for the interface: service inputs use it, and vigil
// runs only gathering inputs. Every tracked metric counts as delivered at
// once.
func (a *accumulator) WithTracking(maxTracked int) telegraf.TrackingAccumulator {
	return &trackingAccumulator{accumulator: a, delivered: make(chan telegraf.DeliveryInfo, max(maxTracked, 1))}
}

// close stops accepting metrics and returns what was gathered.
func (a *accumulator) close() (ms []telegraf.Metric, errs []error, dropped int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	return a.metrics, a.errs, a.dropped
}

type trackingAccumulator struct {
	*accumulator
	next      atomic.Uint64
	delivered chan telegraf.DeliveryInfo
}

type delivery telegraf.TrackingID

func (d delivery) ID() telegraf.TrackingID { return telegraf.TrackingID(d) }
func (delivery) Delivered() bool           { return true }

func (t *trackingAccumulator) AddTrackingMetric(m telegraf.Metric) telegraf.TrackingID {
	return t.AddTrackingMetricGroup([]telegraf.Metric{m})
}

func (t *trackingAccumulator) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	for _, m := range group {
		t.add(m)
	}
	id := telegraf.TrackingID(t.next.Add(1))
	select {
	case t.delivered <- delivery(id):
	default: // nobody reads deliveries: drop rather than block the plugin
	}
	return id
}

func (t *trackingAccumulator) Delivered() <-chan telegraf.DeliveryInfo { return t.delivered }

// pluginLogger is the telegraf.Logger vigil injects into a plugin's Log
// field. It writes through the Input's slog logger, and turns the
// plugin's error messages during a gather into collection errors: plugins
// report some failures (a certificate glob that matches no file) only
// by logging them.
type pluginLogger struct {
	in    *Input
	attrs []any
}

func (l *pluginLogger) logger() *slog.Logger {
	if l.in.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.in.Logger
}

func (l *pluginLogger) log(level slog.Level, msg string) {
	lg := l.logger()
	if lg.Enabled(context.Background(), level) {
		lg.Log(context.Background(), level, msg, append([]any{"collector", l.in.Name()}, l.attrs...)...)
	}
	if level >= slog.LevelError {
		l.in.gatherError(errors.New(msg))
	}
}

func (l *pluginLogger) Level() telegraf.LogLevel {
	if l.logger().Enabled(context.Background(), slog.LevelDebug) {
		return telegraf.Debug
	}
	return telegraf.Info
}

func (l *pluginLogger) AddAttribute(key string, value any) { l.attrs = append(l.attrs, key, value) }

func (l *pluginLogger) Errorf(format string, args ...any) {
	l.log(slog.LevelError, fmt.Sprintf(format, args...))
}
func (l *pluginLogger) Error(args ...any) { l.log(slog.LevelError, fmt.Sprint(args...)) }
func (l *pluginLogger) Warnf(format string, args ...any) {
	l.log(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (l *pluginLogger) Warn(args ...any) { l.log(slog.LevelWarn, fmt.Sprint(args...)) }
func (l *pluginLogger) Infof(format string, args ...any) {
	l.log(slog.LevelInfo, fmt.Sprintf(format, args...))
}
func (l *pluginLogger) Info(args ...any) { l.log(slog.LevelInfo, fmt.Sprint(args...)) }
func (l *pluginLogger) Debugf(format string, args ...any) {
	l.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (l *pluginLogger) Debug(args ...any) { l.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (l *pluginLogger) Tracef(format string, args ...any) {
	l.log(slog.LevelDebug-4, fmt.Sprintf(format, args...))
}
func (l *pluginLogger) Trace(args ...any) { l.log(slog.LevelDebug-4, fmt.Sprint(args...)) }
