package dashboard

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigilhq/vigil/store/sqlite"
	"github.com/vigilhq/vigil/telemetry"
)

const telegrafToken = "telegraf-agents-token-0123456789abcdef"

// newTelemetryFixture is the dashboard over a real SQLite store with the
// telegraf routes mounted as cmd/vigil mounts them.
func newTelemetryFixture(t *testing.T) (*fixture, *sqlite.Store) {
	return newFixtureWith(t, func(o *Options, st *sqlite.Store, logger *slog.Logger) {
		o.Telemetry = TelemetryRoutes{
			Ingest: telemetry.IngestHandler(telemetry.StaticToken(telegrafToken), telemetry.StoreSink{Store: st},
				telemetry.IngestOptions{Locations: []string{"downtown", "uptown"}, Logger: logger}),
			Metrics: telemetry.MetricsHandler(telemetry.StorePosture{Store: st, Controls: []string{"hipaa:164.312(b)"}}),
		}
	})
}

func TestTelegrafIngestThroughDashboard(t *testing.T) {
	f, st := newTelemetryFixture(t)
	ts := httptest.NewServer(f.h)
	defer ts.Close()

	lines := "net_response,host=fd-pc,location=downtown,port=3389,protocol=tcp,result=success,server=10.10.2.5 response_time=0.002,result_code=0u\n" +
		"cpu,cpu=cpu-total,host=fd-pc usage_idle=97.5\n"
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write([]byte(lines))
	zw.Close()

	tests := []struct {
		name   string
		path   string
		auth   string
		gzip   bool
		status int
	}{
		{"influxdb_v2 output", "/api/v1/telegraf/api/v2/write?bucket=vigil&org=glow", "Token " + telegrafToken, true, http.StatusNoContent},
		{"http output", "/api/v1/telegraf", "Bearer " + telegrafToken, false, http.StatusNoContent},
		{"no token", "/api/v1/telegraf", "", false, http.StatusUnauthorized},
		// The dashboard's token reads findings; it does not write metrics.
		{"dashboard token", "/api/v1/telegraf", "Bearer " + testToken, false, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := io.Reader(strings.NewReader(lines))
			if tc.gzip {
				body = bytes.NewReader(zipped.Bytes())
			}
			req, _ := http.NewRequest(http.MethodPost, ts.URL+tc.path, body)
			req.Header.Set("Content-Type", "text/plain; charset=utf-8")
			if tc.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	obs, err := st.Observations(context.Background(), telemetry.DayScanID(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 4 {
		t.Fatalf("two accepted posts of two lines: want 4 stored observations, got %d", len(obs))
	}
	for _, secret := range []string{telegrafToken, testToken} {
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("a token is in the log:\n%s", f.logs)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	f, _ := newTelemetryFixture(t)

	tests := []struct {
		name    string
		r       req
		status  int
		ctype   string
		actor   string
		session bool
	}{
		{name: "no credentials: 401, not the login page", r: req{path: "/metrics"}, status: http.StatusUnauthorized},
		{name: "wrong token", r: req{path: "/metrics", bearer: "nope"}, status: http.StatusUnauthorized},
		{name: "the agents' token does not read", r: req{path: "/metrics", bearer: telegrafToken}, status: http.StatusUnauthorized},
		{name: "bearer token", r: req{path: "/metrics", bearer: testToken}, status: http.StatusOK, ctype: telemetry.ContentTypePrometheus, actor: ActorToken},
		{name: "influx", r: req{path: "/metrics?format=influx", bearer: testToken}, status: http.StatusOK, ctype: telemetry.ContentTypeInflux, actor: ActorToken},
		{name: "session", r: req{path: "/metrics"}, session: true, status: http.StatusOK, ctype: telemetry.ContentTypePrometheus, actor: ActorSession},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.audited(ActionViewMetrics))
			if tc.session {
				tc.r.cookies = []*http.Cookie{loginSession(t, f)}
			}
			w := f.do(t, tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			audits := f.audited(ActionViewMetrics)
			if tc.status != http.StatusOK {
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if len(audits) != before || strings.Contains(w.Body.String(), "vigil_") {
					t.Error("a refused scrape was served or audited")
				}
				return
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Error("posture metrics must not be cached")
			}
			if len(audits) != before+1 || audits[len(audits)-1].actor != tc.actor {
				t.Errorf("audit entries %v, want one more by %s", audits, tc.actor)
			}
			if tc.ctype != telemetry.ContentTypePrometheus {
				return
			}
			p := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := p.TextToMetricFamilies(w.Body)
			if err != nil {
				t.Fatalf("Prometheus cannot parse /metrics: %v", err)
			}
			for _, name := range []string{"vigil_findings_count", "vigil_scan_complete", "vigil_control_open_findings"} {
				if fams[name] == nil {
					t.Errorf("no %s in /metrics", name)
				}
			}
		})
	}
}

// loginSession signs in through the login form and returns the session
// cookie.
func loginSession(t *testing.T, f *fixture) *http.Cookie {
	t.Helper()
	csrf, field := loginPage(t, f)
	w := f.do(t, req{method: http.MethodPost, path: "/login", cookies: []*http.Cookie{csrf},
		form: url.Values{"csrf_token": {field}, "token": {testToken}}})
	c := sessionFrom(w)
	if c == nil {
		t.Fatalf("login failed: %d", w.Code)
	}
	return c
}
