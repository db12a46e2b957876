package scanner

import (
	"context"
	"log/slog"
	"sort"
	"strings"

	"github.com/logrusorgru/aurora"
	"github.com/projectdiscovery/gologger"
	"github.com/projectdiscovery/gologger/formatter"
	"github.com/projectdiscovery/gologger/levels"
	"github.com/projectdiscovery/nuclei/v3/pkg/output"
)

// This file adapts nuclei's plumbing (logger, output writer, progress) to
// vigil: results come back from the executers directly, so the writer and
// the progress sink only have to exist.

// nucleiLogger returns a gologger that hands every message to log at debug.
func nucleiLogger(log *slog.Logger) *gologger.Logger {
	l := &gologger.Logger{}
	l.SetFormatter(nucleiLogFormatter{})
	l.SetWriter(nucleiLogWriter{log: func() *slog.Logger { return log }})
	l.SetMaxLevel(levels.LevelDebug)
	return l
}

// nucleiRedirectGlobalLog sends messages of nuclei's process-wide logger
// (used deep inside its protocol code) to slog.Default at debug instead of
// stderr, where they would interleave with vigil's own output.
func nucleiRedirectGlobalLog() {
	gologger.DefaultLogger.SetFormatter(nucleiLogFormatter{})
	gologger.DefaultLogger.SetWriter(nucleiLogWriter{log: func() *slog.Logger {
		return slog.Default().With("component", "nuclei")
	}})
	gologger.DefaultLogger.SetMaxLevel(levels.LevelDebug)
}

// nucleiLogFormatter renders a gologger event as its message followed by
// its metadata as key=value.
type nucleiLogFormatter struct{}

func (nucleiLogFormatter) Format(ev *formatter.LogEvent) ([]byte, error) {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(ev.Message))
	keys := make([]string, 0, len(ev.Metadata))
	for k := range ev.Metadata {
		if k != "label" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + ev.Metadata[k])
	}
	return []byte(b.String()), nil
}

// nucleiLogWriter writes formatted gologger events to slog at debug, with
// nuclei's own level as an attribute.
type nucleiLogWriter struct{ log func() *slog.Logger }

func (w nucleiLogWriter) Write(data []byte, level levels.Level) {
	l := w.log()
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.Debug(nucleiOneLine(string(data), 2000), "nuclei_level", level.String())
}

// nucleiOutput satisfies nuclei's output.Writer. Run collects results from
// the executers' return values, so results are dropped here; failed
// requests are logged at debug, which answers "why did this not match".
type nucleiOutput struct{ log *slog.Logger }

func (nucleiOutput) Close()                                          {}
func (nucleiOutput) Colorizer() aurora.Aurora                        { return aurora.NewAurora(false) }
func (nucleiOutput) Write(*output.ResultEvent) error                 { return nil }
func (nucleiOutput) WriteFailure(*output.InternalWrappedEvent) error { return nil }
func (o nucleiOutput) Request(templateID, url, requestType string, err error) {
	if err != nil && o.log != nil {
		o.log.Debug("nuclei request failed", "template", templateID, "target", url, "type", requestType, "err", nucleiOneLine(err.Error(), 500))
	}
}
func (nucleiOutput) RequestStatsLog(statusCode, response string) {}
func (nucleiOutput) WriteStoreDebugData(host, templateID, eventType string, data string) {
}
func (nucleiOutput) ResultCount() int { return 0 }

// nucleiProgress satisfies nuclei's progress.Progress; Run reports progress
// itself, per probe.
type nucleiProgress struct{}

func (nucleiProgress) Stop()                                                    {}
func (nucleiProgress) Init(hostCount int64, rulesCount int, requestCount int64) {}
func (nucleiProgress) AddToTotal(delta int64)                                   {}
func (nucleiProgress) IncrementRequests()                                       {}
func (nucleiProgress) SetRequests(count uint64)                                 {}
func (nucleiProgress) IncrementMatched()                                        {}
func (nucleiProgress) IncrementErrorsBy(count int64)                            {}
func (nucleiProgress) IncrementFailedRequestsBy(count int64)                    {}
