package agentsrv

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

const testConfig = `organization: Glow Aesthetics
locations:
  - id: downtown
    segments: [{name: servers, cidr: 10.10.3.0/24, role: servers}]
  - id: uptown
    segments: [{name: servers, cidr: 10.20.3.0/24, role: servers}]
schedules:
  - cron: "0 2 * * *"
    locations: ["*"]
`

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	st     *sqlite.Store
	now    time.Time
	stored atomic.Int32
}

func newFixture(t *testing.T, opts ...func(*Options)) *fixture {
	t.Helper()
	cfg, err := config.Parse("glow.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, now: time.Now().UTC()}
	o := Options{
		Tenants: []Tenant{{ID: "glow-aesthetics", Store: st, Current: func() (*config.Config, *rules.Engine) { return cfg, eng },
			Stored: func() { f.stored.Add(1) }}},
		Now: func() time.Time { return f.now },
	}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

// token creates an enrollment token for loc, expiring in d.
func (f *fixture) token(loc string, d time.Duration) string {
	f.t.Helper()
	tok := protocol.NewToken("glow-aesthetics")
	if err := f.st.CreateEnrollToken(context.Background(), store.EnrollToken{Hash: tok.Hash(), Location: loc, CreatedBy: "it@msp", ExpiresAt: time.Now().Add(d)}); err != nil {
		f.t.Fatal(err)
	}
	return tok.String()
}

type testAgent struct {
	f    *fixture
	id   string
	key  ed25519.PrivateKey
	resp protocol.EnrollResponse
}

func (f *fixture) enrollRaw(token string) (*http.Response, *testAgent) {
	f.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	body, _ := json.Marshal(protocol.EnrollRequest{Token: token, PublicKey: pub, Hostname: "sensor-1", Version: "test"})
	resp, err := http.Post(f.srv.URL+protocol.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	a := &testAgent{f: f, key: priv}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a.resp); err != nil {
			f.t.Fatal(err)
		}
		a.id = a.resp.AgentID
	}
	return resp, a
}

func (f *fixture) enroll(loc string) *testAgent {
	f.t.Helper()
	resp, a := f.enrollRaw(f.token(loc, time.Hour))
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("enroll: %s: %s", resp.Status, errBody(resp))
	}
	return a
}

func errBody(resp *http.Response) string {
	var e protocol.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if e.Code != "" {
		return "[" + e.Code + "] " + e.Error
	}
	return e.Error
}

// do sends a signed request; sign may change the request after signing.
func (a *testAgent) do(method, path string, body []byte, gz bool, tamper func(*http.Request)) *http.Response {
	a.f.t.Helper()
	req, _ := http.NewRequest(method, a.f.srv.URL+path, bytes.NewReader(body))
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	protocol.Sign(req, "glow-aesthetics", a.id, a.key, body, a.f.now)
	if tamper != nil {
		tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.f.t.Fatal(err)
	}
	return resp
}

func gzipJSON(t *testing.T, v any) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

func (a *testAgent) push(b protocol.Batch) (protocol.BatchAck, *http.Response) {
	a.f.t.Helper()
	resp := a.do(http.MethodPost, protocol.PathBatches, gzipJSON(a.f.t, b), true, nil)
	var ack protocol.BatchAck
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
			a.f.t.Fatal(err)
		}
		resp.Body.Close()
	}
	return ack, resp
}

func (a *testAgent) pushOK(b protocol.Batch) protocol.BatchAck {
	a.f.t.Helper()
	ack, resp := a.push(b)
	if resp.StatusCode != http.StatusOK {
		a.f.t.Fatalf("push %s %s: %s: %s", b.Kind, b.ID, resp.Status, errBody(resp))
	}
	return ack
}

func telnet(loc, host string) observe.Observation {
	return observe.Observation{Kind: observe.KindService, Location: loc, Segment: "servers", Host: host, Port: 23, Proto: "tcp",
		Source: "nmap", At: time.Now().UTC(), Attrs: map[string]any{"service": "telnet"}}
}

func scanOf(id, loc string) observe.Scan {
	return observe.Scan{ID: id, StartedAt: time.Now().UTC().Add(-time.Minute), Version: "test", Locations: []string{loc}}
}

// The whole flow: enroll, fetch the assignment, push a scan in batches
// (each sent twice), heartbeat. The scan is stored once and judged by the
// server's rules; the alerter hears of it once.
func TestEnrollPushAndFinish(t *testing.T) {
	f := newFixture(t)
	a := f.enroll("downtown")
	if a.resp.Tenant != "glow-aesthetics" || a.resp.Location != "downtown" || a.resp.Organization != "Glow Aesthetics" || a.id == "" {
		t.Fatalf("enrolled as %+v", a.resp)
	}

	resp := a.do(http.MethodGet, protocol.PathAssignment, nil, false, nil)
	var as protocol.Assignment
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&as) != nil {
		t.Fatalf("assignment: %s", resp.Status)
	}
	cfg, err := config.Parse("assignment.yaml", as.Config)
	if err != nil || len(cfg.Locations) != 1 || cfg.Locations[0].ID != "downtown" || len(as.Version) != 64 || as.AgentID != a.id {
		t.Fatalf("assignment %+v: %v", as, err)
	}

	scan := scanOf("as-1", "downtown")
	batches := []protocol.Batch{
		{ID: protocol.BatchID(scan.ID, 0), Kind: protocol.BatchBegin, Scan: scan, Seq: 0},
		{ID: protocol.BatchID(scan.ID, 1), Kind: protocol.BatchObservations, Scan: scan, Seq: 1,
			Observations: []observe.Observation{telnet("downtown", "10.10.3.5"), telnet("downtown", "10.10.3.6")}},
	}
	fin := scan
	fin.FinishedAt, fin.Complete = time.Now().UTC(), true
	batches = append(batches, protocol.Batch{ID: protocol.BatchID(scan.ID, 2), Kind: protocol.BatchFinish, Scan: fin, Seq: 2})
	for _, b := range batches {
		first := a.pushOK(b)
		again := a.pushOK(b) // the agent never saw the first ack
		if first.Duplicate || !again.Duplicate || first.ID != b.ID {
			t.Errorf("%s: first ack %+v, second %+v; want the second a duplicate", b.Kind, first, again)
		}
		if b.Kind == protocol.BatchFinish && first.Findings != 2 {
			t.Errorf("finish: %d findings, want 2 (telnet on two hosts)", first.Findings)
		}
	}
	obs, err := f.st.Observations(context.Background(), scan.ID)
	if err != nil || len(obs) != 2 {
		t.Errorf("stored %d observations, %v; want 2 (once)", len(obs), err)
	}
	fs, err := f.st.Findings(context.Background(), store.FindingFilter{Locations: []string{"downtown"}})
	if err != nil || len(fs) != 2 || fs[0].Rule != "svc.telnet-plaintext" {
		t.Errorf("findings %+v, %v", fs, err)
	}
	if n := f.stored.Load(); n != 1 {
		t.Errorf("alerter told %d times, want once", n)
	}

	hb, _ := json.Marshal(protocol.Heartbeat{Version: "1.0.1", QueueDepth: 4, QueueBytes: 1 << 20, LastScanID: scan.ID, AssignmentVersion: as.Version})
	beat := func() protocol.HeartbeatAck {
		t.Helper()
		resp := a.do(http.MethodPost, protocol.PathHeartbeat, hb, false, nil)
		var hack protocol.HeartbeatAck
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&hack) != nil || hack.AssignmentVersion != as.Version {
			t.Errorf("heartbeat: %s %+v", resp.Status, hack)
		}
		resp.Body.Close()
		return hack
	}
	if hack := beat(); hack.ScanNow {
		t.Errorf("heartbeat asks for a scan nobody requested: %+v", hack)
	}
	// "Scan now" on the dashboard: the next heartbeat carries it, once.
	if n, err := f.st.RequestScan(context.Background(), "downtown", "olivia"); err != nil || n != 1 {
		t.Fatalf("RequestScan = %d, %v", n, err)
	}
	if hack := beat(); !hack.ScanNow || hack.RequestedBy != "olivia" {
		t.Errorf("heartbeat after a requested scan: %+v; want scan_now by olivia", hack)
	}
	if hack := beat(); hack.ScanNow {
		t.Errorf("the requested scan was handed out twice: %+v", hack)
	}
	got, err := f.st.Agent(context.Background(), a.id)
	if err != nil || got.Version != "1.0.1" || got.QueueDepth != 4 || got.QueueBytes != 1<<20 || got.LastScanID != scan.ID {
		t.Errorf("agent after heartbeat: %+v, %v", got, err)
	}
}

// A token enrolls one agent; a used, expired, unknown or malformed one
// is refused with the reason.
func TestEnrollmentRefusals(t *testing.T) {
	f := newFixture(t)
	tok := f.token("downtown", time.Hour)
	if resp, _ := f.enrollRaw(tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use: %s", resp.Status)
	}
	for name, tc := range map[string]struct{ token, want string }{
		"second use":     {tok, "already used"},
		"expired":        {f.token("downtown", -time.Minute), "expired"},
		"unknown secret": {protocol.NewToken("glow-aesthetics").String(), "unknown"},
		"unknown tenant": {protocol.NewToken("radiance").String(), "unknown"},
		"malformed":      {"hunter2", "not a vigil enrollment token"},
	} {
		resp, _ := f.enrollRaw(tc.token)
		if msg := errBody(resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %s %q, want 401 naming %q", name, resp.Status, msg, tc.want)
		}
	}
	agents, _ := f.st.Agents(context.Background())
	if len(agents) != 1 {
		t.Errorf("%d agents enrolled, want 1", len(agents))
	}
}

// Signed requests: a bad signature, a stale date, an unknown or revoked
// agent are refused with 401 and the reason.
func TestSignatureRefusals(t *testing.T) {
	f := newFixture(t)
	a := f.enroll("downtown")
	hb, _ := json.Marshal(protocol.Heartbeat{Version: "1"})
	_, otherKey, _ := ed25519.GenerateKey(nil)
	cases := []struct {
		name, want string
		agent      *testAgent
		tamper     func(*http.Request)
	}{
		{"signed by another key", "[bad-signature] bad signature", &testAgent{f: f, id: a.id, key: otherKey}, nil},
		{"body changed after signing", "[bad-signature] bad signature", a, func(r *http.Request) {
			r.Body = http.NoBody
			r.ContentLength = 0
		}},
		{"no signature", "[bad-signature] missing or malformed Vigil-Agent", a, func(r *http.Request) { r.Header.Del(protocol.HeaderAgent) }},
		{"stale date", "[clock] clock skew: Vigil-Date", a, func(r *http.Request) {
			r.Header.Set(protocol.HeaderDate, f.now.Add(-time.Hour).Format(time.RFC3339))
		}},
		{"unknown agent", "[unknown-agent] unknown agent", &testAgent{f: f, id: "ag-nobody", key: a.key}, nil},
	}
	for _, tc := range cases {
		resp := tc.agent.do(http.MethodPost, protocol.PathHeartbeat, hb, false, tc.tamper)
		if msg := errBody(resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %s %q, want 401 naming %q", tc.name, resp.Status, msg, tc.want)
		}
	}

	if _, err := f.st.RevokeAgent(context.Background(), a.id, "owner@clinic"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{protocol.PathAssignment, protocol.PathHeartbeat, protocol.PathBatches} {
		method := http.MethodPost
		if path == protocol.PathAssignment {
			method = http.MethodGet
		}
		resp := a.do(method, path, nil, false, nil)
		if msg := errBody(resp); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(msg, "[revoked] ") {
			t.Errorf("revoked agent %s: %s %q, want 401 [revoked]", path, resp.Status, msg)
		}
	}
}

// An agent writes only its own location: a batch naming another one is
// refused with 403 and nothing is stored.
func TestWrongLocationIsForbidden(t *testing.T) {
	f := newFixture(t)
	a := f.enroll("downtown")
	b := f.enroll("uptown")
	scan := scanOf("as-1", "downtown")
	a.pushOK(protocol.Batch{ID: "as-1:0", Kind: protocol.BatchBegin, Scan: scan})

	fin := scan
	fin.Vantages = map[string][]string{"uptown": {"servers"}}
	srcs := func(names ...string) observe.Scan {
		s := scan
		s.Sources = names
		return s
	}
	for name, batch := range map[string]protocol.Batch{
		"begin of another location": {ID: "x:0", Kind: protocol.BatchBegin, Scan: scanOf("x", "uptown")},
		"observation elsewhere": {ID: "as-1:1", Kind: protocol.BatchObservations, Scan: scan,
			Observations: []observe.Observation{telnet("downtown", "10.10.3.5"), telnet("uptown", "10.20.3.5")}},
		"organisation-wide observation": {ID: "as-1:1", Kind: protocol.BatchObservations, Scan: scan,
			Observations: []observe.Observation{{Kind: observe.KindAccount, Host: "emr:frontdesk", Source: "csv:emr", At: time.Now()}}},
		"vantage elsewhere":                 {ID: "as-1:2", Kind: protocol.BatchFinish, Scan: fin},
		"identity source claimed":           {ID: "as-1:2", Kind: protocol.BatchFinish, Scan: srcs("csv:emr")},
		"identity source at its location":   {ID: "as-1:2", Kind: protocol.BatchFinish, Scan: srcs("csv:emr@downtown")},
		"the server's telegraf input":       {ID: "as-1:2", Kind: protocol.BatchFinish, Scan: srcs("telegraf:x509_cert")},
		"another location's telegraf input": {ID: "as-1:2", Kind: protocol.BatchFinish, Scan: srcs("telegraf:x509_cert@uptown")},
		"a plugin vigil does not run":       {ID: "as-1:2", Kind: protocol.BatchFinish, Scan: srcs("telegraf:exec@downtown")},
	} {
		if _, resp := a.push(batch); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s, want 403", name, resp.Status)
		} else {
			resp.Body.Close()
		}
	}
	// The other agent, at its own location, into this agent's scan.
	scanB := scanOf("as-1", "uptown")
	if _, resp := b.push(protocol.Batch{ID: "as-1:1", Kind: protocol.BatchObservations, Scan: scanB,
		Observations: []observe.Observation{telnet("uptown", "10.20.3.5")}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("observations into another agent's scan: %s, want 403", resp.Status)
	}
	if obs, _ := f.st.Observations(context.Background(), "as-1"); len(obs) != 0 {
		t.Errorf("%d observations stored from refused batches", len(obs))
	}
}

// Bodies are bounded: over MaxBatchBytes compressed or decompressed, or
// more than MaxBatchObservations, is 413.
func TestOversizeBatchIs413(t *testing.T) {
	f := newFixture(t)
	a := f.enroll("downtown")
	scan := scanOf("as-1", "downtown")
	a.pushOK(protocol.Batch{ID: "as-1:0", Kind: protocol.BatchBegin, Scan: scan})

	many := make([]observe.Observation, protocol.MaxBatchObservations+1)
	for i := range many {
		many[i] = telnet("downtown", "10.10.3.5")
	}
	if _, resp := a.push(protocol.Batch{ID: "as-1:1", Kind: protocol.BatchObservations, Scan: scan, Observations: many}); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("%d observations: %s, want 413", len(many), resp.Status)
	}
	// A gzip bomb: small on the wire, over the limit decompressed.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte(`{"id":"as-1:2","kind":"observations","scan":{"id":"as-1"},"observations":[],"pad":"`))
	zw.Write(bytes.Repeat([]byte("a"), protocol.MaxBatchBytes))
	zw.Write([]byte(`"}`))
	zw.Close()
	if resp := a.do(http.MethodPost, protocol.PathBatches, bomb.Bytes(), true, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip bomb of %d bytes: %s, want 413", bomb.Len(), resp.Status)
	}
	// Over the limit on the wire.
	if resp := a.do(http.MethodPost, protocol.PathBatches, make([]byte, protocol.MaxBatchBytes+1), false, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("raw body over the limit: %s, want 413", resp.Status)
	}
}

// Each agent's requests are rate limited.
func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Rate, o.Burst = 0.001, 2 })
	a := f.enroll("downtown")
	hb, _ := json.Marshal(protocol.Heartbeat{Version: "1"})
	var codes []int
	for range 3 {
		resp := a.do(http.MethodPost, protocol.PathHeartbeat, hb, false, nil)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Errorf("codes %v, want 200 200 429", codes)
	}
}

// An agent reads its location's telegraf inputs under names qualified by
// the location: its complete scans resolve what those reported at the
// location, never the findings of the server's own input of the same
// plugin.
func TestAgentTelegrafSources(t *testing.T) {
	f := newFixture(t)
	a := f.enroll("downtown")
	ctx := context.Background()
	eng, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	expired := func(loc, vantage, host string) observe.Observation {
		return observe.Observation{Kind: observe.KindMetric, Location: loc, Vantage: vantage, Host: host, Port: 443, Proto: "tcp",
			Source: "telegraf:x509_cert", At: time.Now().UTC(),
			Attrs: map[string]any{"measurement": "x509_cert", "cert_type": "leaf", "cert_expired": true, "cert_days_left": -3}}
	}
	// The server's own x509_cert input saw an expired certificate.
	srv := observe.Scan{ID: "srv-1", StartedAt: time.Now().UTC().Add(-time.Hour), Version: "test", Sources: []string{"telegraf:x509_cert"}}
	if err := f.st.BeginScan(ctx, srv); err != nil {
		t.Fatal(err)
	}
	obs := []observe.Observation{expired("", "telegraf:x509_cert", "portal.example")}
	if err := f.st.AddObservations(ctx, srv.ID, obs); err != nil {
		t.Fatal(err)
	}
	srv.FinishedAt, srv.Complete = time.Now().UTC().Add(-30*time.Minute), true
	if _, _, err := f.st.FinishScan(ctx, srv, eng.Evaluate(obs, srv.FinishedAt)); err != nil {
		t.Fatal(err)
	}

	src := protocol.AgentSourceName("telegraf:x509_cert", "downtown")
	push := func(id string, obs ...observe.Observation) protocol.BatchAck {
		scan := scanOf(id, "downtown")
		a.pushOK(protocol.Batch{ID: protocol.BatchID(id, 0), Kind: protocol.BatchBegin, Scan: scan})
		a.pushOK(protocol.Batch{ID: protocol.BatchID(id, 1), Kind: protocol.BatchObservations, Scan: scan, Seq: 1, Observations: obs})
		fin := scan
		fin.FinishedAt, fin.Complete, fin.Sources = time.Now().UTC(), true, []string{src}
		return a.pushOK(protocol.Batch{ID: protocol.BatchID(id, 2), Kind: protocol.BatchFinish, Scan: fin, Seq: 2})
	}
	if ack := push("as-1", expired("downtown", src, "10.10.3.5")); ack.Findings != 1 {
		t.Fatalf("the agent's first scan: %d findings, want 1 (the expired certificate at 10.10.3.5)", ack.Findings)
	}
	if ack := push("as-2", telnet("downtown", "10.10.3.9")); ack.Findings != 1 {
		t.Fatalf("the agent's second scan: %d findings, want 1 (telnet)", ack.Findings)
	}
	fs, err := f.st.Findings(ctx, store.FindingFilter{Rules: []string{"tls.cert-expired"}})
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]observe.Status{}
	for _, fd := range fs {
		status[fd.Location+" "+fd.Target+" "+fd.Vantage] = fd.Status
	}
	want := map[string]observe.Status{
		"downtown 10.10.3.5:443 " + src:          observe.StatusResolved, // the agent's input no longer sees it
		" portal.example:443 telegraf:x509_cert": observe.StatusOpen,     // the server's input is not the agent's
	}
	if len(status) != len(want) {
		t.Fatalf("findings %v, want %v", status, want)
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("finding %q: %q, want %q (all: %v)", k, status[k], v, status)
		}
	}
}
