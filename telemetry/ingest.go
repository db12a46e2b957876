package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"

	"github.com/vigilhq/vigil/collectors/telegrafin"
	"github.com/vigilhq/vigil/observe"
)

// Sink receives the observations of one accepted request. AddMetrics must
// store all of them or none: IngestHandler answers 204 only when it
// returns nil, and telegraf resends the batch after a 5xx.
type Sink interface {
	AddMetrics(ctx context.Context, obs []observe.Observation) error
}

// DefaultMaxBodyBytes caps a request body, before and after gzip: telegraf
// sends batches of metric_batch_size lines (1000 by default), a few
// hundred kilobytes.
const DefaultMaxBodyBytes = 10 << 20

// IngestOptions configures IngestHandler.
type IngestOptions struct {
	// Locations are the configured location ids. A metric's `location`
	// tag sets the observation's location only when it is one of them.
	Locations []string
	// MaxBodyBytes caps the body, compressed and decompressed; zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per rejected request and a debug line per
	// accepted one; nil discards. The token is never logged.
	Logger *slog.Logger
	// Now stamps lines that carry no timestamp; nil means time.Now.
	Now func() time.Time
}

// SourcePrefix starts the Source of every ingested observation:
// "telegraf-agent:" + the metric's host tag.
const SourcePrefix = "telegraf-agent"

type ingest struct {
	tok       TokenSource
	sink      Sink
	locations map[string]bool
	max       int64
	log       *slog.Logger
	now       func() time.Time
}

// IngestHandler accepts POSTed InfluxDB line protocol from telegraf's
// outputs.influxdb_v2 or outputs.http (data_format = "influx"):
//
//   - Authorization: Token <t> or Bearer <t>, compared in constant time
//     with the token tok returns; 401 without it or with a wrong one.
//   - Content-Type text/plain (or none), Content-Encoding gzip or none.
//   - ?precision=ns|us|ms|s gives the unit of the timestamps (ns default).
//
// Each metric becomes a KindMetric observation (telegrafin.Observation).
// A request is stored whole or not at all: a bad line answers 400 with its
// line number and the parser's message, a body over the cap 413, and
// success 204. Error bodies are InfluxDB's JSON shape
// ({"code","message","line"}), which telegraf writes to its log.
func IngestHandler(tok TokenSource, sink Sink, opts IngestOptions) http.Handler {
	h := &ingest{tok: tok, sink: sink, max: opts.MaxBodyBytes, log: opts.Logger, now: opts.Now, locations: map[string]bool{}}
	if h.max <= 0 {
		h.max = DefaultMaxBodyBytes
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	for _, l := range opts.Locations {
		h.locations[l] = true
	}
	return h
}

// apiError is InfluxDB v2's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

var precisions = map[string]time.Duration{
	"": time.Nanosecond, "ns": time.Nanosecond, "n": time.Nanosecond,
	"us": time.Microsecond, "u": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
}

func (h *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reject := func(status int, e apiError, attrs ...slog.Attr) {
		attrs = append(attrs, slog.Int("status", status), slog.String("client", r.RemoteAddr), slog.String("reason", e.Code))
		h.log.LogAttrs(ctx, slog.LevelWarn, "telegraf ingest rejected", attrs...)
		writeError(w, status, e)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(http.StatusMethodNotAllowed, apiError{Code: "method not allowed", Message: "POST line protocol here"})
		return
	}

	want, err := h.tok()
	if err == nil {
		err = checkConfigured(want)
	}
	if err != nil {
		// The error names the config field, never the token; the client
		// only learns that ingest is off.
		h.log.LogAttrs(ctx, slog.LevelError, "telegraf ingest has no usable token", slog.String("error", err.Error()))
		writeError(w, http.StatusServiceUnavailable, apiError{Code: "unavailable", Message: "telegraf ingest is not configured on this server (telegraf.token_env or telegraf.token_file)"})
		return
	}
	given, ok := credential(r.Header.Get("Authorization"))
	if !ok || !sameToken(given, want) {
		w.Header().Set("WWW-Authenticate", `Token realm="vigil"`)
		reject(http.StatusUnauthorized, apiError{Code: "unauthorized", Message: "send Authorization: Token <telegraf token>"},
			slog.Bool("credentials_sent", ok))
		return
	}

	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "text/plain" {
			reject(http.StatusUnsupportedMediaType, apiError{Code: "unsupported media type", Message: "send InfluxDB line protocol as text/plain"})
			return
		}
	}
	prec, ok := precisions[r.URL.Query().Get("precision")]
	if !ok {
		reject(http.StatusBadRequest, apiError{Code: "invalid", Message: "precision must be ns, us, ms or s"})
		return
	}

	body, status, e := h.readBody(w, r)
	if status != 0 {
		reject(status, e)
		return
	}

	metrics, line, err := parse(body, prec, h.now)
	if err != nil {
		reject(http.StatusBadRequest,
			apiError{Code: "invalid", Message: "line " + strconv.Itoa(line) + ": " + err.Error(), Line: line},
			slog.Int("line", line))
		return
	}
	if len(metrics) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	obs := h.observations(metrics)
	if err := h.sink.AddMetrics(ctx, obs); err != nil {
		h.log.LogAttrs(ctx, slog.LevelError, "telegraf ingest: storing metrics failed",
			slog.Int("metrics", len(obs)), slog.String("error", err.Error()))
		// 5xx: telegraf keeps the batch and sends it again.
		writeError(w, http.StatusInternalServerError, apiError{Code: "internal error", Message: "the metrics could not be stored; retry"})
		return
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, "telegraf ingest", slog.Int("metrics", len(obs)), slog.String("client", r.RemoteAddr))
	w.WriteHeader(http.StatusNoContent)
}

// errParserDefect stands for a body telegraf's parser mishandles instead
// of refusing. v1.37.2, given a body that ends inside an escape in a
// measurement name (a last line `cpu\` with no newline), returns the
// previous line's metric a second time, or panics when there is none.
var errParserDefect = errors.New("metric parse error: malformed line protocol")

// parse parses body with telegraf's influx parser, all or nothing. On an
// error it also returns the 1-based line the parser stopped at.
func parse(body []byte, prec time.Duration, now func() time.Time) (ms []telegraf.Metric, line int, err error) {
	ms, err = parseOnce(body, prec, now)
	if err == nil {
		return ms, 0, nil
	}
	var perr *influx.ParseError
	if errors.As(err, &perr) {
		return nil, perr.LineNumber, err
	}
	if errors.Is(err, errParserDefect) {
		// Find the line it chokes on, for the client's sake.
		for i, l := range bytes.Split(body, []byte("\n")) {
			if _, lerr := parseOnce(l, prec, now); lerr != nil {
				return nil, i + 1, err
			}
		}
	}
	return nil, 0, err
}

func parseOnce(body []byte, prec time.Duration, now func() time.Time) (ms []telegraf.Metric, err error) {
	defer func() {
		if v := recover(); v != nil {
			ms, err = nil, errParserDefect
		}
	}()
	p := &influx.Parser{}
	if err := p.Init(); err != nil {
		return nil, err
	}
	p.SetTimePrecision(prec)
	p.SetTimeFunc(now)
	ms, err = p.Parse(body)
	for i := 1; i < len(ms) && err == nil; i++ {
		if ms[i] == ms[i-1] { // the same object twice: never two lines
			return nil, errParserDefect
		}
	}
	return ms, err
}

// readBody reads the whole body, gunzipping it if asked, within the cap.
// A non-zero status means the request must be refused with it.
func (h *ingest) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, apiError) {
	tooBig := apiError{Code: "request too large", Message: "the body is over " + strconv.FormatInt(h.max, 10) + " bytes; lower metric_batch_size"}
	if r.ContentLength > h.max {
		return nil, http.StatusRequestEntityTooLarge, tooBig
	}
	var rd io.Reader = http.MaxBytesReader(w, r.Body, h.max)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, http.StatusRequestEntityTooLarge, tooBig
			}
			return nil, http.StatusBadRequest, apiError{Code: "invalid", Message: "the body is not valid gzip"}
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, http.StatusUnsupportedMediaType, apiError{Code: "unsupported media type", Message: "Content-Encoding must be gzip or none"}
	}
	// One byte over the cap tells a body at the cap from a bigger one
	// (a gzip bomb expands past it here).
	body, err := io.ReadAll(io.LimitReader(rd, h.max+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(len(body)) > h.max:
		return nil, http.StatusRequestEntityTooLarge, tooBig
	case errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, http.StatusBadRequest, apiError{Code: "invalid", Message: "the body is not valid gzip"}
	case err != nil:
		return nil, http.StatusBadRequest, apiError{Code: "invalid", Message: "reading the body failed"}
	}
	return body, 0, apiError{}
}

// observations converts the parsed metrics. The source names the agent
// (its host tag); the location comes from a location tag naming a
// configured location.
func (h *ingest) observations(ms []telegraf.Metric) []observe.Observation {
	out := make([]observe.Observation, len(ms))
	for i, m := range ms {
		src := SourcePrefix
		if host, ok := m.GetTag("host"); ok && host != "" {
			src += ":" + host
		}
		loc, _ := m.GetTag("location")
		if !h.locations[loc] {
			loc = ""
		}
		out[i] = telegrafin.Observation(m, src, loc)
	}
	return out
}
