package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
)

func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("trace", "trace risk|control|finding ID --config FILE [--format text|json]\n\n"+
		"Prints the documented trail an auditor follows: risk -> controls (status per location) ->\n"+
		"findings per location -> the observations behind each, with timestamps -> treatment and\n"+
		"dates (detected, accepted, remediated, and the scan that verified it), with the evidence-log\n"+
		"entries (seq and hash) that `vigil evidence verify` checks.\n\n"+
		"Exit codes: 0 printed; 2 unknown id or could not read.",
		"vigil trace control 'hipaa:164.312(d)' --config vigil.yaml", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		format      = fs.String("format", "text", "text or json")
	)
	var what, id string
	rest := args
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		what, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	if done, code := parseFlags(fs, rest); done {
		return code
	}
	fail := failer(stderr, "vigil trace")
	if code, ok := checkCommon(fail, *cfgPath, *format, fs.Args()); !ok {
		return code
	}
	if what != "risk" && what != "control" && what != "finding" {
		return fail("trace what? `vigil trace risk|control|finding ID` (see `vigil trace --help`)")
	}
	if id == "" {
		return fail("which %s? give its id", what)
	}
	rs, code := openRead(ctx, *cfgPath, *db, "vigil trace", true, stderr, fail)
	if rs == nil {
		return code
	}
	defer rs.Close()
	st, snap := rs.st, rs.snap
	byID := snap.FindingsByID()
	var out any
	var traces []risk.Trace
	switch what {
	case "risk":
		r, ok := risk.Find(snap.Register, id)
		if !ok {
			return fail("no risk %q in the register (see `vigil risk list --all`)", id)
		}
		t, err := risk.TraceRisk(ctx, st, *r, byID, snap.Controls)
		if err != nil {
			return fail("%v", err)
		}
		out, traces = t, []risk.Trace{*t}
	case "control":
		c, ok := snap.Control(id)
		if !ok {
			return fail("no control %q applies here (ids look like hipaa:164.312(d); see `vigil controls`)", id)
		}
		ct, err := risk.TraceControl(ctx, st, *c, snap.Register, byID, snap.Controls)
		if err != nil {
			return fail("%v", err)
		}
		out, traces = ct, ct.Risks
		if *format == "text" {
			fmt.Fprintf(stdout, "CONTROL %s %s: %s\n", c.Control.ID, c.Control.Title, c.Label())
			for _, r := range c.Reasons {
				fmt.Fprintf(stdout, "  %s\n", r)
			}
			fmt.Fprintf(stdout, "  per location: %s\n\n", where(*c))
		}
	case "finding":
		f, err := findFinding(ctx, st, id)
		if err != nil {
			return fail("%v", err)
		}
		f.Status = f.StatusAt(snap.Now)
		r, _ := risk.Find(snap.Register, risk.FindingRiskID(&f))
		t, err := risk.TraceRisk(ctx, st, *r, map[string]observe.Finding{f.ID: f}, snap.Controls)
		if err != nil {
			return fail("%v", err)
		}
		out, traces = t, []risk.Trace{*t}
	}
	if *format == "json" {
		return writeJSON(stdout, out, fail)
	}
	if len(traces) == 0 {
		fmt.Fprintln(stdout, "no risk in the register cites it")
	}
	for i := range traces {
		printTrace(stdout, &traces[i])
	}
	return exitOK
}

func printTrace(w io.Writer, t *risk.Trace) {
	r := t.Risk
	fmt.Fprintf(w, "RISK %s  [%s: likelihood %s x impact %s = %s]\n", r.ID, r.Status, r.Likelihood, r.Impact, r.Level)
	fmt.Fprintf(w, "  threat:        %s\n  vulnerability: %s\n", r.Threat, r.Vulnerability)
	for _, why := range r.Rationale {
		fmt.Fprintf(w, "  rated:         %s\n", why)
	}
	fmt.Fprintf(w, "  owner %s, treatment %s, due %s", dash(r.Owner), dash(string(r.Treatment)), dateOrDash(r.Due))
	if r.DueDefault {
		fmt.Fprint(w, " (default for its level)")
	}
	if r.Overdue {
		fmt.Fprint(w, " OVERDUE")
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintln(w, "  CONTROLS")
	for _, c := range t.Controls {
		fmt.Fprintf(w, "    %s %s: %s\n", c.ID, c.Title, dash(string(c.Status)))
	}
	fmt.Fprintln(w, "  FINDINGS")
	for _, f := range t.Findings {
		fmt.Fprintf(w, "    %s %s at %s (%s) — %s\n", f.Finding.ID[:12], f.Finding.Rule, f.Finding.Target, dash(f.Finding.Location), f.Finding.Status)
		fmt.Fprintf(w, "      detected %s by scan %s", stamp(f.Detected), dash(f.DetectedScan))
		if !f.Remediated.IsZero() {
			fmt.Fprintf(w, "; remediated %s", stamp(f.Remediated))
			if f.VerifiedScan != "" {
				fmt.Fprintf(w, ", verified by scan %s", f.VerifiedScan)
			} else {
				fmt.Fprint(w, ", marked fixed by a person, not yet verified by a scan")
			}
			fmt.Fprintf(w, " (%.1f days)", risk.Days(f.TimeToRemediate))
		}
		fmt.Fprintln(w)
		if d := f.Decision; d != nil {
			fmt.Fprintf(w, "      %s by %s on %s until %s: %s\n", d.Status, d.By, dateOrDash(d.At), dateOrDash(d.Expires), d.Reason)
		}
		for _, s := range f.Observed {
			for _, o := range s.Observations {
				fmt.Fprintf(w, "      observed %s in scan %s: %s %s from %s via %s\n", stamp(o.At), s.Scan, o.Kind, o.Target(), dash(o.Vantage), o.Source)
			}
			if s.More > 0 {
				fmt.Fprintf(w, "      ... and %d more observations in scan %s\n", s.More, s.Scan)
			}
		}
		for _, e := range f.History {
			fmt.Fprintf(w, "      %s %s", stamp(e.At), e.Event)
			if e.ScanID != "" {
				fmt.Fprintf(w, " (scan %s)", e.ScanID)
			}
			if e.Note != "" {
				fmt.Fprintf(w, ": %s", e.Note)
			}
			fmt.Fprintln(w)
		}
		if n := len(f.Evidence); n > 0 {
			fmt.Fprintf(w, "      evidence log: %d entries, seq %d-%d, last hash %s\n", n, f.Evidence[0].Seq, f.Evidence[n-1].Seq, f.Evidence[n-1].Hash)
		}
	}
	if len(t.Treatments) > 0 {
		fmt.Fprintln(w, "  TREATMENT")
		for _, tr := range t.Treatments {
			fmt.Fprintf(w, "    %s %s by %s: owner %s, due %s", stamp(tr.RecordedAt), dash(string(tr.Treatment)), tr.By, dash(tr.Owner), dateOrDash(tr.Due))
			if !tr.Expires.IsZero() {
				fmt.Fprintf(w, ", until %s", dateOrDash(tr.Expires))
			}
			if tr.Reason != "" {
				fmt.Fprintf(w, ": %s", tr.Reason)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
