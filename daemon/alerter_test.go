package daemon

import (
	"context"
	"encoding/json"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/alerts"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

const hookSecret = "alert-test-signing-key-0123456789"

// receiver is a webhook endpoint on loopback that checks every delivery's
// signature, as a customer's SIEM would.
type receiver struct {
	t    *testing.T
	srv  *httptest.Server
	fail atomic.Bool

	mu       sync.Mutex
	payloads []alerts.Payload
	refused  int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := alerts.Verify([]byte(hookSecret), req.Header.Get(alerts.SignatureHeader), body, 5*time.Minute, time.Now()); err != nil {
			t.Errorf("delivery with a bad signature: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail.Load() {
			r.refused++
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var p alerts.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("delivery is not JSON: %v", err)
		}
		r.payloads = append(r.payloads, p)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// got returns the alerts delivered so far, one string per alert.
func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.payloads {
		for _, a := range p.Alerts {
			out = append(out, fmt.Sprintf("%s %s %s %s", a.Kind, a.Severity, a.Rule, a.Target))
		}
	}
	return out
}

// tenantRig is one tenant's daemon pieces over a store, as vigil serve
// builds them: a scan runner whose stored scans kick the alerter.
type tenantRig struct {
	t       *testing.T
	store   *sqlite.Store
	sched   *Scheduler
	alerter *Alerter
	cycles  chan string
	stop    context.CancelFunc
	done    chan error
}

func alertConfig(t *testing.T, dir, hookURL string) *config.Config {
	t.Helper()
	body := fmt.Sprintf(`organization: Alert Test
data_dir: data
locations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
identity: [{type: csv, system: emr, path: users.csv}]
alerts:
  min_severity: critical
  channels:
    - {name: hook, type: webhook, url: %q, secret_env: VIGIL_TEST_HOOK_SECRET, attempts: 1, timeout: 5s}
`, hookURL)
	path := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeUsers(t *testing.T, dir string, admins ...string) {
	t.Helper()
	csv := "username,email,display_name,enabled,mfa,last_login,locations,role,is_admin\n"
	for _, a := range admins {
		csv += fmt.Sprintf("%s,%s@glow.example,%s,true,false,%s,a,admin,true\n", a, a, a, time.Now().UTC().Format(time.DateOnly))
	}
	if err := os.WriteFile(filepath.Join(dir, "users.csv"), []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startTenant(t *testing.T, cfg *config.Config) *tenantRig {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	rig := &tenantRig{t: t, store: st, cycles: make(chan string, 16), done: make(chan error, 1)}
	runner, err := NewScanRunner(ctx, ScanRunnerOptions{Config: cfg, Store: st, Logger: log, Only: "identity",
		Stored: func(Job, *scanrun.Result) { rig.alerter.ScanStored() }})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewAlertPlan(ctx, cfg, runner.Engine(), func(k string) (string, bool) {
		if k == "VIGIL_TEST_HOOK_SECRET" {
			return hookSecret, true
		}
		return "", false
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	rig.alerter = NewAlerter(AlerterOptions{Store: st, Ledger: st.AlertLedger(), Logger: log}, plan)
	rig.alerter.cycled = func(reason string) { rig.cycles <- reason }
	rig.sched = New(Options{Logger: log})
	if err := rig.sched.Start(runner.Plan()); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	rig.stop = cancel
	go func() { rig.done <- rig.alerter.Run(actx, 5*time.Second) }()
	rig.waitCycle("start")
	return rig
}

func (r *tenantRig) waitCycle(want string) {
	r.t.Helper()
	select {
	case got := <-r.cycles:
		if got != want {
			r.t.Fatalf("alert cycle %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		r.t.Fatalf("no %s alert cycle", want)
	}
}

// scan runs the organisation job and waits for the alert cycle it causes.
func (r *tenantRig) scan() {
	r.t.Helper()
	// The previous scan's alert cycle starts when it is stored, a moment
	// before its job ends: until then the location is busy.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.sched.ScanNow(Organization)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			r.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.waitCycle("scan")
}

func (r *tenantRig) close() {
	r.t.Helper()
	if err := r.sched.Shutdown(context.Background()); err != nil {
		r.t.Error(err)
	}
	r.stop()
	if err := <-r.done; err != nil {
		r.t.Error(err)
	}
	if err := r.store.Close(); err != nil {
		r.t.Error(err)
	}
}

// A scan that opens a critical finding sends one signed alert; the same
// scan again sends nothing; a restart over the same store sends nothing;
// an alert the receiver refused goes out on the next cycle once it is
// back, and only once.
func TestAlertsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	hook := newReceiver(t)
	cfg := alertConfig(t, dir, hook.srv.URL+"/vigil")
	writeUsers(t, dir, "drlee")

	rig := startTenant(t, cfg)
	rig.scan()
	want := []string{"new-finding critical id.admin-without-mfa emr:drlee"}
	if got := hook.got(); !equal(got, want) {
		t.Fatalf("after the first scan the receiver got %v, want %v", got, want)
	}
	rig.scan()
	if got := hook.got(); len(got) != 1 {
		t.Fatalf("an identical second scan sent more: %v", got)
	}
	rig.close()

	// A restart: new scheduler, runner and alerter over the same store.
	rig = startTenant(t, cfg)
	rig.scan()
	if got := hook.got(); len(got) != 1 {
		t.Fatalf("a restart re-sent alerts: %v", got)
	}

	// A second admin without MFA while the receiver is down: the alert is
	// kept, not lost.
	writeUsers(t, dir, "drlee", "nurse")
	hook.fail.Store(true)
	rig.scan()
	pending, err := rig.store.AlertLedger().Pending(context.Background())
	if err != nil || len(pending) != 1 || pending[0].Channel != "hook" || pending[0].Attempts != 1 {
		t.Fatalf("after a failed delivery the ledger holds %+v (%v), want one pending hook alert tried once", pending, err)
	}
	if hook.refused != 1 {
		t.Errorf("receiver refused %d deliveries, want 1 (attempts: 1)", hook.refused)
	}
	hook.fail.Store(false)
	rig.scan() // nothing new: the cycle retries what is pending
	want = append(want, "new-finding critical id.admin-without-mfa emr:nurse")
	if got := hook.got(); !equal(got, want) {
		t.Fatalf("after the receiver recovered it got %v, want %v", got, want)
	}
	if pending, _ := rig.store.AlertLedger().Pending(context.Background()); len(pending) != 0 {
		t.Errorf("still pending after delivery: %+v", pending)
	}
	rig.scan()
	if got := hook.got(); len(got) != 2 {
		t.Errorf("a later scan sent again: %v", got)
	}
	rig.close()
}

// A decision that runs out reopens its finding when the timer fires, and a
// critical reopening is a new-finding alert.
func TestExpiredDecisionAlerts(t *testing.T) {
	dir := t.TempDir()
	hook := newReceiver(t)
	cfg := alertConfig(t, dir, hook.srv.URL+"/vigil")
	writeUsers(t, dir, "drlee")
	rig := startTenant(t, cfg)
	rig.scan()
	if got := hook.got(); len(got) != 1 {
		t.Fatalf("first scan sent %v", got)
	}
	fs, err := rig.store.Findings(context.Background(), store.FindingFilter{MinSeverity: observe.Critical})
	if err != nil || len(fs) != 1 {
		t.Fatalf("critical findings: %v, %v", fs, err)
	}
	// Accepted until a moment from now.
	if _, err := rig.store.DecideFinding(context.Background(), fs[0].ID, observe.Decision{Status: observe.StatusAccepted,
		By: "owner", Reason: "break-glass account, MFA on order", Expires: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	rig.alerter.cycleNow()
	rig.waitCycle("timer")
	got := hook.got()
	if len(got) != 2 || !strings.HasPrefix(got[1], "new-finding critical id.admin-without-mfa") {
		t.Fatalf("after the acceptance expired the receiver got %v, want a second new-finding alert", got)
	}
	if fs, _ := rig.store.Findings(context.Background(), store.FindingFilter{MinSeverity: observe.Critical}); len(fs) != 1 || fs[0].Status != observe.StatusOpen {
		t.Errorf("finding after expiry: %+v", fs)
	}
	rig.close()
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
