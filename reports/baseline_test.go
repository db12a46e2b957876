package reports

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadBaseline(t *testing.T) {
	path := writeFile(t, "baseline.json", `{
  "scan": {"id": "s1"},
  "findings": [
    {"id": "aaa", "rule": "r1", "future_field": {"x": 1}},
    {"id": "bbb"}
  ],
  "summary": {"critical": 0}
}`)
	ids, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || !ids["aaa"] || !ids["bbb"] {
		t.Errorf("ids = %v, want aaa and bbb", ids)
	}

	empty, err := LoadBaseline(writeFile(t, "clean.json", `{"findings": []}`))
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("clean baseline = %v, %v; want an empty non-nil set", empty, err)
	}
}

func TestLoadBaselineErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string // all must appear in the error
	}{
		{"syntax", "{\n  \"findings\": [\n    {\"id\": \"a\",}\n  ]\n}",
			[]string{"malformed JSON", "line 3, column 16", "offset"}},
		{"truncated", `{"findings": [{"id": "a"}`, []string{"malformed JSON", "line 1"}},
		{"empty file", ``, []string{"malformed JSON"}},
		{"trailing garbage", `{"findings": []} x`, []string{"malformed JSON", "column 18"}},
		{"wrong top level", `[{"id": "a"}]`, []string{"the document is a JSON array, want an object", "line 1"}},
		{"id not a string", "{\"findings\": [\n{\"id\": 42}]}", []string{`"findings.id" is a JSON number, want a string`, "line 2"}},
		{"findings not an array", `{"findings": {"id": "a"}}`, []string{`"findings" is a JSON object, want an array`}},
		{"no findings key", `{"runs": []}`, []string{`no "findings" array`, "vigil scan --format json"}},
		{"null findings", `{"findings": null}`, []string{`no "findings" array`}},
		{"finding without id", `{"findings": [{"id": "a"}, {"rule": "r"}]}`, []string{`finding 1 has no "id"`}},
		{"empty id", `{"findings": [{"id": ""}]}`, []string{`finding 0 has no "id"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "bad.json", tt.content)
			ids, err := LoadBaseline(path)
			if err == nil {
				t.Fatalf("LoadBaseline accepted %q: %v", tt.content, ids)
			}
			if !errors.Is(err, ErrBadBaseline) {
				t.Errorf("error %q does not wrap ErrBadBaseline", err)
			}
			for _, want := range append(tt.want, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestLoadBaselineMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.json")
	_, err := LoadBaseline(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if errors.Is(err, ErrBadBaseline) {
		t.Error("a missing file is not a malformed one")
	}
}

func FuzzLoadBaseline(f *testing.F) {
	f.Add([]byte(`{"findings": [{"id": "a"}, {"id": "b"}]}`))
	f.Add([]byte(`{"findings": []}`))
	f.Add([]byte(`{"findings": [{"id": 1}]}`))
	f.Add([]byte(`{"findings": {"id": "a"}}`))
	f.Add([]byte("{\n\"findings\": [\n{\"id\": \"a\",}]}"))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte("\xff\xfe{"))
	for _, r := range fixtureCases() {
		f.Add(render(f, "json", r))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.json"
		ids, err := parseBaseline(name, data)
		if err != nil {
			if ids != nil {
				t.Error("ids returned with an error")
			}
			if !strings.Contains(err.Error(), name) || !errors.Is(err, ErrBadBaseline) {
				t.Errorf("error %q does not name the file or wrap ErrBadBaseline", err)
			}
			return
		}
		if ids == nil {
			t.Error("nil set without an error")
		}
		for id := range ids {
			if id == "" {
				t.Error("empty id accepted")
			}
		}
	})
}
