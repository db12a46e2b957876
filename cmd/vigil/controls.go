package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vigilhq/vigil/controls"
)

func runControls(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("controls", "controls --config FILE [--location ID] [--framework hipaa|cpg|insurance|state] [--format text|json]\n\n"+
		"Prints the status of every control that applies, computed from the store: satisfied, gap\n"+
		"(an open finding cites it), not-assessed (no recent complete scan ran its rules), or an\n"+
		"attestation missing or expired, with the reasons. Never satisfied without evidence.\n"+
		"See docs/controls.md.\n\n"+
		"Exit codes: 0 printed (whatever the statuses); 2 could not read the store or config.",
		"vigil controls --config vigil.yaml --location downtown --framework hipaa", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		location    = fs.String("location", "", "show one location's status (default: the organisation's roll-up)")
		framework   = fs.String("framework", "", "only controls of this framework: hipaa, cpg, insurance or state")
		format      = fs.String("format", "text", "text or json")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil controls")
	if code, ok := checkCommon(fail, *cfgPath, *format, fs.Args()); !ok {
		return code
	}
	rs, code := openRead(ctx, *cfgPath, *db, "vigil controls", true, stderr, fail)
	if rs == nil {
		return code
	}
	defer rs.Close()
	cfg, snap := rs.cfg, rs.snap
	if *location != "" {
		if _, ok := cfg.Location(*location); !ok {
			return fail("--location %q is not a location in %s", *location, *cfgPath)
		}
	}
	var list []controls.ControlStatus
	for _, c := range snap.Controls {
		if *framework != "" && c.Control.Framework != *framework {
			continue
		}
		if *location == "" {
			list = append(list, c)
			continue
		}
		for _, l := range c.ByLocation {
			if l.Location == *location {
				list = append(list, l)
			}
		}
	}
	if *format == "json" {
		return writeJSON(stdout, list, fail)
	}
	counts := map[controls.Verdict]int{}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTROL\tSTATUS\tWHERE\tWHY")
	for _, c := range list {
		counts[c.Status]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Control.ID, c.Label(), where(c), truncate(strings.Join(c.Reasons, " "), 110))
	}
	tw.Flush()
	scope := "organisation " + dash(cfg.Organization)
	if *location != "" {
		scope = "location " + *location
	}
	fmt.Fprintf(stdout, "\n%s: %d controls:", scope, len(list))
	for _, v := range controls.Verdicts {
		fmt.Fprintf(stdout, " %d %s,", counts[v], v)
	}
	fmt.Fprintf(stdout, " as of %s (catalog %s)\n", snap.Now.UTC().Format("2006-01-02 15:04 MST"), snap.Catalog.Version)
	return exitOK
}

// where summarises an organisation roll-up's per-location verdicts:
// "downtown gap, uptown satisfied".
func where(c controls.ControlStatus) string {
	if len(c.ByLocation) == 0 {
		return dash(c.Location)
	}
	byVerdict := map[controls.Verdict][]string{}
	for _, l := range c.ByLocation {
		byVerdict[l.Status] = append(byVerdict[l.Status], l.Location)
	}
	if len(byVerdict) == 1 {
		return "all locations"
	}
	var parts []string
	for i := len(controls.Verdicts) - 1; i >= 0; i-- {
		v := controls.Verdicts[i]
		if locs := byVerdict[v]; len(locs) > 0 {
			parts = append(parts, string(v)+": "+strings.Join(locs, " "))
		}
	}
	return strings.Join(parts, "; ")
}
