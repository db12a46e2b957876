package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/parsers/influx"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

var postureNow = time.Date(2025, 3, 2, 8, 0, 0, 0, time.UTC)

func finding(loc string, cat observe.Category, sev observe.Severity, st observe.Status, controls ...string) observe.Finding {
	return observe.Finding{Location: loc, Category: cat, Severity: sev, Status: st, Controls: controls}
}

func postureFixture() ([]observe.Finding, []observe.Scan, []string) {
	findings := []observe.Finding{
		finding("downtown", "exposed-service", observe.High, observe.StatusOpen, "hipaa:164.312(a)(1)", "insurance:rdp-exposed"),
		finding("downtown", "exposed-service", observe.High, observe.StatusOpen, "hipaa:164.312(a)(1)"),
		finding("downtown", "weak-tls", observe.Medium, observe.StatusOpen, "hipaa:164.312(e)(1)"),
		finding("uptown", "missing-mfa", observe.Critical, observe.StatusOpen, "hipaa:164.312(d)"),
		finding("", "administrative", observe.Low, observe.StatusOpen, "hipaa:164.308(a)(1)(ii)(A)"),
		finding("uptown", "weak-tls", observe.Medium, observe.StatusResolved, "hipaa:164.312(e)(1)"),
		finding("uptown", "flat-network", observe.High, observe.StatusAccepted, "cpg:2.F"),
	}
	d := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, time.UTC) }
	scans := []observe.Scan{
		{ID: "telegraf-20250302", StartedAt: d(2, 0, 0), Version: "telegraf"},                                                               // standing record: never finished
		{ID: "s3", StartedAt: d(2, 2, 0), Locations: []string{"downtown"}},                                                                  // running
		{ID: "s2", StartedAt: d(1, 2, 0), FinishedAt: d(1, 2, 4), Locations: []string{"downtown", "uptown"}, Complete: true},                // latest finished for both
		{ID: "s1", StartedAt: d(1, 1, 0), FinishedAt: d(1, 1, 30), Locations: []string{"downtown"}, Complete: false, Errors: []string{"x"}}, // older
	}
	controls := []string{"hipaa:164.312(a)(1)", "hipaa:164.312(d)", "hipaa:164.312(e)(1)", "hipaa:164.312(b)", "cpg:2.F"}
	return findings, scans, controls
}

// series is one sample as "name{k=v,...} value".
func promSeries(t *testing.T, text []byte) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		if fam.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is %v, want gauge", name, fam.GetType())
		}
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestPosturePrometheus(t *testing.T) {
	fs, scans, controls := postureFixture()
	var buf bytes.Buffer
	if err := WritePrometheus(&buf, Posture(fs, scans, controls, postureNow)); err != nil {
		t.Fatal(err)
	}
	got := promSeries(t, buf.Bytes())
	want := map[string]float64{
		"vigil_findings_count{category=exposed-service,location=downtown,severity=high,status=open}": 2,
		"vigil_findings_count{category=weak-tls,location=downtown,severity=medium,status=open}":      1,
		"vigil_findings_count{category=missing-mfa,location=uptown,severity=critical,status=open}":   1,
		"vigil_findings_count{category=administrative,location=_org,severity=low,status=open}":       1,

		"vigil_scan_duration_seconds{location=downtown}": 240,
		"vigil_scan_complete{location=downtown}":         1,
		"vigil_scan_finished_at{location=downtown}":      float64(time.Date(2025, 3, 1, 2, 4, 0, 0, time.UTC).Unix()),
		"vigil_scan_duration_seconds{location=uptown}":   240,
		"vigil_scan_complete{location=uptown}":           1,
		"vigil_scan_finished_at{location=uptown}":        float64(time.Date(2025, 3, 1, 2, 4, 0, 0, time.UTC).Unix()),

		"vigil_control_open_findings{control=hipaa:164.312(a)(1),status=gap}":        2,
		"vigil_control_open_findings{control=insurance:rdp-exposed,status=gap}":      1,
		"vigil_control_open_findings{control=hipaa:164.312(d),status=gap}":           1,
		"vigil_control_open_findings{control=hipaa:164.312(e)(1),status=gap}":        1,
		"vigil_control_open_findings{control=hipaa:164.308(a)(1)(ii)(A),status=gap}": 1,
		"vigil_control_open_findings{control=hipaa:164.312(b),status=ok}":            0,
		"vigil_control_open_findings{control=cpg:2.F,status=ok}":                     0, // its only finding is accepted
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s", k)
		}
	}
}

// TestPostureLineProtocolRoundTrip serializes the posture and parses it
// back with telegraf's influx parser.
func TestPostureLineProtocolRoundTrip(t *testing.T) {
	fs, scans, controls := postureFixture()
	ms := Posture(fs, scans, controls, postureNow)
	var buf bytes.Buffer
	if err := WriteInflux(&buf, ms); err != nil {
		t.Fatal(err)
	}
	p := &influx.Parser{}
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	back, err := p.Parse(buf.Bytes())
	if err != nil {
		t.Fatalf("parse back: %v\n%s", err, buf.String())
	}
	if len(back) != len(ms) {
		t.Fatalf("%d metrics in, %d back", len(ms), len(back))
	}
	for i := range ms {
		if !sameMetric(ms[i], back[i]) {
			t.Errorf("metric %d:\n  sent %s\n  back %s", i, ms[i], back[i])
		}
	}
	if !strings.Contains(buf.String(), "vigil_findings,category=exposed-service,location=downtown,severity=high,status=open count=2i 1740902400000000000\n") {
		t.Errorf("unexpected line protocol:\n%s", buf.String())
	}
}

func sameMetric(a, b telegraf.Metric) bool {
	if a.Name() != b.Name() || !a.Time().Equal(b.Time()) || len(a.TagList()) != len(b.TagList()) || len(a.FieldList()) != len(b.FieldList()) {
		return false
	}
	for k, v := range a.Tags() {
		if b.Tags()[k] != v {
			return false
		}
	}
	for k, v := range a.Fields() {
		if b.Fields()[k] != v {
			return false
		}
	}
	return true
}

func TestPostureEmpty(t *testing.T) {
	ms := Posture(nil, nil, nil, postureNow)
	if len(ms) != 0 {
		t.Fatalf("no findings, scans or controls: want no metrics, got %v", ms)
	}
	var buf bytes.Buffer
	if err := WritePrometheus(&buf, ms); err != nil || buf.Len() != 0 {
		t.Fatalf("empty exposition: %q %v", buf.String(), err)
	}
}

type postureStore struct {
	findings []observe.Finding
	scans    []observe.Scan
	err      error
	filter   store.FindingFilter
}

func (p *postureStore) Findings(_ context.Context, f store.FindingFilter) ([]observe.Finding, error) {
	p.filter = f
	return p.findings, p.err
}
func (p *postureStore) Scans(context.Context, int) ([]observe.Scan, error) { return p.scans, p.err }

func TestMetricsHandler(t *testing.T) {
	fs, scans, controls := postureFixture()
	ps := &postureStore{findings: fs, scans: scans}
	ts := httptest.NewServer(MetricsHandler(StorePosture{Store: ps, Controls: controls, Now: func() time.Time { return postureNow }}))
	defer ts.Close()

	get := func(query string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(ts.URL + "/metrics" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := get("")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if s := promSeries(t, body); s["vigil_findings_count{category=missing-mfa,location=uptown,severity=critical,status=open}"] != 1 {
		t.Errorf("series: %v", s)
	}
	if len(ps.filter.Statuses) != 1 || ps.filter.Statuses[0] != observe.StatusOpen {
		t.Errorf("the store should be asked for open findings only, got %+v", ps.filter)
	}

	resp, body = get("?format=influx")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || !bytes.HasPrefix(body, []byte("vigil_findings,")) {
		t.Fatalf("GET /metrics?format=influx: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	if resp, _ := get("?format=json"); resp.StatusCode != 400 {
		t.Errorf("unknown format: %d", resp.StatusCode)
	}
	ps.err = errors.New("database is locked")
	if resp, body := get(""); resp.StatusCode != 500 || !strings.Contains(string(body), "database is locked") {
		t.Errorf("store failure: %d %s", resp.StatusCode, body)
	}
	r, _ := http.Post(ts.URL+"/metrics", "text/plain", nil)
	if r.StatusCode != 405 {
		t.Errorf("POST /metrics: %d", r.StatusCode)
	}
	r.Body.Close()
}
