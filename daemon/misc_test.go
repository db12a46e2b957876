package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/telemetry"
)

// syncBuffer is a bytes.Buffer safe for the scheduler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestJitterBoundsAndDeterminism(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		max   time.Duration
		bound time.Duration
	}{
		{"0 2 * * *", DefaultMaxJitter, 5 * time.Minute}, // 10% of a day is more than 5 min
		{"@hourly", DefaultMaxJitter, 5 * time.Minute},   // 10% of an hour is 6 min
		{"*/10 * * * *", DefaultMaxJitter, time.Minute},  // 10% of 10 min
		{"@every 1s", DefaultMaxJitter, 100 * time.Millisecond},
		{"0 2 * * 1-5", DefaultMaxJitter, 5 * time.Minute}, // weekdays: the shortest gap is a day
		{"0 2 * * *", 30 * time.Second, 30 * time.Second},
		{"0 2 * * *", -1, 0},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.spec, tc.max), func(t *testing.T) {
			sched, err := cronParser.Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := JitterBound(sched, tc.max); got != tc.bound {
				t.Fatalf("bound %s, want %s", got, tc.bound)
			}
			seen := map[time.Duration]bool{}
			var lo, hi time.Duration = tc.bound, 0
			for i := range 300 {
				loc := fmt.Sprintf("site-%03d", i)
				j := Jitter(loc, sched, tc.max)
				if j != Jitter(loc, sched, tc.max) {
					t.Fatalf("%s: jitter not deterministic", loc)
				}
				if j < 0 || (tc.bound > 0 && j >= tc.bound) || (tc.bound == 0 && j != 0) {
					t.Fatalf("%s: jitter %s outside [0, %s)", loc, j, tc.bound)
				}
				seen[j] = true
				lo, hi = min(lo, j), max(hi, j)
			}
			if tc.bound == 0 {
				return
			}
			// 300 sites spread over the window rather than bunching.
			if len(seen) < 290 || lo > tc.bound/10 || hi < tc.bound*9/10 {
				t.Errorf("%d distinct values in [%s, %s] of [0, %s): not spread", len(seen), lo, hi, tc.bound)
			}
		})
	}
}

func TestJitteredNext(t *testing.T) {
	sched, _ := cronParser.Parse("0 2 * * *")
	j := jittered{sched, 3 * time.Minute}
	day := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct{ at, want time.Time }{
		{day(10, 1, 0), day(10, 2, 3)},
		{day(10, 2, 1), day(10, 2, 3)},  // 02:00 passed, the jittered start has not
		{day(10, 2, 3), day(11, 2, 3)},  // just ran
		{day(10, 23, 0), day(11, 2, 3)}, // next day
	} {
		if got := j.Next(tc.at); !got.Equal(tc.want) {
			t.Errorf("Next(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
}

type fakeProbe struct{ err error }

func (f fakeProbe) Scans(context.Context, int) ([]observe.Scan, error) { return nil, f.err }

func TestHealthAndReadiness(t *testing.T) {
	s := New(Options{})
	dash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "dashboard "+r.URL.Path) })
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	h := Handler(HTTPOptions{Scheduler: s, Store: fakeProbe{}, Dashboard: dash})
	if code, body := get(h, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(h, "/readyz"); code != 503 || !strings.Contains(body, "not started") {
		t.Errorf("/readyz before start: %d %q", code, body)
	}
	if err := s.Start(Plan{Runner: &fakeRunner{}}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(h, "/readyz"); code != 200 {
		t.Errorf("/readyz running: %d %q", code, body)
	}
	broken := Handler(HTTPOptions{Scheduler: s, Store: fakeProbe{errors.New("disk I/O error at /secret/path")}, Dashboard: dash})
	if code, body := get(broken, "/readyz"); code != 503 || !strings.Contains(body, "store") || strings.Contains(body, "/secret") {
		t.Errorf("/readyz with a failing store: %d %q", code, body)
	}
	if code, body := get(h, "/findings/x"); code != 200 || body != "dashboard /findings/x" {
		t.Errorf("other paths go to the dashboard: %d %q", code, body)
	}
	_ = s.Shutdown(context.Background())
	if code, body := get(h, "/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz after shutdown: %d %q", code, body)
	}
}

func TestMetrics(t *testing.T) {
	fail := errors.New("nmap exited 1")
	r := &fakeRunner{run: func(_ context.Context, j Job) error {
		if j.Location == "b" {
			return fail
		}
		return nil
	}}
	s := New(Options{})
	started(t, s, Plan{Locations: []string{"a", "b"}, Runner: r})
	_ = s.ScanNow("a")
	_ = s.ScanNow("b")
	waitFor(t, "both", func() bool { st := s.Stats(); return st["a"].Succeeded == 1 && st["b"].Failed == 1 })
	var buf bytes.Buffer
	if err := telemetry.WritePrometheus(&buf, s.Metrics(time.Now())); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"# TYPE vigil_daemon_scans_started_total counter",
		`vigil_daemon_scans_started_total{location="a"} 1`,
		`vigil_daemon_scans_failed_total{location="b"} 1`,
		`vigil_daemon_scans_skipped_total{location="a"} 0`,
		`vigil_daemon_last_scan_ok{location="b"} 0`,
		`vigil_daemon_last_scan_finished_seconds{location="a"}`,
		"vigil_daemon_running_scans 0",
		"vigil_daemon_reloads_failed_total 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.3.4.5:8080", true},
		{"[::1]:8080", true},
		{"[::ffff:127.0.0.1]:8080", true},
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"10.1.2.3:8443", false},
		{"192.0.2.1:8443", false},
	} {
		got, err := IsLoopback(context.Background(), tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, %v; want %v", tc.addr, got, err, tc.want)
		}
	}
	if _, err := IsLoopback(context.Background(), "8080"); err == nil {
		t.Error("IsLoopback(no port) did not fail")
	}
}

func TestSelfSignedCreatedOnceThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	first, err := LoadOrCreateSelfSigned(dir, CertHosts("0.0.0.0:8443"), now)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || len(first.Fingerprint) != 95 {
		t.Fatalf("first start: created %v, fingerprint %q", first.Created, first.Fingerprint)
	}
	leaf := first.Certificate.Leaf
	if leaf.PublicKeyAlgorithm.String() != "ECDSA" || leaf.VerifyHostname("localhost") != nil || leaf.VerifyHostname("127.0.0.1") != nil {
		t.Errorf("certificate: %s, names %v %v", leaf.PublicKeyAlgorithm, leaf.DNSNames, leaf.IPAddresses)
	}
	for name, want := range map[string]os.FileMode{SelfSignedKeyFile: 0o600, SelfSignedCertFile: 0o644, ".": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
	again, err := LoadOrCreateSelfSigned(dir, nil, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.Fingerprint != first.Fingerprint {
		t.Errorf("second start made a new certificate (%s, was %s)", again.Fingerprint, first.Fingerprint)
	}
	// Near expiry, a new one replaces it.
	late, err := LoadOrCreateSelfSigned(dir, nil, leaf.NotAfter.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !late.Created || late.Fingerprint == first.Fingerprint {
		t.Error("a certificate about to expire was reused")
	}
	// A damaged key is an error, not silently replaced.
	if err := os.WriteFile(filepath.Join(dir, SelfSignedKeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSelfSigned(dir, nil, now); err == nil {
		t.Error("a damaged key pair was not reported")
	}
}
