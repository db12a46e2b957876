package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store/sqlite"
)

// A location its site agents scan (scanned_by: agent) is not the
// server's: no scheduled or manual scan of it, and its telegraf inputs are
// left to its agents; everything else is planned as before.
func TestAgentLocationsAreNotScannedByTheServer(t *testing.T) {
	if _, err := exec.LookPath("nmap"); err != nil {
		if os.Getenv("VIGIL_LAB_REQUIRED") == "1" {
			t.Fatal("nmap required (VIGIL_LAB_REQUIRED=1) but not installed")
		}
		t.Skip("nmap not installed (apt-get install nmap): the network part cannot be planned")
	}
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "vigil.yaml"), []byte(`organization: Glow
data_dir: `+dir+`
locations:
  - {id: office, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}
  - {id: clinic, scanned_by: agent, segments: [{name: s, cidr: 127.0.0.2/32, role: servers}]}
telegraf:
  inputs:
    - {plugin: net_response, location: office, options: {protocol: tcp, address: "127.0.0.1:9"}}
    - {plugin: net_response, location: clinic, options: {protocol: tcp, address: "127.0.0.2:9"}}
    - {plugin: x509_cert, options: {sources: ["tcp://127.0.0.1:9"]}}
schedules: [{cron: "0 2 * * *", locations: ["*"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := NewScanRunner(context.Background(), ScanRunnerOptions{Config: cfg, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	plan := r.Plan()
	if !slices.Equal(plan.Locations, []string{"office"}) || !plan.Organization {
		t.Errorf("planned locations %v (organisation %v); want [office] and the organisation", plan.Locations, plan.Organization)
	}
	for _, j := range plan.Jobs() {
		if j.Location == "clinic" {
			t.Errorf("the server schedules a scan of the agents' location: %+v", j)
		}
	}
	if len(r.sources) != 2 {
		t.Errorf("%d sources for the server, want 2 (office's input and the organisation's, not clinic's)", len(r.sources))
	}
	err = r.RunJob(context.Background(), Job{Location: "clinic", Trigger: TriggerManual}, func(string, int, int) {})
	if err == nil || !strings.Contains(err.Error(), "scanned by its site agents") {
		t.Errorf("a job for the agents' location: %v; want it refused", err)
	}
}

// Each alert cycle finishes as incomplete the server's scans begun more
// than AbandonAfter ago and never finished (their replica was killed); a
// scan begun since is left to whoever runs it.
func TestAlertCycleSweepsAbandonedScans(t *testing.T) {
	dir := t.TempDir()
	writeUsers(t, dir)
	cfg := alertConfig(t, dir, newReceiver(t).srv.URL)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for id, started := range map[string]time.Time{"killed": now.Add(-3 * time.Hour), "running": now.Add(-10 * time.Minute)} {
		if err := st.BeginScan(ctx, observe.Scan{ID: id, StartedAt: started, Locations: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewScanRunner(ctx, ScanRunnerOptions{Config: cfg, Store: st, Only: "identity"})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewAlertPlan(ctx, cfg, r.Engine(), func(string) (string, bool) { return hookSecret, true }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	a := NewAlerter(AlerterOptions{Store: st, Ledger: st.AlertLedger(), AbandonAfter: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, plan)
	a.Cycle(ctx, "test")
	scans, err := st.Scans(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scans {
		finished := !s.FinishedAt.IsZero()
		if want := s.ID == "killed"; finished != want || s.Complete || (want && len(s.Errors) != 1) {
			t.Errorf("scan %s after the cycle: finished %v, complete %v, errors %v; want finished only if begun over an hour ago, and incomplete", s.ID, finished, s.Complete, s.Errors)
		}
	}
	if !strings.Contains(logs.String(), "abandoned scan finished as incomplete") || !strings.Contains(logs.String(), "scan=killed") {
		t.Errorf("the sweep is not logged:\n%s", logs.String())
	}
}
