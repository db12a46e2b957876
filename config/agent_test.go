package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const twoSites = `organization: Glow Aesthetics
roster: staff.csv
identity:
  - type: ldap
    url: ldaps://dc1.example.local
    bind_dn_env: VIGIL_LDAP_BIND_DN
    password_file: /run/secrets/ldap
software:
  - path: ./sboms
telegraf:
  token_env: VIGIL_TELEGRAF_TOKEN
alerts:
  channels:
    - type: slack
      url_env: VIGIL_SLACK_URL
rules:
  dirs: [./rules]
locations:
  - id: downtown
    name: Downtown Clinic
    state: CA
    internet_facing: [203.0.113.10]
    segments:
      - {name: front-desk, cidr: 10.10.1.0/24, role: front-desk}
      - {name: servers, cidrs: [10.10.3.0/24, 10.10.13.0/24], role: servers}
    vantage:
      - {segment: front-desk, source: 10.10.1.50}
    policy:
      - {from: front-desk, to: servers, ports: [443]}
      - {from: front-desk, to: uptown/servers, ports: [22]}
    ports: "22,443,3389"
  - id: uptown
    segments:
      - {name: servers, cidr: 10.20.3.0/24, role: servers}
schedules:
  - cron: "0 2 * * *"
    locations: ["*"]
    jitter: 90s
  - cron: "0 3 * * *"
    locations: [uptown]
  - cron: "30 4 * * 1"
    locations: [uptown, downtown]
scan:
  rate: 100
  timeout: 45m
  ca_files: [ca.pem]
  templates: [nuclei-templates]
`

// The agent's document parses, names its one location as the server
// has it, the schedules that include it, and nothing the agent has no
// business with.
func TestForAgentRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"rules", "nuclei-templates"} {
		if err := os.Mkdir(filepath.Join(dir, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(dir, "glow.yaml"), []byte(twoSites))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ForAgent(cfg, "downtown")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("assignment.yaml", doc)
	if err != nil {
		t.Fatalf("Parse(ForAgent):\n%s\n%v", doc, err)
	}
	if got.Organization != cfg.Organization || len(got.Locations) != 1 {
		t.Fatalf("organisation %q, %d locations", got.Organization, len(got.Locations))
	}
	want := cfg.Locations[0]
	want.Policy = want.Policy[:1] // the flow to uptown is not the agent's to know
	if l := got.Locations[0]; !reflect.DeepEqual(l, want) {
		t.Errorf("location:\n%+v\nwant\n%+v", l, want)
	}
	if len(got.Schedules) != 2 || got.Schedules[0].Cron != "0 2 * * *" || got.Schedules[1].Cron != "30 4 * * 1" {
		t.Errorf("schedules %+v", got.Schedules)
	}
	for _, s := range got.Schedules {
		if !reflect.DeepEqual(s.Locations, []string{"downtown"}) {
			t.Errorf("schedule %s locations %v", s.Cron, s.Locations)
		}
	}
	if j := got.Schedules[0].Jitter; j == nil || j.Duration != 90*time.Second {
		t.Errorf("jitter %v, want 90s", j)
	}
	wantScan := cfg.Scan
	wantScan.CAFiles, wantScan.Templates = nil, nil
	if !reflect.DeepEqual(got.Scan, wantScan) {
		t.Errorf("scan:\n%+v\nwant\n%+v", got.Scan, wantScan)
	}
	if len(got.Identity)+len(got.Software)+len(got.Alerts.Channels)+len(got.Rules.Dirs) != 0 || got.Roster != "" || got.Telegraf.TokenEnv != "" {
		t.Errorf("server-only settings reached the agent: %+v", got)
	}
	for _, secret := range []string{"ldap", "VIGIL_", "/run/secrets", "staff.csv", "sboms", "nuclei", "ca.pem", "uptown", dir} {
		if strings.Contains(string(doc), secret) {
			t.Errorf("the agent's document mentions %q:\n%s", secret, doc)
		}
	}
	// The same configuration gives the same bytes (its hash is the
	// assignment's version).
	again, _ := ForAgent(cfg, "downtown")
	if string(again) != string(doc) {
		t.Error("ForAgent is not deterministic")
	}
	if _, err := ForAgent(cfg, "nowhere"); err == nil {
		t.Error("ForAgent of an unknown location: no error")
	}
}

// A location its agents scan gets its own telegraf inputs in the agent's
// document (secrets still named, not given); one the server scans does
// not, and no other location's input ever does.
func TestForAgentTelegrafOfAgentLocations(t *testing.T) {
	base := `organization: Glow
telegraf:
  token_env: VIGIL_TELEGRAF_TOKEN
  inputs:
    - {plugin: x509_cert, location: downtown, options: {sources: ["tcp://10.10.3.5:443"], timeout: 5s}}
    - {plugin: net_response, location: uptown, options: {protocol: tcp, address: "10.20.3.9:22"}}
    - {plugin: x509_cert, options: {sources: ["tcp://portal.example:443"]}}
locations:
  - {id: downtown, SCANNED segments: [{name: servers, cidr: 10.10.3.0/24, role: servers}]}
  - {id: uptown, scanned_by: agent, segments: [{name: servers, cidr: 10.20.3.0/24, role: servers}]}
`
	for _, tc := range []struct {
		scannedBy string
		inputs    int
	}{{"", 0}, {"scanned_by: server,", 0}, {"scanned_by: agent,", 1}} {
		cfg, err := Parse("glow.yaml", []byte(strings.Replace(base, "SCANNED", tc.scannedBy, 1)))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := ForAgent(cfg, "downtown")
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse("assignment.yaml", doc)
		if err != nil {
			t.Fatalf("Parse(ForAgent):\n%s\n%v", doc, err)
		}
		if len(got.Telegraf.Inputs) != tc.inputs {
			t.Fatalf("%q: %d telegraf inputs in the agent's document, want %d:\n%s", tc.scannedBy, len(got.Telegraf.Inputs), tc.inputs, doc)
		}
		if tc.inputs == 1 {
			in := got.Telegraf.Inputs[0]
			if in.Plugin != "x509_cert" || in.Location != "downtown" || !got.Locations[0].ByAgent() || !got.RunsOnAgent(in) {
				t.Errorf("input %+v, location %+v", in, got.Locations[0])
			}
			if !reflect.DeepEqual(in.Options, cfg.Telegraf.Inputs[0].Options) {
				t.Errorf("options %v, want %v", in.Options, cfg.Telegraf.Inputs[0].Options)
			}
		}
		for _, other := range []string{"uptown", "portal.example", "VIGIL_"} {
			if strings.Contains(string(doc), other) {
				t.Errorf("%q: the agent's document mentions %q:\n%s", tc.scannedBy, other, doc)
			}
		}
	}
	_, err := Parse("glow.yaml", []byte(strings.Replace(base, "SCANNED", "scanned_by: sensor,", 1)))
	if err == nil || !strings.Contains(err.Error(), "locations[0].scanned_by") {
		t.Errorf("scanned_by: sensor: %v; want an error naming locations[0].scanned_by", err)
	}
}
