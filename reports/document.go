package reports

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Document is a report kind's content before it is written in a format:
// sections of paragraphs, key-value lists, tables and charts. Generators
// build it from the store; a DocumentWriter lays it out (HTML, PDF, CSV,
// JSON), so every format says the same thing.
type Document struct {
	// Kind is the report kind that built it (ocr, insurance, diligence).
	Kind     string
	Title    string
	Subtitle string
	// Organization is the organisation's name; every page shows it.
	Organization string
	// AsOf is the moment the content describes; Generated when the
	// document was made. Both are shown on every page.
	AsOf      time.Time
	Generated time.Time
	// Version is vigil's version, shown on every page.
	Version  string
	Sections []Section
	// Compact documents are meant for one page: the PDF uses smaller type
	// and a one-line table of contents.
	Compact bool
	// CSVTable names the table the CSV format writes (Table.Name).
	CSVTable string
	// Data is what the JSON format writes under "data": the report's
	// content as typed values, for machines.
	Data any
}

// Section is one numbered part of a document, listed in its table of
// contents.
type Section struct {
	// ID is the section's anchor ("risk-register").
	ID     string
	Title  string
	Blocks []Block
	// NewPage starts the section on a new page in paged formats;
	// Landscape lays its pages out sideways in the PDF (wide tables).
	NewPage   bool
	Landscape bool
}

// Block is a piece of a section: *Paragraph, *KeyValues, *Table or
// *BarChart.
type Block interface{ block() }

// Tone colours a cell or value: good, bad, warn or muted ("" for none).
type Tone string

// Tones.
const (
	ToneNone  Tone = ""
	ToneGood  Tone = "good"
	ToneBad   Tone = "bad"
	ToneWarn  Tone = "warn"
	ToneMuted Tone = "muted"
)

// Paragraph is running text. A Heading paragraph is a sub-heading.
type Paragraph struct {
	Text    string
	Heading bool
	// Small text is a note or a citation.
	Small bool
}

func (*Paragraph) block() {}

// KeyValues is a two-column list of labelled values.
type KeyValues struct {
	Items []KV
}

func (*KeyValues) block() {}

// KV is one labelled value.
type KV struct {
	Key, Value string
	Tone       Tone
}

// Table is rows under column headings.
type Table struct {
	// Name identifies the table (Document.CSVTable).
	Name    string
	Caption string
	Columns []Column
	Rows    [][]Cell
	// More are rows beyond what a page shows (a one-page summary's top
	// ten): only the CSV format writes them.
	More [][]Cell
	// Empty is written instead of a table without rows.
	Empty string
}

func (*Table) block() {}

// add appends a row to Rows when shown, else to More.
func (t *Table) add(shown bool, row []Cell) {
	if shown {
		t.Rows = append(t.Rows, row)
	} else {
		t.More = append(t.More, row)
	}
}

// Column is a table column: its heading and its share of the width
// (relative to the other columns' Width; 0 counts as 1).
type Column struct {
	Title string
	Width float64
}

// Cell is one table cell.
type Cell struct {
	Text string
	Tone Tone
}

// C is a plain cell.
func C(s string) Cell { return Cell{Text: s} }

// BarChart is a chart of stacked bars, one per label (a month, a
// location), each stacking one value per series.
type BarChart struct {
	Title  string
	Labels []string
	Series []Series
	// Note is printed under the chart.
	Note string
}

func (*BarChart) block() {}

// Series is one stacked part of every bar.
type Series struct {
	Name   string
	Tone   Tone
	Values []float64
}

// DocumentWriter writes a Document in one format.
type DocumentWriter interface {
	WriteDocument(w io.Writer, d *Document) error
}

// DocumentFormats lists the names DocumentWriterFor accepts.
func DocumentFormats() []string { return []string{"html", "pdf", "csv", "json"} }

// DocumentWriterFor returns the writer for a report format name (html,
// pdf, csv, json), matched without regard to case; an unknown name is an
// ErrUnknownFormat error listing the valid ones.
func DocumentWriterFor(format string) (DocumentWriter, error) {
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "html":
		return HTMLWriter{}, nil
	case "pdf":
		return PDFWriter{}, nil
	case "csv":
		return CSVWriter{}, nil
	case "json":
		return DocumentJSONWriter{}, nil
	}
	return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownFormat, format, strings.Join(DocumentFormats(), ", "))
}

// ErrUnknownKind is returned by GeneratorFor for a report kind it does not
// know.
var ErrUnknownKind = errors.New("unknown report kind")

// Generator builds one kind of report from the facts gathered for it.
type Generator interface {
	Generate(f *Facts) (*Document, error)
}

// Kinds lists the report kinds GeneratorFor accepts.
func Kinds() []string { return []string{"ocr", "insurance", "diligence"} }

// GeneratorFor returns the generator of a report kind (ocr, insurance,
// diligence), matched without regard to case.
func GeneratorFor(kind string) (Generator, error) {
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "ocr":
		return OCRPack{}, nil
	case "insurance":
		return InsuranceQuestionnaire{}, nil
	case "diligence":
		return DiligenceSummary{}, nil
	}
	return nil, fmt.Errorf("%w %q: use one of %s", ErrUnknownKind, kind, strings.Join(Kinds(), ", "))
}

// table returns the document's table named name.
func (d *Document) table(name string) *Table {
	for _, s := range d.Sections {
		for _, b := range s.Blocks {
			if t, ok := b.(*Table); ok && t.Name == name {
				return t
			}
		}
	}
	return nil
}

// footer is the line every page carries.
func (d *Document) footer() string {
	return fmt.Sprintf("%s · as of %s · generated %s · vigil %s", d.Organization, d.AsOf.UTC().Format(time.DateOnly),
		d.Generated.UTC().Format("2006-01-02 15:04 UTC"), d.Version)
}
