package dashboard

import (
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/users"
)

// findingsPerPage is the default page size of the findings list.
const findingsPerPage = 100

// findingQuery is the findings list's filter, from the query string.
type findingQuery struct {
	Location string `json:"location,omitempty"`
	Category string `json:"category,omitempty"`
	Severity string `json:"severity,omitempty"`
	Status   string `json:"status,omitempty"` // "" = open, "all" = every status
	Control  string `json:"control,omitempty"`
	Page     int    `json:"page"`
	PerPage  int    `json:"per_page"`
}

func parseFindingQuery(c *gin.Context) findingQuery {
	q := findingQuery{Location: c.Query("location"), Category: c.Query("category"), Severity: c.Query("severity"),
		Status: c.Query("status"), Control: c.Query("control"), Page: 1, PerPage: findingsPerPage}
	if n, err := strconv.Atoi(c.Query("page")); err == nil && n > 0 {
		q.Page = n
	}
	if n, err := strconv.Atoi(c.Query("per_page")); err == nil && n > 0 && n <= 1000 {
		q.PerPage = n
	}
	return q
}

// match reports whether f passes the filter and the principal's scope.
func (q findingQuery) match(f *observe.Finding, sc users.Scope) bool {
	if !sc.AllowsLocation(f.Location) {
		return false
	}
	switch {
	case q.Location != "" && f.Location != q.Location && !(q.Location == "-" && f.Location == ""):
		return false
	case q.Category != "" && string(f.Category) != q.Category:
		return false
	case q.Severity != "" && string(f.Severity) != q.Severity:
		return false
	case q.Status == "" && f.Status != observe.StatusOpen:
		return false
	case q.Status != "" && q.Status != "all" && string(f.Status) != q.Status:
		return false
	case q.Control != "" && !slices.Contains(f.Controls, q.Control):
		return false
	}
	return true
}

// encode is the query string of q at page n.
func (q findingQuery) encode(n int) string {
	v := url.Values{}
	for k, x := range map[string]string{"location": q.Location, "category": q.Category, "severity": q.Severity, "status": q.Status, "control": q.Control} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if n > 1 {
		v.Set("page", strconv.Itoa(n))
	}
	if q.PerPage != findingsPerPage {
		v.Set("per_page", strconv.Itoa(q.PerPage))
	}
	return v.Encode()
}

// filtered returns the matching findings in list order.
func filtered(v *view, q findingQuery, sc users.Scope) []*observe.Finding {
	var out []*observe.Finding
	for _, f := range v.sorted {
		if q.match(f, sc) {
			out = append(out, f)
		}
	}
	return out
}

// findingsPage is the filtered, paginated list.
type findingsPage struct {
	base       `json:"-"`
	Query      findingQuery       `json:"query"`
	Total      int                `json:"total"`
	Findings   []*observe.Finding `json:"findings"`
	Prev, Next string             `json:"-"`
	Pages      int                `json:"pages"`
	Locations  []string           `json:"-"`
	Categories []observe.Category `json:"-"`
	Severities []observe.Severity `json:"-"`
	Statuses   []string           `json:"-"`
	Controls   []string           `json:"-"`
	ExportQS   string             `json:"-"`
}

func (s *server) findings(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	q := parseFindingQuery(c)
	if !s.audit(c, users.ActionView, "findings", q.encode(q.Page)) {
		return
	}
	b := s.page(c, "findings", "Findings")
	key := scopeKey(p) + "|" + strconv.FormatBool(b.Can["export"]) + "|" + strconv.Itoa(q.PerPage) + "|" + q.encode(q.Page)
	s.respondCached(c, v, b, "findings.html", key, func() any { return s.findingsData(c, t, v, p, q, b) })
}

// findingsData is one page of findings for query q, the same for every
// reader with p's scope and export permission.
func (s *server) findingsData(c *gin.Context, t *tenant, v *view, p users.Principal, q findingQuery, b base) findingsPage {
	all := filtered(v, q, p.Scope())
	d := findingsPage{base: b, Query: q, Total: len(all),
		Pages: max(1, (len(all)+q.PerPage-1)/q.PerPage)}
	from := min(len(all), (q.Page-1)*q.PerPage)
	d.Findings = all[from:min(len(all), from+q.PerPage)]
	if d.Findings == nil {
		d.Findings = []*observe.Finding{}
	}
	if !wantsJSON(c) {
		if q.Page > 1 {
			d.Prev = "/findings?" + q.encode(q.Page-1)
		}
		if q.Page < d.Pages {
			d.Next = "/findings?" + q.encode(q.Page+1)
		}
		d.Locations = t.visibleLocations(p)
		d.Categories, d.Severities = observe.Categories, observe.Severities
		d.Statuses = []string{"open", "accepted", "false-positive", "resolved", "all"}
		for _, st := range v.snap.Controls {
			d.Controls = append(d.Controls, st.Control.ID)
		}
		qq := q
		qq.PerPage = findingsPerPage
		d.ExportQS = qq.encode(1)
	}
	return d
}

// visibleFinding returns the finding with the URL's id if the principal
// may see it.
func visibleFinding(c *gin.Context, v *view, p users.Principal) (*observe.Finding, bool) {
	f := v.byID[c.Param("id")]
	if f == nil || !p.Scope().AllowsLocation(f.Location) {
		return nil, false
	}
	return f, true
}

// findingPage is one finding with its trail.
type findingPage struct {
	base      `json:"-"`
	Finding   *observe.Finding   `json:"finding"`
	Trace     *risk.FindingTrace `json:"trace"`
	Risk      string             `json:"risk"`
	CanDecide bool               `json:"-"`
	MaxUntil  string             `json:"-"`
	Evidence  []evidenceItem     `json:"-"`
	Error     string             `json:"-"`
}

type evidenceItem struct{ Key, Value string }

func (s *server) finding(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	f, found := visibleFinding(c, v, p)
	if !found {
		s.notFound(c)
		return
	}
	tr, err := risk.TraceFinding(c.Request.Context(), t.Store, *f)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionView, "finding:"+f.ID, "") {
		return
	}
	d := findingPage{base: s.page(c, "findings", f.Title), Finding: f, Trace: tr, Risk: risk.FindingRiskID(f),
		CanDecide: p.Allowed(users.PermAcceptFinding, f.Location),
		MaxUntil:  s.now().Add(risk.MaxAcceptance - 24*time.Hour).UTC().Format(time.DateOnly), Error: c.Query("error")}
	for k, x := range f.Evidence {
		d.Evidence = append(d.Evidence, evidenceItem{k, observe.EvidenceString(x)})
	}
	slices.SortFunc(d.Evidence, func(a, b evidenceItem) int { return strings.Compare(a.Key, b.Key) })
	s.respond(c, "finding.html", d)
}

// parseUntil reads a YYYY-MM-DD expiry as the end of that day, UTC, and
// checks it against the one-year limit.
func parseUntil(s string, now time.Time) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, errors.New("until: give the date the decision ends, YYYY-MM-DD (at most a year away)")
	}
	exp := d.Add(24*time.Hour - time.Second)
	return exp, risk.CheckExpiry(exp, now)
}

func (s *server) decide(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	f, found := visibleFinding(c, v, p)
	if !found {
		s.notFound(c)
		return
	}
	if !p.Allowed(users.PermAcceptFinding, f.Location) {
		s.notAllowed(c)
		return
	}
	action, reason := c.PostForm("action"), strings.TrimSpace(c.PostForm("reason"))
	back := func(msg string) {
		c.Redirect(http.StatusSeeOther, "/findings/"+url.PathEscape(f.ID)+"?error="+url.QueryEscape(msg))
	}
	now := s.now()
	d := observe.Decision{By: p.Username, Reason: reason}
	switch action {
	case "accept", "false-positive":
		d.Status = observe.StatusAccepted
		if action == "false-positive" {
			d.Status = observe.StatusFalsePositive
		}
		exp, err := parseUntil(c.PostForm("until"), now)
		if err != nil {
			back(err.Error())
			return
		}
		d.Expires = exp
	case "reopen":
		if f.Status != observe.StatusAccepted && f.Status != observe.StatusFalsePositive {
			back("only an accepted or false-positive finding can be reopened")
			return
		}
		d.Status = observe.StatusOpen
	default:
		s.badRequest(c, "action: accept, false-positive or reopen")
		return
	}
	if reason == "" {
		back("say why: a reason is required")
		return
	}
	if _, err := t.Store.DecideFinding(c.Request.Context(), f.ID, d); err != nil {
		if errors.Is(err, store.ErrInvalidDecision) {
			back(decisionError(err))
			return
		}
		s.fail(c, err)
		return
	}
	detail := action + ": " + reason
	if !d.Expires.IsZero() {
		detail += " (until " + d.Expires.Format(time.DateOnly) + ")"
	}
	if !s.audit(c, users.ActionChange, "finding:"+f.ID, detail) {
		return
	}
	t.refresh(c.Request.Context())
	c.Redirect(http.StatusSeeOther, "/findings/"+url.PathEscape(f.ID))
}

// exportFindings checks the export permission and audits the export.
func (s *server) exportFindings(c *gin.Context, format string) (*view, []*observe.Finding, bool) {
	_, v, p, ok := s.current(c)
	if !ok {
		return nil, nil, false
	}
	if !p.Role.Grants(users.PermExport) {
		s.notAllowed(c)
		return nil, nil, false
	}
	q := parseFindingQuery(c)
	all := filtered(v, q, p.Scope())
	if !s.audit(c, users.ActionExport, "findings."+format, q.encode(1)+" ("+strconv.Itoa(len(all))+" findings)") {
		return nil, nil, false
	}
	return v, all, true
}

func attachment(c *gin.Context, name string) {
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
}

func (s *server) exportFindingsJSON(c *gin.Context) {
	_, all, ok := s.exportFindings(c, "json")
	if !ok {
		return
	}
	if all == nil {
		all = []*observe.Finding{}
	}
	attachment(c, "findings.json")
	c.JSON(http.StatusOK, gin.H{"findings": all})
}

func (s *server) exportFindingsCSV(c *gin.Context) {
	_, all, ok := s.exportFindings(c, "csv")
	if !ok {
		return
	}
	attachment(c, "findings.csv")
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	w.Write([]string{"id", "rule", "category", "severity", "title", "location", "target", "controls", "status", "first_seen", "last_seen", "decision_by", "decision_reason", "decision_expires", "remediation"})
	for _, f := range all {
		var by, why, exp string
		if f.Decision != nil {
			by, why, exp = f.Decision.By, f.Decision.Reason, f.Decision.Expires.UTC().Format(time.DateOnly)
		}
		w.Write(csvSafe(f.ID, f.Rule, string(f.Category), string(f.Severity), f.Title, f.Location, f.Target, strings.Join(f.Controls, " "),
			string(f.Status), f.FirstSeen.UTC().Format(time.RFC3339), f.LastSeen.UTC().Format(time.RFC3339), by, why, exp, f.Remediation))
	}
	w.Flush()
}

// csvSafe defuses spreadsheet formulas: a cell starting with = + - @ or a
// tab is prefixed with a quote (OWASP CSV injection).
func csvSafe(cells ...string) []string {
	for i, s := range cells {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			cells[i] = "'" + s
		}
	}
	return cells
}

// decisionError is what the person is told about a refused decision: the
// store's reason, without the database path it wraps it in.
func decisionError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, store.ErrInvalidDecision.Error()); i >= 0 {
		return msg[i:]
	}
	return store.ErrInvalidDecision.Error()
}
