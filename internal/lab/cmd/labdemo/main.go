// Command labdemo builds the network-namespace lab of internal/lab (real
// daemons with planted weaknesses), runs `vigil scan` against it from the
// lab's guest segment, prints the findings and tears the lab down.
//
// Usage (as root, after scripts/install-deps.sh and go build -o bin/vigil ./cmd/vigil):
//
//	labdemo --vigil bin/vigil [--format text|json] [--keep]
//
// Exit status: 0 when the scan ran (whatever it found), 2 when it could not
// run, 130 when interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/internal/lab"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("labdemo", flag.ContinueOnError)
	vigil := fs.String("vigil", "", "path of the built vigil binary (go build -o bin/vigil ./cmd/vigil); empty with --keep: only build the lab")
	format := fs.String("format", "text", "scan output format: text or json")
	keep := fs.Bool("keep", false, "leave the lab up after the scan until Ctrl-C")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: labdemo --vigil PATH [--format text|json] [--keep]\n\n"+
			"Builds a network-namespace lab of real daemons with planted weaknesses,\n"+
			"scans it with vigil from the lab's guest segment and tears it down.\n"+
			"Needs root: sudo make demo\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(os.Stderr, "labdemo: --format must be text or json, not %q\n", *format)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "labdemo: the demo builds network namespaces and needs root: sudo make demo")
		return 2
	}
	if err := lab.Check(); err != nil {
		fmt.Fprintf(os.Stderr, "labdemo: %v\n", err)
		return 2
	}
	if *vigil == "" && !*keep {
		fmt.Fprintln(os.Stderr, "labdemo: --vigil PATH is required (build it with: go build -o bin/vigil ./cmd/vigil)")
		return 2
	}
	if *vigil != "" {
		if _, err := exec.LookPath("nmap"); err != nil {
			fmt.Fprintln(os.Stderr, "labdemo: nmap is not installed: run scripts/install-deps.sh")
			return 2
		}
		abs, err := filepath.Abs(*vigil)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "labdemo: vigil binary %q: %v (build it with: go build -o bin/vigil ./cmd/vigil)\n", *vigil, err)
			return 2
		}
		*vigil = abs
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := lab.Start(ctx, lab.Options{Progress: os.Stderr})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "labdemo: interrupted")
			return 130
		}
		fmt.Fprintf(os.Stderr, "labdemo: %v\n", err)
		return 2
	}
	code := scanAndWait(ctx, l, *vigil, *format, *keep)
	fmt.Fprint(os.Stderr, "tearing the lab down ... ")
	if err := l.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "failed: %v\n", err)
		return 2
	}
	fmt.Fprintln(os.Stderr, "done")
	return code
}

// scanAndWait runs the scan (if a binary was given) and, with keep, waits
// for Ctrl-C. It returns the demo's exit code.
func scanAndWait(ctx context.Context, l *lab.Lab, vigil, format string, keep bool) int {
	code := 0
	if vigil != "" {
		code = scan(ctx, l, vigil, format)
	}
	if keep && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "\nthe lab is up: scanner namespace %s (%s), lab dir %s\n"+
			"  e.g. ip netns exec %s nmap -sV -p %s 10.77.2.0/24\n"+
			"press Ctrl-C to tear it down\n",
			l.ScannerNamespace(), lab.ScannerAddr, l.Dir(), l.ScannerNamespace(), lab.Ports)
		<-ctx.Done()
		return code
	}
	if ctx.Err() != nil {
		return 130
	}
	return code
}

func scan(ctx context.Context, l *lab.Lab, vigil, format string) int {
	tmp, err := os.MkdirTemp("", "vigil-labdemo-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "labdemo: %v\n", err)
		return 2
	}
	defer os.RemoveAll(tmp)
	cfg := filepath.Join(tmp, "vigil.yaml")
	extra, err := writeSources(tmp, time.Now())
	if err != nil {
		fmt.Fprintf(os.Stderr, "labdemo: writing the identity exports: %v\n", err)
		return 2
	}
	if err := l.WriteConfigWith(cfg, filepath.Join(tmp, "data"), lab.ConfigOptions{Extra: extra}); err != nil {
		fmt.Fprintf(os.Stderr, "labdemo: writing config: %v\n", err)
		return 2
	}
	args := []string{"scan", "--config", cfg, "--format", format, "--fail-on", "critical"}
	fmt.Fprintf(os.Stderr, "\nrunning in the scanner namespace (%s): vigil %v\n\n", lab.ScannerAddr, args)
	cmd := l.Command(ctx, vigil, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// On Ctrl-C the terminal already sent SIGINT to vigil (same process
	// group); give it a moment to finish writing before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	t0 := time.Now()
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "\nlabdemo: interrupted")
		return 130
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		// Findings at or above --fail-on: that is what the demo is for.
	case errors.As(err, &exit):
		fmt.Fprintf(os.Stderr, "\nlabdemo: vigil scan exited with status %d\n", exit.ExitCode())
		return 2
	default:
		fmt.Fprintf(os.Stderr, "\nlabdemo: running vigil: %v\n", err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "\nscan finished in %s\n", time.Since(t0).Round(time.Second))
	return 0
}
