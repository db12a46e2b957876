package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	influxser "github.com/influxdata/telegraf/plugins/serializers/influx"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

const (
	goodToken  = "tg-0123456789abcdef-good-token"
	wrongToken = "tg-fedcba9876543210-wrong-token"
)

// memSink keeps what it was given, request by request.
type memSink struct {
	mu    sync.Mutex
	calls [][]observe.Observation
	err   error
}

func (s *memSink) AddMetrics(_ context.Context, obs []observe.Observation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.calls = append(s.calls, obs)
	return nil
}

func (s *memSink) stored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += len(c)
	}
	return n
}

var testNow = time.Date(2025, 3, 1, 14, 30, 0, 0, time.UTC)

// agentMetrics are what a telegraf agent at the downtown clinic sends:
// an x509_cert and a net_response check it runs, and its own cpu.
func agentMetrics() []telegraf.Metric {
	at := time.Date(2025, 3, 1, 14, 29, 50, 0, time.UTC)
	notAfter := at.Add(10 * 24 * time.Hour)
	return []telegraf.Metric{
		metric.New("x509_cert", map[string]string{
			"common_name": "portal.glow.test", "host": "fd-pc", "issuer_common_name": "R11", "location": "downtown",
			"source": "https://10.10.3.5:8443", "type": "leaf", "verification": "valid", "signature_algorithm": "SHA256-RSA",
		}, map[string]any{
			"age": int64(80 * 86400), "expiry": int64(10 * 86400), "startdate": at.Add(-80 * 24 * time.Hour).Unix(),
			"enddate": notAfter.Unix(), "verification_code": int64(0),
		}, at),
		metric.New("net_response", map[string]string{
			"host": "fd-pc", "location": "downtown", "port": "3389", "protocol": "tcp", "result": "success", "server": "10.10.2.5",
		}, map[string]any{"response_time": 0.0012, "result_code": uint64(0), "result_type": "success"}, at),
		metric.New("cpu", map[string]string{"cpu": "cpu-total", "host": "fd-pc", "location": "nowhere"},
			map[string]any{"usage_idle": 97.5}, at),
	}
}

// lineProtocol serializes metrics the way outputs.influxdb_v2 does
// (telegraf's influx serializer, uint support on).
func lineProtocol(t testing.TB, ms []telegraf.Metric) []byte {
	t.Helper()
	s := &influxser.Serializer{UintSupport: true}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	b, err := s.SerializeBatch(ms)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type server struct {
	url  string
	sink *memSink
	logs *bytes.Buffer
}

func newServer(t *testing.T, tok TokenSource, opts IngestOptions) *server {
	t.Helper()
	s := &server{sink: &memSink{}, logs: &bytes.Buffer{}}
	var mu sync.Mutex
	opts.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, s.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Locations = []string{"downtown", "uptown"}
	opts.Now = func() time.Time { return testNow }
	mux := http.NewServeMux()
	h := IngestHandler(tok, s.sink, opts)
	// outputs.influxdb_v2 appends /api/v2/write to its url; outputs.http
	// posts to the url as given.
	mux.Handle("/api/v1/telegraf", h)
	mux.Handle("/api/v1/telegraf/api/v2/write", h)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	s.url = ts.URL
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type response struct {
	status int
	header http.Header
	body   string
	err    apiError
}

func post(t *testing.T, url string, body []byte, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &r.err)
	}
	return r
}

// influxV2Headers are the headers outputs.influxdb_v2 sends.
func influxV2Headers(token string) map[string]string {
	return map[string]string{
		"Authorization":    "Token " + token,
		"Content-Type":     "text/plain; charset=utf-8",
		"Content-Encoding": "gzip",
		"User-Agent":       "Telegraf/1.37.2 Go/1.25",
	}
}

func TestIngestFromInfluxDBv2Output(t *testing.T) {
	s := newServer(t, StaticToken(goodToken), IngestOptions{})
	body := gz(t, lineProtocol(t, agentMetrics()))
	r := post(t, s.url+"/api/v1/telegraf/api/v2/write?bucket=vigil&org=glow", body, influxV2Headers(goodToken))
	if r.status != http.StatusNoContent {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if len(s.sink.calls) != 1 || len(s.sink.calls[0]) != 3 {
		t.Fatalf("want one batch of 3 observations, got %v", s.sink.calls)
	}
	obs := s.sink.calls[0]
	at := time.Date(2025, 3, 1, 14, 29, 50, 0, time.UTC)

	cert := obs[0]
	if cert.Kind != observe.KindMetric || cert.Source != "telegraf-agent:fd-pc" || cert.Location != "downtown" ||
		cert.Host != "10.10.3.5" || cert.Port != 8443 || cert.Proto != "tcp" || !cert.At.Equal(at) {
		t.Errorf("x509_cert observation = %+v", cert)
	}
	for k, v := range map[string]any{
		"measurement": "x509_cert", "cert_days_left": 10, "cert_expired": false, "cert_subject": "portal.glow.test",
		"cert_issuer": "R11", "verification": "valid", "cert_not_after": at.Add(240 * time.Hour).Format(time.RFC3339),
	} {
		if cert.Attrs[k] != v {
			t.Errorf("x509_cert %s = %#v, want %#v", k, cert.Attrs[k], v)
		}
	}

	nr := obs[1]
	if nr.Host != "10.10.2.5" || nr.Port != 3389 || nr.Attrs["result"] != "success" || nr.Attrs["response_time"] != 0.0012 {
		t.Errorf("net_response observation = %+v", nr)
	}
	if got := nr.Attrs["fields"].(map[string]any)["result_code"]; got != uint64(0) {
		t.Errorf("an unsigned field should stay unsigned, got %#v", got)
	}

	cpu := obs[2]
	if cpu.Location != "" {
		t.Errorf("a location tag that names no configured location must not set the location, got %q", cpu.Location)
	}
	if cpu.Host != "fd-pc" || cpu.Attrs["tags"].(map[string]string)["location"] != "nowhere" {
		t.Errorf("cpu observation = %+v", cpu)
	}
}

func TestIngestResponses(t *testing.T) {
	good := lineProtocol(t, agentMetrics())
	badLine3 := []byte("cpu,host=a usage_idle=1 1700000000000000000\n" +
		"# a comment line\n" +
		"cpu,host=a usage_idle= 1700000000000000000\n" +
		"cpu,host=a usage_idle=3 1700000000000000000\n")
	huge := bytes.Repeat([]byte("cpu,host=a usage_idle=1\n"), 2000) // 48000 bytes

	tests := []struct {
		name     string
		method   string
		path     string
		body     []byte
		header   map[string]string
		status   int
		stored   int
		wantLine int
		wantMsg  string
	}{
		{name: "influxdb_v2 gzip", body: gz(t, good), header: influxV2Headers(goodToken), status: 204, stored: 3},
		{name: "outputs.http bearer, plain", path: "/api/v1/telegraf", body: good,
			header: map[string]string{"Authorization": "Bearer " + goodToken, "Content-Type": "text/plain; charset=utf-8"}, status: 204, stored: 3},
		{name: "scheme is case-insensitive", body: good, header: map[string]string{"Authorization": "token " + goodToken}, status: 204, stored: 3},
		{name: "no token", body: good, header: map[string]string{"Content-Type": "text/plain"}, status: 401},
		{name: "wrong token", body: gz(t, good), header: influxV2Headers(wrongToken), status: 401},
		{name: "basic auth", body: good, header: map[string]string{"Authorization": "Basic " + goodToken}, status: 401},
		{name: "token prefix", body: good, header: map[string]string{"Authorization": "Token " + goodToken[:20]}, status: 401},
		{name: "bad line 3", body: badLine3, header: map[string]string{"Authorization": "Token " + goodToken}, status: 400,
			wantLine: 3, wantMsg: "line 3: metric parse error: expected field at 3:23"},
		{name: "bad line in gzip", body: gz(t, append(good, "broken line\n"...)), header: influxV2Headers(goodToken), status: 400, wantLine: 4},
		// telegraf v1.37.2's parser panics on the first and repeats the
		// previous metric on the second instead of refusing them.
		{name: "lone backslash", body: []byte("\\"), header: map[string]string{"Authorization": "Token " + goodToken}, status: 400,
			wantLine: 1, wantMsg: "malformed line protocol"},
		{name: "escape at end of body", body: []byte("cpu usage_idle=1\n# c\nmem\\"), header: map[string]string{"Authorization": "Token " + goodToken}, status: 400,
			wantLine: 3, wantMsg: "malformed line protocol"},
		{name: "too big", body: huge, header: map[string]string{"Authorization": "Token " + goodToken}, status: 413},
		{name: "gzip bomb", body: gz(t, bytes.Repeat([]byte("cpu,host=a usage_idle=1\n"), 100000)), header: influxV2Headers(goodToken), status: 413},
		{name: "not gzip", body: good, header: influxV2Headers(goodToken), status: 400, wantMsg: "not valid gzip"},
		{name: "json", body: []byte(`{"a":1}`), header: map[string]string{"Authorization": "Token " + goodToken, "Content-Type": "application/json"}, status: 415},
		{name: "brotli", body: good, header: map[string]string{"Authorization": "Token " + goodToken, "Content-Encoding": "br"}, status: 415},
		{name: "bad precision", path: "/api/v1/telegraf?precision=h", body: good, header: map[string]string{"Authorization": "Token " + goodToken}, status: 400},
		{name: "empty body", body: nil, header: map[string]string{"Authorization": "Token " + goodToken}, status: 204},
		{name: "GET", method: http.MethodGet, header: map[string]string{"Authorization": "Token " + goodToken}, status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, StaticToken(goodToken), IngestOptions{MaxBodyBytes: 32 << 10})
			path := tc.path
			if path == "" {
				path = "/api/v1/telegraf/api/v2/write?bucket=vigil&org=glow"
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if got := s.sink.stored(); got != tc.stored {
				t.Errorf("stored %d observations, want %d (all or nothing)", got, tc.stored)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tc.status >= 400 && tc.status != 405 {
				var e apiError
				if err := json.Unmarshal(b, &e); err != nil || e.Code == "" || e.Message == "" {
					t.Errorf("error body %q is not InfluxDB's {code, message}", b)
				}
				if e.Line != tc.wantLine {
					t.Errorf("line = %d, want %d (%s)", e.Line, tc.wantLine, e.Message)
				}
				if !strings.Contains(e.Message, tc.wantMsg) {
					t.Errorf("message %q, want it to contain %q", e.Message, tc.wantMsg)
				}
			}
			for _, secret := range []string{goodToken, wrongToken} {
				if strings.Contains(string(b), secret) || strings.Contains(s.logs.String(), secret) {
					t.Errorf("the token appears in the response or the log:\n%s\n%s", b, s.logs)
				}
			}
		})
	}
}

func TestIngestPrecision(t *testing.T) {
	for _, tc := range []struct {
		precision string
		stamp     string
	}{
		{"", "1740839390000000000"}, {"ns", "1740839390000000000"}, {"us", "1740839390000000"},
		{"ms", "1740839390000"}, {"s", "1740839390"},
	} {
		s := newServer(t, StaticToken(goodToken), IngestOptions{})
		r := post(t, s.url+"/api/v1/telegraf?precision="+tc.precision, []byte("cpu,host=a usage_idle=1 "+tc.stamp+"\ncpu,host=a usage_idle=2\n"),
			map[string]string{"Authorization": "Token " + goodToken})
		if r.status != 204 {
			t.Fatalf("precision %q: %d %s", tc.precision, r.status, r.body)
		}
		got := s.sink.calls[0]
		if want := time.Date(2025, 3, 1, 14, 29, 50, 0, time.UTC); !got[0].At.Equal(want) {
			t.Errorf("precision %q: time %v, want %v", tc.precision, got[0].At, want)
		}
		if !got[1].At.Equal(testNow) {
			t.Errorf("precision %q: a line without a timestamp gets the server's time, got %v", tc.precision, got[1].At)
		}
	}
}

func TestIngestTokenConfiguration(t *testing.T) {
	body := []byte("cpu usage_idle=1\n")
	tests := []struct {
		name   string
		tok    TokenSource
		status int
	}{
		{"token unset", func() (Token, error) {
			return "", errors.New("telegraf.token: no secret configured: set telegraf.token_env or telegraf.token_file")
		}, 503},
		{"token too short", StaticToken("short"), 503},
		{"token from env", func() TokenSource {
			t.Setenv("VIGIL_TEST_TELEGRAF_TOKEN", goodToken)
			return ConfigToken(configTelegraf("VIGIL_TEST_TELEGRAF_TOKEN", ""))
		}(), 204},
		{"token from file", ConfigToken(configTelegraf("", writeTemp(t, goodToken+"\n"))), 204},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.tok, IngestOptions{})
			r := post(t, s.url+"/api/v1/telegraf", body, map[string]string{"Authorization": "Token " + goodToken})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if strings.Contains(s.logs.String(), goodToken) || strings.Contains(r.body, goodToken) {
				t.Error("token leaked")
			}
		})
	}
}

func TestIngestSinkFailureIs500(t *testing.T) {
	s := newServer(t, StaticToken(goodToken), IngestOptions{})
	s.sink.err = errors.New("disk full")
	r := post(t, s.url+"/api/v1/telegraf", []byte("cpu usage_idle=1\n"), map[string]string{"Authorization": "Token " + goodToken})
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d: telegraf retries only 5xx, so a failed store must not answer %d", r.status, r.status)
	}
	if !strings.Contains(s.logs.String(), "disk full") {
		t.Errorf("the store's error should be logged: %s", s.logs)
	}
}

func TestTokenRedacts(t *testing.T) {
	tok := Token(goodToken)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "token", tok, "any", any(tok))
	for _, s := range []string{buf.String(), tok.String(), tok.GoString()} {
		if strings.Contains(s, goodToken) {
			t.Errorf("token leaked: %s", s)
		}
	}
	b, _ := json.Marshal(map[string]Token{"t": tok})
	if strings.Contains(string(b), goodToken) {
		t.Errorf("token leaked in JSON: %s", b)
	}
}

func configTelegraf(env, file string) config.TelegrafSettings {
	return config.TelegrafSettings{TokenEnv: env, TokenFile: file}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
