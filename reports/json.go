package reports

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/vigilhq/vigil/observe"
)

// JSONWriter writes the CONTRACT.md scan output: {"scan", "findings",
// "summary"}. Findings are sorted by severity, location, rule and target,
// times are RFC 3339 in UTC, and a finding gets a "new" field only when a
// baseline was given. Its output is what LoadBaseline reads back.
type JSONWriter struct{}

// jsonDoc fixes the key order of the output.
type jsonDoc struct {
	Scan     observe.Scan  `json:"scan"`
	Findings []jsonFinding `json:"findings"`
	Summary  jsonSummary   `json:"summary"`
	// Matrix is the reachability matrix per location (docs/output.md).
	Matrix []observe.Matrix `json:"matrix,omitempty"`
}

// jsonFinding is a finding plus the baseline mark, which is left out when
// no baseline was given.
type jsonFinding struct {
	observe.Finding
	New *bool `json:"new,omitempty"`
}

type jsonSummary struct {
	Critical int `json:"critical"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
	Info     int `json:"info"`
}

// Write implements Writer.
func (JSONWriter) Write(w io.Writer, r ScanResult) error {
	doc := jsonDoc{
		Scan:     normalScan(r.Scan),
		Findings: make([]jsonFinding, 0, len(r.Findings)),
	}
	for _, f := range sortedFindings(r.Findings) {
		jf := jsonFinding{Finding: normalFinding(f)}
		if r.New != nil {
			isNew := r.New[f.ID]
			jf.New = &isNew
		}
		doc.Findings = append(doc.Findings, jf)
	}
	doc.Matrix = r.Matrices
	s := Summary(r.Findings)
	doc.Summary = jsonSummary{
		Critical: s[observe.Critical],
		High:     s[observe.High],
		Medium:   s[observe.Medium],
		Low:      s[observe.Low],
		Info:     s[observe.Info],
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Targets such as "guest->clinical" must read as written, not as \u003e.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// normalScan returns the scan with UTC times and an empty, not null,
// location list.
func normalScan(s observe.Scan) observe.Scan {
	s.StartedAt = s.StartedAt.UTC()
	s.FinishedAt = s.FinishedAt.UTC()
	if s.Locations == nil {
		s.Locations = []string{}
	}
	return s
}

// normalFinding returns the finding with UTC times, empty (not null)
// controls and evidence so consumers can iterate without nil checks, and
// status open when none was set, which is how FailCount treats it.
func normalFinding(f observe.Finding) observe.Finding {
	if f.Status == "" {
		f.Status = observe.StatusOpen
	}
	f.FirstSeen = f.FirstSeen.UTC()
	f.LastSeen = f.LastSeen.UTC()
	if f.Controls == nil {
		f.Controls = []string{}
	}
	if f.Evidence == nil {
		f.Evidence = map[string]any{}
	}
	return f
}
