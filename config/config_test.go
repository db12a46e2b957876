package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadValid(t *testing.T) {
	cfg, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Organization != "Glow Aesthetics" || len(cfg.Locations) != 1 {
		t.Fatalf("unexpected config: %+v", cfg)
	}
	l := cfg.Locations[0]
	if len(l.Segments) != 3 || len(l.Segments[1].Prefixes) != 2 {
		t.Errorf("segments not parsed: %+v", l.Segments)
	}
	if !l.Vantage[0].SourceAddr.IsValid() || len(l.InternetAddrs) != 1 {
		t.Errorf("addresses not parsed: %+v", l)
	}
	if want := filepath.Join("testdata", "users.csv"); cfg.Identity[0].Path != want {
		t.Errorf("relative path not resolved against the config file: %q, want %q", cfg.Identity[0].Path, want)
	}
	if cfg.Scan.Rate != DefaultRate || cfg.Scan.ProbeTimeout.Duration != DefaultProbeTimeout {
		t.Errorf("defaults not applied: %+v", cfg.Scan)
	}
	if seg, ok := l.SegmentOf(l.Vantage[0].SourceAddr); !ok || seg.Name != "front-desk" {
		t.Errorf("SegmentOf(vantage) = %v, %v", seg, ok)
	}
}

// Each mistake must be reported with the file, the line and the field.
func TestValidationErrors(t *testing.T) {
	base := func(loc string) string {
		return "organization: Test\nlocations:\n" + loc
	}
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"bad cidr", base("  - id: a\n    segments:\n      - {name: s, cidr: 10.0.0.0/33, role: guest}\n"),
			[]string{"x.yaml:5: locations[0].segments[0].cidr: invalid CIDR \"10.0.0.0/33\""}},
		{"unknown role", base("  - id: a\n    segments:\n      - name: s\n        cidr: 10.0.0.0/24\n        role: lobby\n"),
			[]string{"x.yaml:7: locations[0].segments[0].role: unknown role \"lobby\""}},
		{"duplicate location", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n  - id: a\n    segments: [{name: s, cidr: 10.0.1.0/24, role: guest}]\n"),
			[]string{"x.yaml:5: locations[1].id: duplicate location id \"a\""}},
		{"policy unknown segment", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n    policy:\n      - from: s\n        to: emr\n"),
			[]string{"x.yaml:7: locations[0].policy[0].to: unknown segment \"emr\""}},
		{"range too large", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/8, role: guest}]\n"),
			[]string{"locations[0].segments[0].cidr: 10.0.0.0/8 holds 16777216 addresses, more than a /16", "allow_large_ranges"}},
		{"unknown field", base("  - id: a\n    segmnts: []\n"),
			[]string{"x.yaml:4: locations[0].segmnts: unknown field (did you mean \"segments\"?)"}},
		{"secret in file", "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]}]\nidentity:\n  - type: ldap\n    url: ldaps://x\n    password: hunter2\n",
			[]string{"x.yaml:6: identity[0].password: secrets are never written in the config file"}},
		{"bad location id", base("  - id: Down Town\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n"),
			[]string{"x.yaml:3: locations[0].id: \"Down Town\" must match [a-z0-9-]+"}},
		{"vantage outside segment", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n    vantage: [{segment: s, source: 10.9.9.9}]\n"),
			[]string{"locations[0].vantage[0].source: 10.9.9.9 is not inside segment \"s\""}},
		{"bad ports", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n    ports: 22,70000\n"),
			[]string{"x.yaml:5: locations[0].ports: invalid port or range \"70000\""}},
		{"bad cron", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n") + "schedules:\n  - cron: every day\n    locations: [a]\n",
			[]string{"schedules[0].cron: invalid cron expression \"every day\""}},
		{"wrong type", base("  - id: a\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n") + "scan:\n  rate: fast\n",
			[]string{"x.yaml:6: scan.rate: must be a whole number, got \"fast\""}},
		{"bad state", base("  - id: a\n    state: California\n    segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]\n"),
			[]string{"locations[0].state: \"California\" is not a two-letter US state code"}},
		{"not yaml", "organization: [unclosed\n", []string{"x.yaml:", "not valid YAML"}},
		{"empty", "", []string{"x.yaml: file is empty"}},
		{"missing organization", "locations: []\n", []string{"organization: is required", "locations: at least one location"}},
		{"several errors at once", base("  - id: a\n    segments:\n      - {name: s, cidr: bogus, role: guest}\n      - {name: s, cidr: 10.0.0.0/24, role: nope}\n"),
			[]string{"segments[0].cidr: invalid CIDR", "segments[1].name: duplicate segment name", "segments[1].role: unknown role"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("Parse accepted a bad configuration")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestLargeRangeOptIn(t *testing.T) {
	y := "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/15, role: guest}]}]\nscan: {allow_large_ranges: true}\n"
	if _, err := Parse("x.yaml", []byte(y)); err != nil {
		t.Fatalf("opt-in ignored: %v", err)
	}
}

func TestMissingFileNamesIt(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("error should name the file: %v", err)
	}
}

func TestParsePorts(t *testing.T) {
	cases := []struct {
		in   string
		top  int
		n    int
		fail bool
	}{
		{"top-100", 100, 0, false},
		{"22,80,443", 0, 3, false},
		{"1-1024,3389", 0, 1025, false},
		{"443,22,443", 0, 2, false},
		{"top-0", 0, 0, true},
		{"0", 0, 0, true},
		{"80-20", 0, 0, true},
		{"http", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, c := range cases {
		ps, err := ParsePorts(c.in)
		if (err != nil) != c.fail {
			t.Errorf("ParsePorts(%q) err = %v, want fail=%v", c.in, err, c.fail)
			continue
		}
		if ps.Top != c.top || len(ps.Ports) != c.n {
			t.Errorf("ParsePorts(%q) = top %d, %d ports; want %d, %d", c.in, ps.Top, len(ps.Ports), c.top, c.n)
		}
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/valid.yaml")
	f.Add(seed)
	f.Add([]byte("organization: x\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]}]\n"))
	f.Add([]byte("locations: *a\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil && (cfg.Organization == "" || len(cfg.Locations) == 0) {
			t.Fatalf("accepted a config without organization or locations")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}
