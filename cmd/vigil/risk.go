package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
)

func runRisk(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "vigil risk", `Usage: vigil risk list|set|accept [flags]

  list    print the risk register: risks from findings and unmet controls, rated likelihood x impact
  set     record an owner, a treatment (mitigate, transfer), a due date or a re-rating, with who and why
  accept  accept a risk and its findings: who, why, until when (at most a year; it reopens then)

Risk ids: RULE@LOCATION (`+"`organisation`"+` for organisation-wide findings) or control:CONTROL.
Run `+"`vigil risk set --help`"+` (list, accept) for flags and an example. See docs/risk.md.
`, []verb{{"list", runRiskList}, {"set", runRiskSet}, {"accept", runRiskAccept}}, args, stdout, stderr)
}

func runRiskList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("risk list", "risk list --config FILE [--all] [--format text|json|csv]\n\n"+
		"Prints the risk register, highest level first: each risk's likelihood, impact and level on\n"+
		"the NIST SP 800-30 Rev. 1 scales, owner, treatment, due date and status. Closed risks (all\n"+
		"findings resolved) only with --all.\n\n"+
		"Exit codes: 0 no open risk is overdue; 1 at least one is; 2 could not read.",
		"vigil risk list --config vigil.yaml --format csv > register.csv", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		format      = fs.String("format", "text", "text, json or csv")
		all         = fs.Bool("all", false, "include closed risks")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil risk list")
	f := *format
	if f == "csv" {
		f = "text"
	}
	if code, ok := checkCommon(fail, *cfgPath, f, fs.Args()); !ok {
		return code
	}
	rs, code := openRead(ctx, *cfgPath, *db, "vigil risk", true, stderr, fail)
	if rs == nil {
		return code
	}
	defer rs.Close()
	snap := rs.snap
	list := []risk.Risk{}
	for _, r := range snap.Register {
		if r.Status == risk.StatusClosed && !*all {
			continue
		}
		if r.Overdue {
			code = exitFindings
		}
		list = append(list, r)
	}
	switch *format {
	case "json":
		if c := writeJSON(stdout, map[string]any{"as_of": snap.Now.UTC(), "summary": risk.Summarize(list), "risks": list}, fail); c != exitOK {
			return c
		}
		return code
	case "csv":
		w := csv.NewWriter(stdout)
		w.Write([]string{"id", "title", "location", "threat", "vulnerability", "controls", "likelihood", "impact", "level",
			"owner", "treatment", "due", "overdue", "status", "open_findings", "first_detected", "notes"})
		for _, r := range list {
			w.Write([]string{r.ID, r.Title, locLabel(r), r.Threat, r.Vulnerability, strings.Join(r.Controls, " "),
				r.Likelihood.String(), r.Impact.String(), r.Level.String(), r.Owner, string(r.Treatment), dateOrDash(r.Due),
				fmt.Sprint(r.Overdue), string(r.Status), fmt.Sprint(r.Open), dateOrDash(r.FirstDetected), strings.Join(r.Notes, "; ")})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return fail("%v", err)
		}
		return code
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tLIKELIHOOD x IMPACT\tSTATUS\tRISK\tOPEN\tOWNER\tTREATMENT\tDUE")
	for _, r := range list {
		due := dateOrDash(r.Due)
		if r.Overdue {
			due += " OVERDUE"
		}
		fmt.Fprintf(tw, "%s\t%s x %s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Level, r.Likelihood, r.Impact, r.Status, r.ID, r.Open,
			dash(r.Owner), dash(string(r.Treatment)), due)
	}
	tw.Flush()
	s := risk.Summarize(list)
	fmt.Fprintf(stdout, "\n%d risks: %d open, %d accepted, %d transferred, %d closed; %d overdue, %d without an owner\n",
		len(list), s.ByStatus[risk.StatusOpen], s.ByStatus[risk.StatusAccepted], s.ByStatus[risk.StatusTransferred],
		s.ByStatus[risk.StatusClosed], s.Overdue, s.Unowned)
	return code
}

func locLabel(r risk.Risk) string {
	if r.Location != "" {
		return r.Location
	}
	if len(r.Locations) > 0 {
		return strings.Join(r.Locations, " ")
	}
	return risk.OrgScope
}

// riskCmd holds the flags risk set and risk accept share.
type riskCmd struct {
	cfgPath, db, by, reason *string
}

func runRiskSet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("risk set", "risk set ID --config FILE --by NAME [--owner NAME] [--treatment mitigate|transfer] [--due YYYY-MM-DD]\n"+
		"          [--likelihood LEVEL] [--impact LEVEL] [--reason TEXT]\n\n"+
		"Records a decision on a risk in the register (append-only; the newest counts) and the evidence\n"+
		"log. Unset flags keep the risk's current values. Levels: very-low, low, moderate, high,\n"+
		"very-high (NIST SP 800-30 Rev. 1); re-rating needs --reason. To accept, use `vigil risk accept`.\n\n"+
		"Exit codes: 0 recorded; 2 bad input or could not record.",
		"vigil risk set net.remote-access-exposed@downtown --config vigil.yaml --by \"Dana Ruiz\" --owner it@glow.example --treatment mitigate --due 2026-12-15", stderr)
	var (
		c          = riskCmd{fs.String("config", "", "configuration file (required)"), fs.String("db", "", "store URL"), fs.String("by", "", "who decides (required)"), fs.String("reason", "", "why")}
		owner      = fs.String("owner", "", "who answers for the risk")
		treatment  = fs.String("treatment", "", "mitigate or transfer")
		due        = fs.String("due", "", "YYYY-MM-DD mitigation is due")
		likelihood = fs.String("likelihood", "", "override the derived likelihood")
		impact     = fs.String("impact", "", "override the derived impact")
	)
	id, rest := splitID(args)
	if done, code := parseFlags(fs, rest); done {
		return code
	}
	fail := failer(stderr, "vigil risk set")
	if *treatment == string(observe.TreatAccept) {
		return fail("to accept a risk use `vigil risk accept` (it needs a reason and an expiry)")
	}
	t := observe.RiskTreatment{By: *c.by, Reason: *c.reason}
	if *treatment != "" && *treatment != string(observe.TreatMitigate) && *treatment != string(observe.TreatTransfer) {
		return fail("--treatment %q: use mitigate or transfer (or `vigil risk accept`)", *treatment)
	}
	for _, l := range []struct{ name, v string }{{"likelihood", *likelihood}, {"impact", *impact}} {
		if l.v == "" {
			continue
		}
		lv, err := risk.ParseLevel(l.v)
		if err != nil {
			return fail("--%s: %v", l.name, err)
		}
		if *c.reason == "" {
			return fail("--%s re-rates the risk: say why with --reason", l.name)
		}
		if l.name == "likelihood" {
			t.Likelihood = lv.String()
		} else {
			t.Impact = lv.String()
		}
	}
	if *due != "" {
		d, err := time.Parse(time.DateOnly, *due)
		if err != nil {
			return fail("--due %q: want YYYY-MM-DD", *due)
		}
		t.Due = d
	}
	return c.record(ctx, id, fs.Args(), t, func(cur *risk.Risk, t *observe.RiskTreatment) {
		prev := cur.Decision
		if prev == nil {
			prev = &observe.RiskTreatment{}
		}
		t.Owner = pick(*owner, prev.Owner)
		t.Treatment = observe.Treatment(pick(*treatment, string(prev.Treatment)))
		if t.Treatment == observe.TreatAccept { // changing anything else keeps an acceptance only through accept
			t.Treatment = ""
		}
		if t.Due.IsZero() {
			t.Due = prev.Due
		}
		t.Likelihood = pick(t.Likelihood, prev.Likelihood)
		t.Impact = pick(t.Impact, prev.Impact)
	}, nil, stdout, stderr, fail)
}

func runRiskAccept(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("risk accept", "risk accept ID --config FILE --by NAME --reason TEXT (--until YYYY-MM-DD | --for DAYS)\n\n"+
		"Accepts a risk: records who, why and until when (at most a year) in the register and accepts\n"+
		"every finding under it that stands, in one transaction. On expiry the risk and its findings\n"+
		"reopen. A finding that appears later is not covered: accept again.\n\n"+
		"Exit codes: 0 recorded; 2 bad input or could not record.",
		"vigil risk accept id.shared-login@organisation --config vigil.yaml --by \"Dr. Lee\" --reason \"kiosk login, replaced by badges in Q1\" --until 2027-03-31", stderr)
	var (
		c      = riskCmd{fs.String("config", "", "configuration file (required)"), fs.String("db", "", "store URL"), fs.String("by", "", "who accepts (required)"), fs.String("reason", "", "why (required)")}
		owner  = fs.String("owner", "", "who answers for the risk (default: unchanged)")
		until  = fs.String("until", "", "YYYY-MM-DD the acceptance ends")
		forDur = fs.String("for", "", "days the acceptance lasts, e.g. 180")
	)
	id, rest := splitID(args)
	if done, code := parseFlags(fs, rest); done {
		return code
	}
	fail := failer(stderr, "vigil risk accept")
	exp, err := parseExpiry(*until, *forDur, time.Now())
	if err != nil {
		return fail("%v", err)
	}
	if *c.reason == "" {
		return fail("--reason is required: say why the risk is accepted")
	}
	t := observe.RiskTreatment{By: *c.by, Reason: *c.reason, Treatment: observe.TreatAccept, Expires: exp}
	return c.record(ctx, id, fs.Args(), t, func(cur *risk.Risk, t *observe.RiskTreatment) {
		if cur.Decision != nil {
			t.Owner, t.Due, t.Likelihood, t.Impact = cur.Decision.Owner, cur.Decision.Due, cur.Decision.Likelihood, cur.Decision.Impact
		}
		t.Owner = pick(*owner, t.Owner)
	}, func(cur *risk.Risk) []string {
		var ids []string
		for _, f := range cur.Findings {
			if f.Status == observe.StatusOpen {
				ids = append(ids, f.ID)
			}
		}
		return ids
	}, stdout, stderr, fail)
}

func pick(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// record loads the register, finds the risk, merges the current decision
// into t and stores it (accepting the findings accept returns).
func (c riskCmd) record(ctx context.Context, id string, rest []string, t observe.RiskTreatment,
	merge func(*risk.Risk, *observe.RiskTreatment), accept func(*risk.Risk) []string,
	stdout, stderr io.Writer, fail func(string, ...any) int) int {
	switch {
	case *c.cfgPath == "":
		return fail("--config is required")
	case id == "":
		return fail("which risk? give its id (see `vigil risk list --all`)")
	case len(rest) > 0:
		return fail("unexpected argument %q", rest[0])
	case strings.TrimSpace(*c.by) == "":
		return fail("--by is required: who decides")
	}
	cfg := loadConfig(*c.cfgPath, "vigil risk", stderr)
	if cfg == nil {
		return exitError
	}
	st, err := openWriteStore(ctx, cfg, *c.db)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()
	snap, err := loadSnapshot(ctx, cfg, st, stderr)
	if err != nil {
		return fail("%v", err)
	}
	cur, ok := risk.Find(snap.Register, id)
	if !ok {
		return fail("no risk %q in the register (see `vigil risk list --all`)", id)
	}
	t.Risk = cur.ID
	merge(cur, &t)
	var ids []string
	if accept != nil {
		ids = accept(cur)
	}
	got, err := st.AddRiskTreatment(ctx, t, ids)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "%s: %s", got.Risk, dash(string(got.Treatment)))
	if got.Owner != "" {
		fmt.Fprintf(stdout, ", owner %s", got.Owner)
	}
	if !got.Due.IsZero() {
		fmt.Fprintf(stdout, ", due %s", dateOrDash(got.Due))
	}
	if !got.Expires.IsZero() {
		fmt.Fprintf(stdout, ", until %s (%d findings accepted)", dateOrDash(got.Expires), len(ids))
	}
	fmt.Fprintf(stdout, " [%s]\n", got.ID)
	return exitOK
}
