// Package csvidentity turns account lists exported as CSV from systems vigil
// has no API for (an EMR, a booking system) into collectors.KindAccount
// observations. It accepts exports as they come (any column order or case, a
// byte order mark, ';' or ',') and reports a bad row by file and line
// without giving up on the rest of the file.
package csvidentity

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// MaxFileSize is the largest export Read accepts. Identity exports are a few
// thousand rows; anything far bigger is the wrong file.
const MaxFileSize = 64 << 20

// Attribute keys of a KindAccount observation (see collectors.KindAccount).
const (
	AttrSystem      = "system"
	AttrUsername    = "username"
	AttrEmail       = "email"
	AttrDisplayName = "display_name"
	AttrEnabled     = "enabled"
	AttrMFA         = "mfa"
	AttrLastLogin   = "last_login"
	AttrLocations   = "locations"
	AttrRole        = "role"
	AttrIsAdmin     = "is_admin"
	AttrExtra       = "extra"
)

// knownColumns are the CONTRACT.md columns; every other column goes to extra.
var knownColumns = []string{
	AttrUsername, AttrEmail, AttrDisplayName, AttrEnabled, AttrMFA,
	AttrLastLogin, AttrLocations, AttrRole, AttrIsAdmin,
}

// ErrNoUsernameColumn is returned when the header has no username column:
// without it no account can be named, so the file is refused as a whole.
var ErrNoUsernameColumn = errors.New("no username column in the header")

// RowError is one row that could not be used. The rest of the file still is.
type RowError struct {
	File string // the name passed to Read
	Line int    // 1-based line where the row starts
	Err  error
}

func (e *RowError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *RowError) Unwrap() error { return e.Err }

// Collect reads the CSV export src names. src.Type must be "csv".
func Collect(ctx context.Context, src config.IdentitySource, now time.Time) (obs []observe.Observation, rowErrs []error, err error) {
	if src.Type != "csv" {
		return nil, nil, fmt.Errorf("identity source %q: type %q is not csv", src.System, src.Type)
	}
	if src.Path == "" {
		return nil, nil, fmt.Errorf("identity source %q: no path: set path to the CSV export", src.System)
	}
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("identity source %q: %w", src.System, err)
	}
	defer f.Close()
	return Read(ctx, f, src.Path, src.System, now)
}

// Source is a configured CSV export as a collectors.Collector. Its clock
// stamps the observations; nil means time.Now.
type Source struct {
	Config config.IdentitySource
	Now    func() time.Time
}

var _ collectors.Collector = Source{}

// Name is "csv:<system>", the Source of the observations it produces.
func (s Source) Name() string { return "csv:" + s.Config.System }

// Collect returns the accounts it could read. Bad rows do not stop it: they
// come back joined in the error, next to the good rows' observations.
func (s Source) Collect(ctx context.Context) ([]observe.Observation, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	obs, rowErrs, err := Collect(ctx, s.Config, now())
	if err != nil {
		return obs, err
	}
	return obs, errors.Join(rowErrs...)
}

// Read parses one CSV identity export. name is the file name used in errors;
// system is the label from the configuration (emr, booking, ...); now is the
// time stamped on every observation. Rows that cannot be used are returned in
// rowErrs as *RowError and skipped; err is set only when the file as a whole
// cannot be used (unreadable, too big, no header, no username column) or ctx
// is cancelled.
func Read(ctx context.Context, r io.Reader, name, system string, now time.Time) (obs []observe.Observation, rowErrs []error, err error) {
	if system == "" {
		return nil, nil, fmt.Errorf("%s: identity source has no system label: set system in the configuration", name)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, nil, fmt.Errorf("%s: larger than %d MiB: is this an identity export?", name, MaxFileSize>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))

	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = sniffDelimiter(data)
	cr.FieldsPerRecord = -1 // checked per row, so a short row is a row error

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%s: empty file: expected a header line", name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: header: %w", name, err)
	}
	cols, err := mapHeader(header)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}

	source := "csv:" + system
	at := now.UTC()
	for {
		if err := ctx.Err(); err != nil {
			return obs, rowErrs, err
		}
		before := cr.InputOffset()
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return obs, rowErrs, fmt.Errorf("%s: %w", name, err)
			}
			rowErrs = append(rowErrs, &RowError{File: name, Line: pe.StartLine, Err: pe.Err})
			if cr.InputOffset() == before { // cannot happen with encoding/csv; never loop forever
				return obs, rowErrs, fmt.Errorf("%s:%d: cannot continue past this row", name, pe.StartLine)
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		attrs, err := cols.account(rec)
		if err != nil {
			rowErrs = append(rowErrs, &RowError{File: name, Line: line, Err: err})
			continue
		}
		attrs[AttrSystem] = system
		obs = append(obs, observe.Observation{
			Kind:   collectors.KindAccount,
			Source: source,
			At:     at,
			Attrs:  attrs,
		})
	}
	return obs, rowErrs, nil
}

// sniffDelimiter picks ';', ',' or tab, whichever occurs most often outside
// quotes on the header line; ',' on a tie.
func sniffDelimiter(data []byte) rune {
	counts := map[byte]int{}
	inQuotes := false
	for _, b := range data {
		if b == '"' {
			inQuotes = !inQuotes
			continue
		}
		if inQuotes {
			continue
		}
		if b == '\n' || b == '\r' {
			break
		}
		counts[b]++
	}
	switch {
	case counts[';'] > counts[','] && counts[';'] >= counts['\t']:
		return ';'
	case counts['\t'] > counts[','] && counts['\t'] > counts[';']:
		return '\t'
	}
	return ','
}

// columns maps a header to field positions.
type columns struct {
	known map[string]int // known column -> index
	extra []string       // index -> unknown column name, "" for known ones
	n     int
}

// normalizeHeader makes "Display Name", "display-name" and "DISPLAY_NAME" the same.
func normalizeHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	return strings.NewReplacer(" ", "_", "-", "_").Replace(h)
}

func mapHeader(header []string) (columns, error) {
	c := columns{known: map[string]int{}, extra: make([]string, len(header)), n: len(header)}
	isKnown := map[string]bool{}
	for _, k := range knownColumns {
		isKnown[k] = true
	}
	seen := map[string]bool{}
	for i, h := range header {
		key := normalizeHeader(h)
		if key == "" {
			key = fmt.Sprintf("column_%d", i+1)
		}
		if seen[key] {
			return c, fmt.Errorf("header: column %q appears twice", strings.TrimSpace(h))
		}
		seen[key] = true
		if isKnown[key] {
			c.known[key] = i
		} else {
			c.extra[i] = key
		}
	}
	if _, ok := c.known[AttrUsername]; !ok {
		return c, fmt.Errorf("header %q: %w (columns: %s)", strings.Join(header, ","), ErrNoUsernameColumn, strings.Join(knownColumns, ", "))
	}
	return c, nil
}

func (c columns) get(rec []string, key string) string {
	i, ok := c.known[key]
	if !ok {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// account turns one record into Attrs, or says why it cannot.
func (c columns) account(rec []string) (map[string]any, error) {
	if len(rec) != c.n {
		return nil, fmt.Errorf("%d fields, the header has %d", len(rec), c.n)
	}
	username := c.get(rec, AttrUsername)
	if username == "" {
		return nil, errors.New("username is empty")
	}
	// An export lists accounts that exist; unless it says otherwise, they
	// can sign in.
	enabled, err := parseBool(c.get(rec, AttrEnabled), true)
	if err != nil {
		return nil, fmt.Errorf("enabled: %w", err)
	}
	isAdmin, err := parseBool(c.get(rec, AttrIsAdmin), false)
	if err != nil {
		return nil, fmt.Errorf("is_admin: %w", err)
	}
	mfa, err := parseMFA(c.get(rec, AttrMFA))
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	lastLogin, err := parseDate(c.get(rec, AttrLastLogin))
	if err != nil {
		return nil, fmt.Errorf("last_login: %w", err)
	}
	locations := []string{}
	for _, l := range strings.Split(c.get(rec, AttrLocations), ";") {
		if l = strings.TrimSpace(l); l != "" {
			locations = append(locations, l)
		}
	}
	extra := map[string]string{}
	for i, key := range c.extra {
		if key != "" {
			extra[key] = strings.TrimSpace(rec[i])
		}
	}
	return map[string]any{
		AttrUsername:    username,
		AttrEmail:       c.get(rec, AttrEmail),
		AttrDisplayName: c.get(rec, AttrDisplayName),
		AttrEnabled:     enabled,
		AttrMFA:         mfa,
		AttrLastLogin:   lastLogin,
		AttrLocations:   locations,
		AttrRole:        c.get(rec, AttrRole),
		AttrIsAdmin:     isAdmin,
		AttrExtra:       extra,
	}, nil
}

// parseBool accepts the spellings exports use; empty means def.
func parseBool(s string, def bool) (bool, error) {
	switch strings.ToLower(s) {
	case "":
		return def, nil
	case "true", "yes", "y", "1", "t", "enabled", "active":
		return true, nil
	case "false", "no", "n", "0", "f", "disabled", "inactive":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// parseMFA returns "true", "false" or "unknown"; empty means unknown, because
// vigil must never claim MFA is on (or off) when the export does not say.
func parseMFA(s string) (string, error) {
	if s == "" || strings.EqualFold(s, "unknown") {
		return "unknown", nil
	}
	b, err := parseBool(s, false)
	if err != nil {
		return "", fmt.Errorf("%q is not true, false or unknown", s)
	}
	if b {
		return "true", nil
	}
	return "false", nil
}

// parseDate accepts RFC 3339 or YYYY-MM-DD (midnight UTC) and returns RFC
// 3339 in UTC; empty or "never" is "" (never signed in).
func parseDate(s string) (string, error) {
	if s == "" || strings.EqualFold(s, "never") {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("%q is neither RFC 3339 (2025-03-01T14:05:00Z) nor YYYY-MM-DD", s)
}
