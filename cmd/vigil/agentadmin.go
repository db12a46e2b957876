package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/store"
)

// Bounds of an enrollment token's life.
const (
	defaultTokenLife = 24 * time.Hour
	maxTokenLife     = 30 * 24 * time.Hour
)

// runAgentAdmin is the server side's administration of site agents:
// `vigil agent token create`, `vigil agent list`, `vigil agent revoke`.
// runAgent (cmd/vigil/agent.go) hands over when args[0] is token, list
// or revoke.
func runAgentAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fail := failer(stderr, "vigil agent")
	if len(args) == 0 {
		return fail("want token create, list or revoke (see `vigil agent --help`)")
	}
	switch args[0] {
	case "token":
		if len(args) < 2 || args[1] != "create" {
			return fail("want `vigil agent token create --config FILE --location ID`")
		}
		return runAgentTokenCreate(ctx, args[2:], stdout, stderr)
	case "list":
		return runAgentList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return runAgentRevoke(ctx, args[1:], stdout, stderr)
	}
	return fail("unknown subcommand %q: want token create, list or revoke", args[0])
}

// agentStore opens the tenant's store for writing, as one that keeps
// agents.
func agentStore(ctx context.Context, cfg *config.Config, db string) (store.AgentStore, func() error, error) {
	st, err := openStore(ctx, db, cfg)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, nil, fmt.Errorf("%w\n(while `vigil serve` runs on this SQLite database, manage agents on the dashboard's Agents page)", err)
		}
		return nil, nil, err
	}
	as, ok := st.(store.AgentStore)
	if !ok {
		st.Close()
		return nil, nil, fmt.Errorf("store %s keeps no site agents", st.Path())
	}
	return as, st.Close, nil
}

// whoami names the person at the terminal for created_by / revoked_by.
func whoami() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func runAgentTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("agent token create",
		"agent token create --config FILE --location ID [--expires 24h] [--by NAME] [--server URL] [--db URL]\n\n"+
			"Creates a one-time enrollment token for a site agent at a location and prints it on stdout,\n"+
			"once (the server keeps only its hash), with the command to run on the site sensor on stderr.\n\n"+
			"Exit codes: 0 created; 2 bad input or could not create.",
		"vigil agent token create --config /etc/vigil/glow.yaml --location downtown --server https://vigil.msp.example:8443",
		stderr)
	var (
		cfgPath, db = storeFlags(fs)
		location    = fs.String("location", "", "the location the agent scans (required)")
		expires     = fs.Duration("expires", defaultTokenLife, "how long the token may be used (at most 720h)")
		by          = fs.String("by", whoami(), "who creates it, as recorded with the token")
		server      = fs.String("server", "", "the server's URL as agents reach it, for the printed command (default a placeholder)")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil agent token create")
	switch {
	case *cfgPath == "":
		return fail("--config is required")
	case *location == "":
		return fail("--location is required: the location the agent scans")
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case *expires <= 0 || *expires > maxTokenLife:
		return fail("--expires %s: use more than 0s and at most %s", *expires, maxTokenLife)
	}
	cfg := loadConfig(*cfgPath, "vigil agent token create", stderr)
	if cfg == nil {
		return exitError
	}
	if _, ok := cfg.Location(*location); !ok {
		var ids []string
		for _, l := range cfg.Locations {
			ids = append(ids, l.ID)
		}
		return fail("--location %q is not in %s (locations: %s)", *location, cfg.Path, strings.Join(ids, ", "))
	}
	st, closeStore, err := agentStore(ctx, cfg, *db)
	if err != nil {
		return fail("%v", err)
	}
	defer closeStore()
	tok := protocol.NewToken(daemon.TenantID(cfg.Organization))
	now := time.Now()
	if err := st.CreateEnrollToken(ctx, store.EnrollToken{Hash: tok.Hash(), Location: *location, CreatedBy: *by,
		CreatedAt: now, ExpiresAt: now.Add(*expires)}); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdout, tok.String())
	fmt.Fprintf(stderr, "One-time token for an agent at %s, valid until %s; it is not shown again. On the site sensor run:\n  %s\n",
		*location, now.Add(*expires).UTC().Format(time.RFC3339), agentCommand(*server, tok.String(), selfSignedFingerprint(cfg.DataDir)))
	return exitOK
}

// agentCommand is the command an administrator pastes on the sensor.
func agentCommand(server, token, fingerprint string) string {
	if server == "" {
		server = "https://SERVER:PORT"
	}
	cmd := "vigil agent --server " + server + " --token " + token
	if fingerprint != "" {
		cmd += " --server-fingerprint " + fingerprint
	}
	return cmd
}

// selfSignedFingerprint is the fingerprint of the certificate vigil
// serve generated in the data directory, if any ("" otherwise).
func selfSignedFingerprint(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(absDir(dataDir), "tls", daemon.SelfSignedCertFile))
	if err != nil {
		return ""
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return ""
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return ""
	}
	return daemon.Fingerprint(blk.Bytes)
}

func runAgentList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("agent list",
		"agent list --config FILE [--format text|json] [--db URL]\n\n"+
			"Lists the organisation's site agents: location, host, version, when last heard from, queue, status\n"+
			"(ok, quiet after alerts.agent_quiet_after without a word, revoked). Reads the store read-only.\n\n"+
			"Exit codes: 0 listed; 2 bad input or could not read.",
		"vigil agent list --config /etc/vigil/glow.yaml", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		format      = fs.String("format", "text", "text or json")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil agent list")
	switch {
	case *cfgPath == "":
		return fail("--config is required")
	case *format != "text" && *format != "json":
		return fail("--format %q: use text or json", *format)
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	}
	cfg := loadConfig(*cfgPath, "vigil agent list", stderr)
	if cfg == nil {
		return exitError
	}
	rs, err := openReadStore(ctx, cfg, *db)
	if err != nil {
		return fail("%v", err)
	}
	defer rs.Close()
	st, ok := rs.(store.AgentStore)
	if !ok {
		return fail("this store keeps no site agents")
	}
	agents, err := st.Agents(ctx)
	if err != nil {
		return fail("%v", err)
	}
	now, quiet := time.Now(), cfg.Alerts.AgentQuietAfter.Duration
	if *format == "json" {
		type row struct {
			store.Agent
			Status string `json:"status"`
		}
		rows := make([]row, 0, len(agents))
		for _, a := range agents {
			rows = append(rows, row{Agent: a, Status: a.Status(now, quiet)})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return fail("%v", err)
		}
		return exitOK
	}
	if len(agents) == 0 {
		fmt.Fprintln(stderr, "no agents yet: create a token with `vigil agent token create --location ID`")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOCATION\tHOSTNAME\tVERSION\tLAST SEEN\tQUEUE\tSTATUS")
	for _, a := range agents {
		seen := "never"
		if !a.LastSeen.IsZero() {
			seen = a.LastSeen.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d (%d bytes)\t%s\n", a.ID, a.Location, dash(a.Hostname), dash(a.Version), seen,
			a.QueueDepth, a.QueueBytes, a.Status(now, quiet))
	}
	if err := tw.Flush(); err != nil {
		return fail("%v", err)
	}
	return exitOK
}

func runAgentRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("agent revoke",
		"agent revoke ID --config FILE [--by NAME] [--db URL]\n\n"+
			"Revokes a site agent for good: the server refuses its requests from now on. To replace it,\n"+
			"enroll a new agent with a new token.\n\n"+
			"Exit codes: 0 revoked (or already revoked); 2 bad input, unknown agent or could not revoke.",
		"vigil agent revoke ag-3f9a2c0d11e4b7a5 --config /etc/vigil/glow.yaml", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		by          = fs.String("by", whoami(), "who revokes it, as recorded with the agent")
	)
	id, rest := splitID(args)
	if done, code := parseFlags(fs, rest); done {
		return code
	}
	fail := failer(stderr, "vigil agent revoke")
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	switch {
	case *cfgPath == "":
		return fail("--config is required")
	case id == "":
		return fail("which agent? give its id (see `vigil agent list`)")
	}
	cfg := loadConfig(*cfgPath, "vigil agent revoke", stderr)
	if cfg == nil {
		return exitError
	}
	st, closeStore, err := agentStore(ctx, cfg, *db)
	if err != nil {
		return fail("%v", err)
	}
	defer closeStore()
	a, err := st.RevokeAgent(ctx, id, *by)
	if errors.Is(err, store.ErrNotFound) {
		return fail("no agent %q (see `vigil agent list`)", id)
	} else if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "%s revoked (%s at %s, by %s)\n", a.ID, dash(a.Hostname), a.Location, a.RevokedBy)
	return exitOK
}
