package advisory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/osv-scalibr/semantic"
)

// go test -fuzz FuzzParseBanner ./collectors/software/internal/advisory
func FuzzParseBanner(f *testing.F) {
	for _, s := range [][6]string{
		{"OpenSSH", "9.2p1 Debian 2+deb12u3", "protocol 2.0", "cpe:/o:debian:debian_linux:12", "", ""},
		{"OpenSSH", "8.9p1 Ubuntu 3ubuntu0.6", "protocol 2.0", "", "", ""},
		{"nginx", "1.22.1", "", "", "Debian", "12"},
		{"Apache httpd", "2.4.62", "(Debian)", "cpe:/a:apache:http_server:2.4.62", "Debian", ""},
		{"Werkzeug httpd", "2.2.2", "Python 3.11.2", "", "", ""},
		{"Samba smbd", "3.X - 4.X", "workgroup: GLOW", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, product, version, extrainfo, cpe, distro, release string) {
		q, ok := ParseBanner(Banner{product, version, extrainfo, []string{cpe}}, Distro{distro, release})
		if !ok {
			return
		}
		if q.Ecosystem == "" || q.Package == "" || q.Version == "" {
			t.Fatalf("incomplete query %+v", q)
		}
		if !q.UpstreamOnly {
			if _, err := semantic.Parse(q.Version, q.Ecosystem); err != nil {
				t.Fatalf("query version %q does not parse in %s: %v", q.Version, q.Ecosystem, err)
			}
		}
		pos := q.Position()
		for _, ev := range []string{"0", "1:9.2p1-2+deb12u3", "1.22.1-9", "3.0.3", version} {
			pos("ECOSYSTEM", ev)
			pos("SEMVER", ev)
		}
	})
}

// go test -fuzz FuzzRecord ./collectors/software/internal/advisory
func FuzzRecord(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/osv/*.json")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "1:9.2p1-2")
		f.Add(data, "2.28.1")
	}
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.2"},{"fixed":"x"}]}],"versions":["1.0.0"]}]}`), "1.1.0")
	f.Fuzz(func(t *testing.T, data []byte, version string) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		rating, score := r.Rate()
		if Rank(rating) == 0 && rating != Unknown || score < 0 || score > 10 {
			t.Fatalf("rating %q score %v", rating, score)
		}
		r.CVEs()
		r.Text()
		for _, a := range r.Affected {
			eco, name := a.Package.Ecosystem, a.Package.Name
			hit := r.AffectedBy(eco, name, version, ExactPosition(eco, version))
			if hit && r.Withdrawn != "" {
				t.Fatal("withdrawn record matched")
			}
			SortVersions(eco, r.FixedVersions(eco, name))
			Query{Ecosystem: eco, Package: name, Version: version, UpstreamOnly: true}.Affected(r)
		}
	})
}
