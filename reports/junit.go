package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// JUnitWriter writes JUnit XML for CI test-report views: one <testsuite> per
// location, holding a "scan completed" test case (so a clean scan still has
// tests; it errors when the scan was incomplete) and one test case per
// finding, named by rule and target. An open finding is a <failure> whose
// type is its severity; accepted and false-positive findings are skipped,
// resolved ones pass.
type JUnitWriter struct{}

// junitTimestamp is the JUnit XSD timestamp: ISO 8601 without a zone, and
// always UTC here.
const junitTimestamp = "2006-01-02T15:04:05"

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
}

// junitProblem is a <failure> or <error>. Its body is CDATA so that its
// lines read as lines in the file, not as &#xA; entities.
type junitProblem struct {
	Type    string `xml:"type,attr"`
	Message string `xml:"message,attr"`
	Body    string `xml:",cdata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// Write implements Writer.
func (JUnitWriter) Write(w io.Writer, r ScanResult) error {
	names, groups := byLocation(r.Scan, sortedFindings(r.Findings))
	if len(names) == 0 {
		// A scan over nothing still reports that it ran.
		names, groups = []string{"vigil"}, map[string][]observe.Finding{"vigil": nil}
	}
	d, _ := scanDuration(r.Scan)
	doc := junitSuites{Name: "vigil scan " + r.Scan.ID, Time: junitSeconds(d)}
	for _, loc := range names {
		suite := junitSuiteOf(r, loc, groups[loc])
		doc.Tests += suite.Tests
		doc.Failures += suite.Failures
		doc.Errors += suite.Errors
		doc.Skipped += suite.Skipped
		doc.Suites = append(doc.Suites, suite)
	}

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

func junitSuiteOf(r ScanResult, loc string, findings []observe.Finding) junitSuite {
	class := "vigil." + locationLabel(loc)
	suite := junitSuite{
		Name: locationLabel(loc),
		Time: junitSeconds(0),
		Properties: []junitProperty{
			{Name: "vigil.scan_id", Value: r.Scan.ID},
			{Name: "vigil.version", Value: r.Scan.Version},
			{Name: "vigil.location", Value: loc},
		},
	}
	if !r.Scan.StartedAt.IsZero() {
		suite.Timestamp = r.Scan.StartedAt.UTC().Format(junitTimestamp)
	}

	done := junitCase{Name: "scan completed", Classname: class, Time: junitSeconds(0)}
	if !r.Scan.Complete {
		body := "The scan did not complete, so findings may be missing and none were resolved."
		if len(r.Scan.Errors) > 0 {
			body += "\n\n" + strings.Join(r.Scan.Errors, "\n")
		}
		done.Error = &junitProblem{Type: "incomplete", Message: "scan did not complete", Body: xmlText(body)}
		suite.Errors++
	}
	suite.Cases = append(suite.Cases, done)

	for _, f := range findings {
		tc := junitCase{Name: f.Rule + " " + f.Target, Classname: class, Time: junitSeconds(0)}
		switch f.Status {
		case observe.StatusOpen, "":
			tc.Failure = &junitProblem{Type: string(f.Severity), Message: f.Title, Body: xmlText(junitBody(f, r.New))}
			suite.Failures++
		case observe.StatusAccepted, observe.StatusFalsePositive:
			tc.Skipped = &junitSkipped{Message: string(f.Status) + ": " + f.Title}
			suite.Skipped++
		}
		suite.Cases = append(suite.Cases, tc)
	}
	suite.Tests = len(suite.Cases)
	return suite
}

// junitBody is what a CI page shows under a failed test: the evidence, then
// what to do about it and which controls it touches.
func junitBody(f observe.Finding, fresh map[string]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Finding %s (%s, %s)\n", f.ID, f.Severity, f.Category)
	fmt.Fprintf(&b, "Target: %s\n", f.Target)
	if fresh != nil {
		if fresh[f.ID] {
			b.WriteString("New since the baseline.\n")
		} else {
			b.WriteString("Already in the baseline.\n")
		}
	}
	b.WriteString("\nEvidence:\n")
	if len(f.Evidence) == 0 {
		b.WriteString("  (none recorded)\n")
	}
	keys := make([]string, 0, len(f.Evidence))
	for k := range f.Evidence {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, observe.EvidenceString(f.Evidence[k]))
	}
	if f.Remediation != "" {
		fmt.Fprintf(&b, "\nRemediation: %s\n", f.Remediation)
	}
	fmt.Fprintf(&b, "\nControls: %s\n", controlsText(f.Controls))
	return b.String()
}

// xmlText replaces the characters XML 1.0 cannot hold (NUL and most other
// control characters, which banners in evidence do contain) with U+FFFD.
// encoding/xml does this for attributes and character data, but not for
// CDATA.
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' ||
			(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF) {
			return r
		}
		return '\uFFFD'
	}, s)
}

func junitSeconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", max(d, 0).Seconds())
}
