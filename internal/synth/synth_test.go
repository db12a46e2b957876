package synth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

// TestGenerateSmall generates a small organisation and checks what the
// benchmark and the browser tests rely on: a configuration that loads and
// never schedules a scan, a store whose findings went through opened,
// resolved and reopened, decisions, and a latest scan with reachability
// probes.
func TestGenerateSmall(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	end := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	m, err := Generate(ctx, dir, Options{Locations: 6, Assets: 240, Days: 60, FullScans: 2, StaffPerLocation: 4, Seed: 3, End: end})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatalf("generated configuration: %v", err)
	}
	if len(cfg.Schedules) != 0 {
		t.Errorf("the configuration schedules scans: %+v", cfg.Schedules)
	}
	if len(cfg.Locations) != 6 {
		t.Errorf("locations: %d, want 6", len(cfg.Locations))
	}
	for _, l := range cfg.Locations {
		for _, s := range l.Segments {
			if !strings.HasPrefix(s.CIDR, "10.") {
				t.Errorf("%s/%s: %s is not in 10.0.0.0/8", l.ID, s.Name, s.CIDR)
			}
		}
	}
	if m.Assets != 240 || m.Scans < 6*60 || m.Findings == 0 || m.Decisions == 0 || m.Attestations == 0 {
		t.Errorf("manifest: %+v", m)
	}
	if got, err := ReadManifest(dir); err != nil || got.Scans != m.Scans {
		t.Errorf("ReadManifest: %+v, %v", got, err)
	}

	st, err := sqlite.Open(ctx, filepath.Join(dir, DataDir, store.DefaultFileName), sqlite.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, ev := range []store.Event{store.EventOpened, store.EventSeen, store.EventResolved, store.EventReopened, store.EventAccepted} {
		es, err := st.Events(ctx, store.EventFilter{Events: []store.Event{ev}})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			t.Errorf("no %s events in 60 days", ev)
		}
	}
	scans, err := st.Scans(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := scans[0].FinishedAt; !last.Before(end) || last.Before(end.AddDate(0, 0, -1)) {
		t.Errorf("latest scan finished %s, want on the day before %s", last, end)
	}
	// The newest scan of the matrix location has the full observations.
	for _, s := range scans {
		if len(s.Locations) != 1 || s.Locations[0] != m.Matrix {
			continue
		}
		obs, err := st.ScanObservations(ctx, s.ID, m.Matrix)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[observe.Kind]int{}
		for _, o := range obs {
			kinds[o.Kind]++
		}
		if kinds[observe.KindHost] == 0 || kinds[observe.KindService] == 0 || kinds[observe.KindReach] == 0 {
			t.Errorf("latest scan of %s: observations by kind %v, want hosts, services and reach probes", m.Matrix, kinds)
		}
		break
	}
	// An old scan keeps no observations.
	old := scans[len(scans)-1]
	if obs, err := st.Observations(ctx, old.ID); err != nil || len(obs) != 0 {
		t.Errorf("oldest scan %s: %d observations, %v; want none (only the latest keep theirs)", old.ID, len(obs), err)
	}
}

func TestCachedReuses(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	opts := Options{Locations: 2, Assets: 40, Days: 3, FullScans: 1, StaffPerLocation: 2, End: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}
	dir, reused, err := Cached(ctx, cache, opts)
	if err != nil || reused {
		t.Fatalf("first Cached: %s %v %v", dir, reused, err)
	}
	dir2, reused, err := Cached(ctx, cache, opts)
	if err != nil || !reused || dir2 != dir {
		t.Fatalf("second Cached: %s %v %v, want %s reused", dir2, reused, err, dir)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 {
		t.Errorf("cache holds %d entries, want 1", len(entries))
	}
	opts.Days = 4
	if Key(opts) == filepath.Base(dir) {
		t.Errorf("a different size has the same key %s", Key(opts))
	}
}
