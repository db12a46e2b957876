package accounts

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

var now = time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)

func daysAgo(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }

// acct builds an account as a collector would report it.
func acct(system, typ, user, email string, f func(*collectors.Account)) observe.Observation {
	a := collectors.Account{System: system, SourceType: typ, Username: user, Email: email, Enabled: true,
		MFA: "unknown", LastLogin: daysAgo(1), LastLoginKnown: true, Created: daysAgo(400)}
	if f != nil {
		f(&a)
	}
	return a.Observation(typ+":"+system, now)
}

func roster(t *testing.T) *csvidentity.Roster {
	t.Helper()
	r, rowErrs, err := csvidentity.LoadRoster(context.Background(), "testdata/staff.csv")
	if err != nil || len(rowErrs) > 0 {
		t.Fatalf("roster: %v %v", err, rowErrs)
	}
	return r
}

func engine(t testing.TB) *rules.Engine {
	t.Helper()
	e, err := rules.Load(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// findings returns "rule target severity" for the identity findings.
func findings(e *rules.Engine, obs []observe.Observation) []string {
	var out []string
	for _, f := range e.Evaluate(obs, now) {
		if f.Category == "flat-network" {
			continue
		}
		out = append(out, f.Rule+" "+f.Target+" "+string(f.Severity))
	}
	sort.Strings(out)
	return out
}

func TestEachRulePositiveAndNegative(t *testing.T) {
	e := engine(t)
	set := Settings{}
	tests := []struct {
		name string
		obs  []observe.Observation
		want []string
	}{
		{"fine accounts produce nothing", []observe.Observation{
			acct("m365", "entra", "jane@glow.example", "jane@glow.example", func(a *collectors.Account) { a.MFA, a.MFAEnforced = "true", "unknown" }),
			acct("emr", "csv", "jane", "jane@glow.example", func(a *collectors.Account) { a.MFA = "true"; a.Locations = []string{"downtown"} }),
			acct("ad", "ldap", "drkim", "kim@glow.example", func(a *collectors.Account) { a.IsAdmin = true }),
			acct("google", "google", "pat@glow.example", "pat@glow.example", func(a *collectors.Account) { a.MFA, a.MFAEnforced = "true", "true" }),
			// disabled accounts are nobody's risk
			acct("ad", "ldap", "frontdesk", "", func(a *collectors.Account) { a.Enabled = false; a.MFA = "false"; a.LastLogin = daysAgo(900) }),
			// new and never used: not yet unused
			acct("ad", "ldap", "kim2", "kim@glow.example", func(a *collectors.Account) { a.LastLogin = time.Time{}; a.Created = daysAgo(5) }),
			// a system that does not report sign-ins is never stale
			acct("booking", "csv", "pat", "pat@glow.example", func(a *collectors.Account) { a.LastLogin, a.LastLoginKnown = time.Time{}, false }),
		}, nil},
		{"no MFA: admin, email, other", []observe.Observation{
			acct("ad", "ldap", "drkim", "kim@glow.example", func(a *collectors.Account) { a.IsAdmin = true; a.MFA = "false" }),
			acct("m365", "entra", "jane@glow.example", "jane@glow.example", func(a *collectors.Account) { a.MFA = "false" }),
			acct("emr", "csv", "pat", "pat@glow.example", func(a *collectors.Account) { a.MFA = "false" }),
		}, []string{
			"id.admin-without-mfa ad:drkim critical",
			"id.no-mfa emr:pat medium",
			"id.remote-without-mfa m365:jane@glow.example high",
		}},
		{"MFA registered but not enforced", []observe.Observation{
			acct("google", "google", "jane@glow.example", "jane@glow.example", func(a *collectors.Account) { a.MFA, a.MFAEnforced = "true", "false" }),
		}, []string{"id.mfa-not-enforced google:jane@glow.example medium"}},
		{"stale at 90 days, not at 89", []observe.Observation{
			acct("emr", "csv", "jane", "jane@glow.example", func(a *collectors.Account) { a.LastLogin = daysAgo(90) }),
			acct("emr", "csv", "drkim", "kim@glow.example", func(a *collectors.Account) { a.LastLogin = daysAgo(89) }),
		}, []string{"id.stale-account emr:jane medium"}},
		{"never used after 30 days, admin higher", []observe.Observation{
			acct("ad", "ldap", "svc.new", "", func(a *collectors.Account) { a.LastLogin = time.Time{}; a.Created = daysAgo(31); a.IsAdmin = true }),
			acct("ad", "ldap", "jane", "jane@glow.example", func(a *collectors.Account) { a.LastLogin = time.Time{}; a.Created = daysAgo(29) }),
		}, []string{"id.unused-account ad:svc.new high"}},
		{"admin whose password never expires", []observe.Observation{
			acct("ad", "ldap", "drkim", "kim@glow.example", func(a *collectors.Account) { a.IsAdmin, a.PasswordNeverExpires = true, true }),
			acct("ad", "ldap", "jane", "jane@glow.example", func(a *collectors.Account) { a.PasswordNeverExpires = true }),
		}, []string{"id.admin-password-never-expires ad:drkim high"}},
		{"shared names, and one login at two locations", []observe.Observation{
			acct("emr", "csv", "FrontDesk", "", func(a *collectors.Account) { a.Locations = []string{"downtown", "uptown"} }),
			acct("emr", "csv", "jane", "jane@glow.example", func(a *collectors.Account) { a.Locations = []string{"downtown", "downtown"} }),
			acct("emr", "csv", "drkim", "kim@glow.example", func(a *collectors.Account) {
				a.Locations = []string{"downtown", "uptown"}
				a.LastLogin = daysAgo(200) // stale, so not "in use" at two places
			}),
		}, []string{
			"id.multi-location-login emr:FrontDesk medium",
			"id.shared-login emr:FrontDesk medium",
			"id.stale-account emr:drkim medium",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findings(e, Enrich(tt.obs, nil, set, now))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestRosterLeavers(t *testing.T) {
	e := engine(t)
	obs := []observe.Observation{
		acct("m365", "entra", "jane@glow.example", "jane@glow.example", func(a *collectors.Account) { a.MFA = "true" }),
		acct("emr", "csv", "DrKim", "", nil),   // on the roster by username
		acct("emr", "csv", "pat", "", nil),     // by the roster email's local part
		acct("emr", "csv", "leaving", "", nil), // on the roster with a past end date
		acct("emr", "csv", "mallory", "", nil), // nobody
		acct("ad", "ldap", "exadmin", "", func(a *collectors.Account) { a.IsAdmin = true }),
		acct("emr", "csv", "reception", "", nil),                                          // shared: the shared rule, not a leaver
		acct("emr", "csv", "gone", "", func(a *collectors.Account) { a.Enabled = false }), // disabled: done right
	}
	got := findings(e, Enrich(obs, roster(t), Settings{}, now))
	want := []string{
		"id.leaver-account ad:exadmin critical",
		"id.leaver-account emr:leaving high",
		"id.leaver-account emr:mallory high",
		"id.shared-login emr:reception medium",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// Without a roster nobody is judged a leaver.
	for _, f := range findings(e, Enrich(obs, nil, Settings{}, now)) {
		if strings.HasPrefix(f, "id.leaver-account") {
			t.Errorf("no roster, yet %s", f)
		}
	}
}

func TestJoinAcrossSystems(t *testing.T) {
	obs := Enrich([]observe.Observation{
		acct("m365", "entra", "jane@glow.example", "Jane@Glow.example", func(a *collectors.Account) { a.MFA = "true" }),
		acct("google", "google", "jane@glow.example", "jane@glow.example", func(a *collectors.Account) { a.MFA = "true" }),
		acct("emr", "csv", "jane", "", func(a *collectors.Account) { a.MFA = "false" }),
		// two people could be "sam": nobody is joined by that name
		acct("m365", "entra", "sam@glow.example", "sam@glow.example", nil),
		acct("booking", "csv", "sam", "sam@other.example", nil),
		acct("emr", "csv", "sam", "", nil),
		{Kind: observe.KindHost, Host: "10.0.0.1", Source: "nmap"},
	}, nil, Settings{}, now)
	byTarget := map[string]map[string]any{}
	for _, o := range obs {
		if o.Kind == observe.KindAccount {
			byTarget[o.Target()] = o.Attrs
			if o.Vantage != o.Source {
				t.Errorf("%s: vantage %q, want its source %q", o.Target(), o.Vantage, o.Source)
			}
		}
	}
	emr := byTarget["emr:jane"]
	if emr[AttrPerson] != "jane@glow.example" {
		t.Fatalf("emr:jane joined to %v", emr[AttrPerson])
	}
	if got := emr[AttrMFANote]; got != "jane@glow.example has MFA in google, m365 but not in emr" {
		t.Errorf("mfa_note = %q", got)
	}
	if got := emr[AttrPersonSystems].([]string); !slices.Equal(got, []string{"emr", "google", "m365"}) {
		t.Errorf("person_systems = %v", got)
	}
	if p := byTarget["emr:sam"][AttrPerson]; p != "sam" {
		t.Errorf("ambiguous sam joined to %v", p)
	}
	if len(obs) != 7 || obs[6].Kind != observe.KindHost {
		t.Errorf("non-account observations must pass through unchanged")
	}
}

func TestEnrichDoesNotModifyInput(t *testing.T) {
	in := []observe.Observation{acct("emr", "csv", "jane", "", nil)}
	n := len(in[0].Attrs)
	Enrich(in, nil, Settings{}, now)
	if len(in[0].Attrs) != n || in[0].Vantage != "" {
		t.Errorf("Enrich changed its input: %d attrs (was %d), vantage %q", len(in[0].Attrs), n, in[0].Vantage)
	}
}
