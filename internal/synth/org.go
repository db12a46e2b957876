package synth

import (
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// Identity systems the synthetic organisation exports as CSV: the EMR and
// Microsoft 365 (the configuration's accounts.remote_systems makes m365
// email and remote access).
var identitySystems = []string{"emr", "m365"}

var firstNames = []string{"Ava", "Mia", "Sofia", "Isabella", "Emma", "Olivia", "Harper", "Chloe", "Layla", "Nora", "Grace", "Zoe",
	"Camila", "Lucia", "Elena", "Maya", "Priya", "Aisha", "Hana", "Jin", "Daniel", "Marco", "Ethan", "Luis", "Omar", "Ryan"}
var lastNames = []string{"Garcia", "Nguyen", "Kim", "Patel", "Rossi", "Cohen", "Martinez", "Chen", "Okafor", "Silva", "Romero",
	"Haddad", "Novak", "Murphy", "Tanaka", "Ali", "Brooks", "Reyes", "Lopez", "Schmidt", "Ivanova", "Fischer", "Duarte", "Moreau"}
var staffRoles = []string{"injector", "aesthetician", "front-desk", "front-desk", "nurse-practitioner", "laser-tech", "manager"}

// account is one person's account in one system.
type account struct {
	System, Username, Email, Name, Role string
	Enabled, Admin, NeverExpires        bool
	MFA, MFAEnforced                    string
	LastLogin, Created                  time.Time // zero LastLogin: never
	Locations                           []string
}

// makeAccounts returns perLocation staff per location, each with an
// account in every identity system, plus a few shared and admin ones.
func makeAccounts(r *rand.Rand, locs []*location, perLocation int, end time.Time) []account {
	var out []account
	seen := map[string]int{}
	for _, l := range locs {
		for i := 0; i < perLocation; i++ {
			first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
			user := strings.ToLower(first[:1] + last)
			seen[user]++
			if seen[user] > 1 {
				user += strconv.Itoa(seen[user])
			}
			role := staffRoles[r.IntN(len(staffRoles))]
			created := end.AddDate(0, 0, -30-r.IntN(1500))
			lastLogin := end.AddDate(0, 0, -r.IntN(20))
			enabled := true
			switch {
			case chance(r, 0.06): // left months ago, account still enabled
				lastLogin = end.AddDate(0, 0, -100-r.IntN(300))
			case chance(r, 0.02):
				lastLogin = time.Time{}
			case chance(r, 0.05):
				enabled = false
			}
			for _, sys := range identitySystems {
				a := account{System: sys, Username: user, Email: user + "@lumen.example", Name: first + " " + last, Role: role,
					Enabled: enabled, Created: created, LastLogin: lastLogin, Locations: []string{l.ID}, MFA: "true", MFAEnforced: "true"}
				if sys == "emr" {
					if chance(r, 0.45*weakness(l)) {
						a.MFA, a.MFAEnforced = "false", "false"
					}
				} else if chance(r, 0.12*weakness(l)) {
					a.MFA, a.MFAEnforced = "false", "false"
				} else if chance(r, 0.1) {
					a.MFAEnforced = "false"
				}
				if role == "manager" {
					a.Admin = sys == "emr"
					a.NeverExpires = chance(r, 0.3)
				}
				out = append(out, a)
			}
		}
		if chance(r, 0.4*weakness(l)) { // the shared front-desk login
			out = append(out, account{System: "emr", Username: "frontdesk-" + l.ID, Email: "frontdesk." + l.ID + "@lumen.example",
				Name: "Front Desk " + l.Name, Role: "front-desk", Enabled: true, MFA: "false", MFAEnforced: "false",
				Created: end.AddDate(-2, 0, 0), LastLogin: end.AddDate(0, 0, -1), Locations: []string{l.ID}})
		}
	}
	// Organisation admins, at every location.
	all := make([]string, len(locs))
	for i, l := range locs {
		all[i] = l.ID
	}
	for i, n := range []string{"it-admin", "msp-tech", "ceo", "compliance"} {
		out = append(out, account{System: "m365", Username: n, Email: n + "@lumen.example", Name: n, Role: "admin", Enabled: true,
			Admin: true, MFA: map[bool]string{true: "false", false: "true"}[i == 1], MFAEnforced: "true", NeverExpires: i == 0,
			Created: end.AddDate(-3, 0, 0), LastLogin: end.AddDate(0, 0, -1), Locations: all})
	}
	return out
}

// accountObservations is what reading the identity sources in full sees.
func accountObservations(accts []account, at time.Time) []observe.Observation {
	out := make([]observe.Observation, 0, len(accts))
	for _, a := range accts {
		src := "csv:" + a.System
		locs := make([]any, len(a.Locations))
		for i, l := range a.Locations {
			locs[i] = l
		}
		last := ""
		if !a.LastLogin.IsZero() {
			last = a.LastLogin.UTC().Format(time.RFC3339)
		}
		out = append(out, observe.Observation{Kind: observe.KindAccount, Source: src, Vantage: src, At: at,
			Attrs: map[string]any{
				"system": a.System, "source_type": "csv", "username": a.Username, "email": a.Email, "display_name": a.Name,
				"enabled": a.Enabled, "mfa": a.MFA, "mfa_enforced": a.MFAEnforced, "last_login": last, "last_login_known": true,
				"created": a.Created.UTC().Format(time.RFC3339), "locations": locs, "role": a.Role, "is_admin": a.Admin,
				"password_never_expires": a.NeverExpires,
			}})
	}
	return out
}

// writeExports writes each identity system's accounts as the CSV export
// the configuration's identity sources name.
func writeExports(dir string, accts []account) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, sys := range identitySystems {
		f, err := os.Create(filepath.Join(dir, sys+".csv"))
		if err != nil {
			return err
		}
		w := csv.NewWriter(f)
		w.Write([]string{"username", "email", "display_name", "role", "enabled", "mfa", "mfa_enforced", "last_login", "created", "locations", "is_admin", "password_never_expires"})
		for _, a := range accts {
			if a.System != sys {
				continue
			}
			last := "never"
			if !a.LastLogin.IsZero() {
				last = a.LastLogin.UTC().Format(time.RFC3339)
			}
			w.Write([]string{a.Username, a.Email, a.Name, a.Role, strconv.FormatBool(a.Enabled), a.MFA, a.MFAEnforced, last,
				a.Created.UTC().Format(time.DateOnly), strings.Join(a.Locations, ";"), strconv.FormatBool(a.Admin), strconv.FormatBool(a.NeverExpires)})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// vulnerable packages the organisation's booking site and imaging
// software ship with (synthetic advisories).
var packageSpecs = []struct {
	file, eco, pkg, version, fixed, severity string
	cvss                                     float64
}{
	{"/srv/booking/package-lock.json", "npm", "lodash", "4.17.15", "4.17.21", "high", 7.4},
	{"/srv/booking/package-lock.json", "npm", "axios", "0.21.0", "0.21.2", "high", 7.5},
	{"/srv/booking/package-lock.json", "npm", "minimist", "1.2.5", "1.2.6", "critical", 9.8},
	{"/srv/booking/package-lock.json", "npm", "semver", "5.7.1", "5.7.2", "medium", 5.3},
	{"/srv/booking/package-lock.json", "npm", "jsonwebtoken", "8.5.1", "9.0.0", "high", 7.6},
	{"/srv/portal/requirements.txt", "PyPI", "django", "3.2.10", "3.2.25", "high", 7.5},
	{"/srv/portal/requirements.txt", "PyPI", "pillow", "8.4.0", "10.0.1", "critical", 9.8},
	{"/srv/portal/requirements.txt", "PyPI", "requests", "2.25.1", "2.31.0", "medium", 6.1},
	{"/srv/portal/requirements.txt", "PyPI", "urllib3", "1.26.4", "1.26.18", "medium", 5.9},
	{"/opt/imaging/sbom.cdx.json", "Maven", "org.apache.logging.log4j:log4j-core", "2.14.1", "2.17.1", "critical", 10},
	{"/opt/imaging/sbom.cdx.json", "Maven", "com.fasterxml.jackson.core:jackson-databind", "2.9.10", "2.12.7", "high", 8.1},
	{"/opt/imaging/sbom.cdx.json", "Maven", "commons-text:commons-text", "1.9", "1.10.0", "critical", 9.8},
	{"/srv/intranet/go.sum", "Go", "golang.org/x/net", "0.7.0", "0.17.0", "medium", 5.3},
	{"/srv/intranet/go.sum", "Go", "golang.org/x/crypto", "0.0.0-20200622213623-75b288015ac9", "0.17.0", "medium", 5.9},
}

func packageObservations(r *rand.Rand, at time.Time) []observe.Observation {
	out := make([]observe.Observation, 0, len(packageSpecs))
	for i, p := range packageSpecs {
		ghsa := fmt.Sprintf("GHSA-%04x-%04x-%04x", 0x1000+i*7, 0x2000+i*13, 0x3000+i*17)
		cve := fmt.Sprintf("CVE-20%02d-%05d", 19+i%6, 10000+i*131)
		out = append(out, observe.Observation{Kind: observe.KindPackage, Source: "osv-scanner", Vantage: "osv-scanner", At: at,
			Attrs: map[string]any{"file": p.file, "ecosystem": p.eco, "package": p.pkg, "version": p.version,
				"vulns": []any{ghsa}, "aliases": []any{cve}, "severity": p.severity, "cvss": p.cvss,
				"fixed_versions": []any{p.fixed}, "summary": "Synthetic advisory for " + p.pkg}})
	}
	_ = r
	return out
}
