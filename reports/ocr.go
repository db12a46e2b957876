package reports

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
)

// OCRPack is the audit pack an OCR investigator asks for: the
// enterprise-wide Security Risk Analysis, the risk register, the
// traceability matrix, control status for every Security Rule standard,
// attestations, what changed since the previous pack, and the evidence
// appendix with the signed checkpoint to verify it against.
type OCRPack struct{}

// OCRData is the pack's JSON. State is what the next pack compares with
// (--since-pack).
type OCRData struct {
	State        PackState             `json:"state"`
	Scope        []ScopeLocation       `json:"scope"`
	Register     []risk.Risk           `json:"register"`
	Matrix       []TraceRow            `json:"traceability"`
	Controls     []ControlRow          `json:"security_rule"`
	Attestations []observe.Attestation `json:"attestations"`
	Changes      []Change              `json:"changes"`
	ComparedWith time.Time             `json:"compared_with"`
	Checkpoint   *CheckpointRef        `json:"checkpoint,omitempty"`
	Scans        int                   `json:"scans"`
	FirstScan    time.Time             `json:"first_scan,omitzero"`
}

// ScopeLocation is one location in the risk analysis's scope.
type ScopeLocation struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state,omitempty"`
	// Segments are NAME (ROLE) of each segment; EPHI those holding or
	// processing ePHI (clinical and servers roles).
	Segments []string `json:"segments"`
	EPHI     []string `json:"ephi_segments"`
	// LastScan is the latest complete scan of the location by then.
	LastScan time.Time `json:"last_scan,omitzero"`
}

// TraceRow is one line of the traceability matrix: a risk, a finding
// under it (or a location where its control is unmet), the evidence and
// the treatment.
type TraceRow struct {
	Risk     string    `json:"risk"`
	Level    string    `json:"level"`
	Controls []string  `json:"controls"`
	Location string    `json:"location"`
	Finding  string    `json:"finding,omitempty"`
	Target   string    `json:"target,omitempty"`
	Severity string    `json:"severity,omitempty"`
	Status   string    `json:"status"`
	Detected time.Time `json:"detected,omitzero"`
	// Remediated is when a scan (or a person) last resolved it.
	Remediated time.Time `json:"remediated,omitzero"`
	// Evidence are the log entries (seq) about the finding or risk.
	Evidence  []int64 `json:"evidence,omitempty"`
	Treatment string  `json:"treatment"`
}

// ControlRow is a Security Rule control's status in the pack.
type ControlRow struct {
	ID       string           `json:"id"`
	Citation string           `json:"citation"`
	Title    string           `json:"title"`
	ROrA     string           `json:"r_or_a"`
	Standard string           `json:"standard,omitempty"`
	Status   controls.Verdict `json:"status"`
	Label    string           `json:"label"`
	Reasons  []string         `json:"reasons"`
}

// Change is one difference from the previous pack.
type Change struct {
	What   string `json:"what"` // risk | control
	ID     string `json:"id"`
	Title  string `json:"title"`
	Before string `json:"before"`
	Now    string `json:"now"`
}

// Data computes the pack's content.
func (OCRPack) Data(f *Facts) *OCRData {
	s := f.Snapshot
	d := &OCRData{State: StateOf(s), Register: s.Register, Attestations: s.Attestations, Checkpoint: f.Checkpoint, Scans: len(s.Scans)}
	for _, sc := range s.Scans {
		if d.FirstScan.IsZero() || sc.StartedAt.Before(d.FirstScan) {
			d.FirstScan = sc.StartedAt
		}
	}
	for _, l := range s.Config.Locations {
		sl := ScopeLocation{ID: l.ID, Name: l.Name, State: l.State}
		for _, seg := range l.Segments {
			sl.Segments = append(sl.Segments, seg.Name+" ("+seg.Role+")")
			if seg.Role == "clinical" || seg.Role == "servers" {
				sl.EPHI = append(sl.EPHI, seg.Name)
			}
		}
		for _, sc := range s.Scans {
			if sc.Complete && slices.Contains(sc.Locations, l.ID) && sc.FinishedAt.After(sl.LastScan) {
				sl.LastScan = sc.FinishedAt
			}
		}
		d.Scope = append(d.Scope, sl)
	}
	d.Matrix = traceRows(f)
	for _, c := range s.Controls {
		if c.Control.Framework != rules.FrameworkHIPAA {
			continue
		}
		d.Controls = append(d.Controls, ControlRow{ID: c.Control.ID, Citation: c.Control.Citation, Title: c.Control.Title,
			ROrA: c.Control.ROrA, Standard: c.Control.Standard, Status: c.Status, Label: c.Label(), Reasons: c.Reasons})
	}
	if f.Previous != nil {
		d.ComparedWith = f.Previous.AsOf
		d.Changes = changes(*f.Previous, d.State)
		for i := range d.Changes {
			if c := &d.Changes[i]; c.What == "control" {
				if k, ok := s.Catalog.Control(c.ID); ok {
					c.Title = k.Title
				}
			}
		}
	}
	return d
}

// traceRows builds the matrix: each risk, each of its findings by
// location and target (or each location where its control is unmet),
// with detection and remediation dates, evidence entries and treatment.
func traceRows(f *Facts) []TraceRow {
	byID := f.Snapshot.FindingsByID()
	type window struct{ detected, remediated time.Time }
	windows := map[string]*window{}
	for _, e := range f.Events {
		w := windows[e.FindingID]
		if w == nil {
			w = &window{}
			windows[e.FindingID] = w
		}
		switch e.Event {
		case store.EventOpened:
			if w.detected.IsZero() {
				w.detected = e.At
			}
		case store.EventReopened:
			w.remediated = time.Time{}
		case store.EventResolved:
			w.remediated = e.At
		}
	}
	var out []TraceRow
	for _, r := range f.Snapshot.Register {
		base := TraceRow{Risk: r.ID, Level: r.Level.String(), Controls: r.Controls, Treatment: riskTreatment(r)}
		riskSeqs := seqs(f.Evidence[r.ID])
		if r.Source == risk.FromControl {
			locs := r.Locations
			if len(locs) == 0 {
				locs = []string{risk.OrgScope}
			}
			for _, l := range locs {
				row := base
				row.Location, row.Status, row.Detected, row.Evidence = l, string(r.Status), r.FirstDetected, riskSeqs
				out = append(out, row)
			}
			continue
		}
		refs := slices.Clone(r.Findings)
		slices.SortFunc(refs, func(a, b risk.FindingRef) int {
			return cmp.Or(cmp.Compare(a.Location, b.Location), cmp.Compare(a.Target, b.Target))
		})
		for _, ref := range refs {
			row := base
			row.Location, row.Finding, row.Target, row.Severity, row.Status = ref.Location, ref.ID, ref.Target, ref.Severity, string(ref.Status)
			if row.Location == "" {
				row.Location = risk.OrgScope
			}
			row.Detected = ref.FirstSeen
			if w := windows[ref.ID]; w != nil {
				if !w.detected.IsZero() {
					row.Detected = w.detected
				}
				if ref.Status == observe.StatusResolved {
					row.Remediated = w.remediated
				}
			}
			row.Evidence = append(seqs(f.Evidence[ref.ID]), riskSeqs...)
			if fd, ok := byID[ref.ID]; ok && fd.Decision != nil {
				row.Treatment = decisionText(fd.Decision) + "; " + row.Treatment
			}
			out = append(out, row)
		}
	}
	return out
}

func seqs(refs []store.EvidenceRef) []int64 {
	out := make([]int64, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Seq)
	}
	return out
}

// seqText shortens a list of evidence entries to its first and last,
// with the count.
func seqText(s []int64) string {
	switch len(s) {
	case 0:
		return "-"
	case 1:
		return fmt.Sprintf("#%d", s[0])
	case 2:
		return fmt.Sprintf("#%d, #%d", s[0], s[1])
	}
	return fmt.Sprintf("#%d … #%d (%d entries)", slices.Min(s), slices.Max(s), len(s))
}

func riskTreatment(r risk.Risk) string {
	var parts []string
	if r.Owner != "" {
		parts = append(parts, "owner "+r.Owner)
	} else {
		parts = append(parts, "no owner")
	}
	if r.Treatment != "" {
		parts = append(parts, string(r.Treatment))
	}
	if !r.Due.IsZero() {
		due := "due " + r.Due.UTC().Format(time.DateOnly)
		if r.DueDefault {
			due += " (default)"
		}
		if r.Overdue {
			due += ", overdue"
		}
		parts = append(parts, due)
	}
	if t := r.Decision; t != nil {
		parts = append(parts, fmt.Sprintf("set by %s on %s", t.By, dateOr(t.RecordedAt, "-")))
		if !t.Expires.IsZero() {
			parts = append(parts, "until "+t.Expires.UTC().Format(time.DateOnly))
		}
	}
	return strings.Join(parts, "; ")
}

func decisionText(d *observe.Decision) string {
	s := fmt.Sprintf("%s by %s on %s", d.Status, d.By, dateOr(d.At, "-"))
	if !d.Expires.IsZero() {
		s += " until " + d.Expires.UTC().Format(time.DateOnly)
	}
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	return s
}

// changes lists what differs between two pack states.
func changes(prev, now PackState) []Change {
	var out []Change
	ids := slices.Sorted(maps.Keys(now.Risks))
	for _, id := range ids {
		r := now.Risks[id]
		p, ok := prev.Risks[id]
		switch {
		case !ok && r.Status != risk.StatusClosed:
			out = append(out, Change{What: "risk", ID: id, Title: r.Title, Before: "not in the register", Now: riskState(r)})
		case ok && (p.Status != r.Status || p.Level != r.Level || p.Owner != r.Owner):
			out = append(out, Change{What: "risk", ID: id, Title: r.Title, Before: riskState(p), Now: riskState(r)})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(prev.Risks)) {
		if _, ok := now.Risks[id]; !ok && prev.Risks[id].Status != risk.StatusClosed {
			p := prev.Risks[id]
			out = append(out, Change{What: "risk", ID: id, Title: p.Title, Before: riskState(p), Now: "no longer in the register"})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(now.Controls)) {
		if p, ok := prev.Controls[id]; ok && p != now.Controls[id] {
			out = append(out, Change{What: "control", ID: id, Before: p, Now: now.Controls[id]})
		} else if !ok {
			out = append(out, Change{What: "control", ID: id, Before: "not judged", Now: now.Controls[id]})
		}
	}
	return out
}

func riskState(r RiskState) string {
	s := string(r.Status) + ", " + r.Level.String()
	if r.Owner != "" {
		s += ", owner " + r.Owner
	}
	return s
}

// Generate implements Generator.
func (p OCRPack) Generate(f *Facts) (*Document, error) {
	data := p.Data(f)
	s := f.Snapshot
	d := newDocument(f, "ocr", "HIPAA Security Rule audit pack",
		"Enterprise-wide risk analysis, risk register, traceability and evidence")
	d.Data, d.CSVTable = data, "traceability"

	// Summary.
	sum := risk.Summarize(s.Register)
	counts := s.ControlCounts("")
	open := 0
	for _, x := range s.Findings {
		if x.Status == observe.StatusOpen {
			open++
		}
	}
	summary := Section{ID: "summary", Title: "Summary"}
	summary.Blocks = append(summary.Blocks,
		&Paragraph{Text: fmt.Sprintf("This pack documents %s's security risk analysis and risk management under the HIPAA Security Rule "+
			"(45 CFR 164.308(a)(1)(ii)(A) and (B)) as of %s, for every location, from the scans, findings, attestations and decisions "+
			"vigil recorded by then. Every date below comes from vigil's store; the evidence appendix names the signed checkpoint "+
			"that lets a reader verify the record.", s.Config.Organization, f.AsOf.UTC().Format(time.DateOnly))},
		&KeyValues{Items: []KV{
			{Key: "Organisation", Value: s.Config.Organization},
			{Key: "As of", Value: f.AsOf.UTC().Format("2006-01-02 15:04 UTC")},
			{Key: "Period covered", Value: fmt.Sprintf("%s to %s (%d scans)", dateOr(data.FirstScan, "no scan yet"), f.AsOf.UTC().Format(time.DateOnly), data.Scans)},
			{Key: "Locations in scope", Value: fmt.Sprint(len(s.Config.Locations))},
			{Key: "Open findings", Value: fmt.Sprint(open), Tone: toneIf(open > 0, ToneBad)},
			{Key: "Open risks", Value: fmt.Sprintf("%d (very-high %d, high %d, moderate %d, low %d, very-low %d); %d overdue, %d without an owner",
				sum.ByStatus[risk.StatusOpen]+sum.ByStatus[risk.StatusTransferred], sum.OpenByLevel["very-high"], sum.OpenByLevel["high"],
				sum.OpenByLevel["moderate"], sum.OpenByLevel["low"], sum.OpenByLevel["very-low"], sum.Overdue, sum.Unowned)},
			{Key: "Accepted / closed risks", Value: fmt.Sprintf("%d / %d", sum.ByStatus[risk.StatusAccepted], sum.ByStatus[risk.StatusClosed])},
			{Key: "Controls", Value: fmt.Sprintf("%d satisfied, %d gap, %d attestation missing, %d attestation expired, %d not assessed",
				counts[controls.Satisfied], counts[controls.Gap], counts[controls.AttestationMissing], counts[controls.AttestationExpired], counts[controls.NotAssessed])},
			{Key: "Control catalog", Value: s.Catalog.Version},
		}})

	// Security Risk Analysis.
	sra := Section{ID: "risk-analysis", Title: "Security Risk Analysis", NewPage: true}
	sra.Blocks = append(sra.Blocks, &Paragraph{Text: "Scope", Heading: true},
		&Paragraph{Text: fmt.Sprintf("The analysis covers the whole organisation: all %d location(s) below, every network segment configured at each, "+
			"the identity systems and software inventories vigil reads, and the administrative safeguards people attest. "+
			"Segments with the clinical or servers role are treated as holding or processing ePHI.", len(s.Config.Locations))})
	scope := &Table{Name: "scope", Columns: []Column{{Title: "Location", Width: 1.6}, {Title: "State", Width: 0.5},
		{Title: "Segments (role)", Width: 3}, {Title: "ePHI segments", Width: 1.4}, {Title: "Last complete scan", Width: 1.1}}}
	for _, l := range data.Scope {
		scope.Rows = append(scope.Rows, []Cell{C(l.Name + " (" + l.ID + ")"), C(l.State), C(strings.Join(l.Segments, ", ")),
			C(strings.Join(l.EPHI, ", ")), {Text: dateOr(l.LastScan, "never"), Tone: toneIf(l.LastScan.IsZero(), ToneBad)}})
	}
	sra.Blocks = append(sra.Blocks, scope)
	var systems []string
	for _, id := range s.Config.Identity {
		systems = append(systems, id.Type+":"+id.System)
	}
	sysText := "No identity system is configured: account safeguards (MFA, stale and shared accounts) are not assessed."
	if len(systems) > 0 {
		sysText = "Identity systems read for accounts that reach ePHI: " + strings.Join(systems, ", ") + "."
	}
	if len(s.Config.Software) > 0 {
		sysText += fmt.Sprintf(" Software inventories read for known vulnerabilities: %d source(s).", len(s.Config.Software))
	}
	sra.Blocks = append(sra.Blocks, &Paragraph{Text: sysText},
		&Paragraph{Text: "Method", Heading: true},
		&Paragraph{Text: "Threats and vulnerabilities are identified from vigil's scheduled scans of every location (network discovery, exposed " +
			"services, TLS, segmentation tested from each vantage point), identity systems and software inventories; each finding is a rule's " +
			"judgement over dated observations. Risks are rated on the five-step qualitative scales of NIST SP 800-30 Rev. 1, Guide for " +
			"Conducting Risk Assessments: likelihood per Appendix G, Table G-5; impact per Appendix H, Table H-3; level of risk per Appendix I, " +
			"Table I-2. Likelihood starts from the finding category and rises for exposure on a public address or from a guest or IoT segment; " +
			"impact follows the rule's severity and rises on segments holding ePHI; each risk's rationale names what applied. A safeguard no " +
			"scan can see is evidenced by a dated attestation; a missing or expired one is a risk of moderate likelihood and, for a required " +
			"HIPAA safeguard, high impact. Treatments follow NIST SP 800-39's risk responses (mitigate, accept, transfer)."},
	)
	scale := &Table{Name: "scales", Caption: "Assessment scale: qualitative values and semi-quantitative scores (NIST SP 800-30 Rev. 1, Tables G-5, H-3, I-2)",
		Columns: []Column{{Title: "Level"}, {Title: "Score (0-10)"}}}
	for i := len(risk.Levels) - 1; i >= 0; i-- {
		l := risk.Levels[i]
		scale.Rows = append(scale.Rows, []Cell{C(l.Label()), C(fmt.Sprint(l.Score()))})
	}
	matrix := &Table{Name: "risk-matrix", Caption: "Level of risk: likelihood (rows) × impact (columns), NIST SP 800-30 Rev. 1, Table I-2",
		Columns: []Column{{Title: "Likelihood \\ impact", Width: 1.4}}}
	for _, im := range risk.Levels {
		matrix.Columns = append(matrix.Columns, Column{Title: im.Label()})
	}
	for i := len(risk.Levels) - 1; i >= 0; i-- {
		li := risk.Levels[i]
		row := []Cell{C(li.Label())}
		for _, im := range risk.Levels {
			lv := risk.Combine(li, im)
			row = append(row, Cell{Text: lv.Label(), Tone: levelTone(lv)})
		}
		matrix.Rows = append(matrix.Rows, row)
	}
	sra.Blocks = append(sra.Blocks, scale, matrix)

	// Register.
	reg := Section{ID: "risk-register", Title: "Risk register", NewPage: true, Landscape: true}
	rt := &Table{Name: "register", Columns: []Column{{Title: "Risk", Width: 2}, {Title: "Threat / vulnerability", Width: 3},
		{Title: "Location", Width: 1.1}, {Title: "L", Width: 0.7}, {Title: "I", Width: 0.7}, {Title: "Level", Width: 0.8},
		{Title: "Status", Width: 0.8}, {Title: "Owner / treatment / due", Width: 2.2}}, Empty: "The register is empty."}
	for _, r := range s.Register {
		loc := r.Location
		if r.Source == risk.FromControl {
			loc = strings.Join(r.Locations, ", ")
		}
		if loc == "" {
			loc = risk.OrgScope
		}
		rt.Rows = append(rt.Rows, []Cell{C(r.ID + "\n" + r.Title), C(r.Threat + ". " + r.Vulnerability), C(loc),
			C(r.Likelihood.String()), C(r.Impact.String()), {Text: r.Level.String(), Tone: levelTone(r.Level)},
			{Text: string(r.Status), Tone: riskStatusTone(r.Status)}, C(riskTreatment(r))})
	}
	reg.Blocks = append(reg.Blocks, rt)

	// Traceability.
	tr := Section{ID: "traceability", Title: "Traceability matrix", NewPage: true, Landscape: true}
	tr.Blocks = append(tr.Blocks, &Paragraph{Text: "Each risk, the controls it bears on, its findings at each location with the dates they were " +
		"detected and remediated, the evidence-log entries that record them (verify with `vigil evidence verify`), and the treatment."})
	tt := &Table{Name: "traceability", Columns: []Column{{Title: "Risk", Width: 1.7}, {Title: "Controls", Width: 1.7},
		{Title: "Location", Width: 0.9}, {Title: "Finding", Width: 1.5}, {Title: "Status", Width: 0.7}, {Title: "Detected", Width: 0.75},
		{Title: "Remediated", Width: 0.8}, {Title: "Evidence", Width: 1}, {Title: "Treatment", Width: 2.4}}, Empty: "No risk to trace."}
	for _, row := range data.Matrix {
		finding := row.Target
		if row.Severity != "" {
			finding += " (" + row.Severity + ")"
		}
		tt.Rows = append(tt.Rows, []Cell{C(row.Risk + " [" + row.Level + "]"), C(strings.Join(row.Controls, " ")), C(row.Location),
			C(dash(finding)), {Text: row.Status, Tone: findingStatusTone(row.Status)}, C(dateOr(row.Detected, "-")),
			C(dateOr(row.Remediated, "-")), C(seqText(row.Evidence)), C(row.Treatment)})
	}
	tr.Blocks = append(tr.Blocks, tt)

	// Security Rule.
	sec := Section{ID: "security-rule", Title: "Security Rule control status", NewPage: true}
	sec.Blocks = append(sec.Blocks, &Paragraph{Text: fmt.Sprintf("Every standard and implementation specification of 45 CFR 164 Subpart C "+
		"in catalog %s, judged for the organisation (the worst location decides). R required, A addressable, S a standard judged by its "+
		"specifications. Satisfied needs current evidence: a complete scan in the last 30 days that found nothing open, and/or a current attestation.",
		s.Catalog.Version)})
	ct := &Table{Name: "security-rule", Columns: []Column{{Title: "Citation", Width: 1.5}, {Title: "Title", Width: 2},
		{Title: "R/A", Width: 0.4}, {Title: "Status", Width: 1.4}, {Title: "Why", Width: 4}}}
	for _, c := range data.Controls {
		ct.Rows = append(ct.Rows, []Cell{C(c.Citation), C(c.Title), C(c.ROrA), {Text: c.Label, Tone: verdictTone(c.Status)},
			C(strings.Join(c.Reasons, "; "))})
	}
	sec.Blocks = append(sec.Blocks, ct)

	// Attestations.
	at := Section{ID: "attestations", Title: "Attestations", NewPage: true}
	att := &Table{Name: "attestations", Columns: []Column{{Title: "Kind", Width: 1.6}, {Title: "Location", Width: 1},
		{Title: "Done on", Width: 0.9}, {Title: "Valid until", Width: 0.9}, {Title: "By / owner", Width: 1.3}, {Title: "Result / note", Width: 2},
		{Title: "Recorded", Width: 0.9}, {Title: "Evidence", Width: 0.8}}, Empty: "No attestation recorded by then."}
	atts := slices.Clone(s.Attestations)
	slices.SortStableFunc(atts, func(a, b observe.Attestation) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), a.At.Compare(b.At)) })
	for _, a := range atts {
		exp := a.ExpiresAt
		if exp.IsZero() {
			if k, ok := s.Catalog.AttestationKind(a.Kind); ok {
				exp = a.At.AddDate(0, 0, k.ValidDays)
			}
		}
		who := a.By
		if a.Owner != "" && a.Owner != a.By {
			who += " / " + a.Owner
		}
		note := strings.TrimSpace(strings.Join(nonEmpty(a.Result, a.Subject, a.Note), "; "))
		if a.Document != "" {
			note = strings.TrimSpace(note + " document sha256:" + short(a.Document, 12))
		}
		att.Rows = append(att.Rows, []Cell{C(a.Kind), C(dash(a.Location)), C(dateOr(a.At, "-")),
			{Text: dateOr(exp, "-"), Tone: toneIf(!exp.IsZero() && !f.AsOf.Before(exp), ToneBad)}, C(dash(who)), C(dash(note)),
			C(dateOr(a.RecordedAt, "-")), C(seqText(seqs(f.Evidence[a.ID])))})
	}
	at.Blocks = append(at.Blocks, att)
	if len(s.Due) > 0 {
		due := &Table{Name: "due", Caption: "Attestations due, expired or missing at the as-of date", Columns: []Column{{Title: "Kind", Width: 1.5},
			{Title: "Location", Width: 1}, {Title: "State", Width: 0.8}, {Title: "Expires / deadline", Width: 1}, {Title: "Person", Width: 1.4}}}
		for _, r := range s.Due {
			due.Rows = append(due.Rows, []Cell{C(r.Kind), C(dash(r.Location)), {Text: r.State, Tone: toneIf(r.State != "expiring", ToneBad)},
				C(dateOr(r.Expires, "-")), C(dash(r.Person))})
		}
		at.Blocks = append(at.Blocks, due)
	}

	// Changes.
	ch := Section{ID: "changes", Title: "Changes since the previous pack", NewPage: true}
	if f.Previous != nil {
		ch.Blocks = append(ch.Blocks, &Paragraph{Text: fmt.Sprintf("Compared with the state as of %s (open findings then %d, now %d).",
			f.Previous.AsOf.UTC().Format(time.DateOnly), f.Previous.OpenFindings, data.State.OpenFindings)})
	}
	cht := &Table{Name: "changes", Columns: []Column{{Title: "What", Width: 0.7}, {Title: "ID", Width: 2.2}, {Title: "Title", Width: 2.4},
		{Title: "Before", Width: 1.6}, {Title: "Now", Width: 1.6}}, Empty: "Nothing changed."}
	for _, c := range data.Changes {
		cht.Rows = append(cht.Rows, []Cell{C(c.What), C(c.ID), C(c.Title), C(c.Before), C(c.Now)})
	}
	ch.Blocks = append(ch.Blocks, cht)

	// Evidence appendix.
	ev := Section{ID: "evidence", Title: "Evidence appendix", NewPage: true}
	ev.Blocks = append(ev.Blocks, &Paragraph{Text: "vigil appends every scan, finding event, decision, attestation and register entry to a " +
		"hash-chained log: each entry commits to the one before, and signed checkpoints vouch for every entry up to them. The entry numbers " +
		"(#seq) cited in this pack are entries of that log."})
	if c := f.Checkpoint; c != nil {
		ev.Blocks = append(ev.Blocks, &KeyValues{Items: []KV{
			{Key: "Latest signed checkpoint", Value: fmt.Sprintf("entry #%d, signed %s", c.Seq, c.SignedAt.UTC().Format(time.RFC3339))},
			{Key: "Entry hash (SHA-256)", Value: c.Hash},
			{Key: "Signing key fingerprint", Value: c.KeyFingerprint},
			{Key: "Public key", Value: c.PublicKey},
			{Key: "Last entry at the as-of date", Value: fmt.Sprintf("#%d", c.Head)},
		}}, &Paragraph{Text: "To verify: export the log (vigil evidence export --config vigil.yaml --output evidence.zip), then run " +
			"vigil evidence verify evidence.zip --key " + c.KeyFingerprint + ". It checks every entry's hash and link and every checkpoint's " +
			"signature; the archive's entry #" + fmt.Sprint(c.Seq) + " must carry the hash above."})
	} else {
		ev.Blocks = append(ev.Blocks, &Paragraph{Text: "The evidence log had no signed checkpoint at the as-of date: the entries cited cannot be verified against a signature yet."})
	}
	sct := &Table{Name: "scans", Caption: "Scans in the period and their evidence entries", Columns: []Column{{Title: "Scan", Width: 2.2},
		{Title: "Finished", Width: 1.3}, {Title: "Locations", Width: 0.8}, {Title: "Complete", Width: 0.8}, {Title: "Evidence", Width: 1.6}},
		Empty: "No scan finished by then."}
	scans := slices.Clone(s.Scans)
	slices.SortFunc(scans, func(a, b observe.Scan) int {
		return cmp.Or(a.FinishedAt.Compare(b.FinishedAt), cmp.Compare(a.ID, b.ID))
	})
	for _, sc := range scans {
		var entry string
		for _, r := range f.Evidence[sc.ID] {
			if r.Kind == string(evidence.KindScan) {
				entry = fmt.Sprintf("#%d %s", r.Seq, short(r.Hash, 12))
			}
		}
		complete := "yes"
		if !sc.Complete {
			complete = "no"
		}
		sct.Rows = append(sct.Rows, []Cell{C(sc.ID), C(sc.FinishedAt.UTC().Format("2006-01-02 15:04")), C(fmt.Sprint(len(sc.Locations))),
			{Text: complete, Tone: toneIf(!sc.Complete, ToneWarn)}, C(dash(entry))})
	}
	ev.Blocks = append(ev.Blocks, sct)

	d.Sections = []Section{summary, sra, reg, tr, sec, at, ch, ev}
	return d, nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func toneIf(cond bool, t Tone) Tone {
	if cond {
		return t
	}
	return ToneNone
}

func levelTone(l risk.Level) Tone {
	switch {
	case l >= risk.High:
		return ToneBad
	case l == risk.Moderate:
		return ToneWarn
	}
	return ToneNone
}

func riskStatusTone(s risk.Status) Tone {
	switch s {
	case risk.StatusOpen:
		return ToneBad
	case risk.StatusClosed:
		return ToneGood
	}
	return ToneWarn
}

func findingStatusTone(s string) Tone {
	switch s {
	case string(observe.StatusOpen):
		return ToneBad
	case string(observe.StatusResolved), string(risk.StatusClosed):
		return ToneGood
	case string(observe.StatusAccepted), string(observe.StatusFalsePositive), string(risk.StatusTransferred):
		return ToneWarn
	}
	return ToneNone
}

func verdictTone(v controls.Verdict) Tone {
	switch v {
	case controls.Satisfied:
		return ToneGood
	case controls.Gap:
		return ToneBad
	case controls.AttestationMissing, controls.AttestationExpired:
		return ToneWarn
	}
	return ToneMuted
}
