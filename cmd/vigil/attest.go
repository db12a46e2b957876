package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/rules"
)

// attestStore is what the attest command needs from a store.
type attestStore interface {
	AddAttestation(ctx context.Context, r attest.Record) (attest.Record, error)
	CorrectAttestation(ctx context.Context, supersedes string, r attest.Record) (attest.Record, error)
	Attestations(ctx context.Context) ([]attest.Record, error)
	Close() error
}

func runAttest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "vigil attest", `Usage: vigil attest add|list|due [flags]

  add   record that an administrative safeguard is in place (training, BAA, restore drill)
  list  print the attestations in force
  due   print the attestations expiring soon, expired or never recorded, and new hires' training deadlines

Run `+"`vigil attest add --help`"+` (list, due) for flags and an example. See docs/attestations.md.
`, []verb{{"add", runAttestAdd}, {"list", runAttestList}, {"due", runAttestDue}}, args, stdout, stderr)
}

func runAttestAdd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("attest add", "attest add --config FILE --kind KIND --date YYYY-MM-DD --by NAME [flags]\n\n"+
		"Records an attestation in the store and the evidence log. Records are never changed:\n"+
		"to fix one, add the corrected record with --supersedes ID (the ID `vigil attest list` shows).\n"+
		"A --document is copied, content-addressed, under <data_dir>/documents.\n\n"+
		"Exit codes: 0 recorded (its ID on stdout); 2 bad input or could not record.",
		"vigil attest add --config vigil.yaml --kind workforce-training --date 2026-03-02 --by \"Dana Ruiz\" --location austin --document sign-in.pdf", stderr)
	var (
		cfgPath    = fs.String("config", "", "configuration file (required): its data_dir holds the database")
		db         = fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db)")
		kind       = fs.String("kind", "", "attestation kind (required; `vigil attest due` lists them)")
		date       = fs.String("date", "", "when it was done, YYYY-MM-DD (required; not in the future)")
		by         = fs.String("by", "", "who records it (required unless --owner)")
		owner      = fs.String("owner", "", "who is responsible for the safeguard")
		location   = fs.String("location", "", "location id it is about (default: the whole organisation)")
		subject    = fs.String("subject", "", "what it is about: the person trained, the vendor")
		result     = fs.String("result", "", "the outcome: pass or fail, signed or missing (fail and missing do not count)")
		expires    = fs.String("expires", "", "YYYY-MM-DD it stops counting (default: the date plus the kind's valid_days)")
		note       = fs.String("note", "", "free text")
		document   = fs.String("document", "", "file to attach (a sign-in sheet, the signed BAA)")
		supersedes = fs.String("supersedes", "", "ID of the record this one corrects")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil attest add")
	switch {
	case *cfgPath == "":
		return fail("--config is required (see `vigil attest add --help`)")
	case *kind == "":
		return fail("--kind is required (see `vigil attest add --help`)")
	case *date == "":
		return fail("--date is required: when it was done, YYYY-MM-DD")
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	}
	r := attest.Record{Kind: *kind, Location: *location, By: *by, Note: *note,
		Owner: *owner, Subject: *subject, Result: *result}
	var err error
	if r.At, err = time.Parse(time.DateOnly, *date); err != nil {
		return fail("--date %q: use YYYY-MM-DD", *date)
	}
	if *expires != "" {
		if r.ExpiresAt, err = time.Parse(time.DateOnly, *expires); err != nil {
			return fail("--expires %q: use YYYY-MM-DD", *expires)
		}
	}
	cfg, cat, code := loadAttestSetup(*cfgPath, fail, stderr)
	if cfg == nil {
		return code
	}
	if r.Location != "" && !slices.ContainsFunc(cfg.Locations, func(l config.Location) bool { return l.ID == r.Location }) {
		var ids []string
		for _, l := range cfg.Locations {
			ids = append(ids, l.ID)
		}
		return fail("--location %q is not a location in %s (configured: %s)", r.Location, *cfgPath, strings.Join(ids, ", "))
	}
	if err := attest.Validate(r, cat, time.Now()); err != nil {
		return fail("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if *document != "" {
		f, err := os.Open(*document)
		if err != nil {
			return fail("--document: %v", err)
		}
		r.Document, err = attest.Documents{Dir: filepath.Join(absDir(cfg.DataDir), "documents")}.Put(f)
		f.Close()
		if err != nil {
			return fail("--document %s: %v", *document, err)
		}
	}
	st, err := openAttestStore(ctx, *db, cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()
	if *supersedes != "" {
		r, err = st.CorrectAttestation(ctx, *supersedes, r)
	} else {
		r, err = st.AddAttestation(ctx, r)
	}
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "recorded %s: %s", r.ID, r.Kind)
	if r.Location != "" {
		fmt.Fprintf(stdout, " at %s", r.Location)
	}
	fmt.Fprintf(stdout, " on %s", r.At.Format(time.DateOnly))
	if exp := attest.Expiry(r, cat); !exp.IsZero() {
		fmt.Fprintf(stdout, ", counts until %s", exp.Format(time.DateOnly))
	}
	if !r.Counts() {
		fmt.Fprintf(stdout, " (result %q: recorded as a gap, satisfies nothing)", r.Result)
	}
	fmt.Fprintln(stdout)
	return exitOK
}

// listed is one record as `vigil attest list --format json` prints it.
type listed struct {
	attest.Record
	// CountsUntil is the computed expiry (ExpiresAt, else the date plus
	// the kind's valid_days).
	CountsUntil time.Time `json:"counts_until,omitzero"`
	Counts      bool      `json:"counts"`
}

func runAttestList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("attest list", "attest list --config FILE [--format text|json]\n\n"+
		"Prints the attestations in force (corrected records are replaced by their correction),\n"+
		"oldest first.\n\nExit codes: 0 listed; 2 could not read.",
		"vigil attest list --config vigil.yaml --format json", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		format      = fs.String("format", "text", "output format: text or json")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil attest list")
	if code, ok := checkCommon(fail, *cfgPath, *format, fs.Args()); !ok {
		return code
	}
	cfg, cat, code := loadAttestSetup(*cfgPath, fail, stderr)
	if cfg == nil {
		return code
	}
	records, err := readAttestations(ctx, *db, cfg)
	if err != nil {
		return fail("%v", err)
	}
	out := make([]listed, 0, len(records))
	for _, r := range records {
		out = append(out, listed{Record: r, CountsUntil: attest.Expiry(r, cat), Counts: r.Counts()})
	}
	if *format == "json" {
		return writeJSON(stdout, out, fail)
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, "no attestations recorded: vigil attest add --help")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tLOCATION\tDATE\tCOUNTS UNTIL\tBY\tRESULT\tDOCUMENT")
	for _, l := range out {
		until := "-"
		if !l.CountsUntil.IsZero() {
			until = l.CountsUntil.Format(time.DateOnly)
		}
		if !l.Counts {
			until = "does not count"
		}
		doc := "-"
		if l.Document != "" {
			doc = "sha256:" + l.Document[:min(12, len(l.Document))]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Kind, orDash(l.Location, "all"), l.At.Format(time.DateOnly),
			until, orDash(l.By, l.Owner), orDash(l.Result, "-"), doc)
	}
	tw.Flush()
	return exitOK
}

func runAttestDue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("attest due", "attest due --config FILE [--within 30d] [--format text|json]\n\n"+
		"Lists, for the attestation kinds the controls of the configured locations' states need,\n"+
		"the latest record per kind and location that expires within --within or has expired, and\n"+
		"the kinds never recorded: expired first, then missing, then expiring.\n\n"+
		"With a roster (config roster:) that has start_date, it also lists each person at a location\n"+
		"whose state sets a new-hire training deadline (Texas: 90 days after hire) who has no training\n"+
		"record naming them (--subject) since their hire: missing once the deadline has passed,\n"+
		"expiring within --within of it.\n\n"+
		"Exit codes: 0 nothing expired or missing (records expiring soon are listed but pass);\n"+
		"1 something expired or missing; 2 could not run.",
		"vigil attest due --config vigil.yaml --within 45d", stderr)
	var (
		cfgPath, db = storeFlags(fs)
		within      = fs.String("within", "30d", "warn this long before expiry: days (45d) or a Go duration (720h)")
		format      = fs.String("format", "text", "output format: text or json")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil attest due")
	if code, ok := checkCommon(fail, *cfgPath, *format, fs.Args()); !ok {
		return code
	}
	warn, err := parseWithin(*within)
	if err != nil {
		return fail("--within: %v", err)
	}
	cfg, cat, code := loadAttestSetup(*cfgPath, fail, stderr)
	if cfg == nil {
		return code
	}
	records, err := readAttestations(ctx, *db, cfg)
	if err != nil {
		return fail("%v", err)
	}
	now := time.Now()
	due := attest.Due(records, cat, attest.KindsFor(cat, cfg.Locations), warn, now)
	if cfg.Roster != "" {
		people, err := rosterPeople(ctx, cfg.Roster, stderr)
		if err != nil {
			return fail("%v", err)
		}
		due = append(due, attest.NewHireDue(attest.NewHireCheck{People: people, Records: records, Catalog: cat,
			Locations: cfg.Locations, Since: attest.FirstRecorded(records, now), Warn: warn, Now: now})...)
		attest.SortReminders(due)
	}
	code = exitOK
	for _, r := range due {
		if r.State != "expiring" {
			code = exitFindings
		}
	}
	if *format == "json" {
		if c := writeJSON(stdout, due, fail); c != exitOK {
			return c
		}
		return code
	}
	if len(due) == 0 {
		fmt.Fprintf(stdout, "nothing due within %s\n", *within)
		return code
	}
	var kinds, people []attest.Reminder
	for _, r := range due {
		if r.Person != "" {
			people = append(people, r)
		} else {
			kinds = append(kinds, r)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if len(kinds) > 0 {
		fmt.Fprintln(tw, "STATE\tKIND\tLOCATION\tEXPIRES\tDAYS\tTITLE")
	}
	for _, r := range kinds {
		exp, days := "-", "-"
		if !r.Expires.IsZero() {
			exp, days = r.Expires.Format(time.DateOnly), strconv.Itoa(r.Days)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.State, r.Kind, orDash(r.Location, "all"), exp, days, r.Title)
	}
	if len(people) > 0 {
		if len(kinds) > 0 {
			fmt.Fprintln(tw)
		}
		// One line per new hire: record their training with --kind KIND
		// --subject PERSON to clear it.
		fmt.Fprintln(tw, "STATE\tNEW HIRE\tLOCATION\tHIRED\tTRAIN BY\tDAYS\tKIND\tDEADLINE SET BY")
		for _, r := range people {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.State, r.Person, r.Location, r.Hired.Format(time.DateOnly),
				r.Expires.Format(time.DateOnly), r.Days, r.Kind, r.Citation)
		}
	}
	tw.Flush()
	return code
}

// rosterPeople reads the configured staff roster for the new-hire
// training deadlines. A bad row is reported on stderr and skipped, as vigil
// scan does; an unreadable roster stops the command, because without it
// nobody's deadline can be checked.
func rosterPeople(ctx context.Context, path string, stderr io.Writer) ([]attest.Person, error) {
	ro, rowErrs, err := csvidentity.LoadRoster(ctx, path)
	for _, e := range rowErrs {
		fmt.Fprintf(stderr, "vigil attest due: roster: %v (row skipped)\n", e)
	}
	if err != nil {
		return nil, err
	}
	people := make([]attest.Person, 0, len(ro.Staff))
	for _, m := range ro.Staff {
		people = append(people, attest.Person{Email: m.Email, Username: m.Username, Name: m.Name,
			Locations: m.Locations, Hired: m.StartDate, Left: m.EndDate})
	}
	return people, nil
}

// parseWithin reads "30d" as days, anything else as a Go duration.
func parseWithin(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: use a number of days (30d) or a duration (720h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: use a number of days (30d) or a duration (720h)", s)
	}
	return d, nil
}

func failer(stderr io.Writer, prefix string) func(string, ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(stderr, prefix+": "+format+"\n", a...)
		return exitError
	}
}

func checkCommon(fail func(string, ...any) int, cfgPath, format string, rest []string) (int, bool) {
	switch {
	case cfgPath == "":
		return fail("--config is required"), false
	case format != "text" && format != "json":
		return fail("--format %q: use text or json", format), false
	case len(rest) > 0:
		return fail("unexpected argument %q", rest[0]), false
	}
	return 0, true
}

// loadAttestSetup loads the configuration and the control catalog; a nil
// config means stop with the returned code.
func loadAttestSetup(path string, fail func(string, ...any) int, stderr io.Writer) (*config.Config, *rules.Catalog, int) {
	cfg := loadConfig(path, "vigil attest", stderr)
	if cfg == nil {
		return nil, nil, exitError
	}
	cat, err := rules.LoadCatalog()
	if err != nil {
		return nil, nil, fail("%v", err)
	}
	return cfg, cat, exitOK
}

// openAttestStore opens the store as vigil scan does, with the evidence
// key, so that attestations are checkpointed in the evidence log.
func openAttestStore(ctx context.Context, db string, cfg *config.Config) (attestStore, error) {
	st, err := openStore(ctx, db, cfg)
	if err != nil {
		return nil, err
	}
	as, ok := st.(attestStore)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("store %s does not keep attestations", st.Path())
	}
	return as, nil
}

func readAttestations(ctx context.Context, db string, cfg *config.Config) ([]attest.Record, error) {
	st, err := openAttestStore(ctx, db, cfg)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Attestations(ctx)
}

func writeJSON(w io.Writer, v any, fail func(string, ...any) int) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail("%v", err)
	}
	return exitOK
}

func orDash(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
