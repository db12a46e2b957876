package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// SARIF constants. The schema URI is the one GitHub code scanning and most
// viewers recognise.
const (
	sarifSchema    = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion   = "2.1.0"
	toolName       = "vigil"
	toolInfoURI    = "https://github.com/vigilhq/vigil"
	fingerprintKey = "vigilFindingId/v1"
)

// SARIFWriter writes a SARIF 2.1.0 log with one run, one rule descriptor per
// rule and one result per finding. Results carry the finding id as a partial
// fingerprint so code-scanning tools track a finding across scans, and
// "security-severity" so they rank it. Accepted and false-positive findings
// are reported as suppressed, resolved ones as passing.
type SARIFWriter struct{}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string            `json:"id"`
	Name                 string            `json:"name"`
	ShortDescription     sarifText         `json:"shortDescription"`
	FullDescription      sarifText         `json:"fullDescription"`
	Help                 sarifText         `json:"help"`
	DefaultConfiguration sarifRuleConfig   `json:"defaultConfiguration"`
	Properties           sarifRuleProperty `json:"properties"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifRuleProperty struct {
	Tags             []string `json:"tags"`
	SecuritySeverity string   `json:"security-severity"`
	Severity         string   `json:"severity"`
	Category         string   `json:"category"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	StartTimeUTC               string              `json:"startTimeUtc,omitempty"`
	EndTimeUTC                 string              `json:"endTimeUtc,omitempty"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string    `json:"level"`
	Message sarifText `json:"message"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Kind                string             `json:"kind,omitempty"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	BaselineState       string             `json:"baselineState,omitempty"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          sarifResultProps   `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical         `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifLogicalLocation struct {
	Name               string `json:"name"`
	Kind               string `json:"kind"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

type sarifResultProps struct {
	Location  string         `json:"location"`
	Target    string         `json:"target"`
	Category  string         `json:"category"`
	Severity  string         `json:"severity"`
	Controls  []string       `json:"controls"`
	Evidence  map[string]any `json:"evidence"`
	Status    string         `json:"status"`
	FirstSeen string         `json:"first_seen"`
	LastSeen  string         `json:"last_seen"`
	New       *bool          `json:"new,omitempty"`
}

// Write implements Writer.
func (SARIFWriter) Write(w io.Writer, r ScanResult) error {
	findings := sortedFindings(r.Findings)
	rules := sarifRules(r.Rules, findings)
	index := make(map[string]int, len(rules))
	for i, rule := range rules {
		index[rule.ID] = i
	}

	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{
			Name:           toolName,
			Version:        r.Scan.Version,
			InformationURI: toolInfoURI,
			Rules:          rules,
		}},
		Invocations: []sarifInvocation{sarifInvocationOf(r.Scan)},
		Results:     make([]sarifResult, 0, len(findings)),
		Properties: map[string]any{
			"scan_id":   r.Scan.ID,
			"locations": normalScan(r.Scan).Locations,
			"complete":  r.Scan.Complete,
		},
	}
	for _, f := range findings {
		run.Results = append(run.Results, sarifResultOf(f, index[f.Rule], r.New))
	}

	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	err := enc.Encode(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
	if err != nil {
		return fmt.Errorf("write sarif: %w", err)
	}
	return nil
}

// sarifRules describes every rule that has a finding, sorted by id. Rules
// with metadata use it; a rule without is described from its first finding,
// so every result has a rule to point at.
func sarifRules(metas []observe.RuleMeta, findings []observe.Finding) []sarifRule {
	byID := make(map[string]observe.RuleMeta)
	for _, m := range metas {
		if _, dup := byID[m.ID]; !dup {
			byID[m.ID] = m
		}
	}
	for _, f := range findings {
		if _, ok := byID[f.Rule]; !ok {
			byID[f.Rule] = observe.RuleMeta{
				ID: f.Rule, Category: f.Category, Severity: f.Severity,
				Title: f.Title, Remediation: f.Remediation, Controls: f.Controls,
			}
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	rules := make([]sarifRule, 0, len(ids))
	for _, id := range ids {
		m := byID[id]
		full := m.Description
		if full == "" {
			full = m.Title
		}
		tags := slices.Clone(m.Controls)
		if m.Category != "" {
			tags = append(tags, string(m.Category))
		}
		slices.Sort(tags)
		tags = slices.Compact(tags) // SARIF requires distinct tags
		if tags == nil {
			tags = []string{}
		}
		rules = append(rules, sarifRule{
			ID:                   m.ID,
			Name:                 m.ID,
			ShortDescription:     sarifText{Text: m.Title},
			FullDescription:      sarifText{Text: full},
			Help:                 ruleHelp(m),
			DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(m.Severity)},
			Properties: sarifRuleProperty{
				Tags:             tags,
				SecuritySeverity: securitySeverity(m.Severity),
				Severity:         string(m.Severity),
				Category:         string(m.Category),
			},
		})
	}
	return rules
}

// ruleHelp is the remediation and the controls a rule maps to, as plain
// text and as Markdown.
func ruleHelp(m observe.RuleMeta) sarifText {
	remediation := m.Remediation
	if remediation == "" {
		remediation = "No remediation recorded for this rule."
	}
	var md strings.Builder
	fmt.Fprintf(&md, "**Remediation**\n\n%s\n\n**Controls**\n\n", remediation)
	if len(m.Controls) == 0 {
		md.WriteString("none\n")
	}
	for _, c := range m.Controls {
		fmt.Fprintf(&md, "- `%s`\n", c)
	}
	return sarifText{
		Text:     fmt.Sprintf("Remediation: %s\n\nControls: %s", remediation, controlsText(m.Controls)),
		Markdown: md.String(),
	}
}

func sarifInvocationOf(s observe.Scan) sarifInvocation {
	inv := sarifInvocation{
		ExecutionSuccessful: s.Complete,
		StartTimeUTC:        sarifTime(s.StartedAt),
		EndTimeUTC:          sarifTime(s.FinishedAt),
	}
	for _, e := range s.Errors {
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications,
			sarifNotification{Level: "error", Message: sarifText{Text: e}})
	}
	return inv
}

func sarifResultOf(f observe.Finding, ruleIndex int, fresh map[string]bool) sarifResult {
	nf := normalFinding(f)
	res := sarifResult{
		RuleID:              f.Rule,
		RuleIndex:           ruleIndex,
		Level:               sarifLevel(f.Severity),
		Message:             sarifText{Text: fmt.Sprintf("%s: %s at location %s", f.Title, f.Target, f.Location)},
		Locations:           []sarifLocation{sarifLocationOf(f)},
		PartialFingerprints: map[string]string{fingerprintKey: f.ID},
		Properties: sarifResultProps{
			Location:  f.Location,
			Target:    f.Target,
			Category:  string(f.Category),
			Severity:  string(f.Severity),
			Controls:  nf.Controls,
			Evidence:  nf.Evidence,
			Status:    string(nf.Status),
			FirstSeen: nf.FirstSeen.Format(time.RFC3339Nano),
			LastSeen:  nf.LastSeen.Format(time.RFC3339Nano),
		},
	}
	if fresh != nil {
		isNew := fresh[f.ID]
		res.Properties.New = &isNew
		res.BaselineState = "unchanged"
		if isNew {
			res.BaselineState = "new"
		}
	}
	switch f.Status {
	case observe.StatusResolved:
		// SARIF 2.1.0 §3.27.9–10: a result that is not a failure has kind
		// "pass" and level "none".
		res.Kind, res.Level = "pass", "none"
	case observe.StatusAccepted:
		res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: "risk accepted in vigil"}}
	case observe.StatusFalsePositive:
		res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: "marked false positive in vigil"}}
	}
	return res
}

// sarifLocationOf places a finding: a software target (FILE:PACKAGE@VERSION)
// points at the file it was found in, and names the package as a logical
// location; every other target (address, segment, account) is a logical
// "resource" named by the target and qualified by the location.
func sarifLocationOf(f observe.Finding) sarifLocation {
	loc := sarifLocation{}
	name := f.Target
	kind := "resource"
	if file, pkg, ok := softwareTarget(f); ok {
		loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(file)}}
		name, kind = pkg, "module"
	}
	loc.LogicalLocations = []sarifLogicalLocation{{
		Name:               name,
		Kind:               kind,
		FullyQualifiedName: locationLabel(f.Location) + "/" + f.Target,
	}}
	return loc
}

// softwareTarget splits a vulnerable-software target FILE:PACKAGE@VERSION
// into the file and PACKAGE@VERSION. Other categories use ':' for
// IP:PORT and SYSTEM:USERNAME (where a username may hold an '@'), so only
// vulnerable-software targets are split. A Windows drive letter is kept
// with the file.
func softwareTarget(f observe.Finding) (file, pkg string, ok bool) {
	if f.Category != "vulnerable-software" || !strings.Contains(f.Target, "@") {
		return "", "", false
	}
	t := f.Target
	skip := 0
	if len(t) > 2 && t[1] == ':' && (t[2] == '\\' || t[2] == '/') {
		skip = 2 // C:\path or C:/path
	}
	i := strings.IndexByte(t[skip:], ':')
	if i < 0 {
		return "", "", false
	}
	file, pkg = t[:skip+i], t[skip+i+1:]
	if file == "" || !strings.Contains(pkg, "@") {
		return "", "", false
	}
	return file, pkg, true
}

// fileURI turns a file path into a SARIF artifact URI: file:// for an
// absolute path, a relative reference otherwise, escaped either way.
func fileURI(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	if len(p) > 1 && p[1] == ':' { // Windows drive letter
		p = "/" + p
	}
	if path.IsAbs(p) {
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	return (&url.URL{Path: p}).String()
}

// sarifLevel maps a severity to a SARIF level: critical and high fail a
// build as errors, medium warns, low and info are notes.
func sarifLevel(s observe.Severity) string {
	switch s {
	case observe.Critical, observe.High:
		return "error"
	case observe.Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score GitHub code scanning reads from
// properties["security-severity"] to rank a rule: over 9.0 critical, 7.0 to
// 8.9 high, 4.0 to 6.9 medium, below that low.
func securitySeverity(s observe.Severity) string {
	switch s {
	case observe.Critical:
		return "9.5"
	case observe.High:
		return "8.0"
	case observe.Medium:
		return "5.5"
	case observe.Low:
		return "3.0"
	}
	return "0.0"
}

// sarifTime formats a time for SARIF, which wants UTC; a zero time is left
// out.
func sarifTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
