package advisory

import (
	"fmt"
	"testing"
)

func TestParseBanner(t *testing.T) {
	deb12 := Distro{"Debian", "12"}
	cases := []struct {
		b    Banner
		host Distro
		want string // ecosystem pkg version [upstream-only], or "" for none
	}{
		{Banner{"OpenSSH", "9.2p1 Debian 2+deb12u3", "protocol 2.0", nil}, Distro{}, "Debian:12 openssh 1:9.2p1-2+deb12u3"},
		{Banner{"OpenSSH", "7.9p1 Debian 10+deb10u4", "protocol 2.0", nil}, Distro{}, "Debian:10 openssh 1:7.9p1-10+deb10u4"},
		{Banner{"OpenSSH", "9.2p1 Debian 2", "", nil}, Distro{}, "Debian:12 openssh 1:9.2p1-2"},
		{Banner{"OpenSSH", "9.6p1 Debian 2", "", nil}, Distro{}, ""}, // which release? unknown
		{Banner{"OpenSSH", "9.6p1 Debian 2", "", []string{"cpe:/o:debian:debian_linux:13"}}, Distro{}, "Debian:13 openssh 1:9.6p1-2"},
		{Banner{"OpenSSH", "8.9p1 Ubuntu 3ubuntu0.6", "", nil}, Distro{}, "Ubuntu:22.04:LTS openssh 1:8.9p1-3ubuntu0.6"},
		{Banner{"OpenSSH", "9.2p1", "", nil}, deb12, ""}, // upstream version not plain numbers
		{Banner{"nginx", "1.22.1", "", nil}, deb12, "Debian:12 nginx 1.22.1 upstream-only"},
		{Banner{"nginx", "1.22.1", "", nil}, Distro{}, ""},
		{Banner{"nginx", "1.22.1", "", nil}, Distro{"Debian", ""}, "Debian:12 nginx 1.22.1 upstream-only"},
		{Banner{"Apache httpd", "2.4.62", "(Debian)", nil}, deb12, "Debian:12 apache2 2.4.62 upstream-only"},
		{Banner{"Apache httpd", "2.4.62", "(Debian)", nil}, Distro{}, ""},
		{Banner{"Samba smbd", "4.17.12-Debian", "workgroup: X", nil}, deb12, ""},
		{Banner{"Werkzeug httpd", "2.2.2", "Python 3.11.2", nil}, deb12, "PyPI werkzeug 2.2.2"},
		{Banner{"Werkzeug httpd", "2.2.2", "Debian", nil}, Distro{}, ""}, // Debian's python3-werkzeug carries its own patches
		{Banner{"Werkzeug httpd", "2.x", "", nil}, Distro{}, ""},
		{Banner{"Jenkins", "2.387.1", "", nil}, Distro{}, "Maven org.jenkins-ci.main:jenkins-core 2.387.1"},
		{Banner{"OpenSSH", "9.2p1 Debian 2+deb12u3 extra", "", nil}, Distro{}, ""},
		{Banner{"OpenSSH", "9.2p1 Debian 2+deb12u3:x", "", nil}, Distro{}, ""},
		{Banner{"Unknown thing", "1.0", "", nil}, deb12, ""},
	}
	for _, tc := range cases {
		q, ok := ParseBanner(tc.b, tc.host)
		got := ""
		if ok {
			got = q.Ecosystem + " " + q.Package + " " + q.Version
			if q.UpstreamOnly {
				got += " upstream-only"
			}
		}
		if got != tc.want {
			t.Errorf("%+v on %+v: %q, want %q", tc.b, tc.host, got, tc.want)
		}
	}
}

// A Debian revision decides nothing vigil does not know: against an
// advisory fixed in a revision of the same upstream version, an
// upstream-only version is undecided; against a newer upstream it is
// decided.
func TestUpstreamOnlyPosition(t *testing.T) {
	pos := Query{Ecosystem: "Debian:12", Package: "nginx", Version: "1.22.1", UpstreamOnly: true}.Position()
	for ev, want := range map[string]string{
		"1.22.1-9+deb12u2": "undecided",
		"1.22.1+dfsg-1":    "undecided",
		"1.24.0-1":         "-1",
		"1.22.0-4":         "1",
		"1:1.0-1":          "undecided", // another epoch than the table's: the table is wrong for it
		"1.22":             "undecided",
	} {
		c, ok := pos("ECOSYSTEM", ev)
		got := "undecided"
		if ok {
			got = fmt.Sprint(c)
		}
		if got != want {
			t.Errorf("%s: %s, want %s", ev, got, want)
		}
	}
	ssh := Query{Ecosystem: "Debian:12", Package: "openssh", Version: "1:9.2p1-2", Epoch: "1"}.Position()
	if _, ok := ssh("ECOSYSTEM", "9.3p1-1"); ok {
		t.Error("compared across epochs")
	}
	if c, ok := ssh("ECOSYSTEM", "1:9.2p1-2+deb12u3"); !ok || c != -1 {
		t.Errorf("%d %v", c, ok)
	}
}
