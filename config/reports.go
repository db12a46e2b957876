package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Report is one document vigil serve writes on a schedule into
// reports_dir (docs/reports.md#scheduled-reports).
type Report struct {
	// Kind is the report: ocr, insurance or diligence (ReportKinds).
	Kind string `yaml:"kind"`
	// Format is html, pdf, csv or json (ReportFormats).
	Format string `yaml:"format"`
	// Cron is when, as for schedules: 5 fields or a descriptor, in the
	// server's local time. The report is of the store as it stood then.
	Cron string `yaml:"cron"`
}

// ReportKinds and ReportFormats are what reports[].kind and
// reports[].format accept: the kinds and document formats of package
// reports, which config cannot import (a test in package jobs keeps them
// equal).
var (
	ReportKinds   = []string{"ocr", "insurance", "diligence"}
	ReportFormats = []string{"html", "pdf", "csv", "json"}
)

// DefaultReportsDir is reports_dir's default, inside data_dir.
const DefaultReportsDir = "reports"

func (v *validator) reports(c *Config) {
	seen := map[string]int{}
	for i, r := range c.Reports {
		p := fmt.Sprintf("reports[%d]", i)
		switch {
		case r.Kind == "":
			v.fail(p+".kind", "is required: one of %s", strings.Join(ReportKinds, ", "))
		case !slices.Contains(ReportKinds, r.Kind):
			v.fail(p+".kind", "unknown report kind %q: use one of %s", r.Kind, strings.Join(ReportKinds, ", "))
		}
		switch {
		case r.Format == "":
			v.fail(p+".format", "is required: one of %s", strings.Join(ReportFormats, ", "))
		case !slices.Contains(ReportFormats, r.Format):
			v.fail(p+".format", "unknown format %q: use one of %s", r.Format, strings.Join(ReportFormats, ", "))
		}
		if r.Cron == "" {
			v.fail(p+".cron", "is required: when to write the report, e.g. \"0 6 1 * *\" (06:00 on the 1st of every month)")
		} else if _, err := cronParser.Parse(r.Cron); err != nil {
			v.fail(p+".cron", "invalid cron expression %q: %v (use 5 fields, e.g. \"0 6 1 * *\")", r.Cron, err)
		}
		// Files are named by organisation, kind and day: two entries for
		// the same kind and format would overwrite each other's files.
		key := r.Kind + "/" + r.Format
		if j, dup := seen[key]; dup && r.Kind != "" && r.Format != "" {
			v.fail(p, "%s %s is also reports[%d]: one schedule per kind and format (the files are named ORG-KIND-DATE.FORMAT)", r.Kind, r.Format, j)
		} else {
			seen[key] = i
		}
	}
}

// resolveReportsDir defaults reports_dir to DATA_DIR/reports and makes it
// absolute against the file's directory.
func (c *Config) resolveReportsDir(base string) {
	switch {
	case c.ReportsDir == "":
		c.ReportsDir = filepath.Join(c.DataDir, DefaultReportsDir)
	case !filepath.IsAbs(c.ReportsDir):
		c.ReportsDir = filepath.Join(base, c.ReportsDir)
	}
}
