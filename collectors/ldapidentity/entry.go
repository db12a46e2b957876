package ldapidentity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/vigilhq/vigil/collectors"
)

// userAttributes are read from each account: Active Directory's names
// first, then OpenLDAP's (inetOrgPerson, ppolicy, lastbind) and 389-ds's.
// A server ignores the names its schema does not know.
var userAttributes = []string{
	"sAMAccountName", "uid", "userPrincipalName", "mail", "displayName", "cn", "givenName", "sn", "title",
	"userAccountControl", "accountExpires", "lastLogonTimestamp", "lastLogon", "pwdLastSet", "whenCreated",
	"memberOf", "adminCount", "primaryGroupID",
	"createTimestamp", "pwdChangedTime", "pwdAccountLockedTime", "authTimestamp", "pwdLastSuccess", "nsAccountLock",
}

// groupAttributes are read from the admin groups when users carry no memberOf.
var groupAttributes = []string{"cn", "member", "uniqueMember", "memberUid"}

// userAccountControl flags vigil reads.
const (
	uacAccountDisable     = 0x2
	uacDontExpirePassword = 0x10000
)

// Well-known relative ids of AD's privileged groups. A user's primary
// group (primaryGroupID) is never listed in its memberOf, so membership by
// primary group is read from the RID.
var privilegedRIDs = map[int]string{512: "Domain Admins", 518: "Schema Admins", 519: "Enterprise Admins"}

// adminCountRole is the admin role of an account flagged only by
// adminCount=1 (AD's AdminSDHolder marks members, also nested ones, of
// protected groups; the flag stays after removal, so it errs towards admin).
const adminCountRole = "adminCount=1"

// adminGroup is one admin_groups entry: a group's full DN, or its CN.
type adminGroup struct {
	dn *ldap.DN // set when configured as a DN
	cn string   // the CN as configured, or the DN's first RDN value
}

func parseAdminGroup(s string) (adminGroup, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return adminGroup{}, errors.New("empty group name")
	}
	if !strings.Contains(s, "=") {
		return adminGroup{cn: s}, nil
	}
	dn, err := ldap.ParseDN(s)
	if err != nil || len(dn.RDNs) == 0 {
		return adminGroup{}, fmt.Errorf("%q is neither a group name (Domain Admins) nor a DN (CN=Domain Admins,CN=Users,DC=spa,DC=local)", s)
	}
	return adminGroup{dn: dn, cn: firstRDNValue(dn)}, nil
}

// matches reports whether the group with DN dn is this admin group.
func (g adminGroup) matches(dn *ldap.DN) bool {
	if g.dn != nil {
		return g.dn.EqualFold(dn)
	}
	return strings.EqualFold(rdnCN(dn), g.cn)
}

// rdnCN is the value of the cn in dn's first RDN, or "".
func rdnCN(dn *ldap.DN) string {
	if dn == nil || len(dn.RDNs) == 0 {
		return ""
	}
	for _, a := range dn.RDNs[0].Attributes {
		if strings.EqualFold(a.Type, "cn") {
			return a.Value
		}
	}
	return ""
}

func firstRDNValue(dn *ldap.DN) string {
	if dn == nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
		return ""
	}
	return dn.RDNs[0].Attributes[0].Value
}

// dnKey is a DN in a form two spellings of the same DN share: parsed,
// lower-cased, without spaces around separators.
func dnKey(s string) string {
	dn, err := ldap.ParseDN(s)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(s))
	}
	var b strings.Builder
	for i, r := range dn.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range r.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(strings.ToLower(a.Value))
		}
	}
	return b.String()
}

// user is one account as read, before group membership from the groups'
// side is known.
type user struct {
	acct        collectors.Account
	dn          string
	hasMemberOf bool
	adminCount  bool
}

// entryParser turns directory entries into accounts.
type entryParser struct {
	system    string
	locations []string
	admins    []adminGroup
	now       time.Time
}

// user reads one entry. It never fails: a value it cannot parse is left
// out of the account and kept, raw, in Extra under the attribute's name.
func (p entryParser) user(e *ldap.Entry) user {
	get := func(attr string) string { return strings.TrimSpace(e.GetEqualFoldAttributeValue(attr)) }
	has := func(attr string) bool { return len(e.GetEqualFoldAttributeValues(attr)) > 0 }
	extra := map[string]string{"dn": e.DN}
	bad := func(attr, raw string) { extra[attr] = raw }

	u := user{dn: e.DN}
	a := collectors.Account{
		System:      p.system,
		SourceType:  "ldap",
		Enabled:     true,
		MFA:         "unknown", // a directory does not know about second factors
		MFAEnforced: "unknown",
		Role:        get("title"),
		Extra:       extra,
	}
	if len(p.locations) > 0 {
		a.Locations = append([]string(nil), p.locations...)
	}

	a.Username = get("sAMAccountName")
	if a.Username == "" {
		a.Username = get("uid")
	}
	if a.Username == "" {
		if dn, err := ldap.ParseDN(e.DN); err == nil {
			a.Username = firstRDNValue(dn)
		}
	}
	upn := get("userPrincipalName")
	if upn != "" {
		extra["user_principal_name"] = upn
	}
	a.Email = get("mail")
	if a.Email == "" && strings.Contains(upn, "@") {
		a.Email = upn
	}
	a.Name = get("displayName")
	if a.Name == "" {
		a.Name = get("cn")
	}
	if a.Name == "" {
		a.Name = strings.TrimSpace(get("givenName") + " " + get("sn"))
	}

	// Active Directory.
	isAD := has("sAMAccountName") || has("userAccountControl")
	if raw := get("userAccountControl"); raw != "" {
		// A 32-bit flag word; some tools write it signed.
		if v, err := strconv.ParseInt(raw, 10, 64); err == nil && v >= math.MinInt32 && v <= math.MaxUint32 {
			uac := uint32(v)
			extra["user_account_control"] = strconv.FormatUint(uint64(uac), 10)
			if uac&uacAccountDisable != 0 {
				a.Enabled = false
			}
			a.PasswordNeverExpires = uac&uacDontExpirePassword != 0
		} else {
			bad("userAccountControl", raw)
		}
	}
	if raw := get("accountExpires"); raw != "" {
		t, err := parseFiletime(raw)
		switch {
		case err != nil:
			bad("accountExpires", raw)
		case !t.IsZero():
			extra["account_expires"] = t.Format(time.RFC3339)
			if !t.After(p.now) {
				a.Enabled = false // expired: it can no longer sign in
			}
		}
	}
	if isAD {
		// AD records sign-ins for every account; absent or 0 is "never".
		// lastLogonTimestamp replicates (up to 14 days late); lastLogon is
		// exact but only for the DC answering. The later of the two wins.
		a.LastLoginKnown = true
		for _, attr := range []string{"lastLogonTimestamp", "lastLogon"} {
			raw := get(attr)
			if raw == "" {
				continue
			}
			t, err := parseFiletime(raw)
			if err != nil {
				bad(attr, raw)
				a.LastLoginKnown = false
				continue
			}
			if t.After(a.LastLogin) {
				a.LastLogin = t
			}
		}
		if !a.LastLoginKnown {
			a.LastLogin = time.Time{}
		}
	}
	if raw := get("pwdLastSet"); raw != "" {
		t, err := parseFiletime(raw)
		switch {
		case err != nil:
			bad("pwdLastSet", raw)
		case t.IsZero():
			extra["must_change_password"] = "true"
		default:
			a.PasswordLastSet = t
		}
	}

	// OpenLDAP (ppolicy, lastbind) and 389-ds.
	if raw := get("pwdAccountLockedTime"); raw != "" {
		a.Enabled = false
		extra["pwd_account_locked_time"] = raw
	}
	if strings.EqualFold(get("nsAccountLock"), "true") {
		a.Enabled = false
	}
	// genTime reads a GeneralizedTime attribute; an unparsable value is
	// kept raw in extra.
	genTime := func(attr string) (time.Time, bool) {
		raw := get(attr)
		if raw == "" {
			return time.Time{}, false
		}
		t, err := parseGeneralizedTime(raw)
		if err != nil {
			bad(attr, raw)
			return time.Time{}, false
		}
		return t, true
	}
	if !isAD {
		for _, attr := range []string{"authTimestamp", "pwdLastSuccess"} {
			if t, ok := genTime(attr); ok {
				// The overlay that writes it is on, so sign-ins are recorded.
				a.LastLoginKnown = true
				if t.After(a.LastLogin) {
					a.LastLogin = t
				}
			}
		}
	}
	if a.PasswordLastSet.IsZero() {
		if t, ok := genTime("pwdChangedTime"); ok {
			a.PasswordLastSet = t
		}
	}
	for _, attr := range []string{"whenCreated", "createTimestamp"} {
		if t, ok := genTime(attr); ok {
			a.Created = t
			break
		}
	}

	// Administrators.
	memberOf := e.GetEqualFoldAttributeValues("memberOf")
	u.hasMemberOf = len(memberOf) > 0
	for _, g := range memberOf {
		dn, err := ldap.ParseDN(g)
		if err != nil {
			continue
		}
		for _, ag := range p.admins {
			if ag.matches(dn) {
				name := rdnCN(dn)
				if name == "" {
					name = g
				}
				a.AdminRoles = addRole(a.AdminRoles, name)
				break
			}
		}
	}
	if raw := get("primaryGroupID"); raw != "" {
		if rid, err := strconv.Atoi(raw); err == nil {
			if name, ok := privilegedRIDs[rid]; ok {
				for _, ag := range p.admins {
					if strings.EqualFold(ag.cn, name) {
						a.AdminRoles = addRole(a.AdminRoles, name)
						break
					}
				}
			}
		}
	}
	u.adminCount = get("adminCount") == "1"
	u.acct = a
	u.finish()
	return u
}

// finish sets IsAdmin from the roles found so far. It runs again after
// group membership is added from the groups' side.
func (u *user) finish() {
	roles := u.acct.AdminRoles[:0:0]
	for _, r := range u.acct.AdminRoles {
		if r != adminCountRole {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 && u.adminCount {
		roles = append(roles, adminCountRole)
	}
	if len(roles) == 0 {
		roles = nil
	}
	u.acct.AdminRoles = roles
	u.acct.IsAdmin = len(roles) > 0
}

func addRole(roles []string, name string) []string {
	for _, r := range roles {
		if strings.EqualFold(r, name) {
			return roles
		}
	}
	return append(roles, name)
}

// groupMembers maps members of the admin groups to the groups' names, read
// from the groups (member, uniqueMember, memberUid) for directories whose
// users carry no memberOf.
type groupMembers struct {
	byDN  map[string][]string // dnKey of the member → group names
	byUID map[string][]string // lower-cased memberUid → group names
}

// add records the members of group entry e if it is one of admins.
func (gm groupMembers) add(admins []adminGroup, e *ldap.Entry) {
	dn, err := ldap.ParseDN(e.DN)
	if err != nil {
		return
	}
	admin := false
	for _, ag := range admins {
		if ag.matches(dn) {
			admin = true
			break
		}
	}
	if !admin {
		return
	}
	name := e.GetEqualFoldAttributeValue("cn")
	if name == "" {
		name = firstRDNValue(dn)
	}
	for _, m := range e.GetEqualFoldAttributeValues("member") {
		k := dnKey(m)
		gm.byDN[k] = addRole(gm.byDN[k], name)
	}
	for _, m := range e.GetEqualFoldAttributeValues("uniqueMember") {
		// nameAndOptionalUID: a DN, then optionally #'0101'B.
		if i := strings.LastIndex(m, "#'"); i > 0 && strings.HasSuffix(m, "'B") {
			m = m[:i]
		}
		k := dnKey(m)
		gm.byDN[k] = addRole(gm.byDN[k], name)
	}
	for _, m := range e.GetEqualFoldAttributeValues("memberUid") {
		k := strings.ToLower(strings.TrimSpace(m))
		gm.byUID[k] = addRole(gm.byUID[k], name)
	}
}

// apply adds the admin groups u is a member of.
func (gm groupMembers) apply(u *user) {
	for _, g := range gm.byDN[dnKey(u.dn)] {
		u.acct.AdminRoles = addRole(u.acct.AdminRoles, g)
	}
	for _, g := range gm.byUID[strings.ToLower(u.acct.Username)] {
		u.acct.AdminRoles = addRole(u.acct.AdminRoles, g)
	}
	u.finish()
}

// filetimeEpoch is 1601-01-01 in seconds before the Unix epoch.
const filetimeEpoch = 11644473600

// parseFiletime reads a Windows FILETIME written in decimal (100 ns
// intervals since 1601-01-01 UTC), as AD stores lastLogonTimestamp,
// pwdLastSet and accountExpires. 0 and the largest int64 mean "never" and
// come back as the zero time.
func parseFiletime(s string) (time.Time, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("FILETIME %q is not a decimal integer", s)
	}
	if v == 0 || v == math.MaxInt64 {
		return time.Time{}, nil
	}
	if v < 0 {
		return time.Time{}, fmt.Errorf("FILETIME %q is negative", s)
	}
	t := time.Unix(v/1e7-filetimeEpoch, (v%1e7)*100).UTC()
	if t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("FILETIME %q is after the year 9999", s)
	}
	return t, nil
}

// parseGeneralizedTime reads an LDAP GeneralizedTime (RFC 4517 3.3.13):
// YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|(+|-)HH[MM]). AD writes
// 20240115083000.0Z; OpenLDAP 20240115083000Z. The fraction is of the last
// unit given. The result is in UTC.
func parseGeneralizedTime(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("GeneralizedTime %q: %s", s, why)
	}
	digits := func(str string, n int) (int, bool) {
		if len(str) < n {
			return 0, false
		}
		v := 0
		for i := 0; i < n; i++ {
			c := str[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	rest := s
	var f [6]int // year, month, day, hour, minute, second
	sizes := [6]int{4, 2, 2, 2, 2, 2}
	n := 0
	for ; n < 6; n++ {
		v, ok := digits(rest, sizes[n])
		if !ok {
			break
		}
		f[n] = v
		rest = rest[sizes[n]:]
	}
	if n < 4 {
		return bad("needs at least YYYYMMDDHH")
	}
	// The unit a fraction applies to.
	unit := [6]time.Duration{0, 0, 0, time.Hour, time.Minute, time.Second}[n-1]
	var frac time.Duration
	if rest != "" && (rest[0] == '.' || rest[0] == ',') {
		rest = rest[1:]
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return bad("empty fraction")
		}
		// Nine digits are below a nanosecond of a second; more are noise.
		num, den := 0.0, 1.0
		for _, c := range rest[:min(i, 12)] {
			num = num*10 + float64(c-'0')
			den *= 10
		}
		frac = time.Duration(num / den * float64(unit))
		rest = rest[i:]
	}
	var loc *time.Location
	switch {
	case rest == "Z":
		loc = time.UTC
	case len(rest) == 3 || len(rest) == 5:
		sign := 1
		switch rest[0] {
		case '+':
		case '-':
			sign = -1
		default:
			return bad("time zone must be Z or +HHMM/-HHMM")
		}
		hh, ok := digits(rest[1:], 2)
		mm := 0
		if ok && len(rest) == 5 {
			mm, ok = digits(rest[3:], 2)
		}
		if !ok || hh > 23 || mm > 59 {
			return bad("bad time zone offset")
		}
		loc = time.FixedZone("", sign*(hh*3600+mm*60))
	case rest == "":
		return bad("no time zone (Z or +HHMM)")
	default:
		return bad("unexpected " + strconvQuote(rest))
	}
	year, month, day, hour, minute, second := f[0], f[1], f[2], f[3], f[4], f[5]
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 {
		return bad("field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, min(second, 59), 0, loc)
	if t.Day() != day {
		return bad("no such day")
	}
	if second == 60 { // a leap second
		t = t.Add(time.Second)
	}
	t = t.Add(frac).UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return bad("outside the years 1 to 9999")
	}
	return t, nil
}

func strconvQuote(s string) string {
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	return strconv.Quote(s)
}
