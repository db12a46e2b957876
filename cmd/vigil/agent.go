package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/agent"
)

// exitRefused is `vigil agent`'s exit code when the server refuses the
// agent (revoked, unknown, or the enrollment token is not accepted): a
// restart cannot help, so the systemd unit does not restart on it.
const exitRefused = 3

// Environment variables `vigil agent` reads when the flag is not given,
// so that a systemd EnvironmentFile or a container's environment can
// carry them, and the token stays off the command line.
const (
	envAgentServer      = "VIGIL_AGENT_SERVER"
	envAgentToken       = "VIGIL_AGENT_TOKEN"
	envAgentFingerprint = "VIGIL_AGENT_SERVER_FINGERPRINT"
	envAgentStateDir    = "VIGIL_AGENT_STATE_DIR"
)

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return runAgentStatus(args[1:], stdout, stderr)
		case "token", "list", "revoke":
			// The server-side administration of agents (tokens, the list
			// of agents, revocation) is cmd/vigil/agentadmin.go.
			return runAgentAdmin(ctx, args, stdout, stderr)
		}
	}
	fs := newFlags("agent",
		"agent --server URL --token TOKEN [--server-fingerprint SHA256 | --ca FILE] [--state-dir DIR] [--queue-limit BYTES] [--heartbeat 60s]\n"+
			"       vigil agent status [--state-dir DIR] [--format text|json]\n"+
			"       vigil agent token create --location ID | list | revoke ID   (on the server)\n\n"+
			"Runs a site sensor: enrolls once with a one-time token for its location, then scans\n"+
			"on the schedules the server assigns and delivers what it saw, buffering on disk\n"+
			"while the server is away. Flags fall back on "+envAgentServer+", "+envAgentToken+",\n"+
			envAgentFingerprint+" and "+envAgentStateDir+".\n"+
			"Exit codes: 0 stopped by SIGINT/SIGTERM, 2 bad flags or could not start, 3 refused by the server (revoked, unknown agent, token not accepted).",
		"vigil agent --server https://vigil.msp.example:8443 --token vge1.glow.XXXX --server-fingerprint AB:CD:...:EF",
		stderr)
	var (
		server    = fs.String("server", os.Getenv(envAgentServer), "the central vigil serve's URL (https://HOST:PORT; http:// only on loopback); needed to enroll, remembered after")
		token     = fs.String("token", "", "one-time enrollment token (vge1...), from the dashboard's Agents page or `vigil agent token create`; needed once (default $"+envAgentToken+")")
		tokenFile = fs.String("token-file", "", "read the enrollment token from FILE (a systemd credential, a Docker secret)")
		reEnroll  = fs.Bool("re-enroll", false, "enroll again with --token even though the state directory is enrolled (new key, new agent id)")
		pin       = fs.String("server-fingerprint", os.Getenv(envAgentFingerprint), "trust the server's certificate only if its SHA-256 fingerprint is this (as vigil serve prints it: AB:CD:...)")
		caFile    = fs.String("ca", "", "trust the server's certificate if a CA in this PEM file signed it (default: the system's roots)")
		stateDir  = fs.String("state-dir", envOr(envAgentStateDir, agent.DefaultStateDir), "where the agent keeps its key, credential, last assignment and queue")
		limit     = fs.String("queue-limit", "1GiB", "most the on-disk queue may hold while the server is away (bytes, or with KiB/MiB/GiB); when full, new scans wait and nothing queued is dropped")
		heartbeat = fs.Duration("heartbeat", agent.DefaultHeartbeat, "how often to report health to the server")
		grace     = fs.Duration("grace", agent.DefaultGrace, "on SIGTERM, how long a running scan may finish before it is cut short and queued as incomplete")
		vantage   = fs.String("vantage", "", "the segment this sensor probes from (default: detected from local addresses)")
		logFormat = fs.String("log-format", "text", "log format on stderr: text or json")
		verbose   = fs.Bool("verbose", false, "debug logging (every batch delivered)")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil agent")
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (see `vigil agent --help`)", fs.Arg(0))
	}
	queueLimit, err := parseBytes(*limit)
	if err != nil || queueLimit < 1<<20 {
		return fail("--queue-limit %q: give a size of at least 1MiB, e.g. 1GiB or 500MiB", *limit)
	}
	if *heartbeat < time.Second {
		return fail("--heartbeat %s: use at least 1s", *heartbeat)
	}
	if *grace < 0 {
		return fail("--grace %s: must not be negative", *grace)
	}
	if *pin != "" && *caFile != "" {
		return fail("--server-fingerprint and --ca: give one of them")
	}
	if *pin != "" {
		if _, err := agent.NormalizeFingerprint(*pin); err != nil {
			return fail("--server-fingerprint: %v", err)
		}
	}
	if *logFormat != "text" && *logFormat != "json" {
		return fail("--log-format %q: use text or json", *logFormat)
	}
	tok := *token
	switch {
	case tok != "" && *tokenFile != "":
		return fail("--token and --token-file: give one of them")
	case *tokenFile != "":
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fail("--token-file: %v", err)
		}
		tok = strings.TrimSpace(string(b))
	case tok == "":
		tok = os.Getenv(envAgentToken)
	}
	log := agentLogger(stderr, *logFormat, *verbose)

	state, err := agent.OpenState(*stateDir)
	if err != nil {
		return fail("--state-dir: %v", err)
	}
	unlock, err := state.Lock()
	if err != nil {
		return fail("--state-dir: %v", err)
	}
	defer unlock()
	trust := agent.Trust{Fingerprint: *pin, CAFile: *caFile}
	cred, err := state.Credential()
	enrolled := err == nil
	switch {
	case err != nil && !errors.Is(err, agent.ErrNotEnrolled):
		return fail("--state-dir: %v", err)
	case *reEnroll && tok == "":
		return fail("--re-enroll needs --token (a new one-time token)")
	case enrolled && !*reEnroll && tok != "":
		log.Info("already enrolled: the token is needed only once and is ignored (pass --re-enroll with a new token to enroll again)",
			"tenant", cred.Tenant, "agent", cred.AgentID, "location", cred.Location, "server", cred.Server)
	}
	scanNow := false
	if !enrolled || *reEnroll {
		if tok == "" {
			return fail("--token is required to enroll this agent: create one on the server's dashboard (Agents) or with `vigil agent token create --location ID`")
		}
		if *server == "" {
			return fail("--server is required to enroll this agent (the central vigil serve's URL)")
		}
		host, _ := os.Hostname()
		ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		cred, err = agent.Enroll(ectx, agent.EnrollOptions{State: state, Server: *server, Trust: trust, Token: tok, Version: version, Hostname: host})
		cancel()
		if err != nil {
			var se *agent.StatusError
			if errors.As(err, &se) && se.Code == 401 {
				fmt.Fprintf(stderr, "vigil agent: %v\n", err)
				return exitRefused
			}
			return fail("%v", err)
		}
		log.Info("enrolled", "tenant", cred.Tenant, "agent", cred.AgentID, "location", cred.Location, "organization", cred.Organization, "server", cred.Server)
		scanNow = true
	}
	err = agent.Run(ctx, agent.Options{State: state, Server: *server, Trust: trust, QueueLimit: queueLimit, Heartbeat: *heartbeat,
		Grace: *grace, Vantage: *vantage, ScanNow: scanNow, Logger: log, Version: version})
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, agent.ErrRefused):
		fmt.Fprintf(stderr, "vigil agent: %v\n", err)
		return exitRefused
	}
	return fail("%v", err)
}

// agentLogger logs the agent's progress at info level (it is a service);
// libraries' own logging stays at warnings, as newLogger does for them.
func agentLogger(w io.Writer, format string, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	newLogger(w, verbose)
	return slog.New(h)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parseBytes reads a size: a number of bytes, or with a KB/MB/GB or
// KiB/MiB/GiB suffix.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}

func runAgentStatus(args []string, stdout, stderr io.Writer) int {
	fl := newFlags("agent status", "agent status [--state-dir DIR] [--format text|json]\n\n"+
		"Prints the agent's enrollment, whether it runs, its queue and its last scan.\n"+
		"Exit codes: 0 enrolled, 1 not enrolled, 2 the state directory cannot be read.",
		"vigil agent status --state-dir /var/lib/vigil-agent", stderr)
	stateDir := fl.String("state-dir", envOr(envAgentStateDir, agent.DefaultStateDir), "the agent's state directory")
	format := fl.String("format", "text", "text or json")
	if done, code := parseFlags(fl, args); done {
		return code
	}
	fail := failer(stderr, "vigil agent status")
	if fl.NArg() > 0 {
		return fail("unexpected argument %q", fl.Arg(0))
	}
	if *format != "text" && *format != "json" {
		return fail("--format %q: use text or json", *format)
	}
	if _, err := os.Stat(*stateDir); err != nil {
		return fail("--state-dir: %v", err)
	}
	state := &agent.State{Dir: *stateDir}
	cred, err := state.Credential()
	if err != nil && !errors.Is(err, agent.ErrNotEnrolled) {
		return fail("%v", err)
	}
	st, err := state.Status()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("%v", err)
	}
	running, pid := state.Running()
	if *format == "json" {
		out := struct {
			Enrolled   bool              `json:"enrolled"`
			Credential *agent.Credential `json:"credential,omitempty"`
			Running    bool              `json:"running"`
			PID        int               `json:"pid,omitempty"`
			Status     *agent.Status     `json:"status,omitempty"`
		}{cred != nil, cred, running, pid, st}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	} else {
		printAgentStatus(stdout, cred, running, pid, st)
	}
	if cred == nil {
		return exitFindings
	}
	return exitOK
}

func printAgentStatus(w io.Writer, cred *agent.Credential, running bool, pid int, st *agent.Status) {
	row := func(k, format string, a ...any) { fmt.Fprintf(w, "%-12s %s\n", k+":", fmt.Sprintf(format, a...)) }
	if cred == nil {
		row("enrolled", "no: run `vigil agent --server URL --token TOKEN` once")
	} else {
		row("enrolled", "as %s/%s for location %s, %s", cred.Tenant, cred.AgentID, cred.Location, cred.EnrolledAt.Local().Format(time.DateTime))
		trust := "system roots"
		switch {
		case cred.ServerFingerprint != "":
			trust = "certificate pinned " + cred.ServerFingerprint
		case cred.CAFile != "":
			trust = "CA " + cred.CAFile
		case strings.HasPrefix(cred.Server, "http://"):
			trust = "plain http on loopback"
		}
		row("server", "%s (%s)", cred.Server, trust)
	}
	if running {
		row("agent", "running (pid %d)", pid)
	} else {
		row("agent", "not running")
	}
	if st == nil {
		row("queue", "unknown (the agent has not run yet)")
		return
	}
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), time.Since(t).Round(time.Second))
	}
	full := ""
	if st.QueueFull {
		full = " FULL: new scans wait until the server takes some"
	}
	row("queue", "%d batch(es) waiting, %s of %s%s (as of %s)", st.QueueDepth, humanBytes(st.QueueBytes), humanBytes(st.QueueLimit), full, ago(st.UpdatedAt))
	if st.LastScanID != "" {
		state := "complete"
		if !st.LastScanComplete {
			state = "incomplete"
		}
		row("last scan", "%s, started %s, %s", st.LastScanID, ago(st.LastScanAt), state)
	} else {
		row("last scan", "none yet")
	}
	row("delivered", "%s", ago(st.LastDeliveredAt))
	row("heartbeat", "%s", ago(st.LastHeartbeatAt))
	if st.AssignmentVersion != "" {
		v := st.AssignmentVersion
		if len(v) > 12 {
			v = v[:12]
		}
		row("assignment", "version %s", v)
	}
	if st.LastError != "" {
		row("last error", "%s", st.LastError)
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
