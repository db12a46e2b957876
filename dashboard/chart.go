package dashboard

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// Charts are inline SVG built on the server: no JavaScript, printable,
// and every value is also written as text (a <title> per point or bar and
// a table beside the chart), so nothing relies on reading a shape.

// lineChart draws counts over time.
func lineChart(title string, at []time.Time, counts []int) string {
	if len(at) == 0 || len(at) != len(counts) {
		return ""
	}
	const w, h, padL, padB, padT, padR = 560, 180, 40, 28, 12, 12
	top := 1
	for _, n := range counts {
		top = max(top, n)
	}
	x := func(i int) float64 {
		if len(at) == 1 {
			return padL
		}
		return padL + float64(i)*float64(w-padL-padR)/float64(len(at)-1)
	}
	y := func(n int) float64 { return padT + float64(h-padT-padB)*(1-float64(n)/float64(top)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(title), w, h, w, h)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, h-padB, w-padR, h-padB)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, padT, padL, h-padB)
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.0f" text-anchor="end">%d</text>`, padL-4, y(top)+4, top)
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.0f" text-anchor="end">0</text>`, padL-4, y(0)+4)
	var pts []string
	for i, n := range counts {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(n)))
	}
	fmt.Fprintf(&b, `<polyline class="line" points="%s"/>`, strings.Join(pts, " "))
	for i, n := range counts {
		fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="3"><title>%s: %d open</title></circle>`,
			x(i), y(n), at[i].UTC().Format(time.DateOnly), n)
	}
	for _, i := range []int{0, len(at) / 2, len(at) - 1} {
		fmt.Fprintf(&b, `<text class="tick" x="%.0f" y="%d" text-anchor="middle">%s</text>`, x(i), h-8, at[i].UTC().Format("Jan 2"))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// barItem is one bar of a bar chart.
type barItem struct {
	Label string `json:"label"`
	Count int    `json:"count"`
}

// barChart draws labelled horizontal bars, each with its number.
func barChart(title string, items []barItem) string {
	if len(items) == 0 {
		return ""
	}
	const w, row, padL, padR = 560, 22, 170, 50
	top := 1
	for _, it := range items {
		top = max(top, it.Count)
	}
	h := row*len(items) + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(title), w, h, w, h)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	for i, it := range items {
		y := 4 + i*row
		bw := float64(w-padL-padR) * float64(it.Count) / float64(top)
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, padL-6, y+15, html.EscapeString(it.Label))
		fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%.1f" height="%d"><title>%s: %d</title></rect>`,
			padL, y+3, bw, row-6, html.EscapeString(it.Label), it.Count)
		fmt.Fprintf(&b, `<text class="value" x="%.1f" y="%d">%d</text>`, float64(padL)+bw+6, y+15, it.Count)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
