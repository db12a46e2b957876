package ldapidentity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

var now = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// spaAccounts are the accounts of testdata/spa.ldif as the collector must
// report them, in its order (by username). The workstation FRONTDESK01$,
// the groups and the service account are not among them.
func spaAccounts() []collectors.Account {
	ad := func(a collectors.Account) collectors.Account {
		a.System, a.SourceType, a.MFA, a.MFAEnforced = "ad", "ldap", "unknown", "unknown"
		a.Locations = []string{"downtown", "uptown"}
		return a
	}
	return []collectors.Account{
		ad(collectors.Account{
			Username: "alice.admin", Email: "alice.admin@spa.test", Name: "Alice Admin", Enabled: true,
			LastLogin: ts("2026-01-10T07:45:00Z"), LastLoginKnown: true, Created: ts("2021-06-10T09:00:00Z"),
			IsAdmin: true, AdminRoles: []string{"Domain Admins"},
			PasswordNeverExpires: true, PasswordLastSet: ts("2024-03-04T10:00:00Z"),
			Extra: map[string]string{"dn": "cn=Alice Admin,ou=Staff,dc=spa,dc=test", "user_principal_name": "alice.admin@spa.test", "user_account_control": "66048"},
		}),
		ad(collectors.Account{
			Username: "contractor1", Email: "contractor1@spa.test", Name: "Laser Contractor", Enabled: false,
			LastLogin: ts("2024-11-05T16:20:00Z"), LastLoginKnown: true, Created: ts("2024-06-01T00:00:00Z"),
			Extra: map[string]string{"dn": "cn=Laser Contractor,ou=Staff,dc=spa,dc=test", "user_account_control": "512", "account_expires": "2025-06-30T00:00:00Z"},
		}),
		ad(collectors.Account{
			Username: "hidden.da", Name: "Hidden Admin", Enabled: true,
			LastLoginKnown: true, Created: ts("2023-03-03T03:03:03Z"),
			IsAdmin: true, AdminRoles: []string{"Domain Admins"},
			Extra: map[string]string{"dn": "cn=Hidden Admin,ou=Staff,dc=spa,dc=test", "user_account_control": "512"},
		}),
		ad(collectors.Account{
			Username: "jdoe", Email: "Jane.Doe@Spa.Test", Name: "Jane Doe", Role: "Front Desk Lead", Enabled: true,
			LastLogin: ts("2025-12-20T09:30:00Z"), LastLoginKnown: true, Created: ts("2024-01-15T08:30:00Z"),
			PasswordLastSet: ts("2025-10-01T08:00:00Z"),
			Extra:           map[string]string{"dn": "cn=Jane Doe,ou=Staff,dc=spa,dc=test", "user_principal_name": "jdoe@spa.test", "user_account_control": "512"},
		}),
		ad(collectors.Account{
			Username: "lee", Email: "lee@spa.test", Name: "Lee Locked", Enabled: false,
			Created: ts("2024-02-02T02:02:02Z"),
			Extra:   map[string]string{"dn": "uid=lee,ou=People,dc=spa,dc=test", "pwd_account_locked_time": "20250101000000Z"},
		}),
		ad(collectors.Account{
			Username: "new.hire", Email: "new.hire@spa.test", Name: "New Hire", Enabled: true,
			LastLoginKnown: true, Created: ts("2025-12-01T10:00:00Z"),
			Extra: map[string]string{"dn": "cn=New Hire,ou=Staff,dc=spa,dc=test", "user_account_control": "512", "must_change_password": "true"},
		}),
		ad(collectors.Account{
			Username: "oldstaff", Email: "oldstaff@spa.test", Name: "Old Staff", Enabled: false,
			LastLogin: ts("2024-11-05T16:20:00Z"), LastLoginKnown: true, Created: ts("2022-03-01T12:00:00Z"),
			Extra: map[string]string{"dn": "cn=Old Staff,ou=Staff,dc=spa,dc=test", "user_account_control": "514"},
		}),
		ad(collectors.Account{
			Username: "olivia", Email: "olivia@spa.test", Name: "Olivia Nurse", Role: "Nurse Injector", Enabled: true,
			Created: ts("2023-09-10T14:00:00Z"), PasswordLastSet: ts("2025-08-15T12:00:00Z"),
			IsAdmin: true, AdminRoles: []string{"Administrators"},
			Extra: map[string]string{"dn": "uid=olivia,ou=People,dc=spa,dc=test"},
		}),
		ad(collectors.Account{
			Username: "reception.temp", Name: "Reception Temp", Enabled: true,
			LastLoginKnown: true, Created: ts("2025-04-02T11:00:00Z"),
			Extra: map[string]string{"dn": "cn=Reception Temp,ou=Staff,dc=spa,dc=test", "user_account_control": "512"},
		}),
		ad(collectors.Account{
			Username: "stale.bob", Email: "bob@spa.test", Name: "Bob Stale", Enabled: true,
			LastLogin: ts("2023-02-01T12:00:00Z"), LastLoginKnown: true, Created: ts("2020-01-10T09:00:00Z"),
			PasswordLastSet: ts("2023-02-01T12:00:00Z"),
			Extra:           map[string]string{"dn": "cn=Bob Stale,ou=Staff,dc=spa,dc=test", "user_account_control": "512"},
		}),
		ad(collectors.Account{
			Username: "svc.backup", Email: "svc.backup@spa.test", Name: "Backup Service", Enabled: true,
			LastLogin: ts("2025-01-02T03:04:05Z"), LastLoginKnown: true, Created: ts("2019-05-05T05:05:05Z"),
			IsAdmin: true, AdminRoles: []string{"adminCount=1"}, PasswordNeverExpires: true,
			Extra: map[string]string{"dn": "cn=Backup Service,ou=Staff,dc=spa,dc=test", "user_principal_name": "svc.backup@spa.test", "user_account_control": "66048"},
		}),
	}
}

func spaLDIF(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/spa.ldif")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newSource is a Source for the test directory at url, binding as the
// read-only account with the DN and password in files.
func newSource(t *testing.T, url string, edit ...func(*config.IdentitySource)) *Source {
	t.Helper()
	dir := t.TempDir()
	dnFile, pwFile := filepath.Join(dir, "bind_dn"), filepath.Join(dir, "password")
	if err := os.WriteFile(dnFile, []byte(vigilDN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte(vigilPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := config.IdentitySource{
		Type: "ldap", System: "ad", URL: url, BaseDN: suffix,
		BindDNFile: dnFile, PasswordFile: pwFile,
		Locations: []string{"downtown", "uptown"},
	}
	for _, e := range edit {
		e(&src)
	}
	s, err := New(src)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.Now = func() time.Time { return now }
	s.Timeout = 10 * time.Second
	return s
}

func withCA(file string) func(*config.IdentitySource) {
	return func(src *config.IdentitySource) { src.CAFile = file }
}

// checkAccounts compares observations with the accounts they must be.
func checkAccounts(t *testing.T, got []observe.Observation, want []collectors.Account) {
	t.Helper()
	if len(got) != len(want) {
		var names []string
		for _, o := range got {
			names = append(names, o.Attrs[collectors.AttrUsername].(string))
		}
		t.Fatalf("got %d accounts %v, want %d", len(got), names, len(want))
	}
	for i, w := range want {
		wo := w.Observation("ldap:ad", now)
		if !reflect.DeepEqual(got[i], wo) {
			t.Errorf("account %d (%s):\n got %#v\nwant %#v", i, w.Username, got[i].Attrs, wo.Attrs)
		}
	}
}

func TestSlapdRead(t *testing.T) {
	t.Parallel()
	d := startSlapd(t, slapdOptions{tls: true}, spaLDIF(t))
	ctx := context.Background()

	t.Run("ldaps with ca_file", func(t *testing.T) {
		obs, err := newSource(t, d.ldapsURL, withCA(d.caFile)).Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounts(t, obs, spaAccounts())
	})

	t.Run("ldaps with TLSConfig", func(t *testing.T) {
		pem, err := os.ReadFile(d.caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		s := newSource(t, d.ldapsURL)
		s.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		obs, err := s.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounts(t, obs, spaAccounts())
	})

	t.Run("no base_dn: the root DSE names it", func(t *testing.T) {
		s := newSource(t, d.ldapsURL, withCA(d.caFile))
		s.Config.BaseDN = ""
		obs, err := s.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounts(t, obs, spaAccounts())
	})

	t.Run("StartTLS", func(t *testing.T) {
		before := strings.Count(d.log(t), " STARTTLS")
		obs, err := newSource(t, d.ldapURL, withCA(d.caFile)).Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounts(t, obs, spaAccounts())
		if after := strings.Count(d.log(t), " STARTTLS"); after != before+1 {
			t.Errorf("slapd logged %d StartTLS operations for one Collect, want 1", after-before)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "Tr0ub4dor&3-not-it"
		s := newSource(t, d.ldapsURL, withCA(d.caFile))
		if err := os.WriteFile(s.Config.PasswordFile, []byte(wrong), 0o600); err != nil {
			t.Fatal(err)
		}
		obs, err := s.Collect(ctx)
		if err == nil {
			t.Fatalf("Collect with a wrong password: %d accounts, want an error", len(obs))
		}
		msg := err.Error()
		t.Logf("error: %s", msg)
		for _, want := range []string{"ldap:ad: ", "bind refused: wrong bind DN or password", vigilDN} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		}
		if strings.Contains(msg, wrong) || strings.Contains(msg, vigilPW) {
			t.Errorf("error %q contains a password", msg)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		for _, tc := range []struct{ name, url, ca, want string }{
			{"ldaps, no ca_file", d.ldapsURL, "", "set ca_file"},
			{"StartTLS, no ca_file", d.ldapURL, "", "set ca_file"},
			{"ldaps, another CA", d.ldapsURL, d.otherCA, "not signed by the CA in ca_file " + d.otherCA},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := strings.Count(d.log(t), " BIND ")
				_, err := newSource(t, tc.url, withCA(tc.ca)).Collect(ctx)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ldap:ad: ") {
					t.Fatalf("error %v, want one naming the source and saying %q", err, tc.want)
				}
				t.Logf("error: %s", err)
				if after := strings.Count(d.log(t), " BIND "); after != before {
					t.Errorf("a bind reached the server over an untrusted connection")
				}
			})
		}
	})

	t.Run("admin groups by DN and by name", func(t *testing.T) {
		for _, groups := range [][]string{
			{"CN=Front Desk,OU=Groups,DC=spa,DC=test"},
			{"front desk"},
		} {
			obs, err := newSource(t, d.ldapsURL, withCA(d.caFile), func(src *config.IdentitySource) { src.AdminGroups = groups }).Collect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			admins := map[string]any{}
			for _, o := range obs {
				if o.Attrs[collectors.AttrIsAdmin] == true {
					admins[o.Attrs[collectors.AttrUsername].(string)] = o.Attrs[collectors.AttrAdminRoles]
				}
			}
			want := map[string]any{
				"alice.admin": []string{"Front Desk"}, "jdoe": []string{"Front Desk"}, "oldstaff": []string{"Front Desk"},
				"svc.backup": []string{"adminCount=1"},
			}
			if !reflect.DeepEqual(admins, want) {
				t.Errorf("admin_groups %q: admins %v, want %v", groups, admins, want)
			}
		}
	})

	t.Run("user_filter narrows", func(t *testing.T) {
		// (objectClass=*) would match the workstation; the default's
		// exclusion of computers still holds.
		obs, err := newSource(t, d.ldapsURL, withCA(d.caFile), func(src *config.IdentitySource) {
			src.UserFilter = "(|(sAMAccountName=j*)(sAMAccountName=FRONTDESK*))"
		}).Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(obs) != 1 || obs[0].Attrs[collectors.AttrUsername] != "jdoe" {
			t.Errorf("got %d accounts, want only jdoe: %v", len(obs), obs)
		}
	})

	t.Run("missing base_dn", func(t *testing.T) {
		_, err := newSource(t, d.ldapsURL, withCA(d.caFile), func(src *config.IdentitySource) {
			src.BaseDN = "ou=Nowhere," + suffix
		}).Collect(ctx)
		if err == nil || !strings.Contains(err.Error(), `base_dn "ou=Nowhere,dc=spa,dc=test" does not exist`) {
			t.Errorf("error %v, want base_dn does not exist", err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		obs, err := newSource(t, d.ldapsURL, withCA(d.caFile)).Collect(cctx)
		if !errors.Is(err, context.Canceled) || obs != nil {
			t.Errorf("Collect with a cancelled context: %d accounts, %v; want context.Canceled", len(obs), err)
		}
	})
}

// TestSlapdPlaintext runs against a directory without TLS: vigil must not
// send the bind unless allow_plaintext says it may.
func TestSlapdPlaintext(t *testing.T) {
	t.Parallel()
	d := startSlapd(t, slapdOptions{}, spaLDIF(t))
	ctx := context.Background()

	before := strings.Count(d.log(t), " BIND ")
	obs, err := newSource(t, d.ldapURL).Collect(ctx)
	if !errors.Is(err, ErrPlaintext) || obs != nil {
		t.Fatalf("ldap:// to a server without TLS: %d accounts, %v; want ErrPlaintext", len(obs), err)
	}
	t.Logf("error: %s", err)
	if !strings.Contains(err.Error(), "allow_plaintext") {
		t.Errorf("error %q does not say how to allow it", err)
	}
	if strings.Count(d.log(t), " BIND ") != before {
		t.Fatal("a bind was sent over an unencrypted connection")
	}

	obs, err = newSource(t, d.ldapURL, func(src *config.IdentitySource) { src.AllowPlaintext = true }).Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounts(t, obs, spaAccounts())
}

// TestSlapdPaging reads more accounts than fit a page, and stops cleanly
// when cancelled or when the server stops answering mid-listing.
func TestSlapdPaging(t *testing.T) {
	t.Parallel()
	const bulk = 1200
	d := startSlapd(t, slapdOptions{tls: true}, spaLDIF(t), bulkUsers(bulk))
	ctx := context.Background()
	want := bulk + len(spaAccounts())

	t.Run("all pages", func(t *testing.T) {
		searches := regexp.MustCompile(`SRCH base="` + suffix + `" scope=2 .*objectClass=user`)
		before := len(searches.FindAllString(d.log(t), -1))
		s := newSource(t, d.ldapsURL, withCA(d.caFile))
		s.pageSize = 100
		obs, err := s.Collect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(obs) != want {
			t.Fatalf("got %d accounts, want %d", len(obs), want)
		}
		seen := map[string]bool{}
		for _, o := range obs {
			seen[o.Attrs[collectors.AttrUsername].(string)] = true
		}
		if len(seen) != want || !seen["bulk0000"] || !seen["bulk1199"] || !seen["olivia"] {
			t.Errorf("%d distinct usernames, want %d including bulk0000, bulk1199, olivia", len(seen), want)
		}
		if pages := len(searches.FindAllString(d.log(t), -1)) - before; pages < want/100 {
			t.Errorf("slapd saw %d search requests, want a page of 100 each (%d+)", pages, want/100)
		}
	})

	t.Run("entry bound", func(t *testing.T) {
		s := newSource(t, d.ldapsURL, withCA(d.caFile))
		s.pageSize, s.maxEntries = 100, 1000
		obs, err := s.Collect(ctx)
		if err == nil || obs != nil || !strings.Contains(err.Error(), "more than 1000 entries") {
			t.Errorf("%d accounts, %v; want an error naming the bound", len(obs), err)
		}
	})

	t.Run("cancel between pages", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s := newSource(t, d.ldapsURL, withCA(d.caFile))
		s.pageSize = 100
		pages := 0
		s.afterPage = func(page int) {
			pages = page
			if page == 2 {
				cancel()
			}
		}
		obs, err := s.Collect(cctx)
		if !errors.Is(err, context.Canceled) || obs != nil {
			t.Fatalf("%d accounts, %v; want context.Canceled and none", len(obs), err)
		}
		if pages != 2 {
			t.Errorf("read %d pages after the cancel on page 2", pages)
		}
	})

	t.Run("server stops answering", func(t *testing.T) {
		s := newSource(t, d.ldapsURL, withCA(d.caFile))
		s.pageSize, s.Timeout = 100, 500*time.Millisecond
		s.afterPage = func(page int) {
			if page == 3 {
				d.stop(t)
			}
		}
		defer d.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck
		start := time.Now()
		obs, err := s.Collect(ctx)
		if !errors.Is(err, ErrTimeout) || obs != nil {
			t.Fatalf("%d accounts, %v; want ErrTimeout and none", len(obs), err)
		}
		t.Logf("error: %s", err)
		if !strings.Contains(err.Error(), "incomplete after 300 entries") {
			t.Errorf("error %q does not say the listing is incomplete", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("took %s to give up with a 500ms timeout", took)
		}
	})
}
