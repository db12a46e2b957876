package reports

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJSONContract checks the CONTRACT.md shape that scripts depend on.
func TestJSONContract(t *testing.T) {
	cases := fixtureCases()
	out := render(t, "json", cases["full"])

	// Keys in the documented order.
	for _, keys := range [][]string{
		{`"scan"`, `"findings"`, `"summary"`},
		{`"critical"`, `"high"`, `"medium"`, `"low"`, `"info"`},
	} {
		last := -1
		for _, k := range keys {
			i := bytes.Index(out, []byte(k+":"))
			if i < 0 || i < last {
				t.Errorf("key %s missing or out of order in:\n%s", k, out)
			}
			last = i
		}
	}

	var doc struct {
		Scan struct {
			StartedAt  string   `json:"started_at"`
			FinishedAt string   `json:"finished_at"`
			Locations  []string `json:"locations"`
		} `json:"scan"`
		Findings []map[string]any `json:"findings"`
		Summary  map[string]int   `json:"summary"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != 7 {
		t.Fatalf("%d findings, want 7", len(doc.Findings))
	}
	if doc.Summary["high"] != 3 || len(doc.Summary) != 5 {
		t.Errorf("summary = %v", doc.Summary)
	}
	for _, ts := range []string{doc.Scan.StartedAt, doc.Scan.FinishedAt} {
		if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("scan time %q is not RFC 3339 UTC", ts)
		}
	}
	if doc.Scan.StartedAt != "2025-03-04T07:00:00Z" {
		t.Errorf("started_at = %s, want the fixture's 02:00 EST as 07:00Z", doc.Scan.StartedAt)
	}
	wantKeys := []string{"id", "rule", "category", "severity", "title", "location", "target",
		"controls", "evidence", "first_seen", "last_seen", "status"}
	for i, f := range doc.Findings {
		for _, k := range wantKeys {
			if _, ok := f[k]; !ok {
				t.Errorf("finding %d lacks %q", i, k)
			}
		}
		if _, ok := f["new"]; ok {
			t.Errorf("finding %d has \"new\" without a baseline", i)
		}
		if f["controls"] == nil || f["evidence"] == nil {
			t.Errorf("finding %d has null controls or evidence", i)
		}
		if s := f["first_seen"].(string); !strings.HasSuffix(s, "Z") {
			t.Errorf("first_seen %q is not UTC", s)
		}
	}
	if doc.Findings[0]["severity"] != "critical" || doc.Findings[6]["severity"] != "info" {
		t.Error("findings are not sorted by severity, most severe first")
	}
	if !bytes.Contains(out, []byte(`"guest->clinical"`)) {
		t.Error("targets are HTML-escaped")
	}

	// With a baseline every finding says whether it is new.
	var based struct {
		Findings []map[string]any `json:"findings"`
	}
	if err := json.Unmarshal(render(t, "json", cases["baseline"]), &based); err != nil {
		t.Fatal(err)
	}
	fresh := 0
	for i, f := range based.Findings {
		v, ok := f["new"].(bool)
		if !ok {
			t.Errorf("finding %d has no boolean \"new\" with a baseline", i)
		}
		if v {
			fresh++
		}
	}
	if fresh != 4 {
		t.Errorf("%d findings marked new, want 4", fresh)
	}

	// A clean scan has an empty list, not null.
	empty := render(t, "json", cases["empty"])
	if !bytes.Contains(empty, []byte(`"findings": []`)) {
		t.Errorf("clean scan output lacks \"findings\": []:\n%s", empty)
	}
}

// A scan's JSON output is what --baseline reads on the next run.
func TestJSONOutputIsABaseline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "previous.json")
	if err := os.WriteFile(path, render(t, "json", fixtureCases()["full"]), 0o644); err != nil {
		t.Fatal(err)
	}
	ids, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtureFindings() {
		if !ids[f.ID] {
			t.Errorf("baseline lacks %s (%s)", f.ID, f.Rule)
		}
	}
	if len(ids) != len(fixtureFindings()) {
		t.Errorf("baseline has %d ids, want %d", len(ids), len(fixtureFindings()))
	}
	// The same scan again: nothing is new, so nothing fails the build.
	r := fixtureCases()["full"]
	r.New = MarkNew(r.Findings, ids)
	if n := FailCount(r, "info"); n != 0 {
		t.Errorf("FailCount against its own baseline = %d, want 0", n)
	}
}
