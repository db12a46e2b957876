package dashboard

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/reports"
	"github.com/vigilhq/vigil/users"
)

// reportTypes are the Content-Types of the document formats.
var reportTypes = map[string]string{
	"html": "text/html; charset=utf-8",
	"pdf":  "application/pdf",
	"csv":  "text/csv; charset=utf-8",
	"json": "application/json",
}

// report generates an OCR pack, insurance questionnaire or due-diligence
// summary from the tenant's store, as of ?as_of=YYYY-MM-DD (default now),
// in ?format= (html, pdf, csv, json). Reports cover the whole organisation,
// so they need the export permission and every location in scope; each
// download is audit-logged.
func (s *server) report(c *gin.Context) {
	t := tenantOf(c)
	p := principal(c)
	if !p.Role.Grants(users.PermExport) || !p.Scope().AllLocations {
		s.notAllowed(c)
		return
	}
	kind := c.Param("kind")
	gen, err := reports.GeneratorFor(kind)
	if err != nil {
		c.String(http.StatusNotFound, "no such report: %s (one of %s)\n", kind, strings.Join(reports.Kinds(), ", "))
		return
	}
	format := c.DefaultQuery("format", "html")
	w, err := reports.DocumentWriterFor(format)
	if err != nil {
		c.String(http.StatusBadRequest, "format %q: one of %s\n", format, strings.Join(reports.DocumentFormats(), ", "))
		return
	}
	now := s.now()
	asOf := now
	if v := c.Query("as_of"); v != "" {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			c.String(http.StatusBadRequest, "as_of %q: want YYYY-MM-DD\n", v)
			return
		}
		asOf = d.Add(24*time.Hour - time.Nanosecond)
		if asOf.After(now) {
			asOf = now
		}
	}
	src, ok := t.Store.(reports.Source)
	if !ok {
		c.String(http.StatusNotImplemented, "this store cannot produce reports\n")
		return
	}
	var ev reports.CheckpointSource
	if e, ok := t.Store.(interface{ Evidence() evidence.Source }); ok {
		ev = e.Evidence()
	}
	in, _ := t.postureInput(c.Request.Context(), asOf)
	facts, err := reports.Build(c.Request.Context(), src, reports.BuildInput{Posture: in, Evidence: ev, Generated: now, Version: s.version})
	if err != nil {
		s.fail(c, err)
		return
	}
	doc, err := gen.Generate(facts)
	if err != nil {
		s.fail(c, err)
		return
	}
	var buf bytes.Buffer
	if err := w.WriteDocument(&buf, doc); err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionExport, "report."+kind+"."+format, "as of "+asOf.UTC().Format(time.DateOnly)) {
		return
	}
	attachment(c, kind+"-"+asOf.UTC().Format(time.DateOnly)+"."+format)
	c.Data(http.StatusOK, reportTypes[format], buf.Bytes())
}

// document sends an attestation's attached document (a sign-in sheet, a
// signed BAA) to whoever may see that attestation and export: only a
// document some visible attestation names is served, checked against its
// SHA-256 on the way out, as a download, and the download is audit-logged.
func (s *server) document(c *gin.Context) {
	t, v, p, ok := s.current(c)
	if !ok {
		return
	}
	if !p.Role.Grants(users.PermExport) {
		s.notAllowed(c)
		return
	}
	sum := c.Param("sha256")
	var att *observe.Attestation
	for i := range v.snap.Attestations {
		a := &v.snap.Attestations[i]
		if a.Document == sum && p.Scope().AllowsLocation(a.Location) {
			att = a
			break
		}
	}
	if att == nil || sum == "" {
		c.String(http.StatusNotFound, "no such document\n")
		return
	}
	b, err := t.Documents.Open(sum)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !s.audit(c, users.ActionExport, "document:"+sum, att.Kind+" "+att.At.UTC().Format(time.DateOnly)) {
		return
	}
	attachment(c, att.Kind+"-"+att.At.UTC().Format(time.DateOnly)+"-"+sum[:12])
	c.Data(http.StatusOK, http.DetectContentType(b), b)
}
