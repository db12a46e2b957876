// Command vigil-load measures the dashboard under load: it starts
// `vigil serve` on 127.0.0.1 over a synthetic data directory (a copy of
// it: see vigil-synth), signs clients in, each with its own session, has
// them request the routes in turn for a fixed time or number of requests,
// and prints p50/p90/p99/max per route and the server's memory (VmRSS,
// VmHWM from /proc). It only ever talks to 127.0.0.1.
//
//	vigil-load --vigil bin/vigil --data "$(vigil-synth --cache ~/.cache/vigil-synth)"
//	vigil-load --vigil bin/vigil --data DIR --clients 50 --duration 60s --routes /,/findings
//
// Exit status: 0 measured, 1 measured but some request failed or a p99 is
// over --p99-max, 2 could not run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/internal/synth"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		vigil     = flag.String("vigil", "bin/vigil", "vigil binary")
		serveArgs = flag.String("serve-args", "", "extra flags for vigil serve, space-separated (e.g. --debug-addr 127.0.0.1:6060 to profile it)")
		data      = flag.String("data", "", "synthetic directory (vigil-synth output); copied to a temporary directory first")
		inPlace   = flag.Bool("in-place", false, "serve --data itself instead of a copy (it is written to)")
		clients   = flag.Int("clients", 50, "concurrent clients, each with its own session")
		own       = flag.Int("sessions", 50, "clients with a session of their own (the owner, then analysts the owner creates in settings); the others share those sessions")
		duration  = flag.Duration("duration", 30*time.Second, "how long to measure")
		requests  = flag.Int("requests", 0, "stop after this many requests in all (0: --duration only)")
		warmup    = flag.Duration("warmup", 5*time.Second, "requests before measuring, not counted")
		think     = flag.Duration("think", 0, "each client's pause between requests (uniform ±50%); 0 sends the next at once, saturating the server")
		routes    = flag.String("routes", "/,/findings,/api/v1/portfolio,/api/v1/findings", "comma-separated routes")
		p99Max    = flag.Duration("p99-max", 100*time.Millisecond, "exit 1 when a route's p99 is above this")
		jsonOut   = flag.String("json", "", "also write the result as JSON to this file")
		serverLog = flag.String("server-log", "", "write the server's stderr to this file")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: vigil-load --vigil BIN --data DIR [flags]\n\nexample: vigil-load --vigil bin/vigil --data \"$(vigil-synth --cache ~/.cache/vigil-synth)\" --duration 60s\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "vigil-load: "+format+"\n", a...)
		return 2
	}
	if *data == "" {
		return fail("--data is required (generate one with vigil-synth)")
	}
	m, err := synth.ReadManifest(*data)
	if err != nil {
		return fail("--data %s: not a vigil-synth directory: %v", *data, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir := *data
	if !*inPlace {
		tmp, err := os.MkdirTemp("", "vigil-load-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(tmp)
		t := time.Now()
		if err := synth.CopyDir(tmp, *data); err != nil {
			return fail("copy %s: %v", *data, err)
		}
		// Flush the copy before measuring: gigabytes of dirty pages being
		// written back make every fsync of the server (the audit log's)
		// wait, which would show as the server's latency.
		syscall.Sync()
		fmt.Fprintf(os.Stderr, "vigil-load: copied %s to %s and synced in %s\n", *data, tmp, time.Since(t).Round(time.Millisecond))
		dir = tmp
	}
	var logw io.Writer
	if *serverLog != "" {
		f, err := os.Create(*serverLog)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		logw = f
	}
	bin, _ := filepath.Abs(*vigil)
	t := time.Now()
	srv, err := synth.StartServe(ctx, synth.ServeOptions{Vigil: bin, Dir: dir, Log: logw, Ready: 5 * time.Minute, Args: strings.Fields(*serveArgs)})
	if err != nil {
		return fail("%v", err)
	}
	defer srv.Stop()
	startup := time.Since(t)
	mem0, _ := synth.ProcMemory(srv.PID())
	fmt.Fprintf(os.Stderr, "vigil-load: vigil serve (pid %d) answered at %s after %s, RSS %.0f MiB\n", srv.PID(), srv.URL, startup.Round(time.Millisecond), float64(mem0.RSS)/(1<<20))

	cs, how, err := synth.Sessions(ctx, srv, *clients, *own)
	if err != nil {
		return fail("sign in: %v\nserver log:\n%s", err, tail(srv.Log(), 30))
	}
	fmt.Fprintf(os.Stderr, "vigil-load: %s\n", how)
	res, err := synth.RunLoad(ctx, synth.LoadOptions{Clients: cs, Routes: strings.Split(*routes, ","), Duration: *duration,
		Requests: *requests, Warmup: *warmup, PID: srv.PID(), Think: *think})
	if err != nil {
		return fail("%v\nserver log:\n%s", err, tail(srv.Log(), 30))
	}
	fmt.Printf("dataset: %d locations, %d assets, %d days, %d scans, %d findings (%d open), db %.0f MiB\n",
		len(m.LocationIDs), m.Assets, m.Options.Days, m.Scans, m.Findings, m.Open, float64(m.DBBytes)/(1<<20))
	fmt.Printf("server: started in %s; sessions: %s\n", startup.Round(time.Millisecond), how)
	res.WriteTable(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(struct {
			Manifest *synth.Manifest
			Sessions string
			Startup  time.Duration
			Result   *synth.LoadResult
		}{m, how, startup, res}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return fail("%v", err)
		}
	}
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "vigil-load: vigil serve did not stop cleanly: %v\n", err)
	}
	code := 0
	for _, r := range res.Routes {
		if r.Errors > 0 || r.P99 > *p99Max {
			code = 1
		}
	}
	return code
}

func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
