package reports

import (
	"embed"
	"fmt"
	"html"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed templates/report.html.tmpl
var templateFiles embed.FS

var reportTemplate = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"inc": func(i int) int { return i + 1 },
	"tone": func(t Tone) template.HTMLAttr {
		if t == ToneNone {
			return ""
		}
		return template.HTMLAttr(` class="t-` + string(t) + `"`)
	},
}).ParseFS(templateFiles, "templates/report.html.tmpl"))

// HTMLWriter writes a report as one self-contained HTML file: inline CSS,
// inline SVG charts, no script and nothing fetched. Printed, @page rules
// put the organisation and title at the top of every page and the as-of
// date, generation time, vigil's version and "Page N of M" at the bottom.
type HTMLWriter struct{}

type htmlDoc struct {
	*Document
	AsOfDate, GeneratedAt, Footer string
	Sections                      []htmlSection
}

type htmlSection struct {
	ID, Title string
	NewPage   bool
	Blocks    []htmlBlock
}

type htmlBlock struct {
	Para  *Paragraph
	KV    *KeyValues
	Table *Table
	Chart template.HTML
}

// WriteDocument implements DocumentWriter.
func (HTMLWriter) WriteDocument(w io.Writer, d *Document) error {
	v := htmlDoc{Document: d, AsOfDate: d.AsOf.UTC().Format(time.DateOnly), GeneratedAt: d.Generated.UTC().Format("2006-01-02 15:04 UTC"),
		Footer: d.footer()}
	for _, s := range d.Sections {
		hs := htmlSection{ID: s.ID, Title: s.Title, NewPage: s.NewPage}
		for _, b := range s.Blocks {
			switch b := b.(type) {
			case *Paragraph:
				hs.Blocks = append(hs.Blocks, htmlBlock{Para: b})
			case *KeyValues:
				hs.Blocks = append(hs.Blocks, htmlBlock{KV: b})
			case *Table:
				hs.Blocks = append(hs.Blocks, htmlBlock{Table: b})
			case *BarChart:
				hs.Blocks = append(hs.Blocks, htmlBlock{Chart: barChartSVG(b)})
			}
		}
		v.Sections = append(v.Sections, hs)
	}
	return reportTemplate.Execute(w, v)
}

// toneColor is each tone's colour in charts.
var toneColor = map[Tone]string{ToneBad: "#b42318", ToneWarn: "#e08a00", ToneMuted: "#8c96a3", ToneGood: "#1d7a3a", ToneNone: "#3b6fb6"}

// barChartSVG draws a stacked bar chart as inline SVG. Every text is
// escaped: the result is safe HTML.
func barChartSVG(c *BarChart) template.HTML {
	const (
		width, height = 640.0, 210.0
		left, right   = 34.0, 8.0
		top, bottom   = 22.0, 30.0
	)
	maxV := 0.0
	for i := range c.Labels {
		sum := 0.0
		for _, s := range c.Series {
			if i < len(s.Values) {
				sum += s.Values[i]
			}
		}
		maxV = max(maxV, sum)
	}
	scaleMax := niceMax(maxV)
	plotH := height - top - bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" width="100%%" role="img" aria-label="%s">`,
		width, height, html.EscapeString(c.Title))
	fmt.Fprintf(&b, `<text x="%.0f" y="12" style="font-weight:bold">%s</text>`, left, html.EscapeString(c.Title))
	for i := 0; i <= 4; i++ {
		v := scaleMax * float64(i) / 4
		y := top + plotH - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d4d8dd" stroke-width="0.5"/>`, left, y, width-right, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-4, y+3, trimFloat(v))
	}
	n := max(1, len(c.Labels))
	slot := (width - left - right) / float64(n)
	bw := slot * 0.62
	for i, label := range c.Labels {
		x := left + slot*float64(i) + (slot-bw)/2
		y := top + plotH
		for _, s := range c.Series {
			if i >= len(s.Values) || s.Values[i] <= 0 || scaleMax == 0 {
				continue
			}
			h := plotH * s.Values[i] / scaleMax
			y -= h
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				x, y, bw, h, toneColor[s.Tone], html.EscapeString(label), html.EscapeString(s.Name), trimFloat(s.Values[i]))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+bw/2, top+plotH+12, html.EscapeString(label))
	}
	lx := left
	for _, s := range c.Series {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="8" height="8" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`,
			lx, height-10, toneColor[s.Tone], lx+11, height-3, html.EscapeString(s.Name))
		lx += 70
	}
	b.WriteString(`</svg>`)
	if c.Note != "" {
		fmt.Fprintf(&b, `<figcaption>%s</figcaption>`, html.EscapeString(c.Note))
	}
	b.WriteString(`</figure>`)
	return template.HTML(b.String())
}

// niceMax rounds a chart's top value up to 1, 2 or 5 times a power of ten
// (at least 4, so four gridlines fall on whole numbers).
func niceMax(v float64) float64 {
	if v <= 4 {
		return 4
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []float64{1, 2, 4, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprint(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}
