package csvidentity

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

var now = time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)

// byUser indexes observations by username.
func byUser(t *testing.T, obs []observe.Observation) map[string]map[string]any {
	t.Helper()
	m := map[string]map[string]any{}
	for _, o := range obs {
		u, _ := o.Attrs[AttrUsername].(string)
		m[u] = o.Attrs
	}
	return m
}

func lines(errs []error) []int {
	var out []int
	for _, e := range errs {
		var re *RowError
		if !errors.As(e, &re) {
			return append(out, -1)
		}
		out = append(out, re.Line)
	}
	return out
}

func TestReadSamples(t *testing.T) {
	tests := []struct {
		file, system string
		users        []string
		errLines     []int
		errSub       string
		check        map[string]map[string]any // username -> attrs that must match
	}{
		{
			file: "emr.csv", system: "emr",
			users:    []string{"drkim", "frontdesk", "admin", "jlee"},
			errLines: []int{6}, errSub: `mfa: "maybe"`,
			check: map[string]map[string]any{
				"drkim": {
					AttrDisplayName: "Kim, Sarah (Dr.)",
					AttrLastLogin:   "2025-02-28T00:42:10Z",
					AttrMFA:         "true",
					AttrLocations:   []string{"downtown"},
					AttrExtra:       map[string]string{"provider_npi": "1234567890"},
				},
				"frontdesk": {AttrEnabled: true, AttrMFA: "false", AttrLocations: []string{"downtown", "uptown"}, AttrLastLogin: "2025-03-01T00:00:00Z"},
				"admin":     {AttrIsAdmin: true, AttrMFA: "unknown", AttrLocations: []string{}, AttrRole: "administrator"},
				"jlee":      {AttrEnabled: false, AttrDisplayName: "Lee; Jordan", AttrLastLogin: ""},
			},
		},
		{
			file: "booking.csv", system: "booking",
			users:    []string{"reception", "owner", "old.staff"},
			errLines: []int{4}, errSub: "9 fields, the header has 10",
			check: map[string]map[string]any{
				"reception": {AttrDisplayName: "Reception, Shared", AttrLocations: []string{"downtown", "uptown", "westside"}, AttrExtra: map[string]string{"phone": "555-0100"}},
				"owner":     {AttrDisplayName: `O'Brien, Pat "Boss"`, AttrIsAdmin: true, AttrEmail: "owner@glow.example"},
				"old.staff": {AttrEnabled: false, AttrMFA: "unknown", AttrLastLogin: "2023-08-12T00:00:00Z"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			obs, rowErrs, err := Collect(context.Background(), config.IdentitySource{Type: "csv", System: tt.system, Path: path}, now)
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			if got := lines(rowErrs); !reflect.DeepEqual(got, tt.errLines) {
				t.Errorf("row errors at lines %v, want %v (%v)", got, tt.errLines, rowErrs)
			}
			for _, e := range rowErrs {
				if !strings.Contains(e.Error(), path+":") || !strings.Contains(e.Error(), tt.errSub) {
					t.Errorf("row error %q does not name the file and say %q", e, tt.errSub)
				}
			}
			var got []string
			for _, o := range obs {
				got = append(got, o.Attrs[AttrUsername].(string))
				if o.Kind != collectors.KindAccount || o.Source != "csv:"+tt.system || !o.At.Equal(now) || o.Host != "" || o.Location != "" {
					t.Errorf("observation %+v: wrong kind, source, time, host or location", o)
				}
				if o.Attrs[AttrSystem] != tt.system {
					t.Errorf("%s: system = %v, want %s", got[len(got)-1], o.Attrs[AttrSystem], tt.system)
				}
			}
			if !reflect.DeepEqual(got, tt.users) {
				t.Errorf("accounts %v, want %v", got, tt.users)
			}
			m := byUser(t, obs)
			for user, want := range tt.check {
				for k, v := range want {
					if !reflect.DeepEqual(m[user][k], v) {
						t.Errorf("%s.%s = %#v, want %#v", user, k, m[user][k], v)
					}
				}
			}
		})
	}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		users    []string
		errLines []int
		errSub   string // of the file-level error
	}{
		{name: "minimal", in: "username\nalice\nbob\n", users: []string{"alice", "bob"}},
		{name: "no trailing newline", in: "username,mfa\nalice,true", users: []string{"alice"}},
		{name: "crlf and blank lines", in: "username,mfa\r\n\r\nalice,true\r\n\r\nbob,false\r\n", users: []string{"alice", "bob"}},
		{name: "semicolon header with commas in quoted names", in: "display_name;username\n\"Kim, S\";kim\n", users: []string{"kim"}},
		{name: "tab delimited", in: "username\temail\nkim\tk@x\n", users: []string{"kim"}},
		{name: "empty username", in: "username,email\n,x@y\nbob,b@y\n", users: []string{"bob"}, errLines: []int{2}},
		{name: "bad date", in: "username,last_login\na,03/01/2025\nb,2025-03-01\n", users: []string{"b"}, errLines: []int{2}},
		{name: "bad bool", in: "username,is_admin\na,sometimes\nb,\n", users: []string{"b"}, errLines: []int{2}},
		{name: "too many fields", in: "username,email\na,b,c\nd,e\n", users: []string{"d"}, errLines: []int{2}},
		{name: "bare quote", in: "username,email\na\"b,c\nd,e\n", users: []string{"d"}, errLines: []int{2}},
		{name: "quoted newline keeps line numbers", in: "username,display_name\na,\"two\nlines\"\nb,x,y\n", users: []string{"a"}, errLines: []int{4}},
		{name: "no username column", in: "email,role\na@b,x\n", errSub: "no username column"},
		{name: "duplicate column", in: "username,Username\na,b\n", errSub: "appears twice"},
		{name: "empty file", in: "", errSub: "empty file"},
		{name: "only BOM", in: "\uFEFF", errSub: "empty file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs, rowErrs, err := Read(context.Background(), strings.NewReader(tt.in), "in.csv", "emr", now)
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			var got []string
			for _, o := range obs {
				got = append(got, o.Attrs[AttrUsername].(string))
			}
			if !reflect.DeepEqual(got, tt.users) {
				t.Errorf("accounts %v, want %v", got, tt.users)
			}
			if got := lines(rowErrs); !reflect.DeepEqual(got, tt.errLines) {
				t.Errorf("row errors at lines %v, want %v (%v)", got, tt.errLines, rowErrs)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	if _, _, err := Read(context.Background(), strings.NewReader("username\na\n"), "x.csv", "", now); err == nil {
		t.Error("Read with no system label: want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Read(ctx, strings.NewReader("username\na\n"), "x.csv", "emr", now); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with cancelled context: err = %v, want context.Canceled", err)
	}
	if _, _, err := Collect(context.Background(), config.IdentitySource{Type: "csv", System: "emr", Path: filepath.Join(t.TempDir(), "missing.csv")}, now); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Collect of a missing file: err = %v, want os.ErrNotExist", err)
	}
	if _, _, err := Collect(context.Background(), config.IdentitySource{Type: "ldap", System: "ad"}, now); err == nil {
		t.Error("Collect of an ldap source: want an error")
	}
}

func TestSourceCollector(t *testing.T) {
	s := Source{Config: config.IdentitySource{Type: "csv", System: "emr", Path: filepath.Join("testdata", "emr.csv")}, Now: func() time.Time { return now }}
	if s.Name() != "csv:emr" {
		t.Errorf("Name() = %q", s.Name())
	}
	obs, err := s.Collect(context.Background())
	if len(obs) != 4 {
		t.Errorf("Collect returned %d observations, want 4 (bad rows do not stop it)", len(obs))
	}
	var re *RowError
	if !errors.As(err, &re) || re.Line != 6 {
		t.Errorf("Collect err = %v, want the row error at line 6", err)
	}
}

func FuzzRead(f *testing.F) {
	for _, name := range []string{"emr.csv", "booking.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("username;mfa\n\"a;b\";unknown\n"))
	f.Add([]byte("username,last_login\na,\"2025-01-01\nb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		obs, rowErrs, err := Read(context.Background(), strings.NewReader(string(data)), "fuzz.csv", "emr", now)
		if err != nil && (len(obs) > 0 || len(rowErrs) > 0) {
			t.Fatalf("file-level error %v with %d observations and %d row errors", err, len(obs), len(rowErrs))
		}
		for _, e := range rowErrs {
			var re *RowError
			if !errors.As(e, &re) || re.Line < 1 || re.File != "fuzz.csv" || !strings.HasPrefix(e.Error(), "fuzz.csv:") {
				t.Fatalf("row error %q does not name the file and a line", e)
			}
		}
		for _, o := range obs {
			if u, _ := o.Attrs[AttrUsername].(string); u == "" {
				t.Fatalf("observation without a username: %+v", o)
			}
			if m := o.Attrs[AttrMFA]; m != "true" && m != "false" && m != "unknown" {
				t.Fatalf("mfa = %v", m)
			}
			if ll := o.Attrs[AttrLastLogin].(string); ll != "" {
				if _, err := time.Parse(time.RFC3339, ll); err != nil {
					t.Fatalf("last_login %q is not RFC 3339", ll)
				}
			}
		}
	})
}
