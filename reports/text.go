package reports

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// TextWriter writes a plain table for people at a terminal: a header about
// the scan, then for each location its findings, most severe first, as
// SEVERITY RULE TARGET TITLE with the controls on a second line, and a
// summary line at the end. It writes no colour or other escape codes, so the
// output reads the same in a file, a pipe or a CI log.
type TextWriter struct{}

// Write implements Writer.
func (TextWriter) Write(w io.Writer, r ScanResult) error {
	var b bytes.Buffer
	textHeader(&b, r.Scan)

	findings := sortedFindings(r.Findings)
	if len(findings) == 0 {
		b.WriteString("\nNo findings.\n")
	} else {
		names, groups := byLocation(r.Scan, findings)
		for _, loc := range names {
			textLocation(&b, loc, groups[loc], r.New)
		}
		b.WriteString("\n" + textFooter(r) + "\n")
	}
	for _, m := range r.Matrices {
		textMatrix(&b, m)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write text: %w", err)
	}
	return nil
}

func textHeader(b *bytes.Buffer, s observe.Scan) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "vigil scan %s\n", orDash(s.ID))
	if !s.StartedAt.IsZero() {
		fmt.Fprintf(tw, "  started\t%s\n", s.StartedAt.UTC().Format(time.RFC3339))
	}
	if d, ok := scanDuration(s); ok {
		fmt.Fprintf(tw, "  duration\t%s\n", textDuration(d))
	}
	fmt.Fprintf(tw, "  version\t%s\n", orDash(s.Version))
	fmt.Fprintf(tw, "  locations\t%s\n", orDash(strings.Join(s.Locations, ", ")))
	if len(s.Sources)+len(s.SourceErrors) > 0 {
		fmt.Fprintf(tw, "  sources\t%s\n", orDash(strings.Join(s.Sources, ", ")))
		for _, e := range s.SourceErrors {
			fmt.Fprintf(tw, "  \tnot read in full: %s\n", e)
		}
	}
	switch {
	case s.Complete:
		fmt.Fprintf(tw, "  status\tcomplete\n")
	case len(s.Errors) == 0:
		fmt.Fprintf(tw, "  status\tINCOMPLETE: findings may be missing\n")
	default:
		fmt.Fprintf(tw, "  status\tINCOMPLETE: findings may be missing; %d %s:\n",
			len(s.Errors), plural(len(s.Errors), "error", "errors"))
		for _, e := range s.Errors {
			fmt.Fprintf(tw, "  \t- %s\n", e)
		}
	}
	tw.Flush() // writes to a bytes.Buffer, which cannot fail
}

func textLocation(b *bytes.Buffer, loc string, findings []observe.Finding, fresh map[string]bool) {
	if loc == "" {
		loc = "organisation-wide (accounts, software)"
	}
	if len(findings) == 0 {
		fmt.Fprintf(b, "\n%s: no findings\n", loc)
		return
	}
	fmt.Fprintf(b, "\n%s: %d %s\n", loc, len(findings), plural(len(findings), "finding", "findings"))
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SEVERITY\tRULE\tTARGET\tTITLE\n")
	for _, f := range findings {
		title := f.Title
		if fresh != nil && fresh[f.ID] {
			title += " [new]"
		}
		if !isOpen(f) {
			title += " [" + string(f.Status) + "]"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n",
			oneLine(orDash(string(f.Severity))), oneLine(f.Rule), oneLine(f.Target), oneLine(title))
		fmt.Fprintf(tw, "  \t\t\tcontrols: %s\n", oneLine(controlsText(f.Controls)))
	}
	tw.Flush() // writes to a bytes.Buffer, which cannot fail
}

// textFooter is the closing summary: "5 findings: 1 critical, 2 high, ...".
func textFooter(r ScanResult) string {
	counts := Summary(r.Findings)
	parts := make([]string, len(observe.Severities))
	for i, s := range observe.Severities {
		parts[i] = fmt.Sprintf("%d %s", counts[s], s)
	}
	n := len(r.Findings)
	line := fmt.Sprintf("%d %s: %s", n, plural(n, "finding", "findings"), strings.Join(parts, ", "))
	if r.New != nil {
		fresh := 0
		for _, f := range r.Findings {
			if r.New[f.ID] {
				fresh++
			}
		}
		line += fmt.Sprintf(" (%d new since the baseline)", fresh)
	}
	return line
}

// scanDuration is how long the scan ran, when both ends are known.
func scanDuration(s observe.Scan) (time.Duration, bool) {
	if s.StartedAt.IsZero() || s.FinishedAt.IsZero() || s.FinishedAt.Before(s.StartedAt) {
		return 0, false
	}
	return s.FinishedAt.Sub(s.StartedAt), true
}

func textDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// oneLine keeps a value on its table row: a title with a line break would
// split the row and misalign every column after it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// matrixMark is the short label of a cell: text, not colour, so it reads
// in a terminal, a CI log and on paper.
var matrixMark = map[observe.CellStatus]string{
	observe.CellAllowed:     "allowed",
	observe.CellBlocked:     "blocked",
	observe.CellViolation:   "OPEN!",
	observe.CellNotAssessed: "n/a",
}

// textMatrix prints a location's reachability matrix: rows are where
// traffic comes from, columns where it goes.
func textMatrix(b *bytes.Buffer, m observe.Matrix) {
	if len(m.Segments) < 2 {
		return
	}
	fmt.Fprintf(b, "\nReachability at %s (row reaches column; probed from: %s)\n", m.Location, orDash(strings.Join(m.Vantages, ", ")))
	cell := map[[2]string]observe.MatrixCell{}
	for _, c := range m.Cells {
		cell[[2]string{c.From, c.To}] = c
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "  from \\ to")
	for _, to := range m.Segments {
		fmt.Fprintf(tw, "\t%s", to)
	}
	fmt.Fprintln(tw)
	for _, from := range m.Segments {
		fmt.Fprintf(tw, "  %s", from)
		for _, to := range m.Segments {
			mark := "-"
			if from != to {
				c := cell[[2]string{from, to}]
				mark = matrixMark[c.Status]
				if len(c.Inferred) > 0 {
					mark += "*"
				}
			}
			fmt.Fprintf(tw, "\t%s", mark)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	b.WriteString("  OPEN! = reachable against policy, blocked = probed and nothing outside the policy answered, n/a = not assessed (no vantage in that segment); * = inferred without a vantage\n")
	cells := append(slices.Clone(m.Cells), m.Remote...)
	for _, c := range cells {
		switch {
		case c.Status == observe.CellNotAssessed:
			continue
		case len(c.Inferred) > 0:
			fmt.Fprintf(b, "  %s -> %s: %s (inferred: %s)\n", c.From, c.To, matrixMark[c.Status], strings.Join(c.Inferred, "; "))
		case c.Probes > 0 || len(c.Reached) > 0:
			fmt.Fprintf(b, "  %s -> %s: %s, %d probes to %d hosts (%d open, %d closed, %d filtered)%s\n",
				c.From, c.To, matrixMark[c.Status], c.Probes, c.HostsProbed, c.Open, c.Closed, c.Filtered, reachedList(c.Reached))
		}
	}
}

// reachedList names the services that answered against the policy.
func reachedList(rs []observe.Reach) string {
	var bad []string
	for _, r := range rs {
		if !r.Allowed {
			s := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
			if r.Service != "" {
				s += " " + r.Service
			}
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	if len(bad) > 8 {
		bad = append(bad[:8], fmt.Sprintf("and %d more", len(bad)-8))
	}
	return ": " + strings.Join(bad, ", ")
}
