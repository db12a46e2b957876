package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
)

func TestTenantID(t *testing.T) {
	for in, want := range map[string]string{
		"Glow Aesthetics":         "glow-aesthetics",
		"Glow Aesthetics, LLC":    "glow-aesthetics-llc",
		"  --Dr. Lee's Med Spa--": "dr-lee-s-med-spa",
		"Spa 24/7":                "spa-24-7",
		"Clínica Bella":           "cl-nica-bella",
		"!!!":                     "",
	} {
		if got := TenantID(in); got != want {
			t.Errorf("TenantID(%q) = %q, want %q", in, got, want)
		}
	}
}

// schedules[].jitter bounds its own locations' jitter (0s: none), other
// schedules keep the daemon's; --max-jitter (OverrideJitter) wins over
// both. Plan.Applied runs when a plan comes into force.
func TestScheduleJitter(t *testing.T) {
	zero, hour := &config.Duration{}, &config.Duration{Duration: time.Hour}
	plan := Plan{
		Schedules: []config.Schedule{
			{Cron: "@daily", Locations: []string{"a"}, Jitter: zero},
			{Cron: "@daily", Locations: []string{"b"}, Jitter: hour},
			{Cron: "@daily", Locations: []string{"c"}},
		},
		Locations: []string{"a", "b", "c"},
		Runner:    &fakeRunner{},
	}
	for _, tc := range []struct {
		name string
		opts Options
		max  map[string]time.Duration // most jitter each may get
		none []string                 // locations that must get none
	}{
		{name: "per schedule", opts: Options{MaxJitter: time.Minute},
			max: map[string]time.Duration{"a": 0, "b": time.Hour, "c": time.Minute}, none: []string{"a"}},
		{name: "override", opts: Options{MaxJitter: time.Minute, OverrideJitter: true},
			max: map[string]time.Duration{"a": time.Minute, "b": time.Minute, "c": time.Minute}},
		{name: "override off", opts: Options{MaxJitter: -1, OverrideJitter: true},
			max: map[string]time.Duration{}, none: []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applied := 0
			p := plan
			p.Applied = func() { applied++ }
			s := New(tc.opts)
			if err := s.Start(p); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			if applied != 1 {
				t.Errorf("Applied called %d times at Start, want 1", applied)
			}
			for _, pj := range s.Planned() {
				if m, ok := tc.max[pj.Location]; ok && pj.Jitter > m {
					t.Errorf("%s: jitter %s, more than %s", pj.Location, pj.Jitter, m)
				}
				for _, l := range tc.none {
					if pj.Location == l && pj.Jitter != 0 {
						t.Errorf("%s: jitter %s, want none", l, pj.Jitter)
					}
				}
			}
			if tc.name == "per schedule" {
				daily, _ := cronParser.Parse("@daily")
				for _, pj := range s.Planned() {
					if pj.Location == "b" && pj.Jitter != Jitter("b", daily, time.Hour) {
						t.Errorf("b: jitter %s, want its schedule's hour to bound it (%s)", pj.Jitter, Jitter("b", daily, time.Hour))
					}
				}
			}
		})
	}
}
