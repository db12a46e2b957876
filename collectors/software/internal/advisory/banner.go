package advisory

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// product says how the software behind an nmap product name is packaged,
// so that a banner can become a package version in an OSV ecosystem.
// Only products whose packaging vigil can state exactly are listed: a
// Debian/Ubuntu source package with its epoch, and/or an upstream package
// in an ecosystem OSV tracks with comparable versions. Upstream C daemons
// (OpenSSH, nginx, Apache httpd, ...) have no such ecosystem: their
// records are distro advisories or git commit ranges, so a banner without
// a distro says nothing vigil can compare.
type product struct {
	// source is the Debian and Ubuntu source package, epoch its epoch
	// ("" when it has none).
	source, epoch string
	// releases maps distro → upstream version → the one release that
	// ships it, for banners that carry no release marker.
	releases map[string]map[string]string
	// ecosystem and pkg name the upstream package, for banners without
	// a distro.
	ecosystem, pkg string
}

// products is keyed by nmap's product name, lower-cased. It is read-only.
var products = map[string]product{
	"openssh": {source: "openssh", epoch: "1", releases: map[string]map[string]string{
		"Debian": {"7.9p1": "10", "8.4p1": "11", "9.2p1": "12"},
		"Ubuntu": {"8.2p1": "20.04", "8.9p1": "22.04", "9.6p1": "24.04"},
	}},
	"nginx": {source: "nginx", releases: map[string]map[string]string{
		"Debian": {"1.14.2": "10", "1.18.0": "11", "1.22.1": "12"},
	}},
	"apache httpd":     {source: "apache2"},
	"samba smbd":       {source: "samba", epoch: "2"},
	"isc bind":         {source: "bind9", epoch: "1"},
	"postfix smtpd":    {source: "postfix"},
	"dovecot imapd":    {source: "dovecot", epoch: "1"},
	"dovecot pop3d":    {source: "dovecot", epoch: "1"},
	"vsftpd":           {source: "vsftpd"},
	"exim smtpd":       {source: "exim4"},
	"werkzeug httpd":   {ecosystem: "PyPI", pkg: "werkzeug"},
	"gunicorn":         {ecosystem: "PyPI", pkg: "gunicorn"},
	"tornado httpd":    {ecosystem: "PyPI", pkg: "tornado"},
	"twistedweb httpd": {ecosystem: "PyPI", pkg: "twisted"},
	"jenkins":          {ecosystem: "Maven", pkg: "org.jenkins-ci.main:jenkins-core"},
}

var (
	// "9.2p1 Debian 2+deb12u3", "8.9p1 Ubuntu 3ubuntu0.6"
	distroVersion = regexp.MustCompile(`^(\S+) (Debian|Ubuntu)[ -](\S+)$`)
	debianRelease = regexp.MustCompile(`(?:deb|bpo)(\d{1,2})(?:u\d|\+|$)`)
	ubuntuRelease = regexp.MustCompile(`(?:^|[^0-9])(\d{2}\.(?:04|10))(?:[^0-9]|$)`)
	distroCPE     = regexp.MustCompile(`^cpe:/o:(debian:debian_linux|canonical:ubuntu_linux)(?::([0-9.]+))?`)
	numericDotted = regexp.MustCompile(`^[0-9]+(\.[0-9]+){1,3}$`)
	debianVersion = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~]*(-[A-Za-z0-9.+~]+)?$`)
)

// Banner is what one nmap service observation says about its software.
type Banner struct {
	Product, Version, ExtraInfo string
	CPEs                        []string
}

// Distro is a distro (and release, when known) a banner names. Name "?"
// stands for services on one host that disagree.
type Distro struct{ Name, Release string }

// Distro reads the distro a banner names itself: in its version ("9.2p1
// Debian 2+deb12u3"), its extra info ("(Debian)") or an OS CPE.
func (b Banner) Distro() Distro {
	var h Distro
	if m := distroVersion.FindStringSubmatch(strings.TrimSpace(b.Version)); m != nil {
		h = Distro{m[2], releaseMarker(m[2], m[3])}
	}
	for _, d := range []string{"Debian", "Ubuntu"} {
		if h.Name == "" && strings.Contains(strings.ToLower(b.ExtraInfo), strings.ToLower(d)) {
			h.Name = d
		}
	}
	for _, c := range b.CPEs {
		m := distroCPE.FindStringSubmatch(c)
		if m == nil {
			continue
		}
		d := "Debian"
		if strings.HasPrefix(m[1], "canonical") {
			d = "Ubuntu"
		}
		if h.Name == "" {
			h.Name = d
		}
		if h.Name == d && h.Release == "" && m[2] != "" {
			h.Release = normRelease(d, m[2])
		}
	}
	return h
}

// releaseMarker finds the release in a package revision: Debian's
// security and backport revisions say it (2+deb12u3, 1~bpo11+1), some
// Ubuntu ones do (0ubuntu0.22.04.1).
func releaseMarker(distro, revision string) string {
	switch distro {
	case "Debian":
		if m := debianRelease.FindStringSubmatch(revision); m != nil {
			return m[1]
		}
	case "Ubuntu":
		if m := ubuntuRelease.FindStringSubmatch(revision); m != nil {
			return m[1]
		}
	}
	return ""
}

func normRelease(distro, r string) string {
	if distro == "Debian" {
		r, _, _ = strings.Cut(r, ".") // CPEs may say 12.5
	}
	return r
}

// ecosystemOf is the OSV ecosystem of a distro release.
func ecosystemOf(distro, release string) string {
	if distro == "Ubuntu" {
		if y, m, ok := strings.Cut(release, "."); ok && m == "04" {
			if n, err := strconv.Atoi(y); err == nil && n%2 == 0 {
				return "Ubuntu:" + release + ":LTS"
			}
		}
		return "Ubuntu:" + release
	}
	return distro + ":" + release
}

// Query is a package version to look up, derived from a banner.
type Query struct {
	Ecosystem, Package, Version string
	// UpstreamOnly: the banner gave the upstream version but not the
	// distro revision; Version is that upstream version (with Epoch, the
	// package's epoch, in front). Only records that affect every
	// revision of it count.
	UpstreamOnly bool
	Epoch        string
	// Basis says, for people, how the banner became this version.
	Basis string
}

// ParseBanner maps a banner to a package version, using host (the distro
// other services on the same host named) when the banner names none. ok
// is false when vigil cannot state the package and version exactly
// enough to compare: then nothing is claimed.
func ParseBanner(b Banner, host Distro) (q Query, ok bool) {
	p, known := products[strings.ToLower(strings.TrimSpace(b.Product))]
	ver := strings.TrimSpace(b.Version)
	if !known || ver == "" {
		return Query{}, false
	}
	if host.Name == "?" {
		host = Distro{}
	}
	upstream, revision := ver, ""
	if m := distroVersion.FindStringSubmatch(ver); m != nil {
		upstream, revision = m[1], m[3]
	}
	own := b.Distro()
	h, basis := own, "banner"
	if h.Name == "" && host.Name != "" {
		h, basis = host, "distro named by another service on the host"
	}
	if h.Release == "" && host.Name == h.Name {
		h.Release = host.Release
	}
	if h.Name != "" && p.source != "" {
		release, relBasis := h.Release, ""
		if release == "" {
			release, relBasis = p.releases[h.Name][upstream], "; release from the upstream version it ships"
		}
		if release == "" {
			return Query{}, false
		}
		q = Query{Ecosystem: ecosystemOf(h.Name, release), Package: p.source, Epoch: p.epoch}
		epoch := ""
		if p.epoch != "" {
			epoch = p.epoch + ":"
		}
		if revision != "" {
			q.Version = epoch + upstream + "-" + revision
			if !debianVersion.MatchString(q.Version) {
				return Query{}, false
			}
			if _, err := semantic.Parse(q.Version, h.Name); err != nil {
				return Query{}, false
			}
			q.Basis = fmt.Sprintf("%s %s package version from the banner (%s)%s", h.Name, release, basis, relBasis)
			return q, true
		}
		if !numericDotted.MatchString(upstream) {
			return Query{}, false
		}
		q.Version, q.UpstreamOnly = epoch+upstream, true
		q.Basis = fmt.Sprintf("upstream version %s from the banner, %s %s from the %s%s; only advisories affecting every %s revision of it count",
			upstream, h.Name, release, basis, relBasis, h.Name)
		return q, true
	}
	if p.ecosystem != "" && own.Name == "" && numericDotted.MatchString(ver) {
		return Query{Ecosystem: p.ecosystem, Package: p.pkg, Version: ver,
			Basis: fmt.Sprintf("%s package %s %s from the banner", p.ecosystem, p.pkg, ver)}, true
	}
	return Query{}, false
}

// Affected reports whether the record affects the queried version.
func (q Query) Affected(r *Record) bool {
	exact := q.Version
	if q.UpstreamOnly {
		exact = ""
	}
	return r.AffectedBy(q.Ecosystem, q.Package, exact, q.Position())
}

// Position places the query's version against a record's events.
func (q Query) Position() Position {
	if !q.UpstreamOnly {
		exact := ExactPosition(q.Ecosystem, q.Version)
		if p := q.Ecosystem; strings.HasPrefix(p, "Debian:") || strings.HasPrefix(p, "Ubuntu:") {
			// A record whose versions carry another epoch than the one
			// vigil assumed means vigil's table is wrong for it: claim
			// nothing rather than compare across epochs.
			return func(rt, ev string) (int, bool) {
				if epochOf(ev) != q.Epoch {
					return 0, false
				}
				return exact(rt, ev)
			}
		}
		return exact
	}
	ours := numericPrefix(strings.TrimPrefix(q.Version, q.Epoch+":"))
	return func(rt, ev string) (int, bool) {
		if rt != "ECOSYSTEM" {
			return 0, false
		}
		if epochOf(ev) != q.Epoch {
			return 0, false // as above: vigil's epoch is wrong for this record
		}
		up := strings.TrimPrefix(ev, epochOf(ev)+":")
		if i := strings.LastIndex(up, "-"); i >= 0 {
			up = up[:i]
		}
		theirs := numericPrefix(up)
		// Every installed revision of upstream version U sorts like U
		// against ev only when their numeric components differ before
		// either runs out; otherwise (1.22.1 against 1.22.1-9+deb12u2,
		// or 1.22.1+dfsg) the revision decides, and vigil does not know
		// it.
		for i := 0; i < len(ours) && i < len(theirs); i++ {
			if ours[i] != theirs[i] {
				if ours[i] < theirs[i] {
					return -1, true
				}
				return 1, true
			}
		}
		return 0, false
	}
}

// epochOf is a Debian version's epoch, "" when it has none.
func epochOf(v string) string {
	if e, _, ok := strings.Cut(v, ":"); ok {
		return e
	}
	return ""
}

// numericPrefix reads the leading dot-separated numbers of a version:
// 1.22.1+dfsg → [1 22 1], 9.2p1 → [9 2].
func numericPrefix(v string) []int {
	var out []int
	for part := range strings.SplitSeq(v, ".") {
		i := 0
		for i < len(part) && part[i] >= '0' && part[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 {
			break
		}
		n, _ := strconv.Atoi(part[:i])
		out = append(out, n)
		if i < len(part) {
			break
		}
	}
	return out
}
