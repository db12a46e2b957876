package reports

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// PDFWriter writes a report as PDF, in-process (no browser): US Letter,
// the organisation and title at the top of every page, the as-of date,
// generation time, vigil's version and "Page N of M" at the bottom, a
// table of contents with page numbers and links on the first page (one
// line for a compact document), and the sections as PDF bookmarks. The
// same document and generation time give the same bytes.
type PDFWriter struct{}

// WriteDocument implements DocumentWriter.
func (PDFWriter) WriteDocument(w io.Writer, d *Document) error {
	_, err := RenderPDF(w, d)
	return err
}

// RenderPDF writes d as PDF to w and returns its page count. It lays the
// document out twice: once to learn the page each section starts on,
// then with those numbers in the table of contents.
func RenderPDF(w io.Writer, d *Document) (pages int, err error) {
	first, err := layoutPDF(d, nil)
	if err != nil {
		return 0, err
	}
	final, err := layoutPDF(d, first.sectionPages)
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	if err := final.pdf.Output(&buf); err != nil {
		return 0, fmt.Errorf("pdf: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return final.pages, nil
}

const (
	pdfMarginX      = 14.0
	pdfMarginTop    = 20.0
	pdfMarginBottom = 18.0
	ptToMM          = 0.3528
)

// pdfLayout is one layout pass.
type pdfLayout struct {
	pdf          *fpdf.Fpdf
	d            *Document
	tr           func(string) string
	size         float64 // body font size, pt
	sectionPages []int
	links        []int
	pages        int
	orient       string // "P" or "L": of the current section's pages
}

// letter is US Letter in mm.
var letter = fpdf.SizeType{Wd: 215.9, Ht: 279.4}

// newPage starts a page in the current section's orientation (AddPage
// would go back to portrait).
func (l *pdfLayout) newPage() { l.pdf.AddPageFormat(l.orient, letter) }

// pdfText replaces what the PDF's core fonts (Windows-1252) cannot show.
var pdfText = strings.NewReplacer("→", "->", "←", "<-", "≥", ">=", "≤", "<=", "×", "x", "✓", "yes", "\u00a0", " ", "\t", "    ")

func layoutPDF(d *Document, sectionPages []int) (*pdfLayout, error) {
	pdf := fpdf.New("P", "mm", "Letter", "")
	pdf.SetMargins(pdfMarginX, pdfMarginTop, pdfMarginX)
	pdf.SetAutoPageBreak(true, pdfMarginBottom)
	pdf.SetCompression(true)
	pdf.SetCatalogSort(true)
	pdf.SetCreationDate(d.Generated.UTC())
	pdf.SetModificationDate(d.Generated.UTC())
	pdf.SetProducer("vigil "+d.Version, true)
	pdf.SetCreator("vigil "+d.Version, true)
	pdf.SetTitle(d.Title+" - "+d.Organization, true)
	pdf.SetAuthor(d.Organization, true)
	pdf.AliasNbPages("{nb}")
	l := &pdfLayout{pdf: pdf, d: d, tr: pdf.UnicodeTranslatorFromDescriptor(""), size: 9, orient: "P"}
	if d.Compact {
		l.size = 7.5
	}
	pdf.SetHeaderFuncMode(l.header, true)
	pdf.SetFooterFunc(l.footer)
	for range d.Sections {
		l.links = append(l.links, pdf.AddLink())
	}
	l.sectionPages = make([]int, len(d.Sections))

	pdf.AddPage()
	l.titleBlock()
	l.toc(sectionPages)
	for i, s := range d.Sections {
		l.section(i, s)
	}
	l.pages = pdf.PageNo()
	if err := pdf.Error(); err != nil {
		return nil, fmt.Errorf("pdf: %w", err)
	}
	return l, nil
}

func (l *pdfLayout) text(s string) string { return l.tr(pdfText.Replace(s)) }

func (l *pdfLayout) lineH(size float64) float64 { return size * ptToMM * 1.25 }

func (l *pdfLayout) header() {
	p := l.pdf
	pw, _ := p.GetPageSize()
	p.SetFont("Helvetica", "", 7.5)
	p.SetTextColor(90, 98, 110)
	p.SetXY(pdfMarginX, 9)
	p.CellFormat(pw/2-pdfMarginX, 4, l.text(l.d.Organization), "", 0, "L", false, 0, "")
	p.SetXY(pw/2, 9)
	p.CellFormat(pw/2-pdfMarginX, 4, l.text(l.d.Title), "", 0, "R", false, 0, "")
	p.SetDrawColor(180, 186, 194)
	p.SetLineWidth(0.2)
	p.Line(pdfMarginX, 14, pw-pdfMarginX, 14)
	p.SetXY(pdfMarginX, pdfMarginTop)
	p.SetTextColor(27, 31, 36)
}

func (l *pdfLayout) footer() {
	p := l.pdf
	pw, ph := p.GetPageSize()
	p.SetFont("Helvetica", "", 7)
	p.SetTextColor(90, 98, 110)
	p.SetDrawColor(180, 186, 194)
	p.Line(pdfMarginX, ph-13, pw-pdfMarginX, ph-13)
	p.SetXY(pdfMarginX, ph-12)
	foot := fmt.Sprintf("%s · as of %s · generated %s · vigil %s", l.d.Organization, l.d.AsOf.UTC().Format(time.DateOnly),
		l.d.Generated.UTC().Format("2006-01-02 15:04 UTC"), l.d.Version)
	p.CellFormat(pw-2*pdfMarginX-30, 4, l.text(foot), "", 0, "L", false, 0, "")
	p.SetXY(pw-pdfMarginX-30, ph-12)
	p.CellFormat(30, 4, fmt.Sprintf("Page %d of {nb}", p.PageNo()), "", 0, "R", false, 0, "")
	p.SetTextColor(27, 31, 36)
}

func (l *pdfLayout) titleBlock() {
	p := l.pdf
	big := 18.0
	if l.d.Compact {
		big = 14
	}
	p.SetFont("Helvetica", "B", big)
	p.MultiCell(0, l.lineH(big), l.text(l.d.Title), "", "L", false)
	p.SetFont("Helvetica", "", l.size+1)
	p.SetTextColor(90, 98, 110)
	p.MultiCell(0, l.lineH(l.size+1), l.text(l.d.Organization+" - "+l.d.Subtitle), "", "L", false)
	p.MultiCell(0, l.lineH(l.size), l.text(fmt.Sprintf("As of %s · generated %s · vigil %s", l.d.AsOf.UTC().Format(time.DateOnly),
		l.d.Generated.UTC().Format("2006-01-02 15:04 UTC"), l.d.Version)), "", "L", false)
	p.SetTextColor(27, 31, 36)
	p.Ln(2)
}

// toc writes the table of contents; pages are the sections' first pages
// (nil in the first pass, which only measures).
func (l *pdfLayout) toc(pages []int) {
	p := l.pdf
	pw, _ := p.GetPageSize()
	width := pw - 2*pdfMarginX
	if l.d.Compact {
		var parts []string
		for i, s := range l.d.Sections {
			parts = append(parts, fmt.Sprintf("%d. %s", i+1, s.Title))
		}
		p.SetFont("Helvetica", "B", l.size)
		p.Write(l.lineH(l.size), "Contents: ")
		p.SetFont("Helvetica", "", l.size)
		p.Write(l.lineH(l.size), l.text(strings.Join(parts, "  ·  ")))
		p.Ln(l.lineH(l.size) + 1.5)
		return
	}
	p.SetFont("Helvetica", "B", 11)
	p.CellFormat(0, 7, "Contents", "", 1, "L", false, 0, "")
	p.SetFont("Helvetica", "", 10)
	for i, s := range l.d.Sections {
		num := ""
		if pages != nil {
			num = fmt.Sprint(pages[i])
		}
		p.CellFormat(width-15, 6, l.text(fmt.Sprintf("%d. %s", i+1, s.Title)), "", 0, "L", false, l.links[i], "")
		p.CellFormat(15, 6, num, "", 1, "R", false, l.links[i], "")
	}
	p.Ln(3)
}

func (l *pdfLayout) section(i int, s Section) {
	p := l.pdf
	_, ph := p.GetPageSize()
	headH := l.lineH(l.size + 4)
	orient := "P"
	if s.Landscape {
		orient = "L"
	}
	if s.NewPage && !l.d.Compact || orient != l.orient {
		l.orient = orient
		l.newPage()
	} else if p.GetY()+headH+20 > ph-pdfMarginBottom {
		l.newPage()
	} else {
		p.Ln(2)
	}
	l.sectionPages[i] = p.PageNo()
	p.SetLink(l.links[i], p.GetY(), p.PageNo())
	p.Bookmark(l.text(s.Title), 0, -1)
	size := l.size + 4
	if l.d.Compact {
		size = l.size + 2.5
	}
	p.SetFont("Helvetica", "B", size)
	p.CellFormat(0, l.lineH(size)+1, l.text(fmt.Sprintf("%d. %s", i+1, s.Title)), "B", 1, "L", false, 0, "")
	p.Ln(1.5)
	for _, b := range s.Blocks {
		switch b := b.(type) {
		case *Paragraph:
			l.paragraph(b)
		case *KeyValues:
			l.keyValues(b)
		case *Table:
			l.table(b)
		case *BarChart:
			l.chart(b)
		}
	}
}

func (l *pdfLayout) paragraph(b *Paragraph) {
	p := l.pdf
	switch {
	case b.Heading:
		p.SetFont("Helvetica", "B", l.size+1)
		p.MultiCell(0, l.lineH(l.size+1), l.text(b.Text), "", "L", false)
	case b.Small:
		p.SetFont("Helvetica", "", l.size-1)
		p.SetTextColor(90, 98, 110)
		p.MultiCell(0, l.lineH(l.size-1), l.text(b.Text), "", "L", false)
		p.SetTextColor(27, 31, 36)
	default:
		p.SetFont("Helvetica", "", l.size)
		p.MultiCell(0, l.lineH(l.size), l.text(b.Text), "", "L", false)
	}
	p.Ln(1)
}

func (l *pdfLayout) keyValues(b *KeyValues) {
	p := l.pdf
	pw, _ := p.GetPageSize()
	keyW := 0.0
	p.SetFont("Helvetica", "B", l.size)
	for _, kv := range b.Items {
		keyW = max(keyW, p.GetStringWidth(l.text(kv.Key))+4)
	}
	keyW = min(keyW, 60)
	valW := pw - 2*pdfMarginX - keyW
	lh := l.lineH(l.size)
	for _, kv := range b.Items {
		p.SetFont("Helvetica", "", l.size)
		lines := p.SplitText(pdfText.Replace(kv.Value), valW)
		l.ensure(float64(max(1, len(lines))) * lh)
		y := p.GetY()
		p.SetFont("Helvetica", "B", l.size)
		p.SetXY(pdfMarginX, y)
		p.CellFormat(keyW, lh, l.text(kv.Key), "", 0, "L", false, 0, "")
		p.SetFont("Helvetica", "", l.size)
		l.setTone(kv.Tone)
		for j, line := range lines {
			p.SetXY(pdfMarginX+keyW, y+float64(j)*lh)
			p.CellFormat(valW, lh, l.tr(line), "", 0, "L", false, 0, "")
		}
		p.SetTextColor(27, 31, 36)
		p.SetXY(pdfMarginX, y+float64(max(1, len(lines)))*lh)
	}
	p.Ln(1.5)
}

// ensure starts a new page unless h fits on this one.
func (l *pdfLayout) ensure(h float64) bool {
	_, ph := l.pdf.GetPageSize()
	if l.pdf.GetY()+h > ph-pdfMarginBottom {
		l.newPage()
		return true
	}
	return false
}

func (l *pdfLayout) setTone(t Tone) {
	switch t {
	case ToneGood:
		l.pdf.SetTextColor(29, 122, 58)
	case ToneBad:
		l.pdf.SetTextColor(180, 35, 24)
	case ToneWarn:
		l.pdf.SetTextColor(161, 92, 7)
	case ToneMuted:
		l.pdf.SetTextColor(110, 118, 128)
	default:
		l.pdf.SetTextColor(27, 31, 36)
	}
}

// maxCellLines bounds one cell, so that a row always fits on a page.
const maxCellLines = 40

func (l *pdfLayout) table(t *Table) {
	p := l.pdf
	pw, _ := p.GetPageSize()
	size := l.size - 1.5
	lh := l.lineH(size)
	const pad = 0.8
	if t.Caption != "" {
		p.SetFont("Helvetica", "", size)
		p.SetTextColor(90, 98, 110)
		l.ensure(lh * 3)
		p.MultiCell(0, lh, l.text(t.Caption), "", "L", false)
		p.SetTextColor(27, 31, 36)
	}
	if len(t.Rows) == 0 {
		p.SetFont("Helvetica", "I", size)
		p.MultiCell(0, lh, l.text(t.Empty), "", "L", false)
		p.Ln(1.5)
		return
	}
	total := 0.0
	for _, c := range t.Columns {
		total += colWidth(c)
	}
	width := pw - 2*pdfMarginX
	widths := make([]float64, len(t.Columns))
	for i, c := range t.Columns {
		widths[i] = width * colWidth(c) / total
	}
	row := func(cells []Cell, bold bool) {
		style := ""
		if bold {
			style = "B"
		}
		p.SetFont("Helvetica", style, size)
		lines := make([][]string, len(cells))
		n := 1
		for i, c := range cells {
			if i >= len(widths) {
				break
			}
			ls := p.SplitText(pdfText.Replace(c.Text), widths[i]-2*pad+2)
			if len(ls) > maxCellLines {
				ls = append(ls[:maxCellLines-1], "[...]")
			}
			lines[i] = ls
			n = max(n, len(ls))
		}
		h := float64(n)*lh + 2*pad
		if l.ensure(h) && !bold {
			l.tableHead(t, widths, size, lh, pad)
			p.SetFont("Helvetica", style, size)
		}
		x, y := pdfMarginX, p.GetY()
		for i := range widths {
			if bold {
				p.SetFillColor(241, 243, 245)
				p.Rect(x, y, widths[i], h, "FD")
			} else {
				p.Rect(x, y, widths[i], h, "D")
			}
			if i < len(cells) {
				l.setTone(cells[i].Tone)
				if cells[i].Tone != ToneNone && cells[i].Tone != ToneMuted {
					p.SetFont("Helvetica", "B", size)
				}
				for j, line := range lines[i] {
					p.SetXY(x+pad-1, y+pad+float64(j)*lh)
					p.CellFormat(widths[i]-2*pad+2, lh, l.tr(line), "", 0, "L", false, 0, "")
				}
				p.SetFont("Helvetica", style, size)
				p.SetTextColor(27, 31, 36)
			}
			x += widths[i]
		}
		p.SetXY(pdfMarginX, y+h)
	}
	p.SetDrawColor(200, 205, 211)
	p.SetLineWidth(0.15)
	l.ensure(3 * lh * 2)
	l.tableHead(t, widths, size, lh, pad)
	for _, r := range t.Rows {
		row(r, false)
	}
	p.Ln(2)
}

// tableHead draws a table's header row (again after a page break).
func (l *pdfLayout) tableHead(t *Table, widths []float64, size, lh, pad float64) {
	p := l.pdf
	p.SetFont("Helvetica", "B", size)
	n := 1
	lines := make([][]string, len(t.Columns))
	for i, c := range t.Columns {
		lines[i] = p.SplitText(pdfText.Replace(c.Title), widths[i]-2*pad+2)
		n = max(n, len(lines[i]))
	}
	h := float64(n)*lh + 2*pad
	x, y := pdfMarginX, p.GetY()
	p.SetFillColor(241, 243, 245)
	p.SetDrawColor(200, 205, 211)
	for i := range t.Columns {
		p.Rect(x, y, widths[i], h, "FD")
		for j, line := range lines[i] {
			p.SetXY(x+pad-1, y+pad+float64(j)*lh)
			p.CellFormat(widths[i]-2*pad+2, lh, l.tr(line), "", 0, "L", false, 0, "")
		}
		x += widths[i]
	}
	p.SetXY(pdfMarginX, y+h)
	p.SetFont("Helvetica", "", size)
}

func colWidth(c Column) float64 {
	if c.Width <= 0 {
		return 1
	}
	return c.Width
}

var pdfToneRGB = map[Tone][3]int{ToneBad: {180, 35, 24}, ToneWarn: {224, 138, 0}, ToneMuted: {140, 150, 163}, ToneGood: {29, 122, 58}, ToneNone: {59, 111, 182}}

func (l *pdfLayout) chart(c *BarChart) {
	p := l.pdf
	pw, _ := p.GetPageSize()
	height := 48.0
	if l.d.Compact {
		height = 24
	}
	size := l.size - 1
	l.ensure(height + 14)
	p.SetFont("Helvetica", "B", l.size)
	p.CellFormat(0, l.lineH(l.size), l.text(c.Title), "", 1, "L", false, 0, "")
	left, right := pdfMarginX+8, pw-pdfMarginX
	top := p.GetY() + 1
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
	p.SetFont("Helvetica", "", size)
	p.SetDrawColor(212, 216, 221)
	p.SetLineWidth(0.1)
	for i := 0; i <= 4; i++ {
		y := top + height - height*float64(i)/4
		p.Line(left, y, right, y)
		p.SetXY(pdfMarginX, y-1.5)
		p.CellFormat(7, 3, trimFloat(scaleMax*float64(i)/4), "", 0, "R", false, 0, "")
	}
	n := max(1, len(c.Labels))
	slot := (right - left) / float64(n)
	bw := slot * 0.62
	for i, label := range c.Labels {
		x := left + slot*float64(i) + (slot-bw)/2
		y := top + height
		for _, s := range c.Series {
			if i >= len(s.Values) || s.Values[i] <= 0 {
				continue
			}
			h := height * s.Values[i] / scaleMax
			y -= h
			rgb := pdfToneRGB[s.Tone]
			p.SetFillColor(rgb[0], rgb[1], rgb[2])
			p.Rect(x, y, bw, h, "F")
		}
		p.SetXY(x-2, top+height+0.5)
		p.CellFormat(bw+4, 3, l.text(label), "", 0, "C", false, 0, "")
	}
	lx := left
	ly := top + height + 4.5
	for _, s := range c.Series {
		rgb := pdfToneRGB[s.Tone]
		p.SetFillColor(rgb[0], rgb[1], rgb[2])
		p.Rect(lx, ly+0.5, 2.5, 2.5, "F")
		p.SetXY(lx+3, ly)
		p.CellFormat(22, 3.5, l.text(s.Name), "", 0, "L", false, 0, "")
		lx += 26
	}
	p.SetXY(pdfMarginX, ly+4.5)
	if c.Note != "" {
		p.SetFont("Helvetica", "", size)
		p.SetTextColor(90, 98, 110)
		p.MultiCell(0, l.lineH(size), l.text(c.Note), "", "L", false)
		p.SetTextColor(27, 31, 36)
	}
	p.Ln(1)
}
