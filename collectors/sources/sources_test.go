package sources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/config"
)

func load(t *testing.T, body string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "emr.csv"), []byte("username\njane\n"), 0o600)
	cfg, err := config.Parse(filepath.Join(dir, "vigil.yaml"), []byte("organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: servers}]}]\n"+body))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestFromConfigBuildsEverySource(t *testing.T) {
	cfg := load(t, `identity:
  - {type: csv, system: emr, path: emr.csv}
  - {type: ldap, system: ad, url: "ldaps://127.0.0.1:1636", base_dn: "dc=x", bind_dn_env: B, password_env: P}
  - {type: entra, system: m365, tenant_id: t, client_id: c, client_secret_env: S}
  - {type: google, system: gws, credentials_file: key.json, admin_email: it@x.example}
  - {type: okta, system: okta, org_url: "https://x.okta.com", token_env: T}
software: [{path: sboms}]
telegraf:
  inputs:
    - {plugin: net_response, location: a, options: {protocol: tcp, address: "127.0.0.1:22"}}
`)
	srcs, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Names(srcs), "csv:emr, ldap:ad, entra:m365, google:gws, okta:okta, osv-scanner, telegraf:net_response"; got != want {
		t.Errorf("sources %q, want %q", got, want)
	}
	for part, n := range map[string]int{PartIdentity: 5, PartSoftware: 1, PartTelegraf: 1, "": 7} {
		var parts []string
		if part != "" {
			parts = []string{part}
		}
		if got := len(Select(srcs, parts...)); got != n {
			t.Errorf("Select(%q) = %d sources, want %d", part, got, n)
		}
	}
}

func TestFromConfigNamesTheBadField(t *testing.T) {
	cfg := load(t, `identity:
  - {type: ldap, system: ad, url: "ftp://dc1", bind_dn_env: B, password_env: P}
telegraf:
  inputs:
    - {plugin: net_response, options: {protocol: tcp, adress: "127.0.0.1:22"}}
`)
	_, err := FromConfig(cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"identity[0] (ad)", "telegraf.inputs[0].options.adress"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestServicesNeedsADatabase(t *testing.T) {
	cfg := load(t, "")
	cfg.OSVDB = filepath.Join(t.TempDir(), "missing")
	if svc, why := Services(cfg); svc != nil || !strings.Contains(why, "no OSV database at") {
		t.Errorf("Services without a database = %v, %q", svc, why)
	}
}

// With every telegraf input at a location its agents scan, the server has
// none left to read, and says why.
func TestNoneOfNamesTheAgents(t *testing.T) {
	cfg, err := config.Parse("vigil.yaml", []byte(`organization: Glow
locations:
  - {id: clinic, scanned_by: agent, segments: [{name: s, cidr: 127.0.0.2/32, role: servers}]}
telegraf:
  inputs: [{plugin: net_response, location: clinic, options: {protocol: tcp, address: "127.0.0.2:9"}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	all, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ServerSide(all)) != 0 || len(ServerSide(all, "clinic")) != 1 {
		t.Errorf("ServerSide: %d without clinic, %d with it; want 0 and 1", len(ServerSide(all)), len(ServerSide(all, "clinic")))
	}
	if why, onAgent := NoneOf(all, PartTelegraf); !onAgent || !strings.Contains(why, "scanned_by: agent") {
		t.Errorf("NoneOf(telegraf) = %q, %v", why, onAgent)
	}
	if why, onAgent := NoneOf(all, PartSoftware); onAgent || why != "the configuration has no software source" {
		t.Errorf("NoneOf(software) = %q, %v", why, onAgent)
	}
}
