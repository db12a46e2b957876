package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/config"
)

// TestWriteConfig checks the lab's config is one vigil accepts and says what
// the lab is: needs no root, so it runs everywhere.
func TestWriteConfig(t *testing.T) {
	dir := t.TempDir()
	l := &Lab{dir: dir}
	// vigil checks that CA files exist; Start writes the real one.
	if err := writeGoodCerts(l.CAFile(), filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "leaf.key"), "10.77.2.20"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cfg", "vigil.yaml")
	data := filepath.Join(dir, "data")
	if err := l.WriteConfig(path, data); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("vigil rejects the lab config: %v", err)
	}
	if cfg.Organization != "Vigil Lab" || cfg.DataDir != data {
		t.Errorf("organization %q data_dir %q", cfg.Organization, cfg.DataDir)
	}
	if len(cfg.Locations) != 1 || cfg.Locations[0].ID != "lab" {
		t.Fatalf("locations = %+v, want one with id lab", cfg.Locations)
	}
	loc := cfg.Locations[0]
	if loc.Ports != Ports || loc.State != "CA" {
		t.Errorf("ports %q state %q", loc.Ports, loc.State)
	}
	want := map[string]string{"guest": GuestCIDR, "servers": ServersCIDR}
	for _, s := range loc.Segments {
		if want[s.Name] != s.CIDR || s.Role != s.Name {
			t.Errorf("segment %+v", s)
		}
		delete(want, s.Name)
	}
	if len(want) > 0 {
		t.Errorf("segments missing: %v", want)
	}
	if len(loc.Vantage) != 1 || loc.Vantage[0].Segment != "guest" || loc.Vantage[0].Source != ScannerAddr {
		t.Errorf("vantage = %+v", loc.Vantage)
	}
	if len(cfg.Scan.CAFiles) != 1 || cfg.Scan.CAFiles[0] != l.CAFile() {
		t.Errorf("scan.ca_files = %v, want [%s]", cfg.Scan.CAFiles, l.CAFile())
	}
}

// TestWriteConfigWith checks the policy, port and UDP options reach vigil's
// config as written, and that the zero options write WriteConfig's file.
func TestWriteConfigWith(t *testing.T) {
	dir := t.TempDir()
	l := &Lab{dir: dir}
	if err := writeGoodCerts(l.CAFile(), filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "leaf.key"), "10.77.2.20"); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	plain, zero := filepath.Join(dir, "plain.yaml"), filepath.Join(dir, "zero.yaml")
	if err := l.WriteConfig(plain, data); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteConfigWith(zero, data, ConfigOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(plain)
	b, _ := os.ReadFile(zero)
	if string(a) != string(b) || strings.Contains(string(a), "policy") || strings.Contains(string(a), "udp_ports") {
		t.Errorf("zero ConfigOptions changed the config:\n%s\nvs WriteConfig's\n%s", b, a)
	}

	path := filepath.Join(dir, "policy.yaml")
	err := l.WriteConfigWith(path, data, ConfigOptions{Ports: "443,6379", UDPPorts: "none",
		Policy: []Flow{{From: "guest", To: "servers", Ports: []int{443}}, {From: "servers", To: "guest"}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("vigil rejects the lab config with a policy: %v\n%s", err, b)
	}
	loc := cfg.Locations[0]
	if loc.Ports != "443,6379" || cfg.Scan.UDPPorts != "none" {
		t.Errorf("ports %q udp_ports %q", loc.Ports, cfg.Scan.UDPPorts)
	}
	if len(loc.Policy) != 2 ||
		loc.Policy[0].From != "guest" || loc.Policy[0].To != "servers" || !slices.Equal(loc.Policy[0].Ports, []int{443}) ||
		loc.Policy[1].From != "servers" || loc.Policy[1].To != "guest" || len(loc.Policy[1].Ports) != 0 {
		t.Errorf("policy = %+v", loc.Policy)
	}

	if err := l.WriteConfigWithPolicy(path, data, []Flow{{From: "guest", To: "servers", Ports: []int{443, 22}}}); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	if p := cfg.Locations[0].Policy; len(p) != 1 || !slices.Equal(p[0].Ports, []int{443, 22}) || cfg.Locations[0].Ports != Ports {
		t.Errorf("WriteConfigWithPolicy: policy %+v ports %q", p, cfg.Locations[0].Ports)
	}
}
