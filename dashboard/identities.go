package dashboard

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/accounts"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// person is one human (or shared login) across identity systems, as the
// identities page shows them.
type person struct {
	Key        string          `json:"person"`
	Name       string          `json:"name,omitempty"`
	Accounts   []identAccount  `json:"accounts"`
	Systems    []string        `json:"systems"`
	Locations  []string        `json:"locations,omitempty"`
	MissingMFA bool            `json:"missing_mfa"`
	Stale      bool            `json:"stale"`
	Shared     bool            `json:"shared"`
	Leaver     bool            `json:"leaver"`
	Admin      bool            `json:"admin"`
	Notes      []string        `json:"notes,omitempty"`
	findings   map[string]bool // ids of open findings about the person's accounts
}

// identAccount is one account of a person.
type identAccount struct {
	System         string   `json:"system"`
	Username       string   `json:"username"`
	Email          string   `json:"email,omitempty"`
	Enabled        bool     `json:"enabled"`
	MFA            string   `json:"mfa"`
	LastLogin      string   `json:"last_login,omitempty"`
	DaysSinceLogin int      `json:"days_since_login"`
	Locations      []string `json:"locations,omitempty"`
	Admin          bool     `json:"admin"`
	Stale          bool     `json:"stale"`
	Unused         bool     `json:"unused"`
	Shared         bool     `json:"shared"`
	Leaver         bool     `json:"leaver"`
	LeaverReason   string   `json:"leaver_reason,omitempty"`
	Target         string   `json:"target"`
}

func attrStr(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func attrBool(m map[string]any, k string) bool { b, _ := m[k].(bool); return b }

func attrInt(m map[string]any, k string) int {
	switch n := m[k].(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return -1
}

func attrStrs(m map[string]any, k string) []string {
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

// isIdentitySource reports whether a scan source name ("csv:emr") is an
// identity system's.
func isIdentitySource(name string) bool {
	typ, _, _ := strings.Cut(name, ":")
	return slices.Contains(config.IdentityTypes, typ)
}

// identities joins the account observations of the latest scan that read
// an identity source, as package accounts joins them for the rules.
func (v *view) identities(ctx context.Context, t *tenant, roster *csvidentity.Roster) error {
	var latest *observe.Scan
	for i := range v.snap.Scans {
		sc := &v.snap.Scans[i]
		if !slices.ContainsFunc(sc.Sources, isIdentitySource) {
			continue
		}
		if latest == nil || sc.FinishedAt.After(latest.FinishedAt) {
			latest = sc
		}
	}
	if latest == nil {
		return nil
	}
	v.identScan = latest
	all, err := t.Store.Observations(ctx, latest.ID)
	if err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	var obs []observe.Observation
	for _, o := range all {
		if o.Kind == observe.KindAccount {
			obs = append(obs, o)
		}
	}
	obs = accounts.Enrich(obs, roster, accounts.SettingsFrom(t.Config), latest.FinishedAt)
	open := map[string][]string{} // target → open finding ids
	for _, f := range v.sorted {
		if f.Status == observe.StatusOpen && f.Location == "" {
			open[f.Target] = append(open[f.Target], f.ID)
		}
	}
	byKey := map[string]*person{}
	var order []string
	for _, o := range obs {
		if o.Kind != observe.KindAccount {
			continue
		}
		a := o.Attrs
		key := attrStr(a, accounts.AttrPerson)
		if key == "" {
			key = o.Target()
		}
		p := byKey[key]
		if p == nil {
			p = &person{Key: key, findings: map[string]bool{}}
			byKey[key] = p
			order = append(order, key)
		}
		acc := identAccount{
			System: attrStr(a, "system"), Username: attrStr(a, "username"), Email: attrStr(a, "email"),
			Enabled: attrBool(a, "enabled"), MFA: attrStr(a, "mfa"), LastLogin: attrStr(a, "last_login"),
			DaysSinceLogin: attrInt(a, accounts.AttrDaysSinceLogin), Locations: attrStrs(a, "locations"),
			Admin: attrBool(a, "is_admin"), Stale: attrBool(a, accounts.AttrStale), Unused: attrBool(a, accounts.AttrUnused),
			Shared: attrBool(a, accounts.AttrSharedName), Leaver: attrBool(a, accounts.AttrLeaver),
			LeaverReason: attrStr(a, accounts.AttrLeaverReason), Target: o.Target(),
		}
		if acc.MFA == "" {
			acc.MFA = "unknown"
		}
		if p.Name == "" {
			p.Name = attrStr(a, "display_name")
		}
		p.Accounts = append(p.Accounts, acc)
		if !slices.Contains(p.Systems, acc.System) {
			p.Systems = append(p.Systems, acc.System)
		}
		for _, l := range acc.Locations {
			if !slices.Contains(p.Locations, l) {
				p.Locations = append(p.Locations, l)
			}
		}
		if acc.Enabled && acc.MFA != "true" {
			p.MissingMFA = true
		}
		p.Stale = p.Stale || acc.Stale || acc.Unused
		p.Shared = p.Shared || acc.Shared || attrBool(a, accounts.AttrMultiLocation)
		p.Leaver = p.Leaver || acc.Leaver
		p.Admin = p.Admin || acc.Admin
		if n := attrStr(a, accounts.AttrMFANote); n != "" && !slices.Contains(p.Notes, n) {
			p.Notes = append(p.Notes, n)
		}
		for _, id := range open[acc.Target] {
			p.findings[id] = true
		}
	}
	for _, k := range order {
		v.people = append(v.people, *byKey[k])
	}
	sort.SliceStable(v.people, func(i, j int) bool {
		return flagScore(v.people[i]) > flagScore(v.people[j])
	})
	return nil
}

// flagScore ranks people with more problems first.
func flagScore(p person) int {
	n := 0
	for _, b := range []bool{p.MissingMFA && p.Admin, p.MissingMFA, p.Leaver, p.Shared, p.Stale} {
		if b {
			n++
		}
	}
	return n
}
