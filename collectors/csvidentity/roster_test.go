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
			}
		}
	})
}

func stringify(m map[string]any) string { return fmt.Sprintf("%v", m) }
