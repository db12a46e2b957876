package reports

import (
	"encoding/json"
	"io"
	"time"
)

// DocumentJSONWriter writes a report for machines: what every page shows
// (kind, organisation, as-of, generated, version) and the report's data.
// The OCR pack's JSON is what `vigil report --since-pack` reads back.
type DocumentJSONWriter struct{}

// documentJSON is the JSON envelope of a report.
type documentJSON struct {
	Kind         string    `json:"kind"`
	Title        string    `json:"title"`
	Organization string    `json:"organization"`
	AsOf         time.Time `json:"as_of"`
	Generated    time.Time `json:"generated_at"`
	Version      string    `json:"version"`
	Data         any       `json:"data"`
}

// WriteDocument implements DocumentWriter.
func (DocumentJSONWriter) WriteDocument(w io.Writer, d *Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(documentJSON{Kind: d.Kind, Title: d.Title, Organization: d.Organization, AsOf: d.AsOf.UTC(),
		Generated: d.Generated.UTC(), Version: d.Version, Data: d.Data})
}
