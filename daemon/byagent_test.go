package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/config"
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
