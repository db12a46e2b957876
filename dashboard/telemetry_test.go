package dashboard

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigilhq/vigil/store/sqlite"
	"github.com/vigilhq/vigil/telemetry"
	"github.com/vigilhq/vigil/users"
)

const telegrafToken = "telegraf-agents-token-0123456789abcdef"

// newTelemetryFixture is the dashboard with the telegraf routes mounted as
// cmd/vigil mounts them: one ingest for the server, metrics per tenant.
func newTelemetryFixture(t *testing.T) *fixture {
	return newFixtureWith(t, func(o *Options) {
		glow := o.Tenants[0].Store.(*sqlite.Store)
		acme := o.Tenants[1].Store.(*sqlite.Store)
		o.Telemetry.Ingest = telemetry.IngestHandler(telemetry.StaticToken(telegrafToken), telemetry.StoreSink{Store: glow},
			telemetry.IngestOptions{Locations: []string{"downtown", "uptown"}})
		o.Tenants[0].Metrics = telemetry.MetricsHandler(telemetry.StorePosture{Store: glow, Controls: []string{"hipaa:164.312(b)"}})
		o.Tenants[1].Metrics = telemetry.MetricsHandler(telemetry.StorePosture{Store: acme, Controls: []string{"hipaa:164.312(b)"}})
	})
}

func TestTelegrafIngestThroughDashboard(t *testing.T) {
	f := newTelemetryFixture(t)
	lines := "net_response,host=fd-pc,location=downtown,port=3389,protocol=tcp,result=success,server=10.10.2.5 response_time=0.002,result_code=0u\n" +
		"cpu,cpu=cpu-total,host=fd-pc usage_idle=97.5\n"
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write([]byte(lines))
	zw.Close()
	tests := []struct {
		name, path, auth string
		gzip             bool
		status           int
	}{
		{"influxdb_v2 output", "/api/v1/telegraf/api/v2/write?bucket=vigil&org=glow", "Token " + telegrafToken, true, http.StatusNoContent},
		{"http output", "/api/v1/telegraf", "Bearer " + telegrafToken, false, http.StatusNoContent},
		{"no token", "/api/v1/telegraf", "", false, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body = bytes.NewReader([]byte(lines))
			if tc.gzip {
				body = bytes.NewReader(zipped.Bytes())
			}
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+tc.path, body)
			req.Header.Set("Content-Type", "text/plain; charset=utf-8")
			if tc.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			r := f.client().send(req)
			if r.code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.code, tc.status, r.body)
			}
		})
	}
	obs, err := f.glow.Observations(context.Background(), telemetry.DayScanID(time.Now()))
	must(t, err)
	if len(obs) != 4 {
		t.Fatalf("two accepted posts of two lines: want 4 stored observations, got %d", len(obs))
	}
	if strings.Contains(f.logs.String(), telegrafToken) {
		t.Error("the telegraf token is in the log")
	}
}

func TestMetricsEndpoint(t *testing.T) {
	f := newTelemetryFixture(t)
	owner := f.client().login("glow", f.owner())
	r := owner.post("/settings/tokens", url.Values{"name": {"prometheus"}})
	tok := field(t, newTokenRE, r.body)
	auditor := f.as("audrey", users.RoleAuditor)
	lm := f.as("lena", users.RoleLocationManager, "downtown")

	tests := []struct {
		name   string
		c      *client
		path   string
		bearer string
		status int
		ctype  string
	}{
		{name: "no credentials: 401, not the sign-in page", c: f.client(), path: "/metrics", status: http.StatusUnauthorized},
		{name: "wrong token", c: f.client(), path: "/metrics", bearer: "vgl_nope", status: http.StatusUnauthorized},
		{name: "the agents' token does not read", c: f.client(), path: "/metrics", bearer: telegrafToken, status: http.StatusUnauthorized},
		{name: "API token", c: f.client(), path: "/metrics", bearer: tok, status: http.StatusOK, ctype: telemetry.ContentTypePrometheus},
		{name: "influx", c: f.client(), path: "/metrics?format=influx", bearer: tok, status: http.StatusOK, ctype: telemetry.ContentTypeInflux},
		{name: "auditor session", c: auditor, path: "/metrics", status: http.StatusOK, ctype: telemetry.ContentTypePrometheus},
		{name: "location manager: organisation-wide metrics refused", c: lm, path: "/metrics", status: http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.audits("glow", users.ActionExport))
			var hdr []string
			if tc.bearer != "" {
				hdr = []string{"Authorization", "Bearer " + tc.bearer}
			}
			w := tc.c.do(http.MethodGet, tc.path, nil, hdr...)
			if w.code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.code, tc.status, w.body)
			}
			after := len(f.audits("glow", users.ActionExport))
			if tc.status != http.StatusOK {
				if tc.status == http.StatusUnauthorized && w.hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if after != before || strings.Contains(w.body, "vigil_") {
					t.Error("a refused scrape was served or audited")
				}
				return
			}
			if got := w.hdr.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if w.hdr.Get("Cache-Control") != "no-store" {
				t.Error("posture metrics must not be cached")
			}
			if after != before+1 {
				t.Errorf("export audit entries %d, want %d", after, before+1)
			}
			if tc.ctype != telemetry.ContentTypePrometheus {
				return
			}
			p := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := p.TextToMetricFamilies(strings.NewReader(w.body))
			if err != nil {
				t.Fatalf("Prometheus cannot parse /metrics: %v", err)
			}
			for _, name := range []string{"vigil_findings_count", "vigil_scan_complete"} {
				if fams[name] == nil {
					t.Errorf("no %s in /metrics", name)
				}
			}
			if strings.Contains(w.body, "eastside") {
				t.Error("glow's metrics show acme's location")
			}
		})
	}
}
