package dashboard

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/jobs"
	"github.com/vigilhq/vigil/users"
)

// writeReport writes a scheduled report file as the job names it.
func writeReport(t *testing.T, dir, tenant, kind, format string, due time.Time, body string) string {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o750))
	name := jobs.ReportFileName(tenant, kind, format, due, time.UTC)
	must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), jobs.ReportFileMode))
	return name
}

// The Reports page lists the scheduled reports vigil serve wrote into the
// tenant's reports_dir, newest first, and downloads them with the checks
// and audit of the on-demand reports; nothing else on the disk is reachable.
func TestScheduledReportFiles(t *testing.T) {
	f := newFixture(t)
	glowDir, acmeDir := f.dash.s.tenants["glow"].reportsDir(), f.dash.s.tenants["acme"].reportsDir()
	if glowDir == acmeDir {
		t.Fatalf("both tenants write reports into %s", glowDir)
	}
	day := time.Date(2026, 4, 1, 6, 0, 0, 0, time.UTC)
	const pdf = "%PDF-1.7 the April OCR pack"
	newest := writeReport(t, glowDir, "glow", "ocr", "pdf", day, pdf)
	older := writeReport(t, glowDir, "glow", "insurance", "csv", day.AddDate(0, 0, -7), "question,answer\n")
	// More than a page holds: the oldest fall off the list.
	for i := range maxReportFiles + 5 {
		writeReport(t, glowDir, "glow", "diligence", "json", day.AddDate(0, 0, -30-i), "{}")
	}
	total := maxReportFiles + 5 + 2

	// What is in reports_dir but not a report of this tenant's.
	outside := filepath.Join(t.TempDir(), "secret.txt")
	must(t, os.WriteFile(outside, []byte("OUTSIDE-SECRET"), 0o600))
	link := jobs.ReportFileName("glow", "ocr", "html", day, time.UTC)
	must(t, os.Symlink(outside, filepath.Join(glowDir, link)))
	inLink := jobs.ReportFileName("glow", "ocr", "csv", day, time.UTC)
	must(t, os.Symlink(newest, filepath.Join(glowDir, inLink))) // relative: os.Root would follow it
	relOut := jobs.ReportFileName("glow", "insurance", "html", day, time.UTC)
	rel, err := filepath.Rel(glowDir, outside)
	must(t, err)
	must(t, os.Symlink(rel, filepath.Join(glowDir, relOut)))
	subdir := jobs.ReportFileName("glow", "diligence", "pdf", day, time.UTC)
	must(t, os.Mkdir(filepath.Join(glowDir, subdir), 0o750))
	must(t, os.WriteFile(filepath.Join(glowDir, "notes.txt"), []byte("OUTSIDE-SECRET"), 0o600))
	must(t, os.WriteFile(filepath.Join(glowDir, "."+newest+".tmp"), []byte("OUTSIDE-SECRET"), 0o600))
	stray := writeReport(t, glowDir, "acme", "ocr", "pdf", day, "OUTSIDE-SECRET") // another tenant's name
	acmeFile := writeReport(t, acmeDir, "acme", "ocr", "pdf", day, "ACME-SECRET pack")

	au := f.as("audrey", users.RoleAuditor)
	page := au.get("/reports")
	if page.code != http.StatusOK {
		t.Fatalf("/reports: %d", page.code)
	}
	if rows := strings.Count(page.body, `data-testid="report-file"`); rows != maxReportFiles {
		t.Errorf("the page lists %d files, want the newest %d", rows, maxReportFiles)
	}
	first := strings.Index(page.body, `data-testid="report-file"`)
	if first < 0 || !strings.HasPrefix(page.body[first:], `data-testid="report-file" data-name="`+newest+`"`) {
		t.Errorf("the newest report is not first:\n%.500s", page.body[max(first, 0):])
	}
	if !strings.Contains(page.body, `href="/reports/files/`+older+`"`) || !strings.Contains(page.body, ">"+newest+"<") {
		t.Errorf("the page lacks a download link for %s or %s", older, newest)
	}
	for _, name := range []string{link, inLink, relOut, subdir, "notes.txt", stray, acmeFile} {
		if strings.Contains(page.body, name) {
			t.Errorf("the page lists %s", name)
		}
	}

	var api reportFilesPage
	r := au.get("/api/v1/reports/files")
	if r.code != http.StatusOK {
		t.Fatalf("/api/v1/reports/files: %d %s", r.code, r.body)
	}
	must(t, json.Unmarshal([]byte(r.body), &api))
	if api.Total != total || len(api.Files) != maxReportFiles {
		t.Errorf("API lists %d of %d, want %d of %d", len(api.Files), api.Total, maxReportFiles, total)
	}
	if len(api.Files) > 1 {
		want := reportFile{Name: newest, Kind: "ocr", Format: "pdf", Date: "2026-04-01", Bytes: int64(len(pdf)), URL: "/reports/files/" + newest}
		got := api.Files[0]
		got.Modified = time.Time{}
		if got != want {
			t.Errorf("API's first file: %+v, want %+v", got, want)
		}
		if api.Files[1].Name != older {
			t.Errorf("API's second file: %s, want %s", api.Files[1].Name, older)
		}
	}

	// Download one.
	r = au.get("/reports/files/" + newest)
	if r.code != http.StatusOK || r.body != pdf {
		t.Fatalf("download: %d %q", r.code, r.body)
	}
	for h, want := range map[string]string{
		"Content-Type":           "application/pdf",
		"Content-Disposition":    `attachment; filename="` + newest + `"`,
		"X-Content-Type-Options": "nosniff",
	} {
		if got := r.hdr.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if r := au.get("/reports/files/" + older); r.code != http.StatusOK || r.hdr.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("CSV download: %d %s", r.code, r.hdr.Get("Content-Type"))
	}

	// Nothing else is served: traversal, absolute paths, links, other
	// tenants' names, files the job does not write.
	for _, path := range []string{
		"/reports/files/..",
		"/reports/files/..%2F..%2F" + filepath.Base(outside),
		"/reports/files/..%2f" + newest,
		"/reports/files/%2E%2E",
		"/reports/files/" + strings.ReplaceAll(outside, "/", "%2F"),
		"/reports/files/" + outside,
		"/reports/files/" + link,
		"/reports/files/" + inLink,
		"/reports/files/" + relOut,
		"/reports/files/" + subdir,
		"/reports/files/notes.txt",
		"/reports/files/." + newest + ".tmp",
		"/reports/files/" + stray,
		"/reports/files/" + acmeFile,
		"/reports/files/" + newest + "%00",
		"/reports/files/" + strings.ToUpper(newest),
	} {
		r := au.get(path)
		if r.code == http.StatusOK || strings.Contains(r.body, "SECRET") || strings.Contains(r.body, "%PDF") {
			t.Errorf("%s: %d %.100q", path, r.code, r.body)
		}
	}

	// A location manager may not have organisation-wide reports.
	lm := f.as("lena", users.RoleLocationManager, "downtown")
	if r := lm.get("/reports/files/" + newest); r.code != http.StatusForbidden {
		t.Errorf("location manager's download: %d, want 403", r.code)
	}
	if r := lm.get("/api/v1/reports/files"); r.code != http.StatusForbidden {
		t.Errorf("location manager's list: %d, want 403", r.code)
	}
	if r := lm.get("/reports"); strings.Contains(r.body, newest) {
		t.Error("the location manager's Reports page lists the scheduled reports")
	}

	// Every download, and only downloads, in the audit trail.
	var got []string
	for _, e := range f.audits("glow", users.ActionExport) {
		if e.Target == "report.file.download" {
			if e.Username != "audrey" || e.IP == "" {
				t.Errorf("audit event %+v", e)
			}
			got = append(got, e.Detail)
		}
	}
	if len(got) != 2 || got[0] != older || got[1] != newest {
		t.Errorf("audited downloads %q, want [%s %s]", got, older, newest)
	}

	// The other tenant sees its own reports_dir only.
	f.addUser("acme", "alex", users.RoleAuditor)
	ac := f.client().login("acme", "alex")
	if r := ac.get("/reports"); !strings.Contains(r.body, acmeFile) || strings.Contains(r.body, newest) {
		t.Errorf("acme's Reports page:\n%s", r.body)
	}
	if r := ac.get("/reports/files/" + newest); r.code != http.StatusNotFound {
		t.Errorf("acme downloads glow's report: %d", r.code)
	}
	if r := ac.get("/reports/files/" + acmeFile); r.code != http.StatusOK || r.body != "ACME-SECRET pack" {
		t.Errorf("acme's own report: %d %q", r.code, r.body)
	}
}

// A reports_dir that does not exist yet (no report written) is an empty list.
func TestScheduledReportFilesNone(t *testing.T) {
	f := newFixture(t)
	au := f.as("audrey", users.RoleAuditor)
	if r := au.get("/reports"); r.code != http.StatusOK || !strings.Contains(r.body, "No scheduled reports yet") {
		t.Errorf("/reports: %d\n%s", r.code, r.body)
	}
	if r := au.get("/api/v1/reports/files"); r.code != http.StatusOK || !strings.Contains(r.body, `"files":[]`) {
		t.Errorf("/api/v1/reports/files: %d %s", r.code, r.body)
	}
	if r := au.get("/reports/files/" + jobs.ReportFileName("glow", "ocr", "pdf", time.Now(), time.UTC)); r.code != http.StatusNotFound {
		t.Errorf("download without reports_dir: %d", r.code)
	}
}

func TestParseReportFile(t *testing.T) {
	for _, tc := range []struct {
		tenant, name string
		ok           bool
	}{
		{"glow", "glow-ocr-2026-04-01.pdf", true},
		{"glow", "glow-insurance-2026-04-01.csv", true},
		{"glow-aesthetics", "glow-aesthetics-diligence-2026-04-01.json", true},
		{"glow", "glow-aesthetics-diligence-2026-04-01.json", false}, // another tenant's
		{"glow", "acme-ocr-2026-04-01.pdf", false},
		{"glow", "glow-ocr-2026-13-01.pdf", false},
		{"glow", "glow-ocr-2026-04-01.docx", false},
		{"glow", "glow-OCR-2026-04-01.pdf", false},
		{"glow", "glow-ocr-2026-04-01.pdf/", false},
		{"glow", "glow-ocr-2026-04-01.pdf/../x", false},
		{"glow", "../glow-ocr-2026-04-01.pdf", false},
		{"glow", "glow-../ocr-2026-04-01.pdf", false},
		{"glow", "/etc/glow-ocr-2026-04-01.pdf", false},
		{"glow", "glow-ocr-2026-04-01.pdf\x00", false},
		{"glow", "glow-ocr-2026-04-01.pdf\n", false},
		{"glow", ".glow-ocr-2026-04-01.pdf.tmp", false},
		{"glow", "..", false},
		{"glow", "", false},
	} {
		if _, ok := parseReportFile(users.TenantID(tc.tenant), tc.name); ok != tc.ok {
			t.Errorf("parseReportFile(%q, %q) = %v, want %v", tc.tenant, tc.name, ok, tc.ok)
		}
	}
}
