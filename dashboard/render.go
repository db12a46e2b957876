package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/users"
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

// cachedPage is a page whose content was rendered before, for this
// snapshot and this kind of reader; only the layout (the user's name, the
// sign-out form's CSRF token) is rendered per request.
type cachedPage struct {
	base
	Content template.HTML
}

// respondCached answers like respond, but renders build's page content (or
// its JSON) once per snapshot and key, which must name everything the
// content depends on besides the snapshot (the principal's scope and role,
// the query). The portfolio and findings pages are what every user opens
// first; rendering 300 locations' rows per request was most of their cost.
func (s *server) respondCached(c *gin.Context, v *view, b base, page, key string, build func() any) {
	if wantsJSON(c) {
		key = "json|" + page + "|" + key
		if body, ok := v.pageCache.Load(key); ok {
			c.Data(http.StatusOK, "application/json; charset=utf-8", body.([]byte))
			return
		}
		body, err := json.Marshal(build())
		if err != nil {
			s.fail(c, err)
			return
		}
		v.cache(key, body)
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
		return
	}
	key = "html|" + page + "|" + key
	content, ok := v.pageCache.Load(key)
	if !ok {
		t, found := s.pages.byName[page]
		if !found {
			s.fail(c, fmt.Errorf("no template %s", page))
			return
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, "content", build()); err != nil {
			s.fail(c, fmt.Errorf("render %s: %w", page, err))
			return
		}
		content = template.HTML(buf.String())
		v.cache(key, content)
	}
	s.render(c, http.StatusOK, "cached.html", cachedPage{base: b, Content: content.(template.HTML)})
}

// maxCachedPages bounds a snapshot's page cache: queries are the user's to
// vary, so past this many entries pages are rendered per request.
const maxCachedPages = 512

func (v *view) cache(key string, val any) {
	if v.cached.Add(1) <= maxCachedPages {
		v.pageCache.Store(key, val)
	}
}

// scopeKey names what a principal may see, for cache keys: two readers
// with the same key are shown the same content.
func scopeKey(p users.Principal) string {
	sc := p.Scope()
	if sc.AllLocations {
		return "all"
	}
	locs := slices.Clone(sc.Locations)
	slices.Sort(locs)
	return "loc:" + strings.Join(locs, ",")
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
