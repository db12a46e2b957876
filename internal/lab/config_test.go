package lab

import (
	"path/filepath"
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
