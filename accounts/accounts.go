// Package accounts judges the accounts identity collectors found as a
// whole: it joins the same person across systems (by email, then username),
// checks each account against the staff roster, and derives the facts the
// identity rules (rules/pack/identity.yaml) test: stale, never used, shared
// name, used at several locations, a leaver's account, where else the
// person has MFA.
package accounts

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// Derived attribute keys Enrich adds to every account observation
// (docs/observations.md).
const (
	AttrPerson         = "person"           // join key: the person's email, or a username nobody else's email claims
	AttrPersonSystems  = "person_systems"   // []string: systems where the person has an account
	AttrMFASystems     = "mfa_systems"      // []string: systems where the person has MFA registered
	AttrMFANote        = "mfa_note"         // "jane@x has MFA in m365 but not in emr"; "" otherwise
	AttrDaysSinceLogin = "days_since_login" // int; -1 when never signed in or the system does not say
	AttrAgeDays        = "age_days"         // int; -1 when the creation date is unknown
	AttrStale          = "stale"            // bool: enabled, signs in recorded, none for stale_days
	AttrUnused         = "unused"           // bool: enabled, never signed in, created never_used_days ago or more
	AttrSharedName     = "shared_name"      // bool: the username names a role, place or device, not a person
	AttrSharedPattern  = "shared_pattern"   // the pattern it matched
	AttrMultiLocation  = "multi_location"   // bool: enabled, in use, at two or more locations
	AttrOnRoster       = "on_roster"        // "true" | "false" | "unknown" (no roster configured)
	AttrLeaver         = "leaver"           // bool: enabled but nobody current on the roster
	AttrLeaverReason   = "leaver_reason"    // why: "not on the roster" or "left on 2025-01-31"
	AttrRemoteAccess   = "remote_access"    // bool: the system gives email or remote access
	AttrRosterMatch    = "roster_match"     // how the roster entry was matched: email | username
)

// Settings are the identity rules' knobs (config `accounts:`).
type Settings struct {
	StaleDays     int
	NeverUsedDays int
	SharedNames   []string
	// RemoteSystems are system labels whose accounts reach email or
	// remote access; nil means every entra, google and okta source.
	RemoteSystems []string
}

// SettingsFrom reads the settings from a loaded configuration.
func SettingsFrom(cfg *config.Config) Settings {
	return Settings{
		StaleDays:     cfg.Accounts.StaleDays,
		NeverUsedDays: cfg.Accounts.NeverUsedDays,
		SharedNames:   cfg.Accounts.SharedNames,
		RemoteSystems: cfg.Accounts.RemoteSystems,
	}
}

func (s Settings) withDefaults() Settings {
	if s.StaleDays <= 0 {
		s.StaleDays = config.DefaultStaleDays
	}
	if s.NeverUsedDays <= 0 {
		s.NeverUsedDays = config.DefaultNeverUsedDays
	}
	if s.SharedNames == nil {
		s.SharedNames = config.DefaultSharedNames
	}
	return s
}

// cloudTypes are the source types that are email and remote access.
var cloudTypes = []string{"entra", "google", "okta"}

// account is the view of one observation Enrich works with.
type account struct {
	obs                *observe.Observation
	system, sourceType string
	username, email    string
	enabled            bool
	mfa                string
	lastLogin, created time.Time
	lastLoginKnown     bool
	locations          []string
	person             int
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func strs(m map[string]any, k string) []string {
	switch v := m[k].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

// localPart is the part of an email before the @, or the whole username.
func localPart(s string) string {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		return s[:i]
	}
	if i := strings.IndexByte(s, '\\'); i >= 0 { // DOMAIN\user
		return s[i+1:]
	}
	return s
}

// Enrich returns a copy of obs in which every account observation carries
// the derived attributes above and its Vantage names its source (so that a
// scan resolves an account finding only when that source was read in
// full). Other observations are returned unchanged. roster may be nil.
func Enrich(obs []observe.Observation, roster *csvidentity.Roster, s Settings, now time.Time) []observe.Observation {
	s = s.withDefaults()
	out := make([]observe.Observation, len(obs))
	copy(out, obs)
	var accts []*account
	for i := range out {
		o := &out[i]
		if o.Kind != observe.KindAccount {
			continue
		}
		attrs := make(map[string]any, len(o.Attrs)+16)
		for k, v := range o.Attrs {
			attrs[k] = v
		}
		o.Attrs = attrs
		if o.Vantage == "" {
			o.Vantage = o.Source
		}
		en, _ := attrs[collectors.AttrEnabled].(bool)
		llk, ok := attrs[collectors.AttrLastLoginOK].(bool)
		if !ok {
			llk = true // older observations: last_login was always meaningful
		}
		accts = append(accts, &account{
			obs:            o,
			system:         str(attrs, collectors.AttrSystem),
			sourceType:     str(attrs, collectors.AttrSourceType),
			username:       str(attrs, collectors.AttrUsername),
			email:          strings.ToLower(str(attrs, collectors.AttrEmail)),
			enabled:        en,
			mfa:            str(attrs, collectors.AttrMFA),
			lastLogin:      parseTime(str(attrs, collectors.AttrLastLogin)),
			lastLoginKnown: llk,
			created:        parseTime(str(attrs, collectors.AttrCreated)),
			locations:      strs(attrs, collectors.AttrLocations),
		})
	}
	people := join(accts)
	idx := newRosterIndex(roster)
	patterns := make([]string, len(s.SharedNames))
	for i, p := range s.SharedNames {
		patterns[i] = strings.ToLower(p)
	}
	for _, a := range accts {
		judge(a, people[a.person], idx, patterns, s, now)
	}
	return out
}

// person is everyone's accounts joined.
type person struct {
	key        string
	systems    []string
	mfaSystems []string
	noMFA      []string // systems where MFA is known to be off
}

// join groups accounts into people: first by email, then an account with
// no email joins the person whose email's local part or whose other
// accounts' username is its username, when exactly one person fits.
func join(accts []*account) []*person {
	var people []*person
	byEmail := map[string]int{}
	byUser := map[string]int{} // lower username or email local part -> person; -1 when ambiguous
	claim := func(name string, p int) {
		name = strings.ToLower(name)
		if name == "" {
			return
		}
		if q, ok := byUser[name]; ok && q != p {
			byUser[name] = -1
			return
		}
		byUser[name] = p
	}
	for _, a := range accts {
		if a.email == "" {
			continue
		}
		p, ok := byEmail[a.email]
		if !ok {
			p = len(people)
			people = append(people, &person{key: a.email})
			byEmail[a.email] = p
		}
		a.person = p
	}
	for _, a := range accts {
		if a.email != "" {
			claim(localPart(a.email), a.person)
			claim(localPart(a.username), a.person)
		}
	}
	byBare := map[string]int{}
	for _, a := range accts {
		if a.email != "" {
			continue
		}
		u := strings.ToLower(localPart(a.username))
		if p, ok := byUser[u]; ok && p >= 0 {
			a.person = p
			continue
		}
		p, ok := byBare[u]
		if !ok {
			p = len(people)
			people = append(people, &person{key: u})
			byBare[u] = p
		}
		a.person = p
	}
	for _, a := range accts {
		p := people[a.person]
		if !slices.Contains(p.systems, a.system) {
			p.systems = append(p.systems, a.system)
		}
		switch a.mfa {
		case "true":
			if !slices.Contains(p.mfaSystems, a.system) {
				p.mfaSystems = append(p.mfaSystems, a.system)
			}
		case "false":
			if a.enabled && !slices.Contains(p.noMFA, a.system) {
				p.noMFA = append(p.noMFA, a.system)
			}
		}
	}
	for _, p := range people {
		sort.Strings(p.systems)
		sort.Strings(p.mfaSystems)
		sort.Strings(p.noMFA)
	}
	return people
}

// rosterIndex finds a roster entry by email or username.
type rosterIndex struct {
	present bool
	byEmail map[string]*csvidentity.StaffMember
	byUser  map[string]*csvidentity.StaffMember
}

func newRosterIndex(r *csvidentity.Roster) rosterIndex {
	idx := rosterIndex{byEmail: map[string]*csvidentity.StaffMember{}, byUser: map[string]*csvidentity.StaffMember{}}
	if r == nil {
		return idx
	}
	idx.present = true
	for i := range r.Staff {
		m := &r.Staff[i]
		if m.Email != "" {
			idx.byEmail[m.Email] = m
			idx.byUser[strings.ToLower(localPart(m.Email))] = m
		}
		if m.Username != "" {
			idx.byUser[strings.ToLower(localPart(m.Username))] = m
		}
	}
	return idx
}

func (idx rosterIndex) find(a *account) (*csvidentity.StaffMember, string) {
	if a.email != "" {
		if m, ok := idx.byEmail[a.email]; ok {
			return m, "email"
		}
	}
	if m, ok := idx.byUser[strings.ToLower(localPart(a.username))]; ok {
		return m, "username"
	}
	return nil, ""
}

func days(now, t time.Time) int {
	if t.IsZero() {
		return -1
	}
	d := int(now.Sub(t).Hours() / 24)
	if d < 0 {
		return 0
	}
	return d
}

func judge(a *account, p *person, idx rosterIndex, patterns []string, s Settings, now time.Time) {
	attrs := a.obs.Attrs
	attrs[AttrPerson] = p.key
	attrs[AttrPersonSystems] = p.systems
	attrs[AttrMFASystems] = p.mfaSystems
	note := ""
	if a.enabled && a.mfa == "false" && len(p.mfaSystems) > 0 {
		note = fmt.Sprintf("%s has MFA in %s but not in %s", p.key, strings.Join(p.mfaSystems, ", "), a.system)
	}
	attrs[AttrMFANote] = note

	since := -1
	if a.lastLoginKnown {
		since = days(now, a.lastLogin)
	}
	age := days(now, a.created)
	attrs[AttrDaysSinceLogin] = since
	attrs[AttrAgeDays] = age
	attrs[AttrStale] = a.enabled && since >= s.StaleDays
	never := a.lastLoginKnown && a.lastLogin.IsZero()
	attrs[AttrUnused] = a.enabled && never && age >= s.NeverUsedDays

	user := strings.ToLower(localPart(a.username))
	shared, pattern := false, ""
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, user); ok {
			shared, pattern = true, pat
			break
		}
	}
	attrs[AttrSharedName] = shared
	attrs[AttrSharedPattern] = pattern

	inUse := a.enabled && !(since >= s.StaleDays) && !attrs[AttrUnused].(bool)
	locs := slices.Clone(a.locations)
	sort.Strings(locs)
	locs = slices.Compact(locs)
	attrs[AttrMultiLocation] = inUse && len(locs) >= 2

	onRoster, leaver, reason, how := "unknown", false, "", ""
	if idx.present {
		m, via := idx.find(a)
		how = via
		switch {
		case m == nil:
			onRoster = "false"
			// A shared login is nobody's to leave with; the shared-name
			// rule judges it instead.
			leaver = a.enabled && !shared
			reason = "not on the roster"
		case !m.EndDate.IsZero() && !m.EndDate.After(now):
			onRoster = "false"
			leaver = a.enabled
			reason = "left on " + m.EndDate.Format(time.DateOnly)
		default:
			onRoster = "true"
		}
	}
	attrs[AttrOnRoster] = onRoster
	attrs[AttrLeaver] = leaver
	attrs[AttrLeaverReason] = reason
	attrs[AttrRosterMatch] = how

	remote := slices.Contains(cloudTypes, a.sourceType)
	if s.RemoteSystems != nil {
		remote = slices.Contains(s.RemoteSystems, a.system)
	}
	attrs[AttrRemoteAccess] = remote
}
