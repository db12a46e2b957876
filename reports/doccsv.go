package reports

import (
	"encoding/csv"
	"fmt"
	"io"
	"strings"
)

// CSVWriter writes a report's main table (Document.CSVTable) as CSV with a
// header row, every row included (also those a one-page summary leaves
// off), to paste into a carrier's form or a spreadsheet: the insurance
// questionnaire, the OCR pack's traceability matrix, the diligence
// summary's open risks.
type CSVWriter struct{}

// WriteDocument implements DocumentWriter.
func (CSVWriter) WriteDocument(w io.Writer, d *Document) error {
	t := d.table(d.CSVTable)
	if t == nil {
		return fmt.Errorf("the %s report has no table to write as CSV", d.Kind)
	}
	cw := csv.NewWriter(w)
	head := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		head[i] = c.Title
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for _, rows := range [][][]Cell{t.Rows, t.More} {
		for _, row := range rows {
			rec := make([]string, len(row))
			for i, c := range row {
				// One line per cell: spreadsheets paste multi-line cells badly.
				rec[i] = strings.ReplaceAll(csvSafe(c.Text), "\n", " ")
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from running a cell as a formula: values
// come from scanned hosts and account names, which an attacker may choose.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) && s != "-" {
		return "'" + s
	}
	return s
}
