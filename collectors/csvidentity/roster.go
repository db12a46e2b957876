package csvidentity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Roster is the list of current staff (config `roster:`), exported from
// payroll or HR. An enabled account that matches nobody on it belongs to
// someone who left.
type Roster struct {
	File  string
	Staff []StaffMember
}

// StaffMember is one row of the roster.
type StaffMember struct {
	Email, Username, Name string
	// Locations are the location ids the person works at (column
	// locations or location, ids separated by ';'); none means unknown.
	Locations []string
	// StartDate is the date of hire, zero when the roster does not give
	// it; state training deadlines (Texas: 90 days) count from it.
	StartDate time.Time
	// EndDate, when set and past, means the person has left even though
	// the roster still lists them (a notice period, a payroll lag).
	EndDate time.Time
	Line    int
}

// Roster columns beyond the identity exports' ones.
const (
	rosterStart = "start_date"
	rosterEnd   = "end_date"
)

// rosterColumns are the columns a roster may have; email or username is
// required, the rest are optional and other columns are ignored.
var rosterColumns = []string{AttrEmail, AttrUsername, AttrDisplayName, AttrLocations, rosterStart, rosterEnd}

// rosterAliases are other names HR and payroll exports give the roster's
// own columns (after normalizeHeader: lower case, '_' for spaces and '-').
var rosterAliases = map[string]string{
	"location": AttrLocations, "site": AttrLocations, "sites": AttrLocations,
	"hire_date": rosterStart, "hired": rosterStart, "hired_on": rosterStart, "date_hired": rosterStart,
	"date_of_hire": rosterStart, "start": rosterStart, "started": rosterStart, "employment_start": rosterStart,
	"termination_date": rosterEnd,
}

// rosterHeader renames the roster's aliases to its column names, so that
// "Hire Date" is read as start_date and "Location" as locations; two
// columns meaning the same are refused, naming both as the file does.
func rosterHeader(header []string) ([]string, error) {
	out := make([]string, len(header))
	from := map[string]string{}
	for i, h := range header {
		out[i] = h
		key := normalizeHeader(h)
		if a, ok := rosterAliases[key]; ok {
			out[i], key = a, a
		}
		if prev, dup := from[key]; dup && key != "" {
			return nil, fmt.Errorf("header: columns %q and %q both give %s", prev, strings.TrimSpace(h), key)
		}
		from[key] = strings.TrimSpace(h)
	}
	return out, nil
}

// LoadRoster reads the roster file at path. Like an identity export, a bad
// row is returned in rowErrs with its line and the rest is used.
func LoadRoster(ctx context.Context, path string) (*Roster, []error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("roster: %w", err)
	}
	defer f.Close()
	return ReadRoster(ctx, f, path)
}

// ReadRoster parses a roster export; name is used in errors.
func ReadRoster(ctx context.Context, r io.Reader, name string) (*Roster, []error, error) {
	ro := &Roster{File: name}
	var cols columns
	rowErrs, err := readTable(ctx, r, name, func(header []string) error {
		header, err := rosterHeader(header)
		if err != nil {
			return err
		}
		if cols, err = mapHeader(header, rosterColumns, ""); err != nil {
			return err
		}
		_, e := cols.known[AttrEmail]
		_, u := cols.known[AttrUsername]
		if !e && !u {
			return fmt.Errorf("roster header %q has neither an email nor a username column", strings.Join(header, ","))
		}
		return nil
	}, func(line int, rec []string) error {
		if len(rec) != cols.n {
			return fmt.Errorf("%d fields, the header has %d", len(rec), cols.n)
		}
		m := StaffMember{
			Email:    strings.ToLower(cols.get(rec, AttrEmail)),
			Username: cols.get(rec, AttrUsername),
			Name:     cols.get(rec, AttrDisplayName),
			Line:     line,
		}
		if m.Email == "" && m.Username == "" {
			return errors.New("neither email nor username is set")
		}
		for _, l := range strings.Split(cols.get(rec, AttrLocations), ";") {
			if l = strings.TrimSpace(l); l != "" {
				m.Locations = append(m.Locations, l)
			}
		}
		var err error
		if m.StartDate, err = parseDate(cols.get(rec, rosterStart)); err != nil {
			return fmt.Errorf("start_date: %w", err)
		}
		if m.EndDate, err = parseDate(cols.get(rec, rosterEnd)); err != nil {
			return fmt.Errorf("end_date: %w", err)
		}
		if !m.StartDate.IsZero() && !m.EndDate.IsZero() && m.EndDate.Before(m.StartDate) {
			return fmt.Errorf("end_date %s is before start_date %s", m.EndDate.Format(time.DateOnly), m.StartDate.Format(time.DateOnly))
		}
		ro.Staff = append(ro.Staff, m)
		return nil
	})
	if err != nil {
		return nil, rowErrs, err
	}
	return ro, rowErrs, nil
}
