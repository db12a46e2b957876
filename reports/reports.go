// Package reports turns the findings of a scan into the documents people and
// pipelines read: the `vigil scan` outputs (json, sarif, junit, text), one
// writer per format chosen by name, and the baseline that tells new findings
// from known ones. It only formats what it is given, and never scans or
// talks to the network.
package reports

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/observe"
)

// ScanResult is everything a writer needs to render one scan.
type ScanResult struct {
	Scan     observe.Scan
	Findings []observe.Finding
	// Rules holds the metadata of every rule that produced a finding, for
	// SARIF rule descriptors and help text. A rule missing here is described
	// from its findings.
	Rules []observe.RuleMeta
	// New holds the ids of findings that are not in the baseline. nil means
	// no baseline was given; an empty, non-nil map means a baseline was given
	// and nothing is new. MarkNew builds it.
	New map[string]bool
	// Matrices are the per-location reachability matrices (segments ×
	// segments); nil when the scan produced none.
	Matrices []observe.Matrix
}

// Writer renders a ScanResult in one output format.
type Writer interface {
	Write(w io.Writer, r ScanResult) error
}

// ErrUnknownFormat is returned by WriterFor for a format it does not know.
var ErrUnknownFormat = errors.New("unknown output format")

// Formats lists the names WriterFor accepts, in the order the CLI documents
// them.
func Formats() []string {
	return []string{"json", "sarif", "junit", "text"}
}

// WriterFor returns the writer for a format name (json, sarif, junit, text).
// Names are matched without regard to case or surrounding spaces; an unknown
// name is an ErrUnknownFormat error that lists the valid ones.
func WriterFor(format string) (Writer, error) {
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "json":
		return JSONWriter{}, nil
	case "sarif":
		return SARIFWriter{}, nil
	case "junit":
		return JUnitWriter{}, nil
	case "text":
		return TextWriter{}, nil
	}
	return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownFormat, format, strings.Join(Formats(), ", "))
}

// Summary counts findings by severity, whatever their status. Every one of
// the five severities is present, at zero when nothing has it; a finding
// with an invalid severity is not counted.
func Summary(findings []observe.Finding) map[observe.Severity]int {
	counts := make(map[observe.Severity]int, len(observe.Severities))
	for _, s := range observe.Severities {
		counts[s] = 0
	}
	for _, f := range findings {
		if f.Severity.Valid() {
			counts[f.Severity]++
		}
	}
	return counts
}

// MarkNew returns the ids of the findings that are not in baseline, in the
// form ScanResult.New expects: nil when baseline is nil (no baseline given),
// otherwise a non-nil map, empty when every finding is already known.
func MarkNew(findings []observe.Finding, baseline map[string]bool) map[string]bool {
	if baseline == nil {
		return nil
	}
	fresh := make(map[string]bool)
	for _, f := range findings {
		if !baseline[f.ID] {
			fresh[f.ID] = true
		}
	}
	return fresh
}

// FailCount is the number of findings that should fail a `vigil scan` run
// with --fail-on failOn: open findings at or above failOn that are new since
// the baseline, or all of them when no baseline was given (r.New is nil).
// Resolved, accepted and false-positive findings never count. A finding with
// no status counts as open, so a producer that forgets to set it cannot hide
// a finding from CI; an invalid failOn counts every severity, for the same
// reason.
func FailCount(r ScanResult, failOn observe.Severity) int {
	n := 0
	for _, f := range r.Findings {
		if !isOpen(f) || f.Severity.Rank() < failOn.Rank() {
			continue
		}
		if r.New != nil && !r.New[f.ID] {
			continue
		}
		n++
	}
	return n
}

func isOpen(f observe.Finding) bool {
	return f.Status == observe.StatusOpen || f.Status == ""
}

// sortedFindings returns a copy of findings in the order every format lists
// them: severity (critical first), then location, rule, target and id, so
// that the same findings always give the same bytes.
func sortedFindings(findings []observe.Finding) []observe.Finding {
	out := slices.Clone(findings)
	slices.SortStableFunc(out, func(a, b observe.Finding) int {
		return cmp.Or(
			cmp.Compare(b.Severity.Rank(), a.Severity.Rank()),
			cmp.Compare(a.Location, b.Location),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Target, b.Target),
			cmp.Compare(a.ID, b.ID),
		)
	})
	return out
}

// byLocation groups sorted findings by location, keeping their order within
// each group, and returns the location names sorted alongside every location
// the scan covered, including those without findings.
func byLocation(scan observe.Scan, findings []observe.Finding) ([]string, map[string][]observe.Finding) {
	groups := make(map[string][]observe.Finding)
	for _, l := range scan.Locations {
		groups[l] = nil
	}
	for _, f := range findings {
		groups[f.Location] = append(groups[f.Location], f)
	}
	names := make([]string, 0, len(groups))
	for l := range groups {
		names = append(names, l)
	}
	slices.Sort(names)
	return names, groups
}

// locationLabel names a finding's location for reports: findings about
// accounts and software have none, they are the organisation's.
func locationLabel(loc string) string {
	if loc == "" {
		return "organisation"
	}
	return loc
}

// controlsText joins a finding's controls for one line of plain text.
func controlsText(controls []string) string {
	if len(controls) == 0 {
		return "none"
	}
	return strings.Join(controls, ", ")
}
