package software

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

func svc(host string, port int, service, product, version, extrainfo string, cpe ...string) observe.Observation {
	return observe.Observation{
		Kind: observe.KindService, Location: "downtown", Segment: "servers", SegmentRole: "servers",
		Vantage: "front-desk", VantageRole: "front-desk", Host: host, Port: port, Proto: "tcp", Source: "nmap",
		Attrs: map[string]any{"service": service, "product": product, "version": version, "extrainfo": extrainfo, "cpe": cpe, "state": "open"},
	}
}

func dbScanner(db string) *Scanner { return New(&config.Config{OSVDB: db}) }

func TestMatchServices(t *testing.T) {
	public := svc("203.0.113.10", 22, "ssh", "OpenSSH", "9.2p1 Debian 2", "protocol 2.0", "cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel")
	public.InternetFacing = true
	in := []observe.Observation{
		// patched: DSA-5586-1 and DSA-5724-1 are fixed in +deb12u2 and +deb12u3
		svc("10.10.3.4", 22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", "protocol 2.0", "cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"),
		// one update behind: regreSSHion only
		svc("10.10.3.5", 22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u2", "protocol 2.0", "cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"),
		// as bookworm shipped: both (release from the upstream version)
		public,
		// nginx on the host whose SSH banner says Debian 12: only the
		// advisory Debian has not fixed in any 1.22.1 revision counts
		svc("10.10.3.5", 443, "https", "nginx", "1.22.1", ""),
		// nginx with no distro anywhere on the host: nothing to compare
		svc("10.10.3.6", 80, "http", "nginx", "1.22.1", ""),
		// upstream PyPI package
		svc("10.10.3.7", 5000, "http", "Werkzeug httpd", "2.2.2", "Python 3.11.2"),
		svc("10.10.3.8", 5000, "http", "Werkzeug httpd", "3.0.3", "Python 3.11.2"),
		// no distro, no upstream ecosystem: nothing
		svc("10.10.3.9", 22, "ssh", "OpenSSH", "9.2p1", "protocol 2.0"),
		// Debian 11: no record in the test database names it
		svc("10.10.3.10", 22, "ssh", "OpenSSH", "8.4p1 Debian 5+deb11u3", "protocol 2.0"),
		// versions nmap could only guess
		svc("10.10.3.11", 445, "netbios-ssn", "Samba smbd", "3.X - 4.X", "workgroup: GLOW"),
		svc("10.10.3.12", 80, "http", "Apache httpd", "2.4.62", "(Debian)"),
		svc("10.10.3.13", 3389, "ms-wbt-server", "Microsoft Terminal Services", "", ""),
		// a host whose services disagree about the distro
		svc("10.10.3.14", 22, "ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.6", "protocol 2.0"),
		svc("10.10.3.14", 8080, "http", "Apache httpd", "2.4.57", "(Debian)"),
		svc("10.10.3.14", 443, "https", "nginx", "1.22.1", ""),
	}
	s := dbScanner(testDB(t))
	obs, err := s.MatchServices(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	compare(t, obs, []want{
		{target: "10.10.3.5:22", severity: "high", cvss: 8.1, vulns: []string{"DSA-5724-1"}, cves: []string{"CVE-2024-6387"},
			fixed: []string{"1:9.2p1-2+deb12u3"}},
		{target: "203.0.113.10:22", severity: "high", cvss: 8.1, vulns: []string{"DSA-5586-1", "DSA-5724-1"},
			cves: []string{"CVE-2021-41617", "CVE-2023-28531", "CVE-2023-48795", "CVE-2023-51384", "CVE-2023-51385", "CVE-2024-6387"}},
		{target: "10.10.3.5:443", severity: "unknown", vulns: []string{"DEBIAN-CVE-2024-7347"}, cves: []string{"CVE-2024-7347"}, fixed: []string{}},
		{target: "10.10.3.7:5000", severity: "high", cvss: 7.5, vulns: []string{"GHSA-2g68-c3qc-8985"}, cves: []string{"CVE-2024-34069"}},
		{target: "10.10.3.14:22", severity: "high", vulns: []string{"USN-6859-1"}, cves: []string{"CVE-2024-6387"}, fixed: []string{"1:8.9p1-3ubuntu0.10"}},
	})
	for _, o := range obs {
		if o.Target() == "203.0.113.10:22" {
			if !o.InternetFacing || o.Location != "downtown" || o.Segment != "servers" || o.VantageRole != "front-desk" || o.Proto != "tcp" {
				t.Errorf("placement not copied: %+v", o)
			}
			a := o.Attrs
			if a[AttrFile] != "nmap" || a[AttrService] != "ssh" || a[AttrProduct] != "OpenSSH" || a[AttrPackage] != "openssh" ||
				a[AttrVersion] != "1:9.2p1-2" || a[AttrEcosystem] != "Debian:12" || !strings.Contains(a[AttrMatchBasis].(string), "release from the upstream version") {
				t.Errorf("attrs %v", a)
			}
		}
		if o.Target() == "10.10.3.5:443" && !strings.Contains(o.Attrs[AttrMatchBasis].(string), "another service") {
			t.Errorf("basis %v", o.Attrs[AttrMatchBasis])
		}
	}
}

func TestMatchServicesMissingDatabase(t *testing.T) {
	db := testDB(t)
	os.RemoveAll(filepath.Join(db, "osv-scanner", "Debian"))
	obs, err := dbScanner(db).MatchServices(context.Background(), []observe.Observation{
		svc("10.10.3.5", 22, "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u2", "protocol 2.0"),
		svc("10.10.3.7", 5000, "http", "Werkzeug httpd", "2.2.2", "Python 3.11.2"),
	})
	if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "Debian/all.zip") {
		t.Errorf("err %v", err)
	}
	if len(obs) != 1 || obs[0].Target() != "10.10.3.7:5000" {
		t.Errorf("obs %v", obs)
	}
	// and nothing to look up needs no database at all
	if obs, err := dbScanner(t.TempDir()).MatchServices(context.Background(), []observe.Observation{
		svc("10.10.3.6", 80, "http", "nginx", "1.22.1", ""),
	}); err != nil || len(obs) != 0 {
		t.Errorf("%v %v", obs, err)
	}
}

func BenchmarkMatchServices(b *testing.B) {
	db := testDB(b)
	s := dbScanner(db)
	var obs []observe.Observation
	for i := range 100 {
		host := fmt.Sprintf("10.20.%d.%d", i/250, i%250+1)
		obs = append(obs,
			svc(host, 22, "ssh", "OpenSSH", []string{"9.2p1 Debian 2", "9.2p1 Debian 2+deb12u3", "8.9p1 Ubuntu 3ubuntu0.6"}[i%3], "protocol 2.0", "cpe:/a:openbsd:openssh"),
			svc(host, 443, "https", "nginx", "1.22.1", ""),
			svc(host, 5000, "http", "Werkzeug httpd", []string{"2.2.2", "3.0.3"}[i%2], "Python 3.11.2"),
		)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out, err := s.MatchServices(context.Background(), obs)
		if err != nil && !errors.Is(err, ErrNoDatabase) {
			b.Fatal(err)
		}
		if len(out) == 0 {
			b.Fatal("no matches")
		}
	}
	b.ReportMetric(float64(len(obs)), "services/op")
}
