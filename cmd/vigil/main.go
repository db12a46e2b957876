// Command vigil scans the networks of a medspa group for the gaps HIPAA's
// Security Rule, state law and insurers ask about, and reports them as
// findings tied to controls. See `vigil help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vigilhq/vigil/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes of every command (CONTRACT.md).
const (
	exitOK       = 0
	exitFindings = 1
	exitError    = 2
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"scan", "scan the configured locations once and print the findings", runScan},
		{"serve", "run the daemon: scheduled scans, dashboard, /metrics (vigil serve --config FILE)", runServe},
		{"agent", "run a site sensor for a central vigil serve, or manage agents (vigil agent --server URL --token TOKEN | status | token create)", runAgent},
		{"rules", "test or lint rule packs (vigil rules test|lint [DIR])", runRules},
		{"evidence", "export or verify the tamper-evident evidence log (vigil evidence export|verify)", runEvidence},
		{"attest", "record administrative safeguards and list what is due (vigil attest add|list|due)", runAttest},
		{"controls", "print every control's status from the store, with the reasons (vigil controls)", runControls},
		{"findings", "list findings, accept them or mark false positives, time to remediate (vigil findings list|accept|...)", runFindings},
		{"risk", "the risk register: list, set owner/treatment/due, accept (vigil risk list|set|accept)", runRisk},
		{"trace", "the trail from a risk or control to findings, evidence and treatment (vigil trace risk|control|finding ID)", runTrace},
		{"report", "write the OCR audit pack, insurance questionnaire or due-diligence summary (vigil report --kind ocr|insurance|diligence)", runReport},
		{"db", "migrate a database, or move one from SQLite to PostgreSQL (vigil db migrate|move)", runDB},
		{"version", "print vigil's version", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	ctx, stop := signalContext(stderr)
	defer stop()
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q (run `vigil help` for the list)\n", args[0])
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "vigil: security posture scanning for multi-location medical spas.")
	fmt.Fprintln(w, "\nUsage: vigil <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `vigil <command> --help` for a command's flags and an example.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 findings at or above --fail-on, 2 could not run.")
}

// signalContext is cancelled on the first SIGINT/SIGTERM so a scan can stop
// cleanly and keep what finished; a second signal exits at once.
func signalContext(stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-ch
		if !ok {
			return
		}
		fmt.Fprintf(stderr, "\nvigil: %v: stopping, keeping what finished (press Ctrl-C again to quit at once)\n", s)
		cancel(fmt.Errorf("interrupted by %v", s))
		if _, ok := <-ch; ok {
			fmt.Fprintln(stderr, "vigil: second interrupt: quitting now; the scan stays unfinished in the store")
			os.Exit(exitError)
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel(nil) }
}

// newFlags returns a flag set whose --help prints a summary, the flags and
// an example.
func newFlags(name, synopsis, example string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vigil %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nExample:\n  %s\n", example)
	}
	return fs
}

// parseFlags parses args; it returns done=true with the exit code when the
// command should stop (help, or a flag error).
func parseFlags(fs *flag.FlagSet, args []string) (done bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, exitOK
		}
		return true, exitError
	}
	return false, 0
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	// Libraries (osv-scanner, telegraf's plugins) log their progress
	// through the default slog logger and the log package: route both
	// through vigil's, so they keep quiet unless --verbose.
	slog.SetDefault(l)
	return l
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "version", "vigil version", stderr)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "vigil %s\n", version)
	return exitOK
}

// loadConfig loads the configuration for the command prog ("vigil scan"):
// on failure it prints every problem with its file and line and returns
// nil, so the caller exits 2.
func loadConfig(path, prog string, stderr io.Writer) *config.Config {
	cfg, err := config.Load(path)
	if err == nil {
		return cfg
	}
	var ce config.Errors
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "%s: %d problem(s) in the configuration:\n%v\n", prog, len(ce), err)
	} else {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	}
	return nil
}

// verb is one subcommand of a command with verbs (vigil attest add).
type verb struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// runVerbs dispatches args[0] to its verb; usage is printed for no verb
// (exit 2) or for help (exit 0).
func runVerbs(ctx context.Context, prog, usage string, verbs []verb, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	var names []string
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, args[1:], stdout, stderr)
		}
		names = append(names, v.name)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: unknown verb %q: use %s\n", prog, args[0], strings.Join(names, ", "))
	return exitError
}
