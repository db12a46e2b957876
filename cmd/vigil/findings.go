package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/store"
)

func runFindings(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "vigil findings", `Usage: vigil findings list|accept|false-positive|reopen|ttr [flags]

  list            print stored findings (filter by location, status, severity)
  accept          accept a finding's risk: who, why, until when (it reopens then)
  false-positive  mark a finding a false positive: who, why, until when
  reopen          undo an acceptance or false positive
  ttr             time to remediate, per category and per location

A finding is named by its id or a unique prefix of it (as `+"`vigil findings list`"+` shows).
Run `+"`vigil findings accept --help`"+` (list, ...) for flags and an example. See docs/risk.md.
`, []verb{{"list", runFindingsList}, {"accept", decideVerb(observe.StatusAccepted)}, {"false-positive", decideVerb(observe.StatusFalsePositive)},
		{"reopen", decideVerb(observe.StatusOpen)}, {"ttr", runFindingsTTR}}, args, stdout, stderr)
}

func runFindingsList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("findings list", "findings list --config FILE [--location ID] [--status open,accepted] [--severity high] [--format text|json]\n\n"+
		"Prints the stored findings, highest severity first. Status is as of now: an acceptance\n"+
		"whose expiry passed shows open.\n\nExit codes: 0 printed; 2 could not read.",
		"vigil findings list --config vigil.yaml --status open --severity high", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		format      = fs.String("format", "text", "text or json")
		severity    = fs.String("severity", "", "only findings at or above this severity")
		locs        multiFlag
		statuses    multiFlag
	)
	fs.Var(&locs, "location", "only this location (repeatable; \"\" is not a location: organisation-wide findings show with -)")
	fs.Var(&statuses, "status", "only these statuses: open, resolved, accepted, false-positive (repeatable)")
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil findings list")
	if code, ok := checkCommon(fail, *cfgPath, *format, fs.Args()); !ok {
		return code
	}
	rs, code := openRead(ctx, *cfgPath, *db, "vigil findings", false, stderr, fail)
	if rs == nil {
		return code
	}
	defer rs.Close()
	all, err := rs.st.Findings(ctx, store.FindingFilter{Locations: locs, MinSeverity: observe.Severity(*severity)})
	if err != nil {
		return fail("%v", err)
	}
	now := time.Now()
	var out []observe.Finding
	for _, f := range all {
		f.Status = f.StatusAt(now)
		if len(statuses) == 0 || containsStatus(statuses, f.Status) {
			out = append(out, f)
		}
	}
	if *format == "json" {
		if out == nil {
			out = []observe.Finding{}
		}
		return writeJSON(stdout, out, fail)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tSTATUS\tLOCATION\tTARGET\tRULE\tFIRST SEEN\tDECISION")
	for _, f := range out {
		dec := "-"
		if d := f.Decision; d != nil {
			dec = fmt.Sprintf("%s by %s until %s", d.Status, d.By, dateOrDash(d.Expires))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID[:12], f.Severity, f.Status, dash(f.Location), truncate(f.Target, 40),
			f.Rule, dateOrDash(f.FirstSeen), dec)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d findings\n", len(out))
	return exitOK
}

func containsStatus(list []string, s observe.Status) bool {
	for _, v := range list {
		if observe.Status(v) == s {
			return true
		}
	}
	return false
}

// decideVerb returns the accept / false-positive / reopen verb.
func decideVerb(status observe.Status) func(context.Context, []string, io.Writer, io.Writer) int {
	name := map[observe.Status]string{observe.StatusAccepted: "accept", observe.StatusFalsePositive: "false-positive",
		observe.StatusOpen: "reopen"}[status]
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		synopsis := "findings " + name + " ID --config FILE --by NAME --reason TEXT"
		what := "Reopens an accepted or false-positive finding (undoes the decision)."
		example := "vigil findings reopen 3f9a2c --config vigil.yaml --by \"Dana Ruiz\" --reason \"the ISP router was replaced\""
		if status != observe.StatusOpen {
			synopsis += " (--until YYYY-MM-DD | --for DAYS)"
			what = "Records that a person " + map[observe.Status]string{observe.StatusAccepted: "accepts the finding's risk",
				observe.StatusFalsePositive: "judges the finding a false positive"}[status] +
				", why, and until when (at most a year).\nOn expiry the finding reopens. The decision goes into its history and the evidence log."
			example = "vigil findings " + name + " 3f9a2c --config vigil.yaml --by \"Dr. Lee\" --reason \"printer VLAN, replaced in Q3\" --for 90"
		}
		fs := newFlags("findings "+name, synopsis+"\n\n"+what+"\n\nExit codes: 0 recorded; 2 bad input or could not record.", example, stderr)
		var (
			cfgPath, db = storeFlags(fs)
			by          = fs.String("by", "", "who decides (required)")
			reason      = fs.String("reason", "", "why (required)")
			until       = fs.String("until", "", "YYYY-MM-DD the decision ends (accept, false-positive)")
			forDur      = fs.String("for", "", "days the decision lasts, e.g. 90 (accept, false-positive)")
		)
		id, rest := splitID(args)
		if done, code := parseFlags(fs, rest); done {
			return code
		}
		fail := failer(stderr, "vigil findings "+name)
		if id == "" && fs.NArg() > 0 {
			id = fs.Arg(0)
		}
		switch {
		case *cfgPath == "":
			return fail("--config is required")
		case id == "":
			return fail("which finding? give its id (see `vigil findings list`)")
		}
		d := observe.Decision{Status: status, By: *by, Reason: *reason}
		now := time.Now()
		if status != observe.StatusOpen {
			exp, err := parseExpiry(*until, *forDur, now)
			if err != nil {
				return fail("%v", err)
			}
			d.Expires = exp
		}
		cfg := loadConfig(*cfgPath, "vigil findings", stderr)
		if cfg == nil {
			return exitError
		}
		st, err := openWriteStore(ctx, cfg, *db)
		if err != nil {
			return fail("%v", err)
		}
		defer st.Close()
		f, err := findFinding(ctx, st, id)
		if err != nil {
			return fail("%v", err)
		}
		if status == observe.StatusOpen && f.Status != observe.StatusAccepted && f.Status != observe.StatusFalsePositive {
			return fail("finding %s is %s: only an accepted or false-positive finding can be reopened", f.ID, f.Status)
		}
		got, err := st.DecideFinding(ctx, f.ID, d)
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stdout, "%s %s (%s at %s, %s)", got.ID, got.Status, got.Rule, got.Target, dash(got.Location))
		if got.Decision != nil {
			fmt.Fprintf(stdout, " until %s", got.Decision.Expires.UTC().Format(time.DateOnly))
		}
		fmt.Fprintln(stdout)
		return exitOK
	}
}

// splitID takes a leading positional argument (the id) off args, so that
// flags may come after it.
func splitID(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// findFinding resolves a finding id or a unique prefix of one.
func findFinding(ctx context.Context, st interface {
	Findings(context.Context, store.FindingFilter) ([]observe.Finding, error)
}, id string) (observe.Finding, error) {
	all, err := st.Findings(ctx, store.FindingFilter{})
	if err != nil {
		return observe.Finding{}, err
	}
	var match []observe.Finding
	for _, f := range all {
		if f.ID == id {
			return f, nil
		}
		if strings.HasPrefix(f.ID, id) {
			match = append(match, f)
		}
	}
	switch len(match) {
	case 0:
		return observe.Finding{}, fmt.Errorf("no finding %q: %w (see `vigil findings list`)", id, store.ErrNotFound)
	case 1:
		return match[0], nil
	}
	return observe.Finding{}, fmt.Errorf("%q names %d findings: give more of the id", id, len(match))
}

func runFindingsTTR(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("findings ttr", "findings ttr --config FILE [--since YYYY-MM-DD] [--format text|json]\n\n"+
		"Time to remediate: how long exposures lasted from the scan that found them (or found them\n"+
		"again) to the one that no longer saw them, per finding category and per location, and how\n"+
		"many still stand. \"verified\" counts the ones a scan closed, not a person.\n\n"+
		"Exit codes: 0 printed; 2 could not read.",
		"vigil findings ttr --config vigil.yaml --since 2026-01-01", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		format      = fs.String("format", "text", "text or json")
		since       = fs.String("since", "", "only exposures opened on or after this date")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil findings ttr")
	if code, ok := checkCommon(fail, *cfgPath, *format, fs.Args()); !ok {
		return code
	}
	var from time.Time
	if *since != "" {
		var err error
		if from, err = time.Parse(time.DateOnly, *since); err != nil {
			return fail("--since %q: want YYYY-MM-DD", *since)
		}
	}
	rs, code := openRead(ctx, *cfgPath, *db, "vigil findings", false, stderr, fail)
	if rs == nil {
		return code
	}
	defer rs.Close()
	st := rs.st
	findings, err := st.Findings(ctx, store.FindingFilter{})
	if err != nil {
		return fail("%v", err)
	}
	events, err := st.Events(ctx, store.EventFilter{Events: risk.RemediationEvents, Since: from})
	if err != nil {
		return fail("%v", err)
	}
	byCat, byLoc := risk.TimeToRemediate(findings, events, time.Now())
	if *format == "json" {
		return writeJSON(stdout, map[string]any{"by_category": byCat, "by_location": byLoc}, fail)
	}
	for _, t := range []struct {
		title string
		rows  []risk.Remediation
	}{{"CATEGORY", byCat}, {"LOCATION", byLoc}} {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%s\tREMEDIATED\tVERIFIED\tMEDIAN d\tMEAN d\tP90 d\tMAX d\tSTILL OPEN\tOLDEST OPEN d\t\n", t.title)
		for _, r := range t.rows {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t\n", r.Key, r.Remediated, r.Verified,
				risk.Days(r.Median), risk.Days(r.Mean), risk.Days(r.P90), risk.Days(r.Max), r.Open, risk.Days(r.OldestOpen))
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	return exitOK
}
