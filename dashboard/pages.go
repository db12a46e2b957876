package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/observe"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFiles embed.FS

func staticFS() http.FileSystem {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return http.FS(sub)
}

// pages holds one parsed template set per page, each the layout plus the
// page's "content".
type pages struct{ byName map[string]*template.Template }

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"value": observe.EvidenceString, // evidence values: strings as is, the rest as JSON
	"join":  strings.Join,
	// has reports whether the query selects v for key, to keep a filter
	// form's choices selected.
	"has": func(q url.Values, key, v string) bool {
		for _, x := range q[key] {
			if x == v {
				return true
			}
		}
		return false
	},
}

func loadPages() (*pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimPrefix(n, "templates/")
		if name == "layout.html" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// base is what the layout needs on every page.
type base struct {
	Org    string
	Title  string
	CSRF   string
	Authed bool
}

func (s *server) base(c *gin.Context, title string) base {
	return base{Org: s.org, Title: title, CSRF: s.csrfToken(c), Authed: c.GetString(actorKey) != ""}
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (s *server) render(c *gin.Context, status int, page string, data any) {
	t, ok := s.pages.byName[page]
	if !ok {
		s.fail(c, fmt.Errorf("no template %s", page))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.fail(c, fmt.Errorf("render %s: %w", page, err))
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// fail logs err and answers 500 without showing it: store errors can name
// file paths.
func (s *server) fail(c *gin.Context, err error) {
	s.log.Error("dashboard request failed", "path", c.Request.URL.Path, "err", err)
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error; see the server log"})
		return
	}
	c.AbortWithStatus(http.StatusInternalServerError)
}

func (s *server) badRequest(c *gin.Context, err error) {
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	c.Data(http.StatusBadRequest, "text/plain; charset=utf-8", []byte(err.Error()+"\n"))
	c.Abort()
}

func (s *server) notFound(c *gin.Context) {
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "not found"})
		return
	}
	c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("not found\n"))
	c.Abort()
}

// severityGroup and locationGroup shape the findings page: open findings by
// location, then by severity, highest first.
type severityGroup struct {
	Severity observe.Severity
	Findings []observe.Finding
}

type locationGroup struct {
	Location   string
	Count      int
	Severities []severityGroup
}

func groupFindings(fs []observe.Finding) []locationGroup {
	byLoc := map[string]map[observe.Severity][]observe.Finding{}
	for _, f := range fs {
		if byLoc[f.Location] == nil {
			byLoc[f.Location] = map[observe.Severity][]observe.Finding{}
		}
		byLoc[f.Location][f.Severity] = append(byLoc[f.Location][f.Severity], f)
	}
	locs := make([]string, 0, len(byLoc))
	for l := range byLoc {
		locs = append(locs, l)
	}
	sort.Strings(locs)
	out := make([]locationGroup, 0, len(locs))
	for _, l := range locs {
		g := locationGroup{Location: l}
		for _, sev := range observe.Severities {
			if f := byLoc[l][sev]; len(f) > 0 {
				g.Severities = append(g.Severities, severityGroup{Severity: sev, Findings: f})
				g.Count += len(f)
			}
		}
		out = append(out, g)
	}
	return out
}
