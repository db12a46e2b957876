package sqlstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timeLayout is RFC 3339 with a fixed nine fractional digits, so that
// stored timestamps of equal length sort as strings in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q: %w", s, err)
	}
	return t.UTC(), nil
}

// encodeJSON marshals v, writing empty (for nil) when v is nil or empty.
func encodeJSON(v any, empty string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if s := string(b); s != "null" {
		return s, nil
	}
	return empty, nil
}

// decodeJSON unmarshals s into v with the number rule of decodeValue.
func decodeJSON(s string, v *any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	*v = decodeNumbers(*v)
	return nil
}

// decodeMap decodes a JSON object. Whole numbers come back as int64 and other
// numbers as float64 (the types CEL uses), arrays as []any and objects as
// map[string]any. An empty or null value gives nil.
func decodeMap(s string) (map[string]any, error) {
	if s == "" || s == "null" {
		return nil, nil
	}
	var v any
	if err := decodeJSON(s, &v); err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %.40s", s)
	}
	return m, nil
}

func decodeStrings(s string) ([]string, error) {
	if s == "" || s == "null" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	return out, nil
}

func decodeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = decodeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = decodeNumbers(e)
		}
	}
	return v
}

// decodeVantages reads a scan's location -> segments JSON object.
func decodeVantages(s string, v *map[string][]string) error {
	return json.Unmarshal([]byte(s), v)
}
