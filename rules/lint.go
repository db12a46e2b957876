package rules

import (
	"fmt"
	"slices"
	"strings"
)

// LintLevel says how much a lint issue matters.
type LintLevel string

// Lint levels. `vigil rules lint` fails on errors, and on warnings with
// --strict.
const (
	LintError   LintLevel = "error"
	LintWarning LintLevel = "warning"
)

// LintIssue is one problem with rules that load: about a rule (File, Line
// and Rule set) or about a control the loaded rules leave unevidenced.
type LintIssue struct {
	Level   LintLevel
	File    string
	Line    int
	Rule    string
	Control string
	Msg     string
}

// String renders the issue as lint prints it: "warning: FILE:LINE: rule ID: CONTROL: message".
func (i LintIssue) String() string {
	var b strings.Builder
	b.WriteString(string(i.Level) + ": ")
	if i.File != "" {
		b.WriteString(i.File)
		if i.Line > 0 {
			fmt.Fprintf(&b, ":%d", i.Line)
		}
		b.WriteString(": ")
	}
	if i.Rule != "" {
		b.WriteString("rule " + i.Rule + ": ")
	}
	if i.Control != "" {
		b.WriteString(i.Control + ": ")
	}
	return b.String() + i.Msg
}

// scanEvidenced is the part of the Security Rule whose specifications a
// scan can evidence: every one the catalog marks rules or both needs a
// loaded rule that cites it.
const scanEvidenced = "hipaa:164.312("

// Lint checks the loaded rules against the control catalog, beyond what
// loading already enforces (every rule cites at least one catalog control):
//
//   - a technical safeguard (164.312) the catalog says scans evidence has no
//     loaded rule citing it, so its status could only ever be not-assessed
//     (a warning when rules.disable dropped the rules that did, an error
//     otherwise);
//   - a rule cites a control the catalog evidences by attestation only: its
//     findings show a gap, but a clean scan can never satisfy the control,
//     so the citation should go or the catalog should say both (a warning).
func (e *Engine) Lint() []LintIssue {
	var out []LintIssue
	cited := map[string]bool{}
	for _, r := range e.Rules() {
		for _, c := range r.Controls {
			cited[c] = true
			k, ok := e.catalog.Control(c)
			if ok && !k.EvidencedBy.Rules() {
				out = append(out, LintIssue{Level: LintWarning, File: r.File, Line: r.Line, Rule: r.ID, Control: c,
					Msg: fmt.Sprintf("the catalog (%s) evidences this control by %s, so a clean scan cannot satisfy it; cite a control a scan can evidence", e.catalog.Version, k.EvidencedBy)})
			}
		}
	}
	for _, k := range e.catalog.Controls {
		if !strings.HasPrefix(k.ID, scanEvidenced) || !k.EvidencedBy.Rules() || cited[k.ID] {
			continue
		}
		msg := "the catalog says scans evidence it, but no loaded rule cites it: its status will be not-assessed everywhere"
		var off []string
		for _, r := range e.disabled {
			if slices.Contains(r.Controls, k.ID) {
				off = append(off, r.ID)
			}
		}
		level := LintError // the pack itself lost the evidence
		if len(off) > 0 {
			level = LintWarning // the configuration chose to
			msg += " (rules.disable drops " + strings.Join(off, ", ") + ")"
		}
		out = append(out, LintIssue{Level: level, Control: k.ID, Msg: msg})
	}
	return out
}
