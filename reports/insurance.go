package reports

import (
	"embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/rules"
)

//go:embed questions/insurance.yaml
var questionFiles embed.FS

// exposureQuestions are the insurance controls whose question asks
// whether a weakness exists (questions/insurance.yaml).
func exposureQuestions() (map[string]bool, error) {
	b, err := questionFiles.ReadFile("questions/insurance.yaml")
	if err != nil {
		return nil, err
	}
	var q struct {
		Exposure []string `yaml:"exposure"`
	}
	if err := yaml.Unmarshal(b, &q); err != nil {
		return nil, fmt.Errorf("questions/insurance.yaml: %w", err)
	}
	out := map[string]bool{}
	for _, id := range q.Exposure {
		out[id] = true
	}
	return out, nil
}

// Answer is how the insurance questionnaire answers a question.
type Answer string

// Answers. The favourable one (Yes to a safeguard, No to an exposure) is
// only ever given on current evidence at every location.
const (
	AnswerYes       Answer = "Yes"
	AnswerNo        Answer = "No"
	AnswerPartially Answer = "Partially"
	AnswerUnknown   Answer = "Unknown"
)

// Where a control stands at one location, for an answer.
const (
	stateMet     = "met"     // satisfied on current evidence
	stateUnmet   = "unmet"   // an open finding (gap)
	stateUnknown = "unknown" // no current evidence either way
)

// InsuranceAnswer is one answered question.
type InsuranceAnswer struct {
	Control  string `json:"control"`
	Question string `json:"question"`
	Answer   Answer `json:"answer"`
	// Exposure is true when the question asks whether a weakness exists,
	// so that No is the favourable answer.
	Exposure bool `json:"exposure,omitempty"`
	// Basis says in one sentence why this answer.
	Basis string `json:"basis"`
	// Evidence are the scans, findings and attestations behind it.
	Evidence []string `json:"evidence"`
	// LastVerified is when the evidence was last refreshed at the
	// location verified longest ago; zero when nothing ever was.
	LastVerified time.Time        `json:"last_verified,omitzero"`
	Status       controls.Verdict `json:"status"`
	Locations    []LocationAnswer `json:"locations"`
}

// LocationAnswer is where a question's control stands at one location.
type LocationAnswer struct {
	Location string           `json:"location"`
	State    string           `json:"state"`
	Status   controls.Verdict `json:"status"`
	Verified time.Time        `json:"verified,omitzero"`
	Why      string           `json:"why,omitempty"`
}

// AnswerQuestion answers the question of an insurance control from its
// organisation status s at now. A location counts as met only when its
// status is satisfied and the evidence is current: every citing rule ran in
// a complete scan within maxAge before now, and any attestation is dated
// by now and not expired. A gap is unmet; anything else is unknown. Then:
// met everywhere is Yes (No for an exposure question); unmet somewhere is
// No, or Partially when other locations are met (an exposure question: Yes,
// it exists); otherwise Unknown.
func AnswerQuestion(s controls.ControlStatus, exposure bool, now time.Time, maxAge time.Duration) InsuranceAnswer {
	if maxAge <= 0 {
		maxAge = controls.DefaultMaxScanAge
	}
	a := InsuranceAnswer{Control: s.Control.ID, Question: s.Control.Title, Exposure: exposure, Status: s.Status}
	locs := s.ByLocation
	if len(locs) == 0 {
		locs = []controls.ControlStatus{s}
	}
	var met, unmet, unknown []string
	for _, l := range locs {
		la := judgeLocation(l, now, maxAge)
		a.Locations = append(a.Locations, la)
		name := l.Location
		if name == "" {
			name = "organisation"
		}
		switch la.State {
		case stateMet:
			met = append(met, name)
		case stateUnmet:
			unmet = append(unmet, name)
		default:
			unknown = append(unknown, name+" ("+la.Why+")")
		}
		if !la.Verified.IsZero() && (a.LastVerified.IsZero() || la.Verified.Before(a.LastVerified)) {
			a.LastVerified = la.Verified
		}
	}
	n := len(locs)
	switch {
	case len(unmet) > 0 && exposure:
		a.Answer = AnswerYes
		a.Basis = fmt.Sprintf("found at %s of %d location(s): %s", count(len(unmet)), n, strings.Join(unmet, ", "))
	case len(unmet) > 0 && len(met) > 0:
		a.Answer = AnswerPartially
		a.Basis = fmt.Sprintf("in place at %s (%s); gap at %s", strings.Join(met, ", "), count(len(met)), strings.Join(unmet, ", "))
	case len(unmet) > 0:
		a.Answer = AnswerNo
		a.Basis = fmt.Sprintf("gap at %s", strings.Join(unmet, ", "))
	case len(met) == n:
		a.Answer = AnswerYes
		if exposure {
			a.Answer = AnswerNo
		}
		a.Basis = fmt.Sprintf("current evidence at all %d location(s)", n)
	default:
		a.Answer = AnswerUnknown
		a.Basis = "no current evidence at " + strings.Join(unknown, "; ")
		if len(met) > 0 {
			a.Basis += "; in place at " + strings.Join(met, ", ")
		}
	}
	if len(unmet) > 0 && len(unknown) > 0 {
		a.Basis += "; no current evidence at " + strings.Join(unknown, "; ")
	}
	a.Evidence = answerEvidence(s, locs)
	return a
}

func count(n int) string { return fmt.Sprint(n) }

// judgeLocation decides met, unmet or unknown at one location.
func judgeLocation(l controls.ControlStatus, now time.Time, maxAge time.Duration) LocationAnswer {
	la := LocationAnswer{Location: l.Location, Status: l.Status}
	k := l.Control
	for _, e := range l.Evaluated {
		if e.At.After(la.Verified) && !e.At.After(now) {
			la.Verified = e.At
		}
	}
	if a := l.Attestation; a != nil && !a.At.After(now) && a.At.After(la.Verified) {
		la.Verified = a.At
	}
	switch l.Status {
	case controls.Gap:
		la.State, la.Why = stateUnmet, "open findings"
		return la
	case controls.Satisfied:
	default:
		la.State, la.Why = stateUnknown, string(l.Status)
		return la
	}
	// Satisfied: check the evidence is there and current rather than
	// trusting the verdict.
	la.State = stateMet
	stale := func(why string) LocationAnswer {
		la.State, la.Why = stateUnknown, why
		return la
	}
	if k.EvidencedBy.Rules() {
		if len(l.Evaluated) == 0 || len(l.NotRun) > 0 {
			return stale("no complete scan ran every rule")
		}
		for _, e := range l.Evaluated {
			if e.At.IsZero() || e.At.After(now) || now.Sub(e.At) > maxAge {
				return stale(fmt.Sprintf("scan %s is older than %d days", e.Scan, int(maxAge.Hours()/24)))
			}
		}
	}
	if k.EvidencedBy.Attestation() {
		a := l.Attestation
		switch {
		case a == nil:
			return stale("no attestation")
		case !a.Counts():
			return stale("the attestation records a failure (" + a.Result + ")")
		case a.At.IsZero() || a.At.After(now):
			return stale("the attestation is not dated by then")
		case a.ExpiresAt.IsZero() || !now.Before(a.ExpiresAt):
			return stale("the attestation has expired")
		}
	}
	if !k.EvidencedBy.Rules() && !k.EvidencedBy.Attestation() {
		return stale("no evidence of its own")
	}
	return la
}

// answerEvidence lists what an answer rests on.
func answerEvidence(s controls.ControlStatus, locs []controls.ControlStatus) []string {
	var out []string
	k := s.Control
	if k.EvidencedBy.Rules() {
		var rulesRun []string
		var latest controls.RuleRun
		ran := 0
		for _, l := range locs {
			if len(l.Evaluated) > 0 {
				ran++
			}
			for _, e := range l.Evaluated {
				if !slices.Contains(rulesRun, e.Rule) {
					rulesRun = append(rulesRun, e.Rule)
				}
				if e.At.After(latest.At) {
					latest = e
				}
			}
		}
		slices.Sort(rulesRun)
		if ran > 0 {
			out = append(out, fmt.Sprintf("rules %s ran at %d of %d location(s); latest scan %s on %s", strings.Join(rulesRun, ", "),
				ran, len(locs), latest.Scan, latest.At.UTC().Format(time.DateOnly)))
		} else {
			out = append(out, "no recent complete scan ran the rules that check this")
		}
		if len(s.Open) > 0 {
			var refs []string
			for i, f := range s.Open {
				if i == 5 {
					refs = append(refs, fmt.Sprintf("and %d more", len(s.Open)-5))
					break
				}
				refs = append(refs, fmt.Sprintf("%s %s at %s", f.Rule, f.Target, locationLabel(f.Location)))
			}
			out = append(out, fmt.Sprintf("%d open finding(s): %s", len(s.Open), strings.Join(refs, "; ")))
		}
		if len(s.Accepted) > 0 {
			out = append(out, fmt.Sprintf("%d finding(s) accepted as a risk", len(s.Accepted)))
		}
	}
	if k.EvidencedBy.Attestation() {
		seen := map[string]bool{}
		for _, l := range locs {
			a := l.Attestation
			if a == nil || seen[a.ID+a.Kind+a.At.String()] {
				continue
			}
			seen[a.ID+a.Kind+a.At.String()] = true
			line := fmt.Sprintf("%s attested", a.Kind)
			if a.By != "" {
				line += " by " + a.By
			}
			line += " on " + a.At.UTC().Format(time.DateOnly)
			if !a.ExpiresAt.IsZero() {
				line += ", valid until " + a.ExpiresAt.UTC().Format(time.DateOnly)
			}
			if a.Location != "" {
				line += " (" + a.Location + ")"
			}
			if a.Result != "" {
				line += ", result " + a.Result
			}
			if a.Document != "" {
				line += ", document sha256:" + short(a.Document, 12)
			}
			out = append(out, line)
		}
		if len(seen) == 0 {
			out = append(out, "no attestation recorded: "+strings.Join(k.Attestations, " or "))
		}
	}
	return out
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// InsuranceQuestionnaire is the insurance renewal questionnaire: every
// insurance control of the catalog answered Yes, No, Partially or Unknown
// with its evidence and when it was last verified.
type InsuranceQuestionnaire struct{}

// InsuranceData is the questionnaire's JSON.
type InsuranceData struct {
	CatalogVersion string            `json:"catalog_version"`
	Locations      []string          `json:"locations"`
	Answers        []InsuranceAnswer `json:"answers"`
	Counts         map[Answer]int    `json:"counts"`
}

// Answers answers every insurance question of the catalog, in catalog
// order.
func (InsuranceQuestionnaire) Answers(f *Facts) (*InsuranceData, error) {
	exposure, err := exposureQuestions()
	if err != nil {
		return nil, err
	}
	s := f.Snapshot
	data := &InsuranceData{CatalogVersion: s.Catalog.Version, Counts: map[Answer]int{}}
	for _, l := range s.Config.Locations {
		data.Locations = append(data.Locations, l.ID)
	}
	for _, k := range s.Catalog.Controls {
		if k.Framework != rules.FrameworkInsurance {
			continue
		}
		st, ok := s.Control(k.ID)
		if !ok {
			st = &controls.ControlStatus{Control: k, Status: controls.NotAssessed,
				Reasons: []string{"no location it applies to"}}
		}
		a := AnswerQuestion(*st, exposure[k.ID], f.AsOf, 0)
		data.Answers = append(data.Answers, a)
		data.Counts[a.Answer]++
	}
	return data, nil
}

// Generate implements Generator.
func (q InsuranceQuestionnaire) Generate(f *Facts) (*Document, error) {
	data, err := q.Answers(f)
	if err != nil {
		return nil, err
	}
	d := newDocument(f, "insurance", "Cyber-insurance renewal questionnaire",
		"Application questions answered from vigil's scans and attestations")
	d.Data, d.CSVTable = data, "questionnaire"

	intro := &Section{ID: "how-to-read", Title: "How to read the answers"}
	intro.Blocks = append(intro.Blocks,
		&Paragraph{Text: fmt.Sprintf("Each question below is a common cyber-insurance application question, answered for all %d location(s) of %s "+
			"from what vigil recorded by %s. An answer is never more favourable than the evidence.", len(data.Locations),
			f.Snapshot.Config.Organization, f.AsOf.UTC().Format(time.DateOnly))},
		&KeyValues{Items: []KV{
			{Key: "Yes", Value: "in place at every location, on current evidence: a complete scan within the last 30 days found nothing open, and/or a current attestation (for questions about an exposure, No is the favourable answer and needs the same evidence)", Tone: ToneGood},
			{Key: "No", Value: "a gap: an open finding shows it is not in place (for an exposure question, Yes: the exposure was found)", Tone: ToneBad},
			{Key: "Partially", Value: "in place at some locations on current evidence, a gap at others", Tone: ToneWarn},
			{Key: "Unknown", Value: "vigil has no current evidence either way: no recent complete scan, no rule checks it yet, or the attestation is missing or expired. Answer from your own records, or record the attestation in vigil", Tone: ToneMuted},
		}},
		&KeyValues{Items: []KV{
			{Key: "Answered Yes", Value: fmt.Sprint(data.Counts[AnswerYes])},
			{Key: "Answered No", Value: fmt.Sprint(data.Counts[AnswerNo])},
			{Key: "Answered Partially", Value: fmt.Sprint(data.Counts[AnswerPartially])},
			{Key: "Answered Unknown", Value: fmt.Sprint(data.Counts[AnswerUnknown])},
			{Key: "Control catalog", Value: data.CatalogVersion},
		}},
	)
	qs := &Section{ID: "questionnaire", Title: "Questionnaire"}
	t := &Table{Name: "questionnaire", Columns: []Column{{Title: "#", Width: 0.35}, {Title: "Question", Width: 2.4},
		{Title: "Answer", Width: 0.9}, {Title: "Basis and evidence", Width: 4.2}, {Title: "Last verified", Width: 1.1}, {Title: "Control", Width: 1.4}}}
	for i, a := range data.Answers {
		ev := a.Basis
		if len(a.Evidence) > 0 {
			ev += ". " + strings.Join(a.Evidence, ". ")
		}
		t.Rows = append(t.Rows, []Cell{C(fmt.Sprint(i + 1)), C(a.Question), {Text: string(a.Answer), Tone: answerTone(a)},
			C(ev), C(dateOr(a.LastVerified, "never")), C(a.Control)})
	}
	qs.Blocks = append(qs.Blocks, t)

	where := &Section{ID: "by-location", Title: "Where an answer is not Yes everywhere", NewPage: true}
	lt := &Table{Name: "by-location", Columns: []Column{{Title: "Question", Width: 1.6}, {Title: "Location", Width: 1.4},
		{Title: "Status", Width: 1.3}, {Title: "Why", Width: 2.4}, {Title: "Last verified", Width: 1}},
		Empty: "Every question is answered on current evidence at every location."}
	for _, a := range data.Answers {
		for _, l := range a.Locations {
			if l.State == stateMet {
				continue
			}
			tone := ToneMuted
			if l.State == stateUnmet {
				tone = ToneBad
			}
			lt.Rows = append(lt.Rows, []Cell{C(a.Control), C(f.locationName(l.Location)), {Text: string(l.Status), Tone: tone},
				C(l.Why), C(dateOr(l.Verified, "never"))})
		}
	}
	where.Blocks = append(where.Blocks, lt)
	d.Sections = []Section{*intro, *qs, *where}
	return d, nil
}

// answerTone colours an answer: favourable green, a gap red, partial
// amber, unknown grey.
func answerTone(a InsuranceAnswer) Tone {
	switch {
	case a.Answer == AnswerUnknown:
		return ToneMuted
	case a.Answer == AnswerPartially:
		return ToneWarn
	case (a.Answer == AnswerYes) != a.Exposure:
		return ToneGood
	}
	return ToneBad
}

func dateOr(t time.Time, or string) string {
	if t.IsZero() {
		return or
	}
	return t.UTC().Format(time.DateOnly)
}

// newDocument starts a document with what every page shows.
func newDocument(f *Facts, kind, title, subtitle string) *Document {
	return &Document{Kind: kind, Title: title, Subtitle: subtitle, Organization: f.Snapshot.Config.Organization,
		AsOf: f.AsOf, Generated: f.Generated, Version: f.Version}
}
