package dashboard

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/users"
)

// identitiesPage lists people across identity systems.
type identitiesPage struct {
	base   `json:"-"`
	Scan   *observe.Scan  `json:"scan,omitempty"`
	Flag   string         `json:"flag,omitempty"`
	People []person       `json:"people"`
	Counts map[string]int `json:"counts"`
}

func (s *server) identitiesPage(c *gin.Context) {
	_, v, p, ok := s.current(c)
	if !ok {
		return
	}
	sc := p.Scope()
	d := identitiesPage{base: s.page(c, "identities", "Identities"), Scan: v.identScan, Flag: c.Query("flag"), People: []person{},
		Counts: map[string]int{}}
	for _, pr := range v.people {
		if !sc.AllLocations {
			// A location manager sees the accounts used at their
			// locations, and nothing of the person's other accounts.
			var accts []identAccount
			for _, a := range pr.Accounts {
				if slices.ContainsFunc(a.Locations, sc.AllowsLocation) {
					accts = append(accts, a)
				}
			}
			if len(accts) == 0 {
				continue
			}
			pr.Accounts = accts
			pr.Locations = slices.DeleteFunc(slices.Clone(pr.Locations), func(l string) bool { return !sc.AllowsLocation(l) })
		}
		flags := map[string]bool{"mfa": pr.MissingMFA, "stale": pr.Stale, "shared": pr.Shared, "leaver": pr.Leaver, "admin": pr.Admin}
		for k, b := range flags {
			if b {
				d.Counts[k]++
			}
		}
		d.Counts["people"]++
		if d.Flag != "" && !flags[d.Flag] {
			continue
		}
		d.People = append(d.People, pr)
	}
	if !s.audit(c, users.ActionView, "identities", d.Flag) {
		return
	}
	s.respond(c, "identities.html", d)
}

// scansPage is the schedule, running scans and history.
type scansPage struct {
	base    `json:"-"`
	Planned []daemon.PlannedJob             `json:"planned"`
	Running []daemon.Progress               `json:"running"`
	Stats   map[string]daemon.LocationStats `json:"stats"`
	History []observe.Scan                  `json:"history"`
	Total   int                             `json:"total"`
	Page    int                             `json:"page"`
	Prev    string                          `json:"-"`
	Next    string                          `json:"-"`
	Targets []string                        `json:"-"` // what "scan now" may be asked for
	// AgentTargets are locations their site agents scan: "scan now" asks
	// the agent.
	AgentTargets []string `json:"-"`
	Control      bool     `json:"scheduler"`
	Notice       string   `json:"-"`
}

const scansPerPage = 50

// scanVisible reports whether the scan touched a location in scope (or
// read organisation-wide sources, for a principal who sees those).
func scanVisible(sc observe.Scan, scope users.Scope) bool {
	if scope.AllLocations {
		return true
	}
	return slices.ContainsFunc(sc.Locations, scope.AllowsLocation)
}

// jobVisible is scanVisible for a scheduler job key (location or
// daemon.Organization).
func jobVisible(loc string, scope users.Scope) bool {
	if loc == daemon.Organization {
		return scope.AllLocations
	}
	return scope.AllowsLocation(loc)
}

func (s *server) scans(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	scope := p.Scope()
	d := scansPage{base: s.page(c, "scans", "Scans"), Page: 1, Control: t.Scans != nil, Stats: map[string]daemon.LocationStats{},
		Planned: []daemon.PlannedJob{}, Running: []daemon.Progress{}, History: []observe.Scan{}, Notice: c.Query("notice")}
	if t.Scans != nil {
		for _, j := range t.Scans.Planned() {
			if jobVisible(j.Location, scope) {
				d.Planned = append(d.Planned, j)
			}
		}
		d.Running = runningFor(t, scope)
		for k, st := range t.Scans.Stats() {
			if jobVisible(k, scope) {
				d.Stats[k] = st
			}
		}
		for _, j := range d.Planned {
			if !slices.Contains(d.Targets, j.Location) && p.Allowed(users.PermScanNow, orgToEmpty(j.Location)) {
				d.Targets = append(d.Targets, j.Location)
			}
		}
	}
	// A location its site agents scan is asked of them.
	if _, ok := agentStoreOf(t); ok {
		for _, l := range t.Config.Locations {
			if l.ByAgent() && scope.AllowsLocation(l.ID) && p.Allowed(users.PermScanNow, l.ID) {
				d.AgentTargets = append(d.AgentTargets, l.ID)
			}
		}
	}
	var hist []observe.Scan
	for i := len(v.snap.Scans) - 1; i >= 0; i-- {
		if scanVisible(v.snap.Scans[i], scope) {
			hist = append(hist, v.snap.Scans[i])
		}
	}
	sort.SliceStable(hist, func(i, j int) bool { return hist[i].StartedAt.After(hist[j].StartedAt) })
	if !scope.AllLocations {
		for i := range hist {
			hist[i].Locations = slices.DeleteFunc(slices.Clone(hist[i].Locations), func(l string) bool { return !scope.AllowsLocation(l) })
			hist[i].Sources, hist[i].SourceErrors, hist[i].Vantages = nil, nil, nil
		}
	}
	d.Total = len(hist)
	if n := parsePage(c.Query("page")); n > 1 {
		d.Page = n
	}
	from := min(len(hist), (d.Page-1)*scansPerPage)
	d.History = append(d.History, hist[from:min(len(hist), from+scansPerPage)]...)
	if d.Page > 1 {
		d.Prev = "/scans?page=" + itoa(d.Page-1)
	}
	if from+scansPerPage < len(hist) {
		d.Next = "/scans?page=" + itoa(d.Page+1)
	}
	s.respond(c, "scans.html", d)
}

func parsePage(s string) int {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' || n > 1e6 {
			return 0
		}
		n = n*10 + int(r-'0')
	}
	return n
}

func orgToEmpty(loc string) string {
	if loc == daemon.Organization {
		return ""
	}
	return loc
}

func runningFor(t *tenant, scope users.Scope) []daemon.Progress {
	out := []daemon.Progress{}
	if t.Scans == nil {
		return out
	}
	for _, pr := range t.Scans.Running() {
		if jobVisible(pr.Location, scope) {
			out = append(out, pr)
		}
	}
	return out
}

// scansRunning is what the scans page polls for live progress.
func (s *server) scansRunning(c *gin.Context) {
	t := tenantOf(c)
	c.JSON(http.StatusOK, gin.H{"running": runningFor(t, principal(c).Scope()), "at": s.now().UTC()})
}

func (s *server) scanNow(c *gin.Context) {
	t := tenantOf(c)
	p := principal(c)
	loc := c.PostForm("location")
	if l, ok := t.location(loc); ok && l.ByAgent() && p.Scope().AllowsLocation(loc) {
		s.requestAgentScan(c, t, loc)
		return
	}
	if t.Scans == nil {
		s.notFound(c)
		return
	}
	if loc != daemon.Organization {
		if _, ok := t.location(loc); !ok || !p.Scope().AllowsLocation(loc) {
			s.notFound(c)
			return
		}
	} else if !p.Scope().AllLocations {
		s.notFound(c)
		return
	}
	if !p.Allowed(users.PermScanNow, orgToEmpty(loc)) {
		s.notAllowed(c)
		return
	}
	err := t.Scans.ScanNow(loc)
	switch {
	case err == nil:
	case errors.Is(err, daemon.ErrBusy):
		c.Redirect(http.StatusSeeOther, "/scans?notice="+url.QueryEscape(loc+": a scan is already running or queued"))
		return
	case errors.Is(err, daemon.ErrUnknownLocation):
		s.notFound(c)
		return
	case errors.Is(err, daemon.ErrNotRunning):
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("the scheduler is not running; try again shortly\n"))
		return
	default:
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionChange, "scan-now:"+loc, "") {
		return
	}
	c.Redirect(http.StatusSeeOther, "/scans?notice="+url.QueryEscape("scan of "+loc+" queued"))
}

// reportsPage lists what can be exported today and, to whoever may have
// organisation-wide reports, the scheduled report files written so far.
type reportsPage struct {
	base
	CanExport  bool
	CanReports bool
	Files      []reportFile
	FilesTotal int
	FilesErr   bool
}

func (s *server) reports(c *gin.Context) {
	p := principal(c)
	pg := reportsPage{base: s.page(c, "reports", "Reports"), CanExport: p.Role.Grants(users.PermExport), CanReports: mayDownloadReports(p)}
	if pg.CanReports {
		var err error
		if pg.Files, pg.FilesTotal, err = tenantOf(c).reportFiles(); err != nil {
			// The rest of the page still works: say so, and log why.
			s.log.Error("dashboard: scheduled reports not listed", "tenant", string(tenantOf(c).ID), "err", err)
			pg.FilesErr = true
		}
	}
	s.render(c, http.StatusOK, "reports.html", pg)
}

// settingsPage has the account's own settings and, by role, users, alert
// channels, attestations and the audit trail.
type settingsPage struct {
	base
	Users        []users.User
	Roles        []users.Role
	Locations    []string
	Channels     []channelInfo
	Attestations []observe.Attestation
	Kinds        []kindInfo
	AttestLocs   []string
	Due          []attest.Reminder
	Audit        []users.AuditEvent
	Tokens       []apiToken
	TokensOn     bool
	NewToken     string
	Notice       string
	Error        string
	Today        string
}

type channelInfo struct {
	Name, Type, MinSeverity, Target string
	Digest                          bool
}

type kindInfo struct{ Kind, Title string }

func (s *server) settings(c *gin.Context) {
	s.renderSettings(c, http.StatusOK, c.Query("notice"), c.Query("error"), "")
}

func (s *server) renderSettings(c *gin.Context, status int, notice, errMsg, newToken string) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	sc := p.Scope()
	d := settingsPage{base: s.page(c, "settings", "Settings"), Notice: notice, Error: errMsg, NewToken: newToken,
		TokensOn: s.tokens != nil, Today: s.now().UTC().Format(time.DateOnly)}
	if d.Can["users"] {
		us, err := s.ustore.Users(ctx, p.Tenant)
		if err != nil {
			s.fail(c, err)
			return
		}
		d.Users, d.Roles, d.Locations = us, users.Roles, t.visibleLocations(p)
	}
	if d.Can["settings"] {
		for _, ch := range t.Config.Alerts.Channels {
			ci := channelInfo{Name: ch.Name, Type: ch.Type, MinSeverity: pick(ch.MinSeverity, pick(t.Config.Alerts.MinSeverity, "high")), Digest: ch.DigestOn()}
			switch {
			case ch.Type == "email":
				ci.Target = strings.Join(ch.To, ", ")
			case ch.URLEnv != "":
				ci.Target = "URL from $" + ch.URLEnv
			case ch.URLFile != "":
				ci.Target = "URL from " + ch.URLFile
			case ch.URL != "":
				// Webhook URLs (Slack, Teams) carry their secret in the path.
				if u, err := url.Parse(ch.URL); err == nil {
					ci.Target = u.Scheme + "://" + u.Host + "/…"
				}
			}
			d.Channels = append(d.Channels, ci)
		}
	}
	for _, a := range v.snap.Attestations {
		if sc.AllowsLocation(a.Location) {
			d.Attestations = append(d.Attestations, a)
		}
	}
	slices.Reverse(d.Attestations)
	for _, r := range v.snap.Due {
		if sc.AllowsLocation(r.Location) {
			d.Due = append(d.Due, r)
		}
	}
	if d.Can["attest"] {
		for _, k := range t.Catalog.AttestationKinds {
			d.Kinds = append(d.Kinds, kindInfo{k.Kind, k.Title})
		}
		d.AttestLocs = t.visibleLocations(p)
	}
	if d.Can["audit"] {
		evs, err := s.users.AuditEvents(ctx, p, users.AuditQuery{Limit: 200})
		if err != nil {
			s.fail(c, err)
			return
		}
		d.Audit = evs
	}
	if s.tokens != nil {
		tk, err := s.tokens.list(ctx, p)
		if err != nil {
			s.fail(c, err)
			return
		}
		d.Tokens = tk
	}
	if d.Can["audit"] && !s.audit(c, users.ActionView, "audit-trail", "") {
		return
	}
	s.render(c, status, "settings.html", d)
}

// settingsUsers creates, re-roles, disables users and resets their MFA.
func (s *server) settingsUsers(c *gin.Context) {
	p := principal(c)
	t := tenantOf(c)
	if !p.Allowed(users.PermManageUsers, "") {
		s.notAllowed(c)
		return
	}
	ctx, cl := c.Request.Context(), clientOf(c)
	var locs []string
	for _, l := range c.PostFormArray("locations") {
		for _, x := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' }) {
			if _, ok := t.location(x); !ok {
				s.renderSettings(c, http.StatusBadRequest, "", "location "+x+" is not in the configuration", "")
				return
			}
			locs = append(locs, x)
		}
	}
	role := users.Role(c.PostForm("role"))
	id := c.PostForm("user_id")
	var err error
	var notice string
	switch c.PostForm("action") {
	case "create":
		var u users.User
		u, err = s.users.CreateUser(ctx, p, users.NewUser{Username: c.PostForm("username"), Email: c.PostForm("email"), Role: role,
			Locations: locs, Password: users.NewPassword(c.PostForm("password"))}, cl)
		notice = "created " + u.Username
	case "role":
		err = s.users.SetRole(ctx, p, id, role, locs, cl)
		notice = "role changed; their sessions ended"
	case "disable":
		err = s.users.DisableUser(ctx, p, id, cl)
		notice = "user disabled; their sessions ended"
	case "reset-mfa":
		err = s.users.ResetMFA(ctx, p, id, cl)
		notice = "MFA reset: they set up an authenticator at their next sign-in"
	default:
		s.badRequest(c, "action: create, role, disable or reset-mfa")
		return
	}
	switch {
	case err == nil:
		c.Redirect(http.StatusSeeOther, "/settings?notice="+url.QueryEscape(notice))
	case errors.Is(err, users.ErrForbidden):
		s.notAllowed(c)
	case errors.Is(err, users.ErrNotFound):
		s.notFound(c)
	default:
		// What users refuses (weak password, duplicate name, last owner)
		// says what to change.
		s.renderSettings(c, http.StatusBadRequest, "", err.Error(), "")
	}
}

func (s *server) createToken(c *gin.Context) {
	if s.tokens == nil {
		s.notFound(c)
		return
	}
	p := principal(c)
	name := strings.TrimSpace(c.PostForm("name"))
	if name == "" || len(name) > 100 {
		s.renderSettings(c, http.StatusBadRequest, "", "name the token (what uses it), at most 100 characters", "")
		return
	}
	tok, rec, err := s.tokens.create(c.Request.Context(), p, name, s.now())
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionChange, "api-token:"+rec.ID[:12], "created "+name) {
		return
	}
	s.renderSettings(c, http.StatusOK, "API token created: copy it now, it is not shown again", "", tok)
}

func (s *server) revokeToken(c *gin.Context) {
	if s.tokens == nil {
		s.notFound(c)
		return
	}
	ok, err := s.tokens.revoke(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if !ok {
		s.notFound(c)
		return
	}
	if !s.audit(c, users.ActionChange, "api-token:"+c.Param("id"), "revoked") {
		return
	}
	c.Redirect(http.StatusSeeOther, "/settings?notice=token+revoked")
}

// addAttestation records an attestation, with an optional document.
func (s *server) addAttestation(c *gin.Context) {
	t, _, p, ok := s.current(c)
	if !ok {
		return
	}
	loc := c.PostForm("location")
	if loc != "" {
		if _, found := t.location(loc); !found || !p.Scope().AllowsLocation(loc) {
			s.notFound(c)
			return
		}
	}
	if !p.Allowed(users.PermManageAttestations, loc) {
		s.notAllowed(c)
		return
	}
	r := observe.Attestation{Kind: c.PostForm("kind"), Location: loc, By: p.Username, Note: strings.TrimSpace(c.PostForm("note")),
		Owner: strings.TrimSpace(c.PostForm("owner")), Subject: strings.TrimSpace(c.PostForm("subject")), Result: strings.TrimSpace(c.PostForm("result"))}
	var err error
	if r.At, err = time.Parse(time.DateOnly, c.PostForm("at")); err != nil {
		s.renderSettings(c, http.StatusBadRequest, "", "date: when it was done, YYYY-MM-DD", "")
		return
	}
	if e := c.PostForm("expires"); e != "" {
		if r.ExpiresAt, err = time.Parse(time.DateOnly, e); err != nil {
			s.renderSettings(c, http.StatusBadRequest, "", "expires: YYYY-MM-DD", "")
			return
		}
	}
	if err := attest.Validate(r, t.Catalog, s.now()); err != nil {
		s.renderSettings(c, http.StatusBadRequest, "", strings.ReplaceAll(err.Error(), "\n", "; "), "")
		return
	}
	if fh, err := c.FormFile("document"); err == nil && fh.Size > 0 {
		if fh.Size > attest.MaxDocumentSize {
			s.renderSettings(c, http.StatusRequestEntityTooLarge, "", "the document is larger than 50 MiB", "")
			return
		}
		f, err := fh.Open()
		if err != nil {
			s.fail(c, err)
			return
		}
		r.Document, err = t.Documents.Put(f)
		f.Close()
		if err != nil {
			s.fail(c, err)
			return
		}
	}
	got, err := t.Store.AddAttestation(c.Request.Context(), r)
	if err != nil {
		s.fail(c, err)
		return
	}
	detail := r.Kind + " at " + pick(loc, "organisation") + " on " + r.At.Format(time.DateOnly)
	if r.Document != "" {
		detail += " document sha256:" + r.Document
	}
	if !s.audit(c, users.ActionChange, "attestation:"+got.ID, detail) {
		return
	}
	t.refresh(c.Request.Context())
	c.Redirect(http.StatusSeeOther, "/settings?notice="+url.QueryEscape("attestation recorded")+"#attestations")
}
