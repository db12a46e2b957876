package ldapidentity

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func TestParseFiletime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    string // RFC 3339 with nanoseconds; "" for never
		wantErr bool
	}{
		{"0", "", false},
		{"9223372036854775807", "", false}, // AD's "never" for accountExpires
		{"116444736000000000", "1970-01-01T00:00:00Z", false},
		{"134106966000000000", "2025-12-20T09:30:00Z", false},
		{"133802606451234567", "2025-01-02T03:04:05.1234567Z", false},
		{"1", "1601-01-01T00:00:00.0000001Z", false},
		{" 116444736000000000 ", "1970-01-01T00:00:00Z", false},
		{"-1", "", true},
		{"", "", true},
		{"12ab", "", true},
		{"18446744073709551615", "", true}, // beyond int64
		{"2650467743999999999", "9999-12-31T23:59:59.9999999Z", false},
		{"2650467744000000000", "", true}, // the year 10000
	} {
		got, err := parseFiletime(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseFiletime(%q): error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		s := ""
		if !got.IsZero() {
			s = got.Format(time.RFC3339Nano)
		}
		if s != tc.want {
			t.Errorf("parseFiletime(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

func TestParseGeneralizedTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string // RFC 3339 nano UTC; "" for an error
	}{
		{"20240115083000Z", "2024-01-15T08:30:00Z"},
		{"20240115083000.0Z", "2024-01-15T08:30:00Z"}, // AD
		{"20240115083000.123Z", "2024-01-15T08:30:00.123Z"},
		{"20240115083000,5Z", "2024-01-15T08:30:00.5Z"},
		{"202401150830Z", "2024-01-15T08:30:00Z"},
		{"2024011508Z", "2024-01-15T08:00:00Z"},
		{"2024011508.5Z", "2024-01-15T08:30:00Z"},    // half an hour
		{"202401150830.25Z", "2024-01-15T08:30:15Z"}, // a quarter minute
		{"20240115083000+0100", "2024-01-15T07:30:00Z"},
		{"20240115083000-05", "2024-01-15T13:30:00Z"},
		{"20161231235960Z", "2017-01-01T00:00:00Z"}, // leap second
		{"20240229120000Z", "2024-02-29T12:00:00Z"},
		{"000001010000Z", ""}, // ppolicy's "locked forever": a flag, not a time
		{"99991231235960Z", ""},
		{"00010101000000+0100", ""},
		{"20230229120000Z", ""},
		{"20240115083000", ""}, // no zone
		{"20241315083000Z", ""},
		{"20240115253000Z", ""},
		{"20240115083000.Z", ""},
		{"20240115083000Zjunk", ""},
		{"20240115083000+2400", ""},
		{"202401Z", ""},
		{"", ""},
		{"2024-01-15T08:30:00Z", ""},
	} {
		got, err := parseGeneralizedTime(tc.in)
		s := ""
		if err == nil {
			s = got.Format(time.RFC3339Nano)
			if got.Location() != time.UTC {
				t.Errorf("parseGeneralizedTime(%q) is in %v, want UTC", tc.in, got.Location())
			}
		}
		if s != tc.want {
			t.Errorf("parseGeneralizedTime(%q) = %q (%v), want %q", tc.in, s, err, tc.want)
		}
	}
}

func entry(dn string, attrs map[string][]string) *ldap.Entry {
	return ldap.NewEntry(dn, attrs)
}

func TestUserEdgeCases(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	admins := []adminGroup{}
	for _, g := range DefaultAdminGroups {
		a, err := parseAdminGroup(g)
		if err != nil {
			t.Fatal(err)
		}
		admins = append(admins, a)
	}
	p := entryParser{system: "ad", admins: admins, now: now}

	t.Run("signed userAccountControl", func(t *testing.T) {
		// 0xFFFFFFFF written as a signed 32-bit number: every flag set.
		u := p.user(entry("CN=x,DC=a", map[string][]string{"sAMAccountName": {"x"}, "userAccountControl": {"-1"}}))
		if u.acct.Enabled || !u.acct.PasswordNeverExpires {
			t.Errorf("UAC -1: enabled %v, never expires %v", u.acct.Enabled, u.acct.PasswordNeverExpires)
		}
	})

	t.Run("unparsable values are kept raw, last login unknown", func(t *testing.T) {
		u := p.user(entry("CN=x,DC=a", map[string][]string{
			"sAMAccountName": {"x"}, "userAccountControl": {"lots"}, "lastLogonTimestamp": {"yesterday"},
			"whenCreated": {"2024-01-01"}, "pwdLastSet": {"-5"},
		}))
		if u.acct.LastLoginKnown {
			t.Error("an unreadable lastLogonTimestamp must not read as never signed in")
		}
		if !u.acct.Enabled {
			t.Error("an unreadable userAccountControl disabled the account")
		}
		for attr, raw := range map[string]string{"userAccountControl": "lots", "lastLogonTimestamp": "yesterday", "whenCreated": "2024-01-01", "pwdLastSet": "-5"} {
			if u.acct.Extra[attr] != raw {
				t.Errorf("extra[%s] = %q, want %q", attr, u.acct.Extra[attr], raw)
			}
		}
	})

	t.Run("OpenLDAP lastbind", func(t *testing.T) {
		u := p.user(entry("uid=o,ou=People,dc=a", map[string][]string{"uid": {"o"}, "authTimestamp": {"20260130101010Z"}, "mail": {"o@a"}}))
		if !u.acct.LastLoginKnown || !u.acct.LastLogin.Equal(time.Date(2026, 1, 30, 10, 10, 10, 0, time.UTC)) {
			t.Errorf("authTimestamp: last login %v known %v", u.acct.LastLogin, u.acct.LastLoginKnown)
		}
		u = p.user(entry("uid=o,ou=People,dc=a", map[string][]string{"uid": {"o"}}))
		if u.acct.LastLoginKnown {
			t.Error("OpenLDAP without lastbind: last login must be unknown")
		}
	})

	t.Run("389-ds lock", func(t *testing.T) {
		u := p.user(entry("uid=o,dc=a", map[string][]string{"uid": {"o"}, "nsAccountLock": {"TRUE"}}))
		if u.acct.Enabled {
			t.Error("nsAccountLock TRUE: enabled")
		}
	})

	t.Run("no username attribute", func(t *testing.T) {
		u := p.user(entry("cn=Front Desk PC Login,ou=x,dc=a", map[string][]string{"objectClass": {"person"}}))
		if u.acct.Username != "Front Desk PC Login" || u.acct.Name != "" {
			t.Errorf("username %q name %q", u.acct.Username, u.acct.Name)
		}
	})

	t.Run("admin groups, case and spacing", func(t *testing.T) {
		u := p.user(entry("CN=x,DC=a", map[string][]string{"sAMAccountName": {"x"}, "memberOf": {
			"cn=domain admins, cn=Users, dc=spa, dc=local", "CN=Schema Admins,CN=Users,DC=spa,DC=local",
			"CN=Domain Admins Helpdesk,CN=Users,DC=spa,DC=local", "not a dn",
		}}))
		if want := []string{"domain admins", "Schema Admins"}; !reflect.DeepEqual(u.acct.AdminRoles, want) || !u.acct.IsAdmin {
			t.Errorf("admin roles %q, want %q", u.acct.AdminRoles, want)
		}
	})

	t.Run("groups' side: member, uniqueMember, memberUid", func(t *testing.T) {
		gm := groupMembers{byDN: map[string][]string{}, byUID: map[string][]string{}}
		gm.add(admins, entry("cn=Administrators,ou=Groups,dc=a", map[string][]string{
			"cn": {"Administrators"}, "uniqueMember": {"UID=A, OU=People, DC=A#'0101'B"}, "memberUid": {"Bee"},
		}))
		gm.add(admins, entry("cn=Staff,ou=Groups,dc=a", map[string][]string{"cn": {"Staff"}, "member": {"uid=c,ou=People,dc=a"}}))
		for _, tc := range []struct {
			dn, uid string
			admin   bool
		}{
			{"uid=a,ou=People,dc=a", "a", true},
			{"uid=b,ou=People,dc=a", "bee", true},
			{"uid=c,ou=People,dc=a", "c", false},
		} {
			u := p.user(entry(tc.dn, map[string][]string{"uid": {tc.uid}}))
			gm.apply(&u)
			if u.acct.IsAdmin != tc.admin {
				t.Errorf("%s: admin %v, want %v (roles %q)", tc.dn, u.acct.IsAdmin, tc.admin, u.acct.AdminRoles)
			}
		}
	})

	t.Run("adminCount gives way to a named group", func(t *testing.T) {
		gm := groupMembers{byDN: map[string][]string{}, byUID: map[string][]string{}}
		gm.add(admins, entry("CN=Administrators,CN=Builtin,DC=a", map[string][]string{"cn": {"Administrators"}, "member": {"CN=x,DC=a"}}))
		u := p.user(entry("CN=x,DC=a", map[string][]string{"sAMAccountName": {"x"}, "adminCount": {"1"}}))
		if !reflect.DeepEqual(u.acct.AdminRoles, []string{adminCountRole}) {
			t.Fatalf("roles %q", u.acct.AdminRoles)
		}
		gm.apply(&u)
		if !reflect.DeepEqual(u.acct.AdminRoles, []string{"Administrators"}) {
			t.Errorf("roles %q, want [Administrators]", u.acct.AdminRoles)
		}
	})
}

// FuzzParseEntry feeds arbitrary attribute values through the entry
// parser and its FILETIME and GeneralizedTime readers: no input may make
// them panic, and what they return must be printable.
func FuzzParseEntry(f *testing.F) {
	f.Add("CN=Jane Doe,OU=Staff,DC=spa,DC=test", "512", "134106966000000000", "20240115083000.0Z", "CN=Domain Admins,CN=Users,DC=spa,DC=test", "9223372036854775807", "512")
	f.Add("uid=o,ou=People,dc=a", "-1", "0", "2024011508.5+0130", "cn=x", "", "abc")
	f.Add("", "4294967297", "-9223372036854775808", "99991231235960Z", "=,", "1", "")
	f.Add("cn=\\,", "", "", "20240115083000,999999999999999Z", "cn=a+sn=b,dc=c", "0", "519")
	admins := []adminGroup{}
	for _, g := range append(DefaultAdminGroups, "CN=Staff,DC=a") {
		a, _ := parseAdminGroup(g)
		admins = append(admins, a)
	}
	p := entryParser{system: "ad", admins: admins, now: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, dn, uac, filetime, gtime, memberOf, expires, rid string) {
		u := p.user(entry(dn, map[string][]string{
			"sAMAccountName": {"u"}, "userAccountControl": {uac}, "lastLogonTimestamp": {filetime}, "lastLogon": {filetime},
			"pwdLastSet": {filetime}, "accountExpires": {expires}, "whenCreated": {gtime}, "pwdChangedTime": {gtime},
			"memberOf": {memberOf, dn}, "primaryGroupID": {rid}, "authTimestamp": {gtime},
		}))
		obs := u.acct.Observation("ldap:ad", p.now)
		for _, k := range []string{"last_login", "created", "password_last_set"} {
			if s := obs.Attrs[k].(string); s != "" {
				if _, err := time.Parse(time.RFC3339, s); err != nil {
					t.Errorf("%s %q is not RFC 3339 (from %q / %q)", k, s, filetime, gtime)
				}
			}
		}
		if u.acct.IsAdmin != (len(u.acct.AdminRoles) > 0) {
			t.Errorf("is_admin %v with roles %q", u.acct.IsAdmin, u.acct.AdminRoles)
		}
		if tm, err := parseGeneralizedTime(gtime); err == nil && tm.Location() != time.UTC {
			t.Errorf("%q parsed to a non-UTC time", gtime)
		}
		gm := groupMembers{byDN: map[string][]string{}, byUID: map[string][]string{}}
		gm.add(admins, entry(memberOf, map[string][]string{"member": {dn}, "uniqueMember": {dn + "#'1'B"}, "memberUid": {strings.ToUpper(uac)}}))
		gm.apply(&u)
	})
}
