package rules

import (
	"io/fs"
	"strings"
	"testing"
	"time"
)

// Every shipped catalog file loads, and the new-hire training deadlines in
// it are the ones the statutes give (docs/research/state-training-cadences.md):
// Texas 90 days (§181.101(b)); no other state has a number.
func TestShippedCatalogTrainingDeadlines(t *testing.T) {
	files, err := fs.Glob(embedded, "catalog/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped catalog files: %v", err)
	}
	for _, f := range files {
		data, err := embedded.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseCatalog(data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	c, err := LoadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TrainingDeadline{}
	for _, k := range c.TrainingDeadlines() {
		for _, s := range k.States {
			got[s] = *k.NewHireTraining
		}
	}
	tx, ok := got["TX"]
	if !ok || tx.WithinDays != 90 || tx.Kind != "workforce-training" || !strings.Contains(tx.Citation, "§181.101(b)") {
		t.Errorf("TX new-hire deadline = %+v, want 90 days of workforce-training citing §181.101(b)", tx)
	}
	if len(got) != 1 {
		t.Errorf("deadlines for states %v: only TX's statute gives a number", got)
	}
	hired := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	if d := tx.Deadline(hired); !d.Equal(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("deadline for a hire on %s = %s, want the 90th day after, 2026-05-01", hired.Format(time.DateOnly), d.Format(time.DateOnly))
	}
}

func TestCatalogRejectsBadTrainingDeadlines(t *testing.T) {
	good := `version: "2026.11"
attestation_kinds:
  - {kind: workforce-training, title: T, valid_days: 365}
  - {kind: wisp, title: W, valid_days: 365}
controls:
  - {id: "cpg:E-4", citation: "HHS HPH CPG, essential goal 4", framework: cpg, status: voluntary, title: T, evidenced_by: attestation, attestations: [workforce-training]}
  - id: "state:tx-hb300"
    citation: "Tex. Health & Safety Code ch. 181"
    framework: state
    states: [TX]
    title: "Texas"
    evidenced_by: both
    attestations: [workforce-training, wisp]
    new_hire_training: {kind: workforce-training, within_days: 90, citation: "Tex. Health & Safety Code §181.101(b)"}
`
	if _, err := ParseCatalog([]byte(good)); err != nil {
		t.Fatalf("good catalog rejected: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"zero days", "within_days: 90", "within_days: 0", "within_days must be positive"},
		{"negative days", "within_days: 90", "within_days: -5", "within_days must be positive"},
		{"no citation", `, citation: "Tex. Health & Safety Code §181.101(b)"}`, "}", "citation is required"},
		{"kind not the control's", "{kind: workforce-training, within_days", "{kind: restore-drill, within_days", `kind "restore-drill" must be one of the control's attestations`},
		{"not a state overlay", "evidenced_by: attestation, attestations: [workforce-training]}",
			"evidenced_by: attestation, attestations: [workforce-training], new_hire_training: {kind: workforce-training, within_days: 30, citation: x}}",
			"cpg:E-4: new_hire_training is for state overlays only"},
		{"unknown field", "within_days: 90", "within_days: 90, every: 2y", "every"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, tc.from, tc.to, 1)
			if doc == good {
				t.Fatalf("replacement %q did not apply", tc.from)
			}
			_, err := ParseCatalog([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
