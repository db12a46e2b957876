package dashboard

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/reports"
	"github.com/vigilhq/vigil/users"
)

// maxReportFiles bounds the Reports page's list of scheduled report files:
// years of daily reports would otherwise make one enormous page.
const maxReportFiles = 200

// reportFileRE is the part after "TENANT-" of a scheduled report's file
// name (jobs.ReportFileName): KIND-YYYY-MM-DD.EXT, with the kinds and
// formats package reports makes. Nothing else in reports_dir is listed or
// served, so a name can hold no path separator, no "..", no dot file.
var reportFileRE = regexp.MustCompile(`^(` + strings.Join(reports.Kinds(), "|") + `)-([0-9]{4}-[0-9]{2}-[0-9]{2})\.(` +
	strings.Join(reports.DocumentFormats(), "|") + `)$`)

// reportFile is one scheduled report in the tenant's reports_dir.
type reportFile struct {
	Name     string    `json:"name"`
	Kind     string    `json:"kind"`
	Format   string    `json:"format"`
	Date     string    `json:"date"` // the due day, YYYY-MM-DD
	Bytes    int64     `json:"bytes"`
	Modified time.Time `json:"modified_at"`
	URL      string    `json:"url"`
}

// reportsDir is the tenant's reports_dir: Tenant.ReportsDir, else the
// configuration's (config resolves its default), else DATA_DIR/reports.
func (t *tenant) reportsDir() string {
	switch {
	case t.ReportsDir != "":
		return t.ReportsDir
	case t.Config.ReportsDir != "":
		return t.Config.ReportsDir
	}
	dir := t.Config.DataDir
	if dir == "" {
		dir = "vigil-data"
	}
	return filepath.Join(dir, config.DefaultReportsDir)
}

// parseReportFile returns the file name's kind, day and format when it is
// one of tenant's scheduled reports.
func parseReportFile(tenant users.TenantID, name string) (reportFile, bool) {
	rest, ok := strings.CutPrefix(name, string(tenant)+"-")
	if !ok {
		return reportFile{}, false
	}
	m := reportFileRE.FindStringSubmatch(rest)
	if m == nil {
		return reportFile{}, false
	}
	if _, err := time.Parse(time.DateOnly, m[2]); err != nil {
		return reportFile{}, false
	}
	return reportFile{Name: name, Kind: m[1], Date: m[2], Format: m[3], URL: "/reports/files/" + name}, true
}

// reportFiles lists the tenant's scheduled reports in its reports_dir,
// newest day first, at most maxReportFiles, and how many there are in
// all. Symbolic links and anything not named as the report job names its
// files are left out; a reports_dir that does not exist yet is empty.
func (t *tenant) reportFiles() ([]reportFile, int, error) {
	root, err := os.OpenRoot(t.reportsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reports_dir: %w", err)
	}
	defer root.Close()
	d, err := root.Open(".")
	if err != nil {
		return nil, 0, fmt.Errorf("reports_dir: %w", err)
	}
	defer d.Close()
	var files []reportFile
	for {
		ents, err := d.ReadDir(1024)
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			if f, ok := parseReportFile(t.ID, e.Name()); ok {
				files = append(files, f)
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reports_dir: %w", err)
		}
	}
	total := len(files)
	slices.SortFunc(files, func(a, b reportFile) int {
		return cmp.Or(cmp.Compare(b.Date, a.Date), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Format, b.Format))
	})
	if len(files) > maxReportFiles {
		files = files[:maxReportFiles]
	}
	out := files[:0]
	for _, f := range files {
		fi, err := root.Lstat(f.Name)
		if err != nil || !fi.Mode().IsRegular() {
			continue // removed or replaced since the listing
		}
		f.Bytes, f.Modified = fi.Size(), fi.ModTime().UTC()
		out = append(out, f)
	}
	return out, total, nil
}

// mayDownloadReports reports whether p may have organisation-wide reports:
// the export permission and every location in scope.
func mayDownloadReports(p users.Principal) bool {
	return p.Role.Grants(users.PermExport) && p.Scope().AllLocations
}

// reportFilesPage is GET /api/v1/reports/files.
type reportFilesPage struct {
	Files []reportFile `json:"files"`
	// Total is how many there are; Files holds the newest maxReportFiles.
	Total int `json:"total"`
}

// reportFilesAPI lists the tenant's scheduled report files as JSON.
func (s *server) reportFilesAPI(c *gin.Context) {
	if !mayDownloadReports(principal(c)) {
		s.notAllowed(c)
		return
	}
	files, total, err := tenantOf(c).reportFiles()
	if err != nil {
		s.fail(c, err)
		return
	}
	if files == nil {
		files = []reportFile{}
	}
	c.JSON(http.StatusOK, reportFilesPage{Files: files, Total: total})
}

// reportFileDownload sends one of the tenant's scheduled reports from its
// reports_dir, to whoever may download reports on demand, as a download,
// and audit-logs it. Only a regular file directly in reports_dir, named as
// the report job names the tenant's files, is served: the name is checked
// against that pattern, opened through an os.Root (nothing outside
// reports_dir), and must not be a symbolic link.
func (s *server) reportFileDownload(c *gin.Context) {
	t := tenantOf(c)
	if !mayDownloadReports(principal(c)) {
		s.notAllowed(c)
		return
	}
	name := c.Param("name")
	rf, ok := parseReportFile(t.ID, name)
	if !ok {
		c.String(http.StatusNotFound, "no such report file\n")
		return
	}
	root, err := os.OpenRoot(t.reportsDir())
	if errors.Is(err, fs.ErrNotExist) {
		c.String(http.StatusNotFound, "no such report file\n")
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	defer root.Close()
	// The job renames regular files into place: a link is not its, even
	// one pointing inside reports_dir.
	li, err := root.Lstat(name)
	if err != nil || !li.Mode().IsRegular() {
		c.String(http.StatusNotFound, "no such report file\n")
		return
	}
	f, err := root.Open(name)
	if err != nil {
		c.String(http.StatusNotFound, "no such report file\n")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.fail(c, err)
		return
	}
	if !fi.Mode().IsRegular() || !os.SameFile(li, fi) { // replaced between the two
		c.String(http.StatusNotFound, "no such report file\n")
		return
	}
	if !s.audit(c, users.ActionExport, "report.file.download", name) {
		return
	}
	attachment(c, name)
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Content-Length", strconv.FormatInt(fi.Size(), 10))
	c.Header("Content-Type", reportTypes[rf.Format])
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, io.LimitReader(f, fi.Size())); err != nil {
		s.log.Warn("dashboard: report file download cut short", "tenant", string(t.ID), "file", name, "err", err)
	}
}
