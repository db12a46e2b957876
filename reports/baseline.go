package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// ErrBadBaseline is wrapped by LoadBaseline when the file was read but is not
// a vigil scan JSON output.
var ErrBadBaseline = errors.New("not a vigil scan JSON output")

// LoadBaseline reads a previous `vigil scan --format json` output and returns
// the ids of its findings. Only the "findings" array and each finding's "id"
// are read, so outputs of older or newer vigil versions work as baselines.
// Errors name the file; a malformed file's error also gives the line, column
// and byte offset of the problem and wraps ErrBadBaseline, and a missing
// file's wraps fs.ErrNotExist.
func LoadBaseline(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	return parseBaseline(path, data)
}

// baselineDoc is the part of the JSON output a baseline needs. Pointers tell
// a missing key from an empty value.
type baselineDoc struct {
	Findings *[]struct {
		ID *string `json:"id"`
	} `json:"findings"`
}

func parseBaseline(name string, data []byte) (map[string]bool, error) {
	var doc baselineDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("baseline %s: %w: malformed JSON at %s: %v",
				name, ErrBadBaseline, position(data, syntax.Offset), syntax)
		case errors.As(err, &typ):
			what := "the document"
			if typ.Field != "" {
				what = fmt.Sprintf("%q", typ.Field)
			}
			return nil, fmt.Errorf("baseline %s: %w: %s is a JSON %s, want %s, at %s",
				name, ErrBadBaseline, what, typ.Value, jsonKind(typ.Type.Kind().String()), position(data, typ.Offset))
		default:
			return nil, fmt.Errorf("baseline %s: %w: %v", name, ErrBadBaseline, err)
		}
	}
	if doc.Findings == nil {
		return nil, fmt.Errorf("baseline %s: %w: no \"findings\" array (write one with: vigil scan --format json --output FILE)",
			name, ErrBadBaseline)
	}
	ids := make(map[string]bool, len(*doc.Findings))
	for i, f := range *doc.Findings {
		if f.ID == nil || *f.ID == "" {
			return nil, fmt.Errorf("baseline %s: %w: finding %d has no \"id\"", name, ErrBadBaseline, i)
		}
		ids[*f.ID] = true
	}
	return ids, nil
}

// position describes where the JSON decoder stopped as a line and column
// (both from 1) that an editor can jump to, plus the raw byte offset. The
// decoder's offset counts the bytes it read, the offending one included, so
// the column is that last byte's.
func position(data []byte, offset int64) string {
	off := int(min(max(offset, 1), int64(len(data))))
	if off == 0 {
		return "line 1, column 1 (offset 0)"
	}
	last := off - 1
	line := bytes.Count(data[:last], []byte("\n")) + 1
	col := last - bytes.LastIndexByte(data[:last], '\n')
	return fmt.Sprintf("line %d, column %d (offset %d)", line, col, offset)
}

// jsonKind names a Go kind the way the JSON it decodes from is called.
func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "ptr":
		return "a value"
	}
	return goKind
}
