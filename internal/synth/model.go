package synth

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// segmentRoles are the five segments every synthetic location has, in
// the order their /24s are numbered.
var segmentRoles = []string{"front-desk", "clinical", "servers", "guest", "iot"}

// stateShare spreads locations over states: the four with overlays in
// the control catalog get most of them.
var stateShare = []struct {
	state  string
	weight int
	cities []string
}{
	{"CA", 30, []string{"brentwood", "beverly-hills", "santa-monica", "pasadena", "irvine", "newport-beach", "la-jolla", "palo-alto", "walnut-creek", "sacramento", "san-jose", "fresno", "encino", "carlsbad", "temecula"}},
	{"NY", 18, []string{"upper-east-side", "soho", "tribeca", "williamsburg", "scarsdale", "great-neck", "garden-city", "white-plains", "rochester", "buffalo", "albany", "huntington"}},
	{"TX", 20, []string{"highland-park", "uptown-dallas", "plano", "frisco", "the-domain", "westlake", "river-oaks", "the-woodlands", "sugar-land", "alamo-heights", "southlake", "el-paso"}},
	{"MA", 10, []string{"back-bay", "newton", "wellesley", "cambridge", "brookline", "lexington", "worcester", "hingham"}},
	{"FL", 8, []string{"coral-gables", "boca-raton", "naples", "winter-park", "tampa-hyde-park", "palm-beach"}},
	{"IL", 4, []string{"gold-coast", "naperville", "evanston", "hinsdale"}},
	{"WA", 4, []string{"bellevue", "kirkland", "capitol-hill", "redmond"}},
	{"AZ", 3, []string{"scottsdale", "paradise-valley", "chandler"}},
	{"CO", 3, []string{"cherry-creek", "boulder", "highlands-ranch"}},
}

// location is one synthetic site: its config and the assets at it.
type location struct {
	ID, Name, State string
	// Index numbers the location; its segments are 10.A.B.0/24 derived
	// from it (see prefix).
	Index    int
	Segments []segment
	Assets   []asset
	// Firewall says how well guest and IoT are kept apart: "strict",
	// "partial" or "flat".
	Firewall string
	// Jitter is when, after 02:00, the location's nightly scan starts.
	Jitter time.Duration
}

type segment struct {
	Name, Role string
	Prefix     netip.Prefix
}

// asset is one host and the services it offers.
type asset struct {
	Addr     netip.Addr
	Segment  *segment
	Hostname string
	OS       string
	Vendor   string
	MAC      string
	Services []service
}

// service is one open port and what the follow-up checks saw there.
type service struct {
	Port            int
	Proto           string
	Name            string // nmap service name
	Product         string
	Version         string
	Tunnel          string
	TLS             map[string]any // nil: no TLS observation
	Checks          []string       // check ids that matched (vigil-ftp-anonymous, ...)
	InternetFacing  bool
	SSHPasswordAuth bool
}

// prefix returns the /24 of segment seg at location i: 10.A.B.0/24 with
// A = 1 + i/50 and B = (i%50)*5 + seg, so 300 locations fit in 10.1-10.6
// and neighbours do not overlap. The addresses are data only: nothing is
// ever scanned.
func prefix(i, seg int) netip.Prefix {
	a := byte(1 + i/50)
	b := byte((i%50)*5 + seg)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, a, b, 0}), 24)
}

// hostAddr is host number n (1-based) of a /24.
func hostAddr(p netip.Prefix, n int) netip.Addr {
	b := p.Addr().As4()
	b[3] = byte(n)
	return netip.AddrFrom4(b)
}

// vantageAddr is where the location's sensor sits in a segment: .250.
func vantageAddr(p netip.Prefix) netip.Addr { return hostAddr(p, 250) }

// makeLocations lays out n locations with assets spread so that their
// total is exactly assets.
func makeLocations(r *rand.Rand, n, assets int) []*location {
	total := 0
	for _, s := range stateShare {
		total += s.weight
	}
	used := map[string]int{}
	locs := make([]*location, n)
	// Asset counts: per-location share with ±40% spread, fixed up so the
	// sum is exact.
	counts := make([]int, n)
	base := assets / n
	sum := 0
	for i := range counts {
		c := base
		if base >= 5 {
			c = base + r.IntN(base*4/5+1) - base*2/5
		}
		counts[i] = max(c, 1)
		sum += counts[i]
	}
	for i := 0; sum != assets; i = (i + 1) % n {
		switch {
		case sum < assets:
			counts[i]++
			sum++
		case counts[i] > 1:
			counts[i]--
			sum--
		}
	}
	for i := range locs {
		// Pick a state by weight, a city in it, and number repeats.
		w := r.IntN(total)
		st := stateShare[0]
		for _, s := range stateShare {
			if w < s.weight {
				st = s
				break
			}
			w -= s.weight
		}
		city := st.cities[r.IntN(len(st.cities))]
		slug := strings.ToLower(st.state) + "-" + city
		used[slug]++
		id := slug
		if used[slug] > 1 {
			id = fmt.Sprintf("%s-%d", slug, used[slug])
		}
		l := &location{ID: id, Name: locationName(city, used[slug]), State: st.state, Index: i,
			Jitter: time.Duration(r.IntN(300)) * time.Second}
		switch f := r.IntN(10); {
		case f < 6:
			l.Firewall = "strict"
		case f < 9:
			l.Firewall = "partial"
		default:
			l.Firewall = "flat"
		}
		for s, role := range segmentRoles {
			l.Segments = append(l.Segments, segment{Name: role, Role: role, Prefix: prefix(i, s)})
		}
		l.Assets = makeAssets(r, l, counts[i])
		locs[i] = l
	}
	return locs
}

func locationName(city string, n int) string {
	words := strings.Split(city, "-")
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	name := "Lumen Aesthetics " + strings.Join(words, " ")
	if n > 1 {
		name += fmt.Sprintf(" %d", n)
	}
	return name
}

// assetKind is a kind of device a medspa has, where it sits and what it
// tends to expose. p is the probability of each optional service.
type assetKind struct {
	segment  int // index into segmentRoles
	weight   int
	prefix   string
	os       string
	vendor   string
	services func(r *rand.Rand, l *location) []service
}

func chance(r *rand.Rand, p float64) bool { return r.Float64() < p }

// weakness scales how often a location's devices carry weaknesses: the
// flat sites are also the neglected ones.
func weakness(l *location) float64 {
	switch l.Firewall {
	case "flat":
		return 2
	case "partial":
		return 1.3
	}
	return 1
}

func tlsAttrs(r *rand.Rand, l *location, host string) map[string]any {
	w := weakness(l)
	versions := []any{"TLS1.2", "TLS1.3"}
	if chance(r, 0.12*w) {
		versions = []any{"TLS1.0", "TLS1.1", "TLS1.2"}
	}
	days := 30 + r.IntN(700)
	selfSigned := chance(r, 0.25*w)
	expired := chance(r, 0.04*w)
	if expired {
		days = -1 - r.IntN(200)
	}
	var weak []any
	if chance(r, 0.08*w) {
		weak = []any{"TLS_RSA_WITH_3DES_EDE_CBC_SHA"}
	}
	bits := 2048
	if chance(r, 0.03*w) {
		bits = 1024
	}
	return map[string]any{
		"tls_versions":           versions,
		"weak_ciphers":           weak,
		"server_name":            host,
		"cert_subject":           "CN=" + host,
		"cert_issuer":            map[bool]string{true: "CN=" + host, false: "CN=R11,O=Let's Encrypt,C=US"}[selfSigned],
		"cert_days_left":         days,
		"cert_expiring_soon":     days >= 0 && days < 30,
		"cert_expired":           expired,
		"cert_not_yet_valid":     false,
		"cert_self_signed":       selfSigned,
		"cert_untrusted":         selfSigned,
		"cert_hostname_mismatch": chance(r, 0.05*w),
		"cert_key_type":          "RSA",
		"cert_key_bits":          bits,
		"cert_sig_alg":           "SHA256-RSA",
		"cert_sha1":              false,
		"cert_sha256":            fmt.Sprintf("%064x", r.Uint64()),
	}
}

var assetKinds = []assetKind{
	{segment: 0, weight: 16, prefix: "fd-pc", os: "Microsoft Windows 11", vendor: "Dell", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 135, Name: "msrpc", Product: "Microsoft Windows RPC"}, {Port: 445, Name: "microsoft-ds"}}
		if chance(r, 0.25*weakness(l)) {
			s = append(s, service{Port: 3389, Name: "ms-wbt-server", Product: "Microsoft Terminal Services"})
		}
		if chance(r, 0.04*weakness(l)) {
			s = append(s, service{Port: 5900, Name: "vnc", Product: "TightVNC", Checks: []string{"vigil-vnc-noauth"}})
		}
		return s
	}},
	{segment: 0, weight: 5, prefix: "printer", os: "HP embedded", vendor: "HP", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 80, Name: "http", Product: "HP HTTP Server"}, {Port: 9100, Name: "jetdirect"}}
		if chance(r, 0.5*weakness(l)) {
			s = append(s, service{Port: 161, Proto: "udp", Name: "snmp", Checks: []string{"vigil-snmp-public"}})
		}
		if chance(r, 0.15*weakness(l)) {
			s = append(s, service{Port: 21, Name: "ftp", Product: "HP JetDirect ftpd", Checks: []string{"vigil-ftp-anonymous"}})
		}
		if chance(r, 0.1*weakness(l)) {
			s = append(s, service{Port: 23, Name: "telnet"})
		}
		return s
	}},
	{segment: 1, weight: 14, prefix: "tx-room", os: "Microsoft Windows 10", vendor: "Lenovo", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 445, Name: "microsoft-ds"}}
		if chance(r, 0.15*weakness(l)) {
			s = append(s, service{Port: 3389, Name: "ms-wbt-server", Product: "Microsoft Terminal Services"})
		}
		return s
	}},
	{segment: 1, weight: 5, prefix: "laser", os: "Linux 4.x", vendor: "Candela", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 443, Name: "https", Tunnel: "ssl", Product: "lighttpd", TLS: map[string]any{}}}
		if chance(r, 0.2*weakness(l)) {
			s = append(s, service{Port: 23, Name: "telnet", Product: "BusyBox telnetd"})
		}
		if chance(r, 0.2*weakness(l)) {
			s = append(s, service{Port: 22, Name: "ssh", Product: "Dropbear sshd", Version: "2019.78", SSHPasswordAuth: true})
		}
		return s
	}},
	{segment: 1, weight: 4, prefix: "imaging", os: "Microsoft Windows 10", vendor: "Canfield", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 445, Name: "microsoft-ds"}, {Port: 80, Name: "http", Product: "Microsoft IIS httpd", Version: "10.0"}}
		if chance(r, 0.1*weakness(l)) {
			s = append(s, service{Port: 80, Name: "http", Product: "Microsoft IIS httpd", Version: "10.0", Checks: []string{"vigil-http-login-plaintext"}})
		}
		return s
	}},
	{segment: 2, weight: 3, prefix: "nas", os: "Linux 5.x", vendor: "Synology", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 445, Name: "microsoft-ds", Product: "Samba smbd"}, {Port: 5001, Name: "https", Tunnel: "ssl", Product: "nginx", TLS: map[string]any{}}}
		if chance(r, 0.2*weakness(l)) {
			s = append(s, service{Port: 445, Name: "microsoft-ds", Checks: []string{"vigil-smb-guest"}})
		}
		if chance(r, 0.3*weakness(l)) {
			s = append(s, service{Port: 22, Name: "ssh", Product: "OpenSSH", Version: "8.2p1", SSHPasswordAuth: true})
		}
		return s
	}},
	{segment: 2, weight: 2, prefix: "emr", os: "Microsoft Windows Server 2019", vendor: "VMware", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 443, Name: "https", Tunnel: "ssl", Product: "Microsoft IIS httpd", TLS: map[string]any{}}, {Port: 1433, Name: "ms-sql-s", Product: "Microsoft SQL Server 2019"}}
		if chance(r, 0.3*weakness(l)) {
			s = append(s, service{Port: 3389, Name: "ms-wbt-server", Product: "Microsoft Terminal Services"})
		}
		return s
	}},
	{segment: 2, weight: 2, prefix: "dc", os: "Microsoft Windows Server 2016", vendor: "Dell", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 53, Name: "domain"}, {Port: 88, Name: "kerberos-sec"}, {Port: 445, Name: "microsoft-ds"}, {Port: 636, Name: "ldapssl", Tunnel: "ssl", TLS: map[string]any{}}}
		if chance(r, 0.5*weakness(l)) {
			s = append(s, service{Port: 389, Name: "ldap", Product: "Microsoft Windows Active Directory LDAP"})
		}
		if chance(r, 0.4*weakness(l)) {
			s = append(s, service{Port: 445, Name: "microsoft-ds", Checks: []string{"vigil-smb-signing-not-required"}})
		}
		return s
	}},
	{segment: 2, weight: 1, prefix: "booking", os: "Linux 5.x", vendor: "VMware", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 443, Name: "https", Tunnel: "ssl", Product: "nginx", Version: "1.18.0", TLS: map[string]any{}, InternetFacing: chance(r, 0.3)}}
		if chance(r, 0.15*weakness(l)) {
			s = append(s, service{Port: 6379, Name: "redis", Product: "Redis key-value store", Version: "5.0.7", Checks: []string{"vigil-redis-unauth"}})
		}
		return s
	}},
	{segment: 3, weight: 18, prefix: "guest", os: "Apple iOS", vendor: "Apple", services: func(r *rand.Rand, l *location) []service {
		if chance(r, 0.2) {
			return []service{{Port: 62078, Name: "iphone-sync"}}
		}
		return nil
	}},
	{segment: 4, weight: 6, prefix: "cam", os: "Linux 3.x", vendor: "Hikvision", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 80, Name: "http", Product: "Hikvision IP camera httpd"}, {Port: 554, Name: "rtsp"}}
		if chance(r, 0.2*weakness(l)) {
			s = append(s, service{Port: 23, Name: "telnet", Product: "BusyBox telnetd"})
		}
		return s
	}},
	{segment: 4, weight: 4, prefix: "thermostat", os: "embedded", vendor: "Ecobee", services: func(r *rand.Rand, l *location) []service {
		s := []service{{Port: 1883, Name: "mqtt"}}
		if chance(r, 0.3*weakness(l)) {
			s[0].Checks = []string{"vigil-mqtt-anonymous"}
		}
		return s
	}},
	{segment: 4, weight: 3, prefix: "tv", os: "Android TV", vendor: "Sony", services: func(r *rand.Rand, l *location) []service {
		return []service{{Port: 8008, Name: "http", Product: "Google Chromecast httpd"}}
	}},
}

func makeAssets(r *rand.Rand, l *location, n int) []asset {
	total := 0
	for _, k := range assetKinds {
		total += k.weight
	}
	next := make([]int, len(segmentRoles)) // last host number used per segment
	out := make([]asset, 0, n)
	for i := 0; i < n; i++ {
		w := r.IntN(total)
		k := assetKinds[0]
		for _, c := range assetKinds {
			if w < c.weight {
				k = c
				break
			}
			w -= c.weight
		}
		seg := &l.Segments[k.segment]
		if next[k.segment] >= 240 { // the /24 is full: put it in the next segment with room
			for s := range next {
				if next[s] < 240 {
					seg = &l.Segments[s]
					k.segment = s
					break
				}
			}
		}
		next[k.segment]++
		addr := hostAddr(seg.Prefix, 10+next[k.segment])
		a := asset{
			Addr: addr, Segment: seg, OS: k.os, Vendor: k.vendor,
			Hostname: fmt.Sprintf("%s-%02d.%s.lumen.example", k.prefix, next[k.segment], l.ID),
			MAC:      fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(l.Index>>8), byte(l.Index), byte(k.segment), byte(next[k.segment]), byte(r.IntN(256))),
		}
	services:
		for _, s := range k.services(r, l) {
			if s.Proto == "" {
				s.Proto = "tcp"
			}
			if s.TLS != nil {
				s.TLS = tlsAttrs(r, l, addr.String())
			}
			for j := range a.Services { // a check on a port already listed
				if a.Services[j].Port == s.Port && a.Services[j].Proto == s.Proto {
					a.Services[j].Checks = append(a.Services[j].Checks, s.Checks...)
					continue services
				}
			}
			a.Services = append(a.Services, s)
		}
		out = append(out, a)
	}
	return out
}

// observations returns what a complete scan of l at time at sees: a host
// observation per asset, its services with their TLS and check results
// (the main scan, from the front desk), and the segmentation test's
// probes from the front-desk and guest vantage points. keep, when not nil,
// drops service-level observations of targets it says no to, so that the
// stored facts agree with the findings of that day.
func (l *location) observations(at time.Time, keep func(target string) bool) []observe.Observation {
	fd, guest := &l.Segments[0], &l.Segments[3]
	base := observe.Observation{Location: l.ID, Vantage: fd.Name, VantageRole: fd.Role, At: at}
	var out []observe.Observation
	for _, a := range l.Assets {
		o := base
		o.Kind, o.Host, o.Source = observe.KindHost, a.Addr.String(), "nmap"
		o.Segment, o.SegmentRole = a.Segment.Name, a.Segment.Role
		o.Attrs = map[string]any{"hostname": a.Hostname, "mac": a.MAC, "mac_vendor": a.Vendor, "os": a.OS}
		out = append(out, o)
		for _, s := range a.Services {
			target := fmt.Sprintf("%s:%d", a.Addr, s.Port)
			if keep != nil && !keep(target) {
				continue
			}
			so := o
			so.Kind, so.Port, so.Proto, so.InternetFacing = observe.KindService, s.Port, s.Proto, s.InternetFacing
			so.Attrs = map[string]any{"service": s.Name, "product": s.Product, "version": s.Version, "state": "open"}
			if s.Tunnel != "" {
				so.Attrs["tunnel"] = s.Tunnel
			}
			out = append(out, so)
			if s.TLS != nil {
				to := so
				to.Kind, to.Source, to.Attrs = observe.KindTLS, "tls", s.TLS
				out = append(out, to)
			}
			for _, c := range s.Checks {
				co := so
				co.Kind, co.Source = observe.KindCheck, "nuclei"
				co.Attrs = map[string]any{"check": c, "name": c, "engine": "nuclei", "details": "matched " + c}
				out = append(out, co)
			}
			if s.SSHPasswordAuth {
				co := so
				co.Kind, co.Source = observe.KindCheck, "ssh"
				co.Attrs = map[string]any{"check": "ssh-password-auth", "name": "SSH password authentication", "engine": "native",
					"details": "offers password login", "host_key_type": "ssh-ed25519", "host_key_sha256": "SHA256:" + a.MAC}
				out = append(out, co)
			}
		}
	}
	// The segmentation test: from each vantage point into every other
	// segment, the hosts with services; whether they answer depends on
	// the site's firewall.
	for _, v := range []*segment{fd, guest} {
		for _, a := range l.Assets {
			if a.Segment == v || len(a.Services) == 0 {
				continue
			}
			for _, s := range a.Services {
				if s.Proto != "tcp" {
					continue
				}
				state := "filtered"
				if l.reachable(v, a.Segment, s.Port) {
					state = "open"
				}
				ro := observe.Observation{Kind: observe.KindReach, Location: l.ID, Segment: a.Segment.Name, SegmentRole: a.Segment.Role,
					Vantage: v.Name, VantageRole: v.Role, Host: a.Addr.String(), Port: s.Port, Proto: "tcp", Source: "nmap", At: at,
					Attrs: map[string]any{"state": state}}
				if state == "open" {
					ro.Attrs["service"] = s.Name
				}
				out = append(out, ro)
			}
		}
	}
	return out
}

// reachable is the synthetic firewall: what from may reach in to.
func (l *location) reachable(from, to *segment, port int) bool {
	if allowedPort(from.Role, to.Role, port) {
		return true
	}
	switch l.Firewall {
	case "flat":
		return true
	case "partial":
		// Guest is isolated, but the staff VLANs and IoT see each other.
		return from.Role != "guest" && to.Role != "guest"
	}
	return false
}

// policy is every location's allowed flows (written to the config).
var policy = []struct {
	From, To string
	Ports    []int
}{
	{"front-desk", "servers", []int{53, 88, 443, 445, 636}},
	{"clinical", "servers", []int{53, 88, 443, 445, 636, 1433}},
	{"front-desk", "clinical", []int{445}},
	{"front-desk", "iot", []int{80, 554}},
}

func allowedPort(from, to string, port int) bool {
	for _, p := range policy {
		if p.From == from && p.To == to {
			for _, q := range p.Ports {
				if q == port {
					return true
				}
			}
		}
	}
	return false
}
