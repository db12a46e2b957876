// Package ldapidentity reads the user accounts of an LDAP directory (Active
// Directory or OpenLDAP) and turns them into collectors.KindAccount
// observations. It only reads: one bind, a paged search for users and, when
// some users carry no memberOf, one search for the admin groups.
package ldapidentity

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// Defaults for a Source's limits.
const (
	// DefaultTimeout bounds each network operation: connect, TLS
	// handshake, bind, one page of results.
	DefaultTimeout = 30 * time.Second
	// DefaultPageSize is the number of entries asked for per page. Active
	// Directory caps pages at its MaxPageSize (1000 by default).
	DefaultPageSize = 500
	// MaxEntries bounds the entries one search may return. A medspa
	// directory has hundreds of accounts; hundreds of thousands means the
	// base DN or filter is wrong, and reading on would only fill memory.
	MaxEntries = 200_000
)

// DefaultAdminGroups are the groups whose members are administrators when
// the configuration names none: Active Directory's built-in privileged
// groups.
var DefaultAdminGroups = []string{"Domain Admins", "Enterprise Admins", "Administrators", "Schema Admins"}

// defaultFilter finds people: AD users and inetOrgPerson entries. In AD a
// computer is also objectClass=user, so computers are excluded.
const defaultFilter = "(&(|(objectClass=user)(objectClass=inetOrgPerson))(!(objectClass=computer)))"

// Source is one configured LDAP directory as a collectors.Collector.
type Source struct {
	Config config.IdentitySource
	// Now stamps the observations and decides whether an account has
	// expired; nil means time.Now.
	Now func() time.Time
	// Timeout bounds each network operation; 0 means DefaultTimeout.
	Timeout time.Duration
	// TLSConfig replaces the TLS settings built from the configuration
	// (tests, or a client certificate). ServerName is filled in from the
	// URL when empty, and ca_file is still honoured when RootCAs is nil.
	TLSConfig *tls.Config

	// Set by tests: page size, entry bound, and a hook run after each page
	// of the user search.
	pageSize   int
	maxEntries int
	afterPage  func(page int)
}

// settings is what New checks and Collect uses, derived from the Config.
type settings struct {
	hostport    string
	host        string
	implicitTLS bool
	filter      string // the effective user filter
	admins      []adminGroup
}

var _ collectors.Collector = (*Source)(nil)

// New checks src and returns a Source for it. It does not connect: a
// directory that is down at start-up is a scan error, not a configuration
// error.
func New(src config.IdentitySource) (*Source, error) {
	if _, err := settingsOf(src); err != nil {
		return nil, err
	}
	return &Source{Config: src}, nil
}

// settingsOf checks src and derives what a collection needs from it.
func settingsOf(src config.IdentitySource) (settings, error) {
	name := "ldap:" + src.System
	var set settings
	if src.Type != "ldap" {
		return set, fmt.Errorf("%s: type %q is not ldap", name, src.Type)
	}
	if src.System == "" {
		return set, errors.New("ldap: identity source has no system label: set system (e.g. ad) in the configuration")
	}
	var err error
	if set.hostport, set.implicitTLS, err = parseURL(src.URL); err != nil {
		return set, fmt.Errorf("%s: url: %w", name, err)
	}
	set.host, _, _ = net.SplitHostPort(set.hostport)
	// No base_dn: the directory's own default naming context is read
	// from the root DSE after the bind (see session.defaultBase).
	if _, err := ldap.ParseDN(src.BaseDN); strings.TrimSpace(src.BaseDN) != "" && err != nil {
		return set, fmt.Errorf("%s: base_dn %q is not a distinguished name: %v", name, src.BaseDN, err)
	}
	if src.BindDNEnv == "" && src.BindDNFile == "" {
		return set, fmt.Errorf("%s: set bind_dn_env or bind_dn_file: the read-only account vigil binds as", name)
	}
	if src.PasswordEnv == "" && src.PasswordFile == "" {
		return set, fmt.Errorf("%s: set password_env or password_file: the bind account's password", name)
	}
	set.filter = defaultFilter
	if f := strings.TrimSpace(src.UserFilter); f != "" {
		if !strings.HasPrefix(f, "(") {
			f = "(" + f + ")"
		}
		if _, err := ldap.CompileFilter(f); err != nil {
			return set, fmt.Errorf("%s: user_filter %q is not an LDAP filter: %v", name, src.UserFilter, err)
		}
		// user_filter narrows the default, so computers stay out.
		set.filter = "(&" + defaultFilter + f + ")"
	}
	groups := src.AdminGroups
	if len(groups) == 0 {
		groups = DefaultAdminGroups
	}
	for _, g := range groups {
		a, err := parseAdminGroup(g)
		if err != nil {
			return set, fmt.Errorf("%s: admin_groups: %w", name, err)
		}
		set.admins = append(set.admins, a)
	}
	return set, nil
}

// Name is "ldap:<system>", the Source of the observations it produces.
func (s *Source) Name() string { return "ldap:" + s.Config.System }

// Collect binds to the directory and returns one observation per user
// account. Any failure, including one after some pages were read, returns
// no observations and an error naming the source: a partial listing must
// not make accounts look deleted. The error never contains the password.
func (s *Source) Collect(ctx context.Context) ([]observe.Observation, error) {
	set, err := settingsOf(s.Config)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	bindDN, err := collectors.Secret("bind_dn", s.Config.BindDNEnv, s.Config.BindDNFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	password, err := collectors.Secret("password", s.Config.PasswordEnv, s.Config.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	at := now()
	accounts, err := s.read(ctx, set, bindDN, password, at)
	if err != nil {
		return nil, redact(fmt.Errorf("%s: %w", s.Name(), err), password)
	}
	obs := make([]observe.Observation, 0, len(accounts))
	for _, a := range accounts {
		obs = append(obs, a.Observation(s.Name(), at))
	}
	return obs, nil
}

// read does the directory work of Collect.
func (s *Source) read(ctx context.Context, set settings, bindDN, password string, now time.Time) ([]collectors.Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sess, err := s.connect(ctx, set)
	if err != nil {
		return nil, err
	}
	defer sess.close()
	if err := sess.bind(ctx, bindDN, password); err != nil {
		return nil, err
	}

	base := s.Config.BaseDN
	if strings.TrimSpace(base) == "" {
		if base, err = sess.defaultBase(ctx); err != nil {
			return nil, err
		}
	}
	p := entryParser{system: s.Config.System, locations: s.Config.Locations, admins: set.admins, now: now}
	var users []user
	needGroups := false
	err = sess.search(ctx, base, set.filter, userAttributes, s.limit(), s.afterPage, func(e *ldap.Entry) {
		u := p.user(e)
		needGroups = needGroups || !u.hasMemberOf
		users = append(users, u)
	})
	if err != nil {
		return nil, err
	}
	if needGroups && len(set.admins) > 0 {
		// OpenLDAP without the memberof overlay, or an AD user in no group
		// but its primary one: membership is read from the groups.
		members, err := s.adminMembers(ctx, sess, set.admins)
		if err != nil {
			return nil, err
		}
		for i := range users {
			if !users[i].hasMemberOf {
				members.apply(&users[i])
			}
		}
	}
	accounts := make([]collectors.Account, len(users))
	for i, u := range users {
		accounts[i] = u.acct
	}
	slices.SortFunc(accounts, func(a, b collectors.Account) int {
		if c := strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username)); c != 0 {
			return c
		}
		return strings.Compare(a.Extra["dn"], b.Extra["dn"])
	})
	return accounts, nil
}

// adminMembers reads the admin groups' member lists, searching from the
// naming context that holds base_dn (groups often live beside the users'
// OU, not under it).
func (s *Source) adminMembers(ctx context.Context, sess *session, admins []adminGroup) (groupMembers, error) {
	base := s.Config.BaseDN
	if strings.TrimSpace(base) == "" {
		var err error
		if base, err = sess.defaultBase(ctx); err != nil {
			return groupMembers{}, err
		}
	}
	base = sess.namingContext(ctx, base)
	var names []string
	for _, a := range admins {
		names = append(names, "(cn="+ldap.EscapeFilter(a.cn)+")")
	}
	filter := "(&(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))(|" + strings.Join(names, "") + "))"
	gm := groupMembers{byDN: map[string][]string{}, byUID: map[string][]string{}}
	err := sess.search(ctx, base, filter, groupAttributes, s.limit(), nil, func(e *ldap.Entry) {
		gm.add(admins, e)
	})
	if err != nil {
		return gm, fmt.Errorf("admin groups: %w", err)
	}
	return gm, nil
}

func (s *Source) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

func (s *Source) limit() searchLimit {
	l := searchLimit{pageSize: s.pageSize, maxEntries: s.maxEntries}
	if l.pageSize <= 0 {
		l.pageSize = DefaultPageSize
	}
	if l.maxEntries <= 0 {
		l.maxEntries = MaxEntries
	}
	return l
}

// parseURL checks an ldap:// or ldaps:// URL and returns host:port and
// whether the connection starts with TLS.
func parseURL(raw string) (hostport string, implicitTLS bool, err error) {
	if raw == "" {
		return "", false, errors.New("url is required: ldaps://host[:port], or ldap://host[:port] for StartTLS")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not echoed: a malformed URL may hold a password.
		return "", false, errors.New("not a valid URL: use ldaps://host[:port] or ldap://host[:port]")
	}
	shown := u.Redacted()
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "ldaps":
		implicitTLS, port = true, "636"
	case "ldap":
		port = "389"
	default:
		return "", false, fmt.Errorf("%q: scheme must be ldaps:// or ldap:// (with StartTLS), not %q", shown, u.Scheme)
	}
	if u.User != nil {
		return "", false, fmt.Errorf("%q: credentials do not belong in the URL: use bind_dn_env/bind_dn_file and password_env/password_file", shown)
	}
	if u.Hostname() == "" {
		return "", false, fmt.Errorf("%q has no host", shown)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("%q: give only scheme, host and port; the search base goes in base_dn", shown)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(u.Hostname(), port), implicitTLS, nil
}
