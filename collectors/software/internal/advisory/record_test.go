package advisory

import (
	"slices"
	"testing"
)

func TestAffectedBy(t *testing.T) {
	r, err := Parse([]byte(`{"id":"GHSA-test","affected":[
	  {"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.5"},{"introduced":"2.0.0"},{"last_affected":"2.1.0"}]}]},
	  {"package":{"ecosystem":"PyPI","name":"Zope.Interface"},"versions":["5.0"],"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"6.0"},{"fixed":"6.1rc1"}]}]},
	  {"package":{"ecosystem":"Go","name":"example.com/m"},"ranges":[{"type":"GIT","repo":"https://example.com/m","events":[{"introduced":"0"}]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		eco, name, version string
		want               bool
	}{
		{"npm", "a", "1.0.4", true},
		{"npm", "a", "1.0.5", false},
		{"npm", "a", "1.9.0", false},
		{"npm", "a", "2.0.0", true},
		{"npm", "a", "2.1.0", true},
		{"npm", "a", "2.1.1", false},
		{"npm", "b", "1.0.0", false},
		{"PyPI", "zope-interface", "5.0", true}, // listed version, PEP 503 name
		{"PyPI", "zope_interface", "6.0.1", true},
		{"PyPI", "zope.interface", "6.1", false},
		{"PyPI", "zope.interface", "6.1rc1", false},
		{"Go", "example.com/m", "v1.0.0", false}, // GIT ranges name commits: never claimed
	} {
		if got := r.AffectedBy(tc.eco, tc.name, tc.version, ExactPosition(tc.eco, tc.version)); got != tc.want {
			t.Errorf("%s %s %s: %v", tc.eco, tc.name, tc.version, got)
		}
	}
	r.Withdrawn = "2024-01-01T00:00:00Z"
	if r.AffectedBy("npm", "a", "1.0.4", ExactPosition("npm", "1.0.4")) {
		t.Error("withdrawn record matched")
	}
}

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		json, rating string
		score        float64
	}{
		{`{"id":"X","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}`, Critical, 9.8},
		{`{"id":"X","severity":[{"type":"CVSS_V3","score":"CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"}]}`, Medium, 6.1},
		{`{"id":"X","severity":[{"type":"CVSS_V2","score":"AV:N/AC:L/Au:N/C:P/I:P/A:P"}]}`, High, 7.5},
		{`{"id":"X","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}`, Critical, 9.3},
		{`{"id":"X","database_specific":{"severity":"MODERATE"}}`, Medium, 0},
		{`{"id":"X","severity":[{"type":"Ubuntu","score":"negligible"}]}`, Low, 0},
		{`{"id":"X","affected":[{"ecosystem_specific":{"severity":"HIGH"}}]}`, High, 0},
		{`{"id":"X","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}],"database_specific":{"severity":"HIGH"}}`, High, 4.3},
		{`{"id":"X","severity":[{"type":"CVSS_V3","score":"garbage"}]}`, Unknown, 0},
		{`{"id":"X"}`, Unknown, 0},
	} {
		r, err := Parse([]byte(tc.json))
		if err != nil {
			t.Fatal(err)
		}
		rating, score := r.Rate()
		if rating != tc.rating || score < tc.score-0.05 || score > tc.score+0.05 {
			t.Errorf("%s: %s %.1f, want %s %.1f", tc.json, rating, score, tc.rating, tc.score)
		}
	}
}

func TestCVEsAndText(t *testing.T) {
	r, _ := Parse([]byte(`{"id":"DSA-1","aliases":["GHSA-x","CVE-2024-2"],"upstream":["CVE-2024-1","CVE-2024-2"],"details":"First sentence. Second."}`))
	if got := r.CVEs(); !slices.Equal(got, []string{"CVE-2024-2", "CVE-2024-1"}) {
		t.Errorf("cves %v", got)
	}
	if r.Text() != "First sentence." {
		t.Errorf("text %q", r.Text())
	}
	if _, err := Parse([]byte(`{"summary":"no id"}`)); err == nil {
		t.Error("record without id accepted")
	}
}

func TestSortVersions(t *testing.T) {
	vs := []string{"1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u10", "1:9.2p1-2"}
	SortVersions("Debian:12", vs)
	if !slices.Equal(vs, []string{"1:9.2p1-2", "1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u10"}) {
		t.Errorf("%v", vs)
	}
}
