package csvidentity

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestReadRoster(t *testing.T) {
	data := "\uFEFFName;E-Mail;Username;End Date;Locations\n" +
		"Jane Doe;Jane@Glow.example;jane;;downtown\n" +
		"Lee Ving;leaving@glow.example;;2025-02-15;\"uptown;downtown\"\n" +
		";;;;\n" +
		"Bad Date;bad@glow.example;bad;31/12/2025;\n"
	ro, rowErrs, err := ReadRoster(context.Background(), strings.NewReader(data), "staff.csv")
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(rowErrs); len(got) != 2 || got[0] != 4 || got[1] != 5 {
		t.Errorf("row errors at lines %v (%v), want 4 and 5", got, rowErrs)
	}
	if len(ro.Staff) != 2 {
		t.Fatalf("staff = %+v", ro.Staff)
	}
	if m := ro.Staff[0]; m.Username != "jane" || m.Name != "Jane Doe" || m.Email != "jane@glow.example" || len(m.Locations) != 1 {
		t.Errorf("jane = %+v", m)
	}
	if m := ro.Staff[1]; !m.EndDate.Equal(time.Date(2025, 2, 15, 0, 0, 0, 0, time.UTC)) || len(m.Locations) != 2 || m.Line != 3 {
		t.Errorf("leaving = %+v", m)
	}

	ro, _, err = ReadRoster(context.Background(), strings.NewReader("email,name\nJane@Glow.example,Jane\n"), "staff.csv")
	if err != nil || ro.Staff[0].Email != "jane@glow.example" {
		t.Errorf("email roster: %+v %v (emails are compared lower-case)", ro, err)
	}
	if _, _, err := ReadRoster(context.Background(), strings.NewReader("name,phone\nJane,1\n"), "staff.csv"); err == nil ||
		!strings.Contains(err.Error(), "staff.csv") || !strings.Contains(err.Error(), "neither an email nor a username") {
		t.Errorf("roster without email or username: %v", err)
	}
}

// Hire dates and locations come under the names HR exports give them; a
// bad date is that row's error (FILE:LINE: reason) and the rest is used.
func TestReadRosterHireDateAndLocation(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, tc := range []struct {
		name, data string
		want       []StaffMember // Email, Username, Locations, StartDate, EndDate, Line compared
		errs       []string      // row errors, in order
		fileErr    string
	}{
		{name: "start_date and location",
			data: "email,start_date,location\nana@glow.example,2026-08-15,austin\nbo@glow.example,,\"austin; dallas\"\n",
			want: []StaffMember{
				{Email: "ana@glow.example", StartDate: day("2026-08-15"), Locations: []string{"austin"}, Line: 2},
				{Email: "bo@glow.example", Locations: []string{"austin", "dallas"}, Line: 3},
			}},
		{name: "hire date alias, semicolons",
			data: "Username;Hire Date;Locations;End Date\ncy;2026-01-05T09:00:00Z;sf;2026-06-30\n",
			want: []StaffMember{{Username: "cy", StartDate: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), Locations: []string{"sf"}, EndDate: day("2026-06-30"), Line: 2}}},
		{name: "hired alias, no location column",
			data: "e-mail,Hired\nDee@Glow.example,2025-12-01\n",
			want: []StaffMember{{Email: "dee@glow.example", StartDate: day("2025-12-01"), Line: 2}}},
		{name: "start alias",
			data: "username,start\neve,2024-02-29\n",
			want: []StaffMember{{Username: "eve", StartDate: day("2024-02-29"), Line: 2}}},
		{name: "bad rows reported, rest used",
			data: "email,hire_date,end_date\nok@glow.example,2026-03-01,\nbad@glow.example,03/01/2026,\nback@glow.example,2026-05-01,2026-04-30\n",
			want: []StaffMember{{Email: "ok@glow.example", StartDate: day("2026-03-01"), Line: 2}},
			errs: []string{`staff.csv:3: start_date: "03/01/2026" is neither`, "staff.csv:4: end_date 2026-04-30 is before start_date 2026-05-01"}},
		{name: "two hire date columns",
			data:    "email,hire_date,Start Date\nx@glow.example,2026-01-01,2026-01-02\n",
			fileErr: `staff.csv: header: columns "hire_date" and "Start Date" both give start_date`},
		{name: "location and locations",
			data:    "email,location,locations\nx@glow.example,a,b\n",
			fileErr: `both give locations`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro, rowErrs, err := ReadRoster(context.Background(), strings.NewReader(tc.data), "staff.csv")
			if tc.fileErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fileErr) {
					t.Fatalf("error %v, want %q", err, tc.fileErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rowErrs) != len(tc.errs) {
				t.Fatalf("row errors %v, want %d", rowErrs, len(tc.errs))
			}
			for i, e := range tc.errs {
				if !strings.HasPrefix(rowErrs[i].Error(), e) {
					t.Errorf("row error %q, want it to start %q", rowErrs[i], e)
				}
			}
			if len(ro.Staff) != len(tc.want) {
				t.Fatalf("staff %+v, want %+v", ro.Staff, tc.want)
			}
			for i, w := range tc.want {
				g := ro.Staff[i]
				if g.Email != w.Email || g.Username != w.Username || strings.Join(g.Locations, "|") != strings.Join(w.Locations, "|") ||
					!g.StartDate.Equal(w.StartDate) || !g.EndDate.Equal(w.EndDate) || g.Line != w.Line {
					t.Errorf("staff[%d] = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// A column named like a secret is never read into an observation.
func TestSecretColumnsAreNotRead(t *testing.T) {
	data := "username,password,Password Hash,api_token,password_never_expires,notes\njane,Hunter2!,$2y$10$abc,tok-123,true,ok\n"
	obs, rowErrs, err := Read(context.Background(), strings.NewReader(data), "emr.csv", "emr", time.Now())
	if err != nil || len(rowErrs) > 0 || len(obs) != 1 {
		t.Fatalf("%v %v %v", obs, rowErrs, err)
	}
	dump := strings.ToLower(strings.Join(strings.Fields(stringify(obs[0].Attrs)), " "))
	for _, secret := range []string{"hunter2", "$2y$10$abc", "tok-123"} {
		if strings.Contains(dump, secret) {
			t.Errorf("secret %q reached the observation: %s", secret, dump)
		}
	}
	if obs[0].Attrs[AttrPwdNoExpiry] != true || !strings.Contains(dump, "notes") {
		t.Errorf("facts about the password and other columns must still be read: %s", dump)
	}
}

func FuzzReadRoster(f *testing.F) {
	f.Add("email,username,end_date\njane@x,jane,2025-01-01\n")
	f.Add("email,hire_date,location,end_date\nana@x,2026-08-15,austin,\nbo@x,2026-09-01,\"a;b\",2026-08-01\n")
	f.Add("Username;Hired;Start\ncy;2026-01-05;2026-01-06\n")
	f.Add("username;locations\n\"a;b\";\"x;y\"\n")
	f.Add("\uFEFF")
	f.Fuzz(func(t *testing.T, data string) {
		ro, _, err := ReadRoster(context.Background(), strings.NewReader(data), "f.csv")
		if err == nil && ro == nil {
			t.Fatal("nil roster without an error")
		}
		if err == nil {
			for _, m := range ro.Staff {
				if m.Email == "" && m.Username == "" {
					t.Fatalf("a staff member with neither email nor username: %+v", m)
				}
				if !m.StartDate.IsZero() && !m.EndDate.IsZero() && m.EndDate.Before(m.StartDate) {
					t.Fatalf("a staff member who left before being hired: %+v", m)
				}
				for _, l := range m.Locations {
					if l == "" || strings.TrimSpace(l) != l {
						t.Fatalf("location %q not trimmed: %+v", l, m)
					}
				}
			}
		}
	})
}

func stringify(m map[string]any) string { return fmt.Sprintf("%v", m) }
