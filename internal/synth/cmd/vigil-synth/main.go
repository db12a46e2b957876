// Command vigil-synth writes a synthetic vigil data directory (a
// configuration, identity exports and a store with a year of daily scans)
// for benchmarks and browser tests. Nothing it describes is ever scanned.
//
//	vigil-synth --out /tmp/synth                   # 300 sites, 15,000 assets, 365 days
//	vigil-synth --cache ~/.cache/vigil-synth        # reuse a dataset generated earlier
//	vigil-synth --out /tmp/tiny --locations 3 --assets 60 --days 14
//
// With --cache (or VIGIL_SYNTH_CACHE) it prints the cached directory's path
// on stdout, generating it only when no complete one exists for the same
// generator version and options. Exit status: 0 done, 2 bad flags or
// generation failed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/internal/synth"
)

func main() { os.Exit(run()) }

func run() int {
	d := synth.Defaults
	var (
		out       = flag.String("out", "", "directory to generate into (must not exist or be empty)")
		cache     = flag.String("cache", os.Getenv("VIGIL_SYNTH_CACHE"), "cache directory: reuse or create the dataset there, keyed by generator version and options (env VIGIL_SYNTH_CACHE)")
		locations = flag.Int("locations", d.Locations, "locations")
		assets    = flag.Int("assets", d.Assets, "assets (hosts) over all locations")
		days      = flag.Int("days", d.Days, "days of daily scans per location")
		full      = flag.Int("full-scans", d.FullScans, "latest scans per location that keep their full observation set")
		staff     = flag.Int("staff", d.StaffPerLocation, "people per location (an EMR and an M365 account each)")
		seed      = flag.Uint64("seed", d.Seed, "random seed")
		end       = flag.String("end", "", "day after the last scan, YYYY-MM-DD (default: this week's Monday, UTC)")
		quiet     = flag.Bool("quiet", false, "no progress on stderr")
		cpuProf   = flag.String("cpuprofile", "", "write a CPU profile of the generation to this file (go tool pprof)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: vigil-synth (--out DIR | --cache DIR) [flags]\n\nexample: vigil-synth --cache ~/.cache/vigil-synth --days 365\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	opts := synth.Options{Locations: *locations, Assets: *assets, Days: *days, FullScans: *full, StaffPerLocation: *staff, Seed: *seed}
	if *end != "" {
		t, err := time.Parse(time.DateOnly, *end)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vigil-synth: --end %q: want YYYY-MM-DD\n", *end)
			return 2
		}
		opts.End = t
	}
	if !*quiet {
		opts.Progress = os.Stderr
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vigil-synth: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "vigil-synth: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case (*out == "") == (*cache == ""):
		fmt.Fprintln(os.Stderr, "vigil-synth: give exactly one of --out DIR and --cache DIR")
		return 2
	case *cache != "":
		dir, reused, err := synth.Cached(ctx, *cache, opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vigil-synth: %v\n", err)
			return 2
		}
		if reused {
			fmt.Fprintf(os.Stderr, "vigil-synth: reusing %s\n", dir)
		}
		fmt.Println(dir)
		return 0
	}
	if entries, err := os.ReadDir(*out); err == nil && len(entries) > 0 {
		fmt.Fprintf(os.Stderr, "vigil-synth: --out %s is not empty\n", *out)
		return 2
	}
	m, err := synth.Generate(ctx, *out, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil-synth: %v\n", err)
		return 2
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	fmt.Println(string(b))
	return 0
}
