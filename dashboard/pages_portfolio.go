package dashboard

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/users"
)

// mountPages registers every signed-in page and its API twin.
func (s *server) mountPages(r *gin.Engine) {
	a := r.Group("/", s.requireAuth)
	a.GET("/", s.portfolio)
	a.GET("/api/v1/portfolio", s.portfolio)
	a.GET("/locations/:id", s.location)
	a.GET("/api/v1/locations/:id", s.location)
	a.GET("/findings", s.findings)
	a.GET("/api/v1/findings", s.findings)
	a.GET("/findings/:id", s.finding)
	a.GET("/api/v1/findings/:id", s.finding)
	a.POST("/findings/:id/decision", s.decide)
	a.GET("/controls", s.controlsPage)
	a.GET("/api/v1/controls", s.controlsPage)
	a.GET("/controls/:id", s.control)
	a.GET("/api/v1/controls/:id", s.control)
	a.GET("/risks", s.risks)
	a.GET("/api/v1/risks", s.risks)
	a.POST("/risks/:id", s.decideRisk)
	a.GET("/identities", s.identitiesPage)
	a.GET("/api/v1/identities", s.identitiesPage)
	a.GET("/scans", s.scans)
	a.GET("/api/v1/scans", s.scans)
	a.GET("/api/v1/scans/running", s.scansRunning)
	a.POST("/scans/now", s.scanNow)
	a.GET("/reports", s.reports)
	a.GET("/export/findings.csv", s.exportFindingsCSV)
	a.GET("/export/findings.json", s.exportFindingsJSON)
	a.GET("/export/risks.csv", s.exportRisksCSV)
	a.GET("/reports/:kind", s.report)
	a.GET("/reports/files/:name", s.reportFileDownload)
	a.GET("/api/v1/reports/files", s.reportFilesAPI)
	a.GET("/documents/:sha256", s.document)
	a.GET("/settings", s.settings)
	a.POST("/settings/users", s.settingsUsers)
	a.POST("/settings/tokens", s.createToken)
	a.POST("/settings/tokens/:id/revoke", s.revokeToken)
	a.POST("/attestations", s.addAttestation)
	s.mountAgents(a)
}

// current returns the request's tenant, its posture view and principal;
// on false the response is written.
func (s *server) current(c *gin.Context) (*tenant, *view, users.Principal, bool) {
	t := tenantOf(c)
	v, err := t.view(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return nil, nil, users.Principal{}, false
	}
	return t, v, principal(c), true
}

// portfolioPage is the home page: every visible location, worst first.
type portfolioPage struct {
	base       `json:"-"`
	Generated  time.Time         `json:"generated_at"`
	Locations  []locationSummary `json:"locations"`
	Trend      []trendPoint      `json:"trend"`
	ByCategory []barItem         `json:"open_by_category"`
	OrgOpen    int               `json:"organisation_open,omitempty"`
	TrendSVG   string            `json:"-"`
	CatSVG     string            `json:"-"`
}

type trendPoint struct {
	At   time.Time `json:"at"`
	Open int       `json:"open"`
}

// worse orders locations worst first: by open findings from critical
// down, then control gaps, then name.
func worse(a, b locationSummary) int {
	for _, sev := range observe.Severities {
		if a.Open[sev] != b.Open[sev] {
			return cmp.Compare(b.Open[sev], a.Open[sev])
		}
	}
	if a.Gap != b.Gap {
		return cmp.Compare(b.Gap, a.Gap)
	}
	return cmp.Compare(a.ID, b.ID)
}

func (s *server) portfolio(c *gin.Context) {
	_, v, p, ok := s.current(c)
	if !ok {
		return
	}
	b := s.page(c, "portfolio", "Portfolio")
	s.respondCached(c, v, b, "portfolio.html", scopeKey(p), func() any { return s.portfolioData(c, v, p, b) })
}

// portfolioData is the portfolio for principal p, the same for every
// reader with p's scope.
func (s *server) portfolioData(c *gin.Context, v *view, p users.Principal, b base) portfolioPage {
	sc := p.Scope()
	d := portfolioPage{base: b, Generated: v.built}
	series := make([]int, len(v.trendAt))
	cats := map[observe.Category]int{}
	for _, l := range v.locs {
		if !sc.AllowsLocation(l.ID) {
			continue
		}
		d.Locations = append(d.Locations, l)
		for i, n := range v.trendOpen[l.ID] {
			series[i] += n
		}
		for k, n := range v.byCat[l.ID] {
			cats[k] += n
		}
	}
	if sc.AllLocations {
		series = v.trendOpen[""]
		cats = v.byCat[""]
		for _, f := range v.sorted {
			if f.Location == "" && f.Status == observe.StatusOpen {
				d.OrgOpen++
			}
		}
	}
	slices.SortFunc(d.Locations, worse)
	for i, at := range v.trendAt {
		d.Trend = append(d.Trend, trendPoint{At: at, Open: series[i]})
	}
	for _, k := range observe.Categories {
		if cats[k] > 0 {
			d.ByCategory = append(d.ByCategory, barItem{Label: string(k), Count: cats[k]})
		}
	}
	sort.SliceStable(d.ByCategory, func(i, j int) bool { return d.ByCategory[i].Count > d.ByCategory[j].Count })
	if !wantsJSON(c) {
		d.TrendSVG = lineChart("Open findings per week", v.trendAt, series)
		d.CatSVG = barChart("Open findings by category", d.ByCategory)
	}
	return d
}

// locationDetail is what a location page shows from the latest scan of
// it, built once per snapshot.
type locationDetail struct {
	Scan   *observe.Scan   `json:"scan,omitempty"`
	Matrix *observe.Matrix `json:"matrix,omitempty"`
	Assets []asset         `json:"assets"`
}

// asset is one host with its services.
type asset struct {
	Host     string    `json:"host"`
	Segment  string    `json:"segment,omitempty"`
	Internet bool      `json:"internet_facing,omitempty"`
	Services []service `json:"services,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

type service struct {
	Port    int    `json:"port"`
	Proto   string `json:"proto"`
	Service string `json:"service,omitempty"`
	Product string `json:"product,omitempty"`
}

// latestScanOf is the newest scan that covered the location's network.
func latestScanOf(v *view, loc string) *observe.Scan {
	var best *observe.Scan
	for i := range v.snap.Scans {
		sc := &v.snap.Scans[i]
		if !slices.Contains(sc.Locations, loc) {
			continue
		}
		if best == nil || sc.StartedAt.After(best.StartedAt) {
			best = sc
		}
	}
	return best
}

func (t *tenant) locationDetail(ctx context.Context, v *view, l *config.Location) (*locationDetail, error) {
	if d, ok := v.details.Load(l.ID); ok {
		return d.(*locationDetail), nil
	}
	d := &locationDetail{}
	if sc := latestScanOf(v, l.ID); sc != nil {
		d.Scan = sc
		obs, err := t.Store.ScanObservations(ctx, sc.ID, l.ID)
		if err != nil {
			return nil, err
		}
		if len(l.Segments) >= 2 {
			m, _ := t.Rules.Segmentation(scanrun.PolicyOf(t.Config, l), obs, sc.FinishedAt)
			d.Matrix = &m
		}
		hosts := map[string]*asset{}
		for _, o := range obs {
			if o.Kind != observe.KindHost && o.Kind != observe.KindService || o.Location != l.ID || o.Host == "" {
				continue
			}
			a := hosts[o.Host]
			if a == nil {
				a = &asset{Host: o.Host}
				hosts[o.Host] = a
			}
			a.Segment = cmp.Or(a.Segment, o.Segment)
			a.Internet = a.Internet || o.InternetFacing
			if o.At.After(a.LastSeen) {
				a.LastSeen = o.At
			}
			if o.Kind == observe.KindService && o.Port > 0 {
				sv := service{Port: o.Port, Proto: cmp.Or(o.Proto, "tcp"), Service: attrStr(o.Attrs, "service"), Product: attrStr(o.Attrs, "product")}
				if !slices.ContainsFunc(a.Services, func(x service) bool { return x.Port == sv.Port && x.Proto == sv.Proto }) {
					a.Services = append(a.Services, sv)
				}
			}
		}
		for _, a := range hosts {
			slices.SortFunc(a.Services, func(x, y service) int { return cmp.Compare(x.Port, y.Port) })
			d.Assets = append(d.Assets, *a)
		}
		slices.SortFunc(d.Assets, func(x, y asset) int { return cmp.Or(cmp.Compare(x.Segment, y.Segment), cmp.Compare(x.Host, y.Host)) })
	}
	v.details.Store(l.ID, d)
	return d, nil
}

// locationPage shows one location.
type locationPage struct {
	base     `json:"-"`
	Location locationInfo       `json:"location"`
	Summary  locationSummary    `json:"summary"`
	Detail   *locationDetail    `json:"detail"`
	Grid     [][]matrixGridCel  `json:"-"`
	Findings []*observe.Finding `json:"findings"`
	More     int                `json:"more_findings,omitempty"`
}

type locationInfo struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	State    string        `json:"state,omitempty"`
	Segments []segmentInfo `json:"segments"`
}

type segmentInfo struct {
	Name  string   `json:"name"`
	Role  string   `json:"role"`
	CIDRs []string `json:"cidrs"`
}

func segmentsOf(l *config.Location) []segmentInfo {
	out := []segmentInfo{}
	for _, sg := range l.Segments {
		si := segmentInfo{Name: sg.Name, Role: sg.Role}
		if sg.CIDR != "" {
			si.CIDRs = append(si.CIDRs, sg.CIDR)
		}
		si.CIDRs = append(si.CIDRs, sg.CIDRs...)
		out = append(out, si)
	}
	return out
}

// matrixGridCel is one drawn cell: the diagonal, or a verdict.
type matrixGridCel struct {
	Header   string
	From, To string
	Self     bool
	Cell     observe.MatrixCell
}

// maxLocationFindings bounds the findings listed on a location page; the
// rest are a link to the filtered findings list.
const maxLocationFindings = 200

func (s *server) location(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	id := c.Param("id")
	l, found := t.location(id)
	if !found || !p.Scope().AllowsLocation(id) {
		s.notFound(c)
		return
	}
	det, err := t.locationDetail(c.Request.Context(), v, l)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionView, "location:"+id, "") {
		return
	}
	d := locationPage{base: s.page(c, "portfolio", l.Name), Detail: det,
		Location: locationInfo{ID: l.ID, Name: l.Name, State: l.State, Segments: segmentsOf(l)}, Summary: v.locs[v.locIdx[id]]}
	for _, f := range v.sorted {
		if f.Location != id || f.Status == observe.StatusResolved {
			continue
		}
		if len(d.Findings) == maxLocationFindings {
			d.More++
			continue
		}
		d.Findings = append(d.Findings, f)
	}
	if det.Matrix != nil && !wantsJSON(c) {
		cells := map[[2]string]observe.MatrixCell{}
		for _, mc := range det.Matrix.Cells {
			cells[[2]string{mc.From, mc.To}] = mc
		}
		for _, from := range det.Matrix.Segments {
			row := []matrixGridCel{{Header: from}}
			for _, to := range det.Matrix.Segments {
				mc, ok := cells[[2]string{from, to}]
				if !ok {
					mc = observe.MatrixCell{From: from, To: to, Status: observe.CellNotAssessed}
				}
				row = append(row, matrixGridCel{From: from, To: to, Self: from == to, Cell: mc})
			}
			d.Grid = append(d.Grid, row)
		}
	}
	s.respond(c, "location.html", d)
}

// notAllowed answers 403 for a principal who may see the item but not
// act on it.
func (s *server) notAllowed(c *gin.Context) {
	s.forbidden(c, users.ErrForbidden.Error())
}
