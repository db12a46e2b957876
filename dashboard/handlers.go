package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// Query parameters shared by the findings page and /api/v1/findings. Each
// may repeat or list values with commas (?location=a&location=b is
// ?location=a,b); the values of one parameter are ORed.
//
//	location   location id
//	severity   minimum severity (the highest one given wins)
//	category   finding category
//	status     open (the default), resolved, accepted, false-positive, or all
func parseFilter(q url.Values) (store.FindingFilter, error) {
	var f store.FindingFilter
	for _, l := range values(q, "location") {
		f.Locations = append(f.Locations, l)
	}
	for _, v := range values(q, "severity") {
		sev := observe.Severity(v)
		if !sev.Valid() {
			return f, fmt.Errorf("severity %q: want critical, high, medium, low or info", v)
		}
		if sev.Rank() > f.MinSeverity.Rank() {
			f.MinSeverity = sev
		}
	}
	for _, v := range values(q, "category") {
		cat := observe.Category(v)
		if !cat.Valid() {
			return f, fmt.Errorf("category %q: not a vigil finding category", v)
		}
		f.Categories = append(f.Categories, cat)
	}
	statuses := values(q, "status")
	if len(statuses) == 0 {
		statuses = []string{string(observe.StatusOpen)}
	}
	for _, v := range statuses {
		switch st := observe.Status(v); st {
		case "all":
			f.Statuses = nil
			return f, nil
		case observe.StatusOpen, observe.StatusResolved, observe.StatusAccepted, observe.StatusFalsePositive:
			f.Statuses = append(f.Statuses, st)
		default:
			return f, fmt.Errorf("status %q: want open, resolved, accepted, false-positive or all", v)
		}
	}
	return f, nil
}

// values returns the non-empty, comma-separated values of key, so that an
// unselected <select> (sent as key=) does not filter.
func values(q url.Values, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

type findingsData struct {
	base
	Groups     []locationGroup
	Total      int
	Query      url.Values
	Severities []observe.Severity
	Categories []observe.Category
	Statuses   []string
}

func (s *server) findingsPage(c *gin.Context) {
	q := c.Request.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		s.badRequest(c, err)
		return
	}
	fs, err := s.store.Findings(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.audit(c.Request.Context(), actor(c), ActionViewFindings, q.Encode())
	s.render(c, http.StatusOK, "findings.html", findingsData{
		base:       s.base(c, "Findings"),
		Groups:     groupFindings(fs),
		Total:      len(fs),
		Query:      q,
		Severities: observe.Severities,
		Categories: observe.Categories,
		Statuses:   []string{"open", "resolved", "accepted", "false-positive", "all"},
	})
}

type findingData struct {
	base
	Finding  observe.Finding
	Evidence []keyValue
	History  []store.FindingEvent
}

type keyValue struct {
	Key   string
	Value any
}

// validID keeps arbitrary path input away from the store: finding ids are
// hex digests.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

func (s *server) findingPage(c *gin.Context) {
	id := c.Param("id")
	if !validID(id) {
		s.notFound(c)
		return
	}
	ctx := c.Request.Context()
	// The store has no lookup by id yet; a clinic group has hundreds of
	// findings, not millions, so a scan of all of them is fine for now.
	all, err := s.store.Findings(ctx, store.FindingFilter{})
	if err != nil {
		s.fail(c, err)
		return
	}
	var fd *observe.Finding
	for i := range all {
		if all[i].ID == id {
			fd = &all[i]
			break
		}
	}
	if fd == nil {
		s.notFound(c)
		return
	}
	hist, err := s.store.FindingHistory(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(c, err)
		return
	}
	s.audit(ctx, actor(c), ActionViewFinding, id)
	s.render(c, http.StatusOK, "finding.html", findingData{
		base:     s.base(c, fd.Title),
		Finding:  *fd,
		Evidence: sortedEvidence(fd.Evidence),
		History:  hist,
	})
}

func sortedEvidence(m map[string]any) []keyValue {
	out := make([]keyValue, 0, len(m))
	for k, v := range m {
		out = append(out, keyValue{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

type scansData struct {
	base
	Scans []observe.Scan
}

const (
	defaultScans = 50
	maxScans     = 1000
)

func scanLimit(c *gin.Context) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return defaultScans, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxScans {
		return 0, fmt.Errorf("limit %q: want a number from 1 to %d", v, maxScans)
	}
	return n, nil
}

func (s *server) scansPage(c *gin.Context) {
	limit, err := scanLimit(c)
	if err != nil {
		s.badRequest(c, err)
		return
	}
	scans, err := s.store.Scans(c.Request.Context(), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.audit(c.Request.Context(), actor(c), ActionViewScans, strconv.Itoa(limit))
	s.render(c, http.StatusOK, "scans.html", scansData{base: s.base(c, "Scans"), Scans: scans})
}

func (s *server) apiFindings(c *gin.Context) {
	q := c.Request.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		s.badRequest(c, err)
		return
	}
	fs, err := s.store.Findings(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	if fs == nil {
		fs = []observe.Finding{}
	}
	s.audit(c.Request.Context(), actor(c), ActionExportFindings, q.Encode())
	c.JSON(http.StatusOK, gin.H{"findings": fs})
}

func (s *server) apiScans(c *gin.Context) {
	limit, err := scanLimit(c)
	if err != nil {
		s.badRequest(c, err)
		return
	}
	scans, err := s.store.Scans(c.Request.Context(), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	if scans == nil {
		scans = []observe.Scan{}
	}
	s.audit(c.Request.Context(), actor(c), ActionExportScans, strconv.Itoa(limit))
	c.JSON(http.StatusOK, gin.H{"scans": scans})
}
