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
	AttrSystem      = collectors.AttrSystem
	AttrUsername    = collectors.AttrUsername
	AttrEmail       = collectors.AttrEmail
	AttrDisplayName = collectors.AttrDisplayName
	AttrEnabled     = collectors.AttrEnabled
	AttrMFA         = collectors.AttrMFA
	AttrMFAEnforced = collectors.AttrMFAEnforced
	AttrLastLogin   = collectors.AttrLastLogin
	AttrCreated     = collectors.AttrCreated
	AttrLocations   = collectors.AttrLocations
	AttrRole        = collectors.AttrRole
	AttrIsAdmin     = collectors.AttrIsAdmin
	AttrPwdNoExpiry = collectors.AttrPwdNoExpiry
	AttrExtra       = collectors.AttrExtra
)

// knownColumns are the CONTRACT.md columns plus vigil's optional ones
// (created, mfa_enforced, password_never_expires); every other column goes
// to extra, except columns whose name says they hold a secret (password,
// hash, token, ...), which are never read.
var knownColumns = []string{
	AttrUsername, AttrEmail, AttrDisplayName, AttrEnabled, AttrMFA,
	AttrLastLogin, AttrLocations, AttrRole, AttrIsAdmin,
	AttrCreated, AttrMFAEnforced, AttrPwdNoExpiry,
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
	obs, rowErrs, err = Read(ctx, f, src.Path, src.System, now)
	if len(src.Locations) > 0 {
		// The source is one location's system: accounts that do not
		// say where they are used are used there.
		for _, o := range obs {
			if l, _ := o.Attrs[AttrLocations].([]string); len(l) == 0 {
				o.Attrs[AttrLocations] = append([]string(nil), src.Locations...)
			}
		}
	}
	return obs, rowErrs, err
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
	source := "csv:" + system
	at := now.UTC()
	var cols columns
	rowErrs, err = readTable(ctx, r, name, func(header []string) error {
		cols, err = mapHeader(header, knownColumns, AttrUsername)
		return err
	}, func(_ int, rec []string) error {
		acct, err := cols.account(rec)
		if err != nil {
			return err
		}
		acct.System, acct.SourceType = system, "csv"
		obs = append(obs, acct.Observation(source, at))
		return nil
	})
	return obs, rowErrs, err
}

// readTable reads a CSV export as it comes (BOM, ';' ',' or tab, quoted
// fields): header gets the first record and may refuse the file; row gets
// every other record, and a row it refuses, or that does not parse, becomes
// a *RowError with its line while the rest of the file is still read.
func readTable(ctx context.Context, r io.Reader, name string, header func([]string) error, row func(line int, rec []string) error) (rowErrs []error, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d MiB: is this the right export?", name, MaxFileSize>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))

	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = sniffDelimiter(data)
	cr.FieldsPerRecord = -1 // checked per row, so a short row is a row error

	first, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file: expected a header line", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", name, err)
	}
	if err := header(first); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return rowErrs, err
		}
		before := cr.InputOffset()
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rowErrs, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return rowErrs, fmt.Errorf("%s: %w", name, err)
			}
			rowErrs = append(rowErrs, &RowError{File: name, Line: pe.StartLine, Err: pe.Err})
			if cr.InputOffset() == before { // cannot happen with encoding/csv; never loop forever
				return rowErrs, fmt.Errorf("%s:%d: cannot continue past this row", name, pe.StartLine)
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if err := row(line, rec); err != nil {
			rowErrs = append(rowErrs, &RowError{File: name, Line: line, Err: err})
		}
	}
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

// headerAliases are other names exports give the known columns.
var headerAliases = map[string]string{
	"e_mail": AttrEmail, "mail": AttrEmail, "email_address": AttrEmail,
	"user_name": AttrUsername, "login": AttrUsername, "login_name": AttrUsername,
	"name": AttrDisplayName, "full_name": AttrDisplayName,
	"last_logon": AttrLastLogin, "last_sign_in": AttrLastLogin, "last_signin": AttrLastLogin,
}

// normalizeHeader makes "Display Name", "display-name" and "DISPLAY_NAME"
// the same, and "E-Mail" an email.
func normalizeHeader(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = strings.NewReplacer(" ", "_", "-", "_").Replace(h)
	if a, ok := headerAliases[h]; ok {
		return a
	}
	return h
}

func mapHeader(header, knownColumns []string, required string) (columns, error) {
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
		if collectors.SecretLike(key) {
			continue // never read, never stored
		}
		if isKnown[key] {
			c.known[key] = i
		} else {
			c.extra[i] = key
		}
	}
	if _, ok := c.known[required]; !ok && required != "" {
		err := fmt.Errorf("no %s column in the header", required)
		if required == AttrUsername {
			err = ErrNoUsernameColumn
		}
		return c, fmt.Errorf("header %q: %w (columns: %s)", strings.Join(header, ","), err, strings.Join(knownColumns, ", "))
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

// account turns one record into an Account, or says why it cannot.
func (c columns) account(rec []string) (collectors.Account, error) {
	var a collectors.Account
	if len(rec) != c.n {
		return a, fmt.Errorf("%d fields, the header has %d", len(rec), c.n)
	}
	a.Username = c.get(rec, AttrUsername)
	if a.Username == "" {
		return a, errors.New("username is empty")
	}
	var err error
	// An export lists accounts that exist; unless it says otherwise, they
	// can sign in.
	if a.Enabled, err = parseBool(c.get(rec, AttrEnabled), true); err != nil {
		return a, fmt.Errorf("enabled: %w", err)
	}
	if a.IsAdmin, err = parseBool(c.get(rec, AttrIsAdmin), false); err != nil {
		return a, fmt.Errorf("is_admin: %w", err)
	}
	if a.PasswordNeverExpires, err = parseBool(c.get(rec, AttrPwdNoExpiry), false); err != nil {
		return a, fmt.Errorf("password_never_expires: %w", err)
	}
	if a.MFA, err = parseMFA(c.get(rec, AttrMFA)); err != nil {
		return a, fmt.Errorf("mfa: %w", err)
	}
	if a.MFAEnforced, err = parseMFA(c.get(rec, AttrMFAEnforced)); err != nil {
		return a, fmt.Errorf("mfa_enforced: %w", err)
	}
	if a.LastLogin, err = parseDate(c.get(rec, AttrLastLogin)); err != nil {
		return a, fmt.Errorf("last_login: %w", err)
	}
	// An export with a last_login column reports sign-ins; one without
	// does not, and an empty value then means nothing.
	_, a.LastLoginKnown = c.known[AttrLastLogin]
	if a.Created, err = parseDate(c.get(rec, AttrCreated)); err != nil {
		return a, fmt.Errorf("created: %w", err)
	}
	a.Locations = []string{}
	for _, l := range strings.Split(c.get(rec, AttrLocations), ";") {
		if l = strings.TrimSpace(l); l != "" {
			a.Locations = append(a.Locations, l)
		}
	}
	a.Email = c.get(rec, AttrEmail)
	a.Name = c.get(rec, AttrDisplayName)
	a.Role = c.get(rec, AttrRole)
	a.Extra = map[string]string{}
	for i, key := range c.extra {
		if key != "" {
			a.Extra[key] = strings.TrimSpace(rec[i])
		}
	}
	return a, nil
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

// parseDate accepts RFC 3339 or YYYY-MM-DD (midnight UTC); empty or
// "never" is the zero time (never signed in).
func parseDate(s string) (time.Time, error) {
	if s == "" || strings.EqualFold(s, "never") {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2025-03-01T14:05:00Z) nor YYYY-MM-DD", s)
}
