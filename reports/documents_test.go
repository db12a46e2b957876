package reports

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

func generate(t testing.TB, kind string, f *Facts) *Document {
	t.Helper()
	g, err := GeneratorFor(kind)
	if err != nil {
		t.Fatal(err)
	}
	d, err := g.Generate(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./reports -run TestReportGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test ./reports -update and review the diff); got:\n%s", path, got)
	}
}

// Each report kind's content over the fixed dataset, as of asOf, with the
// later scan and decisions already in the store.
func TestReportGolden(t *testing.T) {
	fs := seedFixture(t)
	fs.addLater(t)
	f := fs.facts(t, asOf, nil)
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			golden(t, kind, dumpDocument(generate(t, kind, f)))
		})
	}
}

// The questionnaire's answers over the fixed dataset: the right answer for
// each question, and no favourable answer the evidence does not give.
func TestInsuranceAnswersFromStore(t *testing.T) {
	fs := seedFixture(t)
	fs.addLater(t) // a current EDR attestation after asOf must not count
	data, err := InsuranceQuestionnaire{}.Answers(fs.facts(t, asOf, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Answer{
		"insurance:mfa-email":      AnswerNo,      // an email account without MFA (organisation-wide)
		"insurance:mfa-privileged": AnswerYes,     // the identity scan found no admin without MFA
		"insurance:rdp-exposed":    AnswerYes,     // exposure question: RDP is reachable at downtown
		"insurance:edr":            AnswerUnknown, // the only EDR attestation had expired by then
		"insurance:backups":        AnswerUnknown, // restore drill at uptown only
		"insurance:training":       AnswerYes,     // current training record, organisation-wide
		"insurance:patching":       AnswerUnknown, // no software scan
		"insurance:eol-software":   AnswerUnknown, // no rule checks it yet
		"insurance:irp":            AnswerUnknown, // never attested
	}
	got := map[string]InsuranceAnswer{}
	for _, a := range data.Answers {
		got[a.Control] = a
	}
	for id, w := range want {
		if a := got[id]; a.Answer != w {
			t.Errorf("%s = %s (%s), want %s", id, a.Answer, a.Basis, w)
		}
	}
	if a := got["insurance:training"]; !a.LastVerified.Equal(time.Date(2026, 1, 20, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("training last verified %v, want the training date", a.LastVerified)
	}
	if a := got["insurance:backups"]; !strings.Contains(strings.Join(a.Evidence, " "), "restore-drill attested by Sam Ortiz on 2026-01-28") {
		t.Errorf("backups evidence = %q", a.Evidence)
	}
	for _, a := range data.Answers {
		favourable := (a.Answer == AnswerYes) != a.Exposure && a.Answer != AnswerUnknown && a.Answer != AnswerPartially
		if !favourable {
			continue
		}
		for _, l := range a.Locations {
			if l.State != stateMet {
				t.Errorf("%s answered %s but %s is %s (%s)", a.Control, a.Answer, l.Location, l.State, l.Why)
			}
		}
	}
	if len(data.Answers) != 16 {
		t.Errorf("%d questions, want the catalog's 16", len(data.Answers))
	}
}

// AnswerQuestion cannot be tricked into a favourable answer: a satisfied
// verdict whose evidence is old, missing or failing is Unknown; one gapped
// location of two is Partially, every one gapped No.
func TestAnswerQuestionNeverYesWithoutEvidence(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ruleCtl := rules.Control{ID: "insurance:mfa-email", Framework: "insurance", Title: "MFA on email?", EvidencedBy: rules.ByRules}
	attCtl := rules.Control{ID: "insurance:edr", Framework: "insurance", Title: "EDR?", EvidencedBy: rules.ByAttestation, Attestations: []string{"edr-coverage"}}
	expCtl := rules.Control{ID: "insurance:rdp-exposed", Framework: "insurance", Title: "RDP exposed?", EvidencedBy: rules.ByRules}
	fresh := []controls.RuleRun{{Rule: "id.remote-without-mfa", Scan: "s9", At: now.Add(-5 * 24 * time.Hour)}}
	old := []controls.RuleRun{{Rule: "id.remote-without-mfa", Scan: "s1", At: now.Add(-90 * 24 * time.Hour)}}
	loc := func(k rules.Control, id string, v controls.Verdict, runs []controls.RuleRun, a *observe.Attestation) controls.ControlStatus {
		return controls.ControlStatus{Control: k, Location: id, Status: v, Evaluated: runs, Attestation: a}
	}
	org := func(k rules.Control, ls ...controls.ControlStatus) controls.ControlStatus {
		s := controls.ControlStatus{Control: k, Status: controls.Satisfied, ByLocation: ls}
		for _, l := range ls {
			if l.Status.Worse(s.Status) {
				s.Status = l.Status
			}
		}
		return s
	}
	current := &observe.Attestation{Kind: "edr-coverage", At: now.Add(-10 * 24 * time.Hour), ExpiresAt: now.Add(80 * 24 * time.Hour), By: "sam"}
	lapsed := &observe.Attestation{Kind: "edr-coverage", At: now.Add(-100 * 24 * time.Hour), ExpiresAt: now.Add(-10 * 24 * time.Hour), By: "sam"}
	failed := &observe.Attestation{Kind: "edr-coverage", At: now.Add(-10 * 24 * time.Hour), ExpiresAt: now.Add(80 * 24 * time.Hour), Result: "fail"}
	future := &observe.Attestation{Kind: "edr-coverage", At: now.Add(24 * time.Hour), ExpiresAt: now.Add(91 * 24 * time.Hour)}
	tests := []struct {
		name     string
		s        controls.ControlStatus
		exposure bool
		want     Answer
	}{
		{"satisfied with current scans everywhere", org(ruleCtl, loc(ruleCtl, "a", controls.Satisfied, fresh, nil), loc(ruleCtl, "b", controls.Satisfied, fresh, nil)), false, AnswerYes},
		{"satisfied but the scan is 90 days old", org(ruleCtl, loc(ruleCtl, "a", controls.Satisfied, old, nil)), false, AnswerUnknown},
		{"satisfied at one location on an old scan", org(ruleCtl, loc(ruleCtl, "a", controls.Satisfied, fresh, nil), loc(ruleCtl, "b", controls.Satisfied, old, nil)), false, AnswerUnknown},
		{"satisfied with no scan at all", org(ruleCtl, loc(ruleCtl, "a", controls.Satisfied, nil, nil)), false, AnswerUnknown},
		{"satisfied by a scan dated after the report", org(ruleCtl, loc(ruleCtl, "a", controls.Satisfied, []controls.RuleRun{{Rule: "r", Scan: "s", At: now.Add(time.Hour)}}, nil)), false, AnswerUnknown},
		{"MFA gapped at one location of two", org(ruleCtl, loc(ruleCtl, "a", controls.Gap, fresh, nil), loc(ruleCtl, "b", controls.Satisfied, fresh, nil)), false, AnswerPartially},
		{"MFA gapped at one, unknown at the other", org(ruleCtl, loc(ruleCtl, "a", controls.Gap, fresh, nil), loc(ruleCtl, "b", controls.NotAssessed, nil, nil)), false, AnswerNo},
		{"MFA gapped everywhere", org(ruleCtl, loc(ruleCtl, "a", controls.Gap, fresh, nil), loc(ruleCtl, "b", controls.Gap, fresh, nil)), false, AnswerNo},
		{"not assessed", org(ruleCtl, loc(ruleCtl, "a", controls.NotAssessed, nil, nil)), false, AnswerUnknown},
		{"current attestation", org(attCtl, loc(attCtl, "a", controls.Satisfied, nil, current)), false, AnswerYes},
		{"satisfied verdict on a lapsed attestation", org(attCtl, loc(attCtl, "a", controls.Satisfied, nil, lapsed)), false, AnswerUnknown},
		{"satisfied verdict on a failed drill", org(attCtl, loc(attCtl, "a", controls.Satisfied, nil, failed)), false, AnswerUnknown},
		{"satisfied verdict on a future-dated attestation", org(attCtl, loc(attCtl, "a", controls.Satisfied, nil, future)), false, AnswerUnknown},
		{"satisfied verdict with no attestation", org(attCtl, loc(attCtl, "a", controls.Satisfied, nil, nil)), false, AnswerUnknown},
		{"attestation missing", org(attCtl, loc(attCtl, "a", controls.AttestationMissing, nil, nil)), false, AnswerUnknown},
		{"attestation expired", org(attCtl, loc(attCtl, "a", controls.AttestationExpired, nil, lapsed)), false, AnswerUnknown},
		{"exposure found at one location", org(expCtl, loc(expCtl, "a", controls.Gap, fresh, nil), loc(expCtl, "b", controls.Satisfied, fresh, nil)), true, AnswerYes},
		{"exposure absent on current scans", org(expCtl, loc(expCtl, "a", controls.Satisfied, fresh, nil)), true, AnswerNo},
		{"exposure absent on an old scan", org(expCtl, loc(expCtl, "a", controls.Satisfied, old, nil)), true, AnswerUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := AnswerQuestion(tt.s, tt.exposure, now, 0)
			if a.Answer != tt.want {
				t.Errorf("answer %s (%s), want %s", a.Answer, a.Basis, tt.want)
			}
		})
	}
}

// A pack as of a date is the same after later scans, attestations and
// decisions: the store is read as it stood then.
func TestReportAsOfIsReproducible(t *testing.T) {
	fs := seedFixture(t)
	before := map[string]string{}
	for _, kind := range Kinds() {
		before[kind] = dumpDocument(generate(t, kind, fs.facts(t, asOf, nil)))
	}
	fs.addLater(t)
	for _, kind := range Kinds() {
		after := dumpDocument(generate(t, kind, fs.facts(t, asOf, nil)))
		if after != before[kind] {
			t.Errorf("%s as of %s changed after later records:\n--- before\n%s\n--- after\n%s", kind, asOf, before[kind], after)
		}
	}
	// ... and a pack as of now does see them.
	now := dumpDocument(generate(t, "ocr", fs.facts(t, time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC), nil)))
	if now == before["ocr"] || !strings.Contains(now, "scan-2026-03-10") {
		t.Error("a later pack does not show the later scan")
	}
}

// --since-pack: the changes section compares with a previous pack's JSON.
func TestOCRChangesSincePreviousPack(t *testing.T) {
	fs := seedFixture(t)
	fs.addLater(t)
	var buf bytes.Buffer
	if err := (DocumentJSONWriter{}).WriteDocument(&buf, generate(t, "ocr", fs.facts(t, asOf, nil))); err != nil {
		t.Fatal(err)
	}
	prev, err := ReadPackState(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !prev.AsOf.Equal(asOf) || prev.Risks["net.remote-access-exposed@downtown"].Status != "open" {
		t.Fatalf("state read back = %+v", prev)
	}
	data := OCRPack{}.Data(fs.facts(t, time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC), prev))
	var closed, owned bool
	for _, c := range data.Changes {
		if c.ID == "net.remote-access-exposed@downtown" && strings.HasPrefix(c.Now, "closed") {
			closed = true
		}
		if c.ID == "id.remote-without-mfa@organisation" && strings.Contains(c.Now, "owner Dr. Lee") {
			owned = true
		}
	}
	if !closed || !owned {
		t.Errorf("changes = %+v, want the RDP risk closed and the MFA risk owned", data.Changes)
	}
	if _, err := ReadPackState(strings.NewReader(`{"kind":"insurance","data":{}}`)); err == nil {
		t.Error("an insurance JSON was read as a pack")
	}
}

// Every format writes every kind; the HTML is one file with what every
// page needs; the CSV has the questionnaire's answers.
func TestReportFormats(t *testing.T) {
	fs := seedFixture(t)
	f := fs.facts(t, asOf, nil)
	for _, kind := range Kinds() {
		d := generate(t, kind, f)
		for _, format := range DocumentFormats() {
			w, err := DocumentWriterFor(format)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := w.WriteDocument(&buf, d); err != nil {
				t.Fatalf("%s %s: %v", kind, format, err)
			}
			if buf.Len() == 0 {
				t.Errorf("%s %s: empty", kind, format)
			}
			out := buf.String()
			if format == "html" {
				for _, want := range []string{"@page", "counter(pages)", "Glow Aesthetics", "vigil test", "as of 2026-03-01", `<nav class="toc">`} {
					if !strings.Contains(out, want) {
						t.Errorf("%s html lacks %q", kind, want)
					}
				}
				for _, bad := range []string{"<script", "http://", "https://", "<link"} {
					if strings.Contains(out, bad) && !(bad == "http://" && strings.Count(out, "http://") == strings.Count(out, "http://www.w3.org/2000/svg")) {
						t.Errorf("%s html is not self-contained: %q", kind, bad)
					}
				}
			}
			if format == "csv" {
				recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
				if err != nil || len(recs) < 2 {
					t.Errorf("%s csv: %v, %d records", kind, err, len(recs))
				}
				if kind == "insurance" && (recs[0][2] != "Answer" || !slices.ContainsFunc(recs, func(r []string) bool {
					return r[5] == "insurance:mfa-email" && r[2] == "No"
				})) {
					t.Errorf("insurance csv = %q", recs)
				}
			}
		}
	}
	if _, err := DocumentWriterFor("docx"); err == nil {
		t.Error("docx accepted")
	}
	if _, err := GeneratorFor("soc2"); err == nil {
		t.Error("soc2 accepted")
	}
}

// The PDF of each kind, rendered by Debian's pdftoppm: the expected number
// of pages, none of them blank.
func TestReportPDFRendersToPNG(t *testing.T) {
	pdftoppm, err := exec.LookPath("pdftoppm")
	if err != nil {
		if os.Getenv("VIGIL_REPORTS_REQUIRED") == "1" {
			t.Fatal("pdftoppm not found and VIGIL_REPORTS_REQUIRED=1: apt-get install poppler-utils")
		}
		t.Skip("pdftoppm not found (apt-get install poppler-utils); set VIGIL_REPORTS_REQUIRED=1 to make this a failure")
	}
	fs := seedFixture(t)
	f := fs.facts(t, asOf, nil)
	want := map[string]int{"ocr": 16, "insurance": 3, "diligence": 1}
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			var buf bytes.Buffer
			pages, err := RenderPDF(&buf, generate(t, kind, f))
			if err != nil {
				t.Fatal(err)
			}
			if pages != want[kind] {
				t.Errorf("laid out %d pages, want %d", pages, want[kind])
			}
			dir := t.TempDir()
			pdf := filepath.Join(dir, kind+".pdf")
			if err := os.WriteFile(pdf, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(pdftoppm, "-r", "40", "-png", pdf, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
				t.Fatalf("pdftoppm: %v: %s", err, out)
			}
			pngs, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
			if len(pngs) != want[kind] {
				t.Fatalf("pdftoppm rendered %d pages, want %d", len(pngs), want[kind])
			}
			for _, p := range pngs {
				if n := inkPixels(t, p); n < 500 {
					t.Errorf("%s: only %d non-white pixels: a blank page", filepath.Base(p), n)
				}
			}
		})
	}
}

// inkPixels counts the pixels of a PNG that are not (near) white.
func inkPixels(t *testing.T, path string) int {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	img, err := png.Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xF000 || g < 0xF000 || bl < 0xF000 {
				n++
			}
		}
	}
	return n
}

// The questionnaire's exposure list names insurance controls that exist.
func TestExposureQuestionsAreInTheCatalog(t *testing.T) {
	cat, err := rules.LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := exposureQuestions()
	if err != nil {
		t.Fatal(err)
	}
	for id := range ex {
		if k, ok := cat.Control(id); !ok || k.Framework != rules.FrameworkInsurance {
			t.Errorf("%s is not an insurance control of the catalog", id)
		}
	}
}
