package config

import (
	"strings"
	"testing"
	"time"
)

// scan.max_parallel and schedules[].jitter: what vigil serve reads for
// its worker pool and the spread of a schedule's locations.
func TestDaemonKeys(t *testing.T) {
	const loc = "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]}]\n"
	cases := []struct {
		name     string
		yaml     string
		parallel int
		jitter   []*time.Duration // per schedule; nil: not set
		err      string
	}{
		{name: "defaults", yaml: loc + "schedules: [{cron: '@daily', locations: ['*']}]\n", parallel: DefaultMaxParallel, jitter: []*time.Duration{nil}},
		{name: "set", yaml: loc + "scan: {max_parallel: 8}\nschedules:\n  - {cron: '@daily', locations: ['*'], jitter: 90s}\n  - {cron: '@hourly', locations: [a], jitter: 0s}\n",
			parallel: 8, jitter: []*time.Duration{ptr(90 * time.Second), ptr(0)}},
		{name: "max jitter", yaml: loc + "schedules: [{cron: '@daily', locations: ['*'], jitter: 6h}]\n", parallel: DefaultMaxParallel, jitter: []*time.Duration{ptr(6 * time.Hour)}},
		{name: "jitter too long", yaml: loc + "schedules:\n  - cron: '@daily'\n    locations: ['*']\n    jitter: 7h\n", err: "x.yaml:6: schedules[0].jitter: 7h0m0s is more than 6h0m0s"},
		{name: "negative jitter", yaml: loc + "schedules: [{cron: '@daily', locations: ['*'], jitter: -1m}]\n", err: "schedules[0].jitter: invalid duration \"-1m\""},
		{name: "jitter not a duration", yaml: loc + "schedules: [{cron: '@daily', locations: ['*'], jitter: soon}]\n", err: "schedules[0].jitter: invalid duration \"soon\""},
		{name: "too parallel", yaml: loc + "scan:\n  max_parallel: 65\n", err: "x.yaml:4: scan.max_parallel: 65 is out of range 1-64"},
		{name: "negative parallel", yaml: loc + "scan: {max_parallel: -1}\n", err: "scan.max_parallel: -1 is out of range"},
		{name: "parallel not a number", yaml: loc + "scan: {max_parallel: many}\n", err: "scan.max_parallel: must be a whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("x.yaml", []byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Scan.MaxParallel != tc.parallel {
				t.Errorf("scan.max_parallel = %d, want %d", cfg.Scan.MaxParallel, tc.parallel)
			}
			if len(cfg.Schedules) != len(tc.jitter) {
				t.Fatalf("%d schedules, want %d", len(cfg.Schedules), len(tc.jitter))
			}
			for i, want := range tc.jitter {
				got := cfg.Schedules[i].Jitter
				switch {
				case want == nil && got != nil:
					t.Errorf("schedules[%d].jitter = %v, want unset", i, got.Duration)
				case want != nil && (got == nil || got.Duration != *want):
					t.Errorf("schedules[%d].jitter = %v, want %v", i, got, *want)
				}
			}
		})
	}
}

func ptr(d time.Duration) *time.Duration { return &d }
