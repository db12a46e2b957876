package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
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
	User   string
	Role   string
	Nav    string // the current section, for the menu
	Can    map[string]bool
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
	c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error; see the server log\n"))
	c.Abort()
}

func (s *server) badRequest(c *gin.Context, msg string) {
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": msg})
		return
	}
	c.Data(http.StatusBadRequest, "text/plain; charset=utf-8", []byte(msg+"\n"))
	c.Abort()
}

func (s *server) forbidden(c *gin.Context, msg string) {
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": msg})
		return
	}
	c.Data(http.StatusForbidden, "text/plain; charset=utf-8", []byte(msg+"\n"))
	c.Abort()
}

// notFound is the answer for anything the principal may not see, whether
// or not it exists elsewhere: another tenant's or location's ids look
// exactly like ids that never existed.
func (s *server) notFound(c *gin.Context) {
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "not found"})
		return
	}
	c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("not found\n"))
	c.Abort()
}
