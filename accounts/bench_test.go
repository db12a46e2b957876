package accounts

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/observe"
)

// synthetic builds n accounts spread over five sources (an AD, Microsoft
// 365, Google Workspace, Okta and an EMR export) with the mix a large MSP
// sees: most people in several systems, some without MFA, some stale,
// shared and multi-location logins, leavers.
func synthetic(n int) ([]observe.Observation, *csvidentity.Roster) {
	sources := []struct{ system, typ string }{{"ad", "ldap"}, {"m365", "entra"}, {"google", "google"}, {"okta", "okta"}, {"emr", "csv"}}
	locs := []string{"downtown", "uptown", "westside", "harbor", "hills"}
	obs := make([]observe.Observation, 0, n)
	ro := &csvidentity.Roster{File: "staff.csv"}
	people := n / 3
	for p := 0; p < people; p++ {
		if p%10 != 0 { // one in ten has left
			ro.Staff = append(ro.Staff, csvidentity.StaffMember{Email: fmt.Sprintf("person%d@glow.example", p)})
		}
	}
	for i := 0; i < n; i++ {
		s := sources[i%len(sources)]
		p := i % people
		a := collectors.Account{
			System: s.system, SourceType: s.typ, Enabled: i%17 != 0,
			Username: fmt.Sprintf("person%d@glow.example", p), Email: fmt.Sprintf("person%d@glow.example", p),
			MFA: []string{"true", "false", "unknown"}[i%3], MFAEnforced: "unknown",
			LastLogin: now.Add(-time.Duration(i%200) * 24 * time.Hour), LastLoginKnown: true,
			Created: now.Add(-time.Duration(i%900) * 24 * time.Hour), IsAdmin: i%50 == 0,
			PasswordNeverExpires: i%7 == 0, Locations: []string{locs[i%5]},
		}
		if s.typ == "csv" {
			a.Username, a.Email = fmt.Sprintf("person%d", p), ""
			if i%11 == 0 {
				a.Locations = append(a.Locations, locs[(i+1)%5])
			}
		}
		if i%97 == 0 {
			a.Username = fmt.Sprintf("frontdesk%d", i)
		}
		obs = append(obs, a.Observation(s.typ+":"+s.system, now))
	}
	return obs, ro
}

// BenchmarkIdentityRules is issue 4's target: evaluating the identity rules
// over 50,000 accounts from 5 sources, joined and checked against a roster,
// in under 2 s on one core (run with -cpu 1).
func BenchmarkIdentityRules(b *testing.B) {
	obs, ro := synthetic(50000)
	e := engine(b)
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		n = len(e.Evaluate(Enrich(obs, ro, Settings{}, now), now))
	}
	b.ReportMetric(float64(n), "findings")
	b.ReportMetric(float64(len(obs))/b.Elapsed().Seconds()*float64(b.N), "accounts/s")
}
