package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportsValid(t *testing.T) {
	y := alertsBase + `data_dir: data
reports:
  - {kind: ocr, format: pdf, cron: "0 6 1 * *"}
  - {kind: insurance, format: csv, cron: "0 6 * * 1"}
  - {kind: ocr, format: json, cron: "@monthly"}
`
	cfg, err := Parse(filepath.Join("/etc", "vigil", "vigil.yaml"), []byte(y))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cfg.Reports) != 3 || cfg.Reports[1] != (Report{Kind: "insurance", Format: "csv", Cron: "0 6 * * 1"}) {
		t.Errorf("reports = %+v", cfg.Reports)
	}
	if want := "/etc/vigil/data/reports"; cfg.ReportsDir != want {
		t.Errorf("default reports_dir = %s, want %s", cfg.ReportsDir, want)
	}
	cfg, err = Parse("/etc/vigil/vigil.yaml", []byte(alertsBase+"reports_dir: out\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.ReportsDir != "/etc/vigil/out" {
		t.Errorf("relative reports_dir = %s, want it resolved against the file's directory", cfg.ReportsDir)
	}
}

func TestReportsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each in the error, with the file name and line
	}{
		{"bad kind", "reports:\n  - {kind: hipaa, format: pdf, cron: \"0 6 1 * *\"}\n",
			[]string{`vigil.yaml:4: reports[0].kind: unknown report kind "hipaa": use one of ocr, insurance, diligence`}},
		{"bad format", "reports:\n  - kind: ocr\n    format: docx\n    cron: \"0 6 1 * *\"\n",
			[]string{`vigil.yaml:5: reports[0].format: unknown format "docx": use one of html, pdf, csv, json`}},
		{"bad cron", "reports:\n  - kind: ocr\n    format: pdf\n    cron: \"0 6 1 *\"\n",
			[]string{`vigil.yaml:6: reports[0].cron: invalid cron expression "0 6 1 *"`}},
		{"missing", "reports:\n  - {kind: ocr}\n",
			[]string{`reports[0].format: is required`, `reports[0].cron: is required`}},
		{"duplicate", "reports:\n  - {kind: ocr, format: pdf, cron: \"@monthly\"}\n  - {kind: ocr, format: pdf, cron: \"@weekly\"}\n",
			[]string{`vigil.yaml:5: reports[1]: ocr pdf is also reports[0]`}},
		{"unknown field", "reports:\n  - {kind: ocr, format: pdf, cron: \"@monthly\", output: x.pdf}\n",
			[]string{`reports[0].output`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("vigil.yaml", []byte(alertsBase+tc.yaml))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want a validation error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
		})
	}
}
