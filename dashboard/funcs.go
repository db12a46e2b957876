package dashboard

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/users"
)

// funcs are the template helpers.
var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(time.DateOnly)
	},
	"value": observe.EvidenceString, // evidence values: strings as is, the rest as JSON
	"join":  strings.Join,
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
	// esc escapes an id for one path segment: control ids hold ':' and '()'.
	"esc": url.PathEscape,
	"signed": func(n int) string {
		if n > 0 {
			return fmt.Sprintf("+%d", n)
		}
		return fmt.Sprint(n)
	},
	"sev":       func(m map[observe.Severity]int, s string) int { return m[observe.Severity(s)] },
	"cellLabel": func(s observe.CellStatus) string { return cellLabels[s] },
	"add":       func(a, b int) int { return a + b },
	"size":      fileSize,
	"svg":       func(s string) template.HTML { return template.HTML(s) }, // only for charts built by chart.go, which escapes every label
}

// fileSize is a byte count for people: 940 B, 12.3 KiB, 1.5 MiB.
func fileSize(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
}

// cellLabels are the matrix cells' text: the colour is never the only
// signal.
var cellLabels = map[observe.CellStatus]string{
	observe.CellAllowed:     "allowed",
	observe.CellBlocked:     "blocked",
	observe.CellViolation:   "OPEN against policy",
	observe.CellNotAssessed: "not assessed",
}

// page builds the layout data for a signed-in page.
func (s *server) page(c *gin.Context, nav, title string) base {
	p := principal(c)
	t := tenantOf(c)
	return base{
		Org: t.Name, Title: title, CSRF: csrfToken(c), Authed: true, User: p.Username, Role: string(p.Role), Nav: nav,
		Can: map[string]bool{
			"decide":   p.Role.Grants(users.PermAcceptFinding),
			"scan":     p.Role.Grants(users.PermScanNow) && t.Scans != nil,
			"export":   p.Role.Grants(users.PermExport),
			"users":    p.Role.Grants(users.PermManageUsers),
			"attest":   p.Role.Grants(users.PermManageAttestations),
			"audit":    p.Role == users.RoleOwner || p.Role == users.RoleAdmin || p.Role == users.RoleAuditor,
			"settings": p.Role.Grants(users.PermSettings),
		},
	}
}

// audit records a view, export or change by the request's principal. When
// it cannot, it answers 500 and returns false: nothing is served unaudited.
func (s *server) audit(c *gin.Context, action, target, detail string) bool {
	if err := s.users.Audit(c.Request.Context(), principal(c), action, target, detail, clientOf(c)); err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

// wantsJSON reports whether the request is for the JSON API twin.
func wantsJSON(c *gin.Context) bool { return strings.HasPrefix(c.Request.URL.Path, "/api/") }

// respond renders the page, or its data as JSON for the API twin. Page
// data embed base with json:"-", so the JSON carries only the content.
func (s *server) respond(c *gin.Context, page string, data any) {
	if wantsJSON(c) {
		c.JSON(200, data)
		return
	}
	s.render(c, 200, page, data)
}

func itoa(n int) string { return strconv.Itoa(n) }
