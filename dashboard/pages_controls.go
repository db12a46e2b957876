package dashboard

import (
	"encoding/csv"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/users"
)

// controlRow is one control in the catalog page, its status limited to
// the locations the principal may see.
type controlRow struct {
	ID           string                   `json:"id"`
	Citation     string                   `json:"citation"`
	Framework    string                   `json:"framework"`
	Title        string                   `json:"title"`
	Status       controls.Verdict         `json:"status"`
	Label        string                   `json:"label"`
	Counts       map[controls.Verdict]int `json:"counts"`
	ByLocation   []locVerdict             `json:"by_location"`
	OpenFindings int                      `json:"open_findings"`
}

type locVerdict struct {
	Location string           `json:"location"`
	Status   controls.Verdict `json:"status"`
}

// scoped returns a control status as the principal may see it: for a
// location manager, the worst of their locations' verdicts and only those
// locations.
func scoped(st *controls.ControlStatus, sc users.Scope) controlRow {
	r := controlRow{ID: st.Control.ID, Citation: st.Control.Citation, Framework: st.Control.Framework, Title: st.Control.Title,
		Status: st.Status, Label: st.Label(), Counts: map[controls.Verdict]int{}}
	if !sc.AllLocations {
		r.Status, r.Label = "", ""
	}
	for _, bl := range st.ByLocation {
		if !sc.AllowsLocation(bl.Location) {
			continue
		}
		r.ByLocation = append(r.ByLocation, locVerdict{bl.Location, bl.Status})
		r.Counts[bl.Status]++
		r.OpenFindings += len(bl.Open)
		if !sc.AllLocations && (r.Status == "" || bl.Status.Worse(r.Status)) {
			r.Status, r.Label = bl.Status, bl.Label()
		}
	}
	if sc.AllLocations {
		r.OpenFindings = len(st.Open)
	}
	return r
}

// controlsPage is the catalog with status per location.
type controlsPage struct {
	base      `json:"-"`
	Controls  []controlRow       `json:"controls"`
	Locations []string           `json:"locations"`
	Wide      bool               `json:"-"` // too many locations for a column each
	Verdicts  []controls.Verdict `json:"-"`
}

func (s *server) controlsPage(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	sc := p.Scope()
	d := controlsPage{base: s.page(c, "controls", "Controls"), Locations: t.visibleLocations(p), Verdicts: controls.Verdicts}
	d.Wide = len(d.Locations) > 12
	for i := range v.snap.Controls {
		r := scoped(&v.snap.Controls[i], sc)
		if r.Status == "" {
			continue // applies nowhere the principal may look
		}
		d.Controls = append(d.Controls, r)
	}
	s.respond(c, "controls.html", d)
}

// controlPage is one control's traceability chain.
type controlPage struct {
	base    `json:"-"`
	Control controlRow              `json:"control"`
	Status  *controls.ControlStatus `json:"status,omitempty"`
	Reasons []string                `json:"reasons"`
	Risks   []risk.Trace            `json:"risks"`
}

func (s *server) control(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	sc := p.Scope()
	st := v.controls[c.Param("id")]
	if st == nil {
		s.notFound(c)
		return
	}
	row := scoped(st, sc)
	if row.Status == "" {
		s.notFound(c)
		return
	}
	var register []risk.Risk
	for _, r := range v.snap.Register {
		if riskVisible(r, sc) {
			register = append(register, r)
		}
	}
	ct, err := risk.TraceControl(c.Request.Context(), t.Store, *st, register, v.findingsMap(), v.snap.Controls)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionView, "control:"+st.Control.ID, "") {
		return
	}
	d := controlPage{base: s.page(c, "controls", st.Control.ID), Control: row, Risks: ct.Risks}
	if sc.AllLocations {
		d.Status = st
		d.Reasons = st.Reasons
	} else {
		for _, bl := range st.ByLocation {
			if sc.AllowsLocation(bl.Location) {
				for _, r := range bl.Reasons {
					d.Reasons = append(d.Reasons, bl.Location+": "+r)
				}
			}
		}
	}
	for i := range d.Risks {
		d.Risks[i].Controls = scopeLinks(d.Risks[i].Controls, sc)
	}
	s.respond(c, "control.html", d)
}

// scopeLinks drops other locations' verdicts from a trace's controls.
func scopeLinks(ls []risk.ControlLink, sc users.Scope) []risk.ControlLink {
	if sc.AllLocations {
		return ls
	}
	out := make([]risk.ControlLink, len(ls))
	for i, l := range ls {
		l.Status = ""
		m := map[string]string{}
		for loc, st := range l.ByLocation {
			if sc.AllowsLocation(loc) {
				m[loc] = st
			}
		}
		l.ByLocation = m
		out[i] = l
	}
	return out
}

// riskLocation is the location a risk's decisions are permitted at: ""
// for organisation-wide and control risks.
func riskLocation(r risk.Risk) string {
	if r.Location == risk.OrgScope || r.Source == risk.FromControl {
		return ""
	}
	return r.Location
}

// riskVisible reports whether the principal's scope covers the risk.
func riskVisible(r risk.Risk, sc users.Scope) bool { return sc.AllowsLocation(riskLocation(r)) }

// risksPage is the register.
type risksPage struct {
	base     `json:"-"`
	All      bool            `json:"all"`
	Summary  risk.Summary    `json:"summary"`
	Risks    []risk.Risk     `json:"risks"`
	CanEdit  map[string]bool `json:"-"`
	MaxUntil string          `json:"-"`
	Error    string          `json:"-"`
}

func (s *server) risks(c *gin.Context) {
	_, v, p, ok := s.current(c)
	if !ok {
		return
	}
	sc := p.Scope()
	d := risksPage{base: s.page(c, "risks", "Risk register"), All: c.Query("all") != "", CanEdit: map[string]bool{},
		MaxUntil: s.now().Add(risk.MaxAcceptance - 24*time.Hour).UTC().Format(time.DateOnly), Error: c.Query("error")}
	var visible []risk.Risk
	for _, r := range v.snap.Register {
		if !riskVisible(r, sc) {
			continue
		}
		visible = append(visible, r)
		if !d.All && r.Status == risk.StatusClosed {
			continue
		}
		d.Risks = append(d.Risks, r)
		d.CanEdit[r.ID] = p.Allowed(users.PermAcceptFinding, riskLocation(r))
	}
	d.Summary = risk.Summarize(visible)
	if d.Risks == nil {
		d.Risks = []risk.Risk{}
	}
	if !s.audit(c, users.ActionView, "risks", "") {
		return
	}
	s.respond(c, "risks.html", d)
}

func pick(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// decideRisk records owner, treatment and due date (action=set) or an
// acceptance (action=accept) as `vigil risk set` and `vigil risk accept` do.
func (s *server) decideRisk(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	cur, found := risk.Find(v.snap.Register, c.Param("id"))
	if !found || !riskVisible(*cur, p.Scope()) {
		s.notFound(c)
		return
	}
	if !p.Allowed(users.PermAcceptFinding, riskLocation(*cur)) {
		s.notAllowed(c)
		return
	}
	back := func(msg string) { c.Redirect(http.StatusSeeOther, "/risks?error="+url.QueryEscape(cur.ID+": "+msg)) }
	prev := cur.Decision
	if prev == nil {
		prev = &observe.RiskTreatment{}
	}
	tr := observe.RiskTreatment{Risk: cur.ID, By: p.Username, Reason: strings.TrimSpace(c.PostForm("reason")),
		Owner: pick(strings.TrimSpace(c.PostForm("owner")), prev.Owner), Likelihood: prev.Likelihood, Impact: prev.Impact}
	var accept []string
	switch c.PostForm("action") {
	case "set", "":
		switch tm := observe.Treatment(c.PostForm("treatment")); tm {
		case "":
			tr.Treatment = prev.Treatment
			if tr.Treatment == observe.TreatAccept {
				tr.Treatment = ""
			}
		case observe.TreatMitigate, observe.TreatTransfer:
			tr.Treatment = tm
		default:
			back("treatment: mitigate or transfer (accept has its own form)")
			return
		}
		tr.Due = prev.Due
		if due := strings.TrimSpace(c.PostForm("due")); due != "" {
			d, err := time.Parse(time.DateOnly, due)
			if err != nil {
				back("due: YYYY-MM-DD")
				return
			}
			tr.Due = d
		}
	case "accept":
		if tr.Reason == "" {
			back("say why the risk is accepted")
			return
		}
		exp, err := parseUntil(c.PostForm("until"), s.now())
		if err != nil {
			back(err.Error())
			return
		}
		tr.Treatment, tr.Expires, tr.Due = observe.TreatAccept, exp, prev.Due
		for _, f := range cur.Findings {
			if f.Status == observe.StatusOpen {
				accept = append(accept, f.ID)
			}
		}
	default:
		s.badRequest(c, "action: set or accept")
		return
	}
	got, err := t.Store.AddRiskTreatment(c.Request.Context(), tr, accept)
	if err != nil {
		if errors.Is(err, store.ErrInvalidDecision) {
			back(decisionError(err))
			return
		}
		s.fail(c, err)
		return
	}
	detail := string(got.Treatment) + " owner=" + got.Owner
	if !got.Due.IsZero() {
		detail += " due=" + got.Due.Format(time.DateOnly)
	}
	if !got.Expires.IsZero() {
		detail += " until=" + got.Expires.Format(time.DateOnly)
	}
	if tr.Reason != "" {
		detail += ": " + tr.Reason
	}
	if !s.audit(c, users.ActionChange, "risk:"+cur.ID, detail) {
		return
	}
	t.refresh(c.Request.Context())
	c.Redirect(http.StatusSeeOther, "/risks#risk-"+url.PathEscape(cur.ID))
}

func (s *server) exportRisksCSV(c *gin.Context) {
	_, v, p, ok := s.current(c)
	if !ok {
		return
	}
	if !p.Role.Grants(users.PermExport) {
		s.notAllowed(c)
		return
	}
	sc := p.Scope()
	var rs []risk.Risk
	for _, r := range v.snap.Register {
		if riskVisible(r, sc) {
			rs = append(rs, r)
		}
	}
	if !s.audit(c, users.ActionExport, "risks.csv", "") {
		return
	}
	attachment(c, "risk-register.csv")
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	w.Write([]string{"id", "title", "source", "category", "location", "controls", "likelihood", "impact", "level", "status", "owner", "treatment", "due", "overdue", "open", "accepted", "resolved", "first_detected", "last_seen", "threat", "vulnerability"})
	for _, r := range rs {
		due := ""
		if !r.Due.IsZero() {
			due = r.Due.UTC().Format(time.DateOnly)
		}
		w.Write(csvSafe(r.ID, r.Title, string(r.Source), string(r.Category), r.Location, strings.Join(r.Controls, " "),
			r.Likelihood.String(), r.Impact.String(), r.Level.String(), string(r.Status), r.Owner, string(r.Treatment), due,
			boolStr(r.Overdue), itoa(r.Open), itoa(r.Accepted), itoa(r.Resolved), stamp(r.FirstDetected), stamp(r.LastSeen), r.Threat, r.Vulnerability))
	}
	w.Flush()
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
