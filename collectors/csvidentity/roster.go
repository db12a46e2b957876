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
	Locations             []string
	// EndDate, when set and past, means the person has left even though
	// the roster still lists them (a notice period, a payroll lag).
	EndDate time.Time
	Line    int
}

// rosterColumns are the columns a roster may have; email or username is
// required, the rest are optional and other columns are ignored.
var rosterColumns = []string{AttrEmail, AttrUsername, AttrDisplayName, AttrLocations, "end_date"}

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
		var err error
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
		end, err := parseDate(cols.get(rec, "end_date"))
		if err != nil {
			return fmt.Errorf("end_date: %w", err)
		}
		m.EndDate = end
		ro.Staff = append(ro.Staff, m)
		return nil
	})
	if err != nil {
		return nil, rowErrs, err
	}
	return ro, rowErrs, nil
}
