package rules

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// SegmentPolicy is what segmentation judgement needs to know about one
// location: its segments and the flows its policy allows.
type SegmentPolicy struct {
	Location string
	Segments []string
	Roles    map[string]string
	// Allow lists allowed flows. To is a segment of this location, or
	// LOCATION/SEGMENT for a flow to another location.
	Allow []AllowedFlow
	// RemoteRoles are the roles of other locations' segments, keyed
	// LOCATION/SEGMENT, for the severity of cross-location findings.
	RemoteRoles map[string]string
}

// AllowedFlow is one allowed flow; no Ports means any port.
type AllowedFlow struct {
	From, To string
	Ports    []int
}

// Native evaluators: rules whose judgement is Go code over all of a
// location's observations rather than a CEL expression over one.
const (
	NativeSegmentation  = "segmentation"   // reachability from a vantage point against the policy
	NativeCrossLocation = "cross-location" // reachability into another location's segments
	NativeSharedL2      = "shared-l2"      // two segments in one broadcast domain
	NativeMixedRoles    = "mixed-roles"    // ePHI systems alongside guest or IoT devices
	NativeMultiHomed    = "multi-homed"    // one machine answering in two segments
)

// NativeEvaluators lists every native evaluator a rule may name.
var NativeEvaluators = []string{NativeSegmentation, NativeCrossLocation, NativeSharedL2, NativeMixedRoles, NativeMultiHomed}

// allows reports whether the policy lets from reach to on port.
func (p SegmentPolicy) allows(from, to string, port int) bool {
	for _, f := range p.Allow {
		if f.From == from && f.To == to && (len(f.Ports) == 0 || slices.Contains(f.Ports, port)) {
			return true
		}
	}
	return false
}

// allowsAny reports whether the policy lets from reach to on every port.
func (p SegmentPolicy) allowsAny(from, to string) bool {
	for _, f := range p.Allow {
		if f.From == from && f.To == to && len(f.Ports) == 0 {
			return true
		}
	}
	return false
}

func (p SegmentPolicy) role(seg string) string {
	if r, ok := p.Roles[seg]; ok {
		return r
	}
	return p.RemoteRoles[seg]
}

// pairData is what the observations say about one (from, to) pair.
type pairData struct {
	reached                        map[string]observe.Reach // host:port/proto
	probes, open, closed, filtered int
	hosts                          map[string]bool
}

// Segmentation builds the reachability matrix of one location and the
// findings of the native segmentation rules:
//
//   - net.segmentation-violation: from a vantage point in one segment,
//     something the policy does not allow answered in another segment
//     (target FROM->TO);
//   - cross-location reach: the same into another location's segment
//     (target FROM->LOCATION/SEGMENT);
//   - shared broadcast domain: hosts of two segments are layer-2
//     neighbours of the same sensor interface (target A<->B);
//   - mixed roles: ePHI systems alongside guest or IoT devices in one
//     segment (target SEGMENT);
//   - multi-homed hosts: one machine (same SSH host key, self-signed
//     certificate or MAC) answering in two segments (target A<->B).
//
// Pairs whose from segment had no vantage point in this scan are not
// assessed, unless a shared broadcast domain or a multi-homed host proves
// them reachable.
func (e *Engine) Segmentation(p SegmentPolicy, obs []observe.Observation, now time.Time) (observe.Matrix, []observe.Finding) {
	m := observe.Matrix{Location: p.Location, Segments: slices.Clone(p.Segments), Vantages: []string{}}
	pairs := map[[2]string]*pairData{}
	pair := func(from, to string) *pairData {
		k := [2]string{from, to}
		if pairs[k] == nil {
			pairs[k] = &pairData{reached: map[string]observe.Reach{}, hosts: map[string]bool{}}
		}
		return pairs[k]
	}
	vantages := map[string]bool{}
	var local []observe.Observation
	for _, o := range obs {
		if o.Location != p.Location {
			continue
		}
		local = append(local, o)
		if o.Vantage == "" {
			continue
		}
		vantages[o.Vantage] = true
		to := o.Segment
		if tl, _ := o.Attrs["to_location"].(string); tl != "" && tl != p.Location {
			to = tl + "/" + o.Segment
		}
		if to == "" || to == o.Vantage {
			continue
		}
		svc, _ := o.Attrs["service"].(string)
		r := observe.Reach{Host: o.Host, Port: o.Port, Proto: o.Proto, Service: svc, Allowed: p.allows(o.Vantage, to, o.Port)}
		key := net.JoinHostPort(o.Host, strconv.Itoa(o.Port)) + "/" + o.Proto
		switch o.Kind {
		case observe.KindService:
			pd := pair(o.Vantage, to)
			if prev, ok := pd.reached[key]; !ok || prev.Service == "" {
				pd.reached[key] = r
			}
		case observe.KindReach:
			pd := pair(o.Vantage, to)
			pd.probes++
			pd.hosts[o.Host] = true
			switch st, _ := o.Attrs["state"].(string); st {
			case "open":
				pd.open++
				if _, ok := pd.reached[key]; !ok {
					pd.reached[key] = r
				}
			case "closed":
				pd.closed++
			default:
				pd.filtered++
			}
		}
	}
	for v := range vantages {
		m.Vantages = append(m.Vantages, v)
	}
	sort.Strings(m.Vantages)

	var findings []observe.Finding
	l2, l2Findings := e.sharedL2(p, local, now)
	findings = append(findings, l2Findings...)
	bridged, mhFindings := e.multiHomed(p, obs, now)
	findings = append(findings, mhFindings...)
	findings = append(findings, e.mixedRoles(p, local, now)...)

	// The location's own segments, then every other location's segment a
	// vantage point here probed.
	var remote []string
	for k := range pairs {
		if strings.Contains(k[1], "/") && !slices.Contains(remote, k[1]) {
			remote = append(remote, k[1])
		}
	}
	sort.Strings(remote)
	for _, from := range p.Segments {
		for _, to := range append(slices.Clone(p.Segments), remote...) {
			if from == to {
				continue
			}
			isRemote := strings.Contains(to, "/")
			pd := pairs[[2]string{from, to}]
			if isRemote && pd == nil {
				continue
			}
			if pd == nil {
				pd = &pairData{reached: map[string]observe.Reach{}, hosts: map[string]bool{}}
			}
			cell := e.cell(p, from, to, pd, vantages[from])
			if why, ok := l2[unordered(from, to)]; ok && !vantages[from] {
				cell.Inferred = append(cell.Inferred, why)
			}
			if why, ok := bridged[unordered(from, to)]; ok && !vantages[from] {
				cell.Inferred = append(cell.Inferred, why)
			}
			if !vantages[from] && len(cell.Inferred) > 0 {
				if cell.AllowsAny {
					cell.Status = observe.CellAllowed
				} else {
					cell.Status = observe.CellViolation
				}
			}
			if isRemote {
				m.Remote = append(m.Remote, cell)
			} else {
				m.Cells = append(m.Cells, cell)
			}
			if f, ok := e.reachFinding(p, cell, pd, isRemote, now); ok {
				findings = append(findings, f)
			}
		}
	}
	return m, findings
}

// cell judges one pair from what was probed.
func (e *Engine) cell(p SegmentPolicy, from, to string, pd *pairData, probed bool) observe.MatrixCell {
	cell := observe.MatrixCell{From: from, To: to, Probes: pd.probes, HostsProbed: len(pd.hosts),
		Open: pd.open, Closed: pd.closed, Filtered: pd.filtered}
	for _, f := range p.Allow {
		if f.From == from && f.To == to {
			if len(f.Ports) == 0 {
				cell.AllowsAny = true
			}
			cell.AllowedPorts = append(cell.AllowedPorts, f.Ports...)
		}
	}
	slices.Sort(cell.AllowedPorts)
	cell.AllowedPorts = slices.Compact(cell.AllowedPorts)
	for _, r := range pd.reached {
		cell.Reached = append(cell.Reached, r)
	}
	sort.Slice(cell.Reached, func(i, j int) bool {
		a, b := cell.Reached[i], cell.Reached[j]
		if a.Host != b.Host {
			return addrLess(a.Host, b.Host)
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Proto < b.Proto
	})
	bad := false
	for _, r := range cell.Reached {
		if !r.Allowed {
			bad = true
		}
	}
	switch {
	case !probed:
		cell.Status = observe.CellNotAssessed
	case bad:
		cell.Status = observe.CellViolation
	case len(cell.Reached) > 0:
		cell.Status = observe.CellAllowed
	default:
		cell.Status = observe.CellBlocked
	}
	return cell
}

// reachFinding is the finding of a probed pair where something the policy
// does not allow answered.
func (e *Engine) reachFinding(p SegmentPolicy, cell observe.MatrixCell, pd *pairData, remote bool, now time.Time) (observe.Finding, bool) {
	var bad []string
	for _, r := range cell.Reached {
		if !r.Allowed {
			bad = append(bad, reachString(r))
		}
	}
	native := NativeSegmentation
	if remote {
		native = NativeCrossLocation
	}
	rule, ok := e.nativeRule(native)
	if len(bad) == 0 || !ok {
		return observe.Finding{}, false
	}
	target := cell.From + "->" + cell.To
	sev := rule.Severity
	fromRole, toRole := p.role(cell.From), p.role(cell.To)
	if sensitive(toRole) && untrusted(fromRole) && observe.Critical.Rank() > sev.Rank() {
		sev = observe.Critical
	}
	allowed := "none"
	if cell.AllowsAny {
		allowed = "any port"
	} else if len(cell.AllowedPorts) > 0 {
		allowed = fmt.Sprint(cell.AllowedPorts)
	}
	ev := map[string]any{
		"from": cell.From, "to": cell.To, "from_role": fromRole, "to_role": toRole,
		"seen_from": cell.From, "reachable_against_policy": bad, "policy_allows": allowed,
		"observed_at": now.UTC().Format(time.RFC3339), "sources": []string{"nmap"},
	}
	if cell.Probes > 0 {
		ev["probes"] = fmt.Sprintf("%d probes to %d sampled hosts: %d open, %d closed, %d filtered",
			cell.Probes, cell.HostsProbed, cell.Open, cell.Closed, cell.Filtered)
	}
	if remote {
		loc, seg, _ := strings.Cut(cell.To, "/")
		ev["to_location"], ev["to"] = loc, seg
	}
	return e.finding(rule, p.Location, target, sev, cell.From, ev, now), true
}

func (e *Engine) finding(rule *Rule, location, target string, sev observe.Severity, vantage string, ev map[string]any, now time.Time) observe.Finding {
	return observe.Finding{
		ID: observe.FindingID(rule.ID, location, target), Rule: rule.ID, Category: rule.Category,
		Severity: sev, Title: rule.Title, Location: location, Target: target,
		Controls: slices.Clone(rule.Controls), Remediation: rule.Remediation, Evidence: ev,
		FirstSeen: now, LastSeen: now, Status: observe.StatusOpen, Vantage: vantage,
	}
}

// unordered names a pair of segments the same whichever comes first.
func unordered(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// sharedL2 finds segments whose hosts are layer-2 neighbours of one sensor
// interface: nmap reports a host's MAC address only when it answered ARP
// on the sensor's own link. Every segment with such a host shares the
// vantage segment's broadcast domain, and so each other's. It returns the
// reason per unordered pair and one finding per pair the policy does not
// open both ways.
func (e *Engine) sharedL2(p SegmentPolicy, obs []observe.Observation, now time.Time) (map[[2]string]string, []observe.Finding) {
	type neighbour struct{ host, mac string }
	byVantage := map[string]map[string][]neighbour{}
	for _, o := range obs {
		mac, _ := o.Attrs["mac"].(string)
		if o.Kind != observe.KindHost || mac == "" || o.Vantage == "" || o.Segment == "" {
			continue
		}
		if byVantage[o.Vantage] == nil {
			byVantage[o.Vantage] = map[string][]neighbour{}
		}
		byVantage[o.Vantage][o.Segment] = append(byVantage[o.Vantage][o.Segment], neighbour{o.Host, mac})
	}
	reasons := map[[2]string]string{}
	var findings []observe.Finding
	rule, hasRule := e.nativeRule(NativeSharedL2)
	for _, v := range slices.Sorted(maps.Keys(byVantage)) {
		segs := byVantage[v]
		names := slices.Sorted(maps.Keys(segs))
		if !slices.Contains(names, v) {
			names = append(names, v) // the sensor itself is on the vantage segment's link
			sort.Strings(names)
		}
		for i, a := range names {
			for _, b := range names[i+1:] {
				k := unordered(a, b)
				if _, done := reasons[k]; done {
					continue
				}
				var hosts []string
				for _, s := range []string{a, b} {
					for _, n := range segs[s] {
						hosts = append(hosts, fmt.Sprintf("%s (%s, MAC %s)", n.host, s, n.mac))
					}
				}
				sort.Strings(hosts)
				reasons[k] = "shared broadcast domain: layer-2 neighbours of the sensor in " + v
				if !hasRule || (p.allowsAny(a, b) && p.allowsAny(b, a)) {
					continue
				}
				sev := rule.Severity
				if pairCritical(p.role(a), p.role(b)) {
					sev = observe.Critical
				}
				findings = append(findings, e.finding(rule, p.Location, a+"<->"+b, sev, v, map[string]any{
					"segments": []string{a, b}, "roles": []string{p.role(a), p.role(b)},
					"layer2_neighbours": hosts, "seen_from": v,
					"why":         "hosts of both segments answered ARP on the sensor's link in " + v + ": no router sits between them, so no firewall rule can separate them",
					"observed_at": now.UTC().Format(time.RFC3339), "sources": []string{"nmap"},
				}, now))
			}
		}
	}
	return reasons, findings
}

// pairCritical is true when one side is guest or IoT and the other holds
// ePHI systems.
func pairCritical(a, b string) bool {
	return (untrusted(a) && sensitive(b)) || (untrusted(b) && sensitive(a))
}

// Classes of hosts for the mixed-roles judgement.
var (
	phiPorts = map[int]string{1433: "database (SQL Server)", 1521: "database (Oracle)", 3306: "database (MySQL)",
		5432: "database (PostgreSQL)", 27017: "database (MongoDB)", 6379: "database (Redis)", 9200: "database (Elasticsearch)",
		445: "file server (SMB)", 2049: "file server (NFS)", 389: "directory (LDAP)", 636: "directory (LDAPS)", 88: "directory (Kerberos)"}
	iotPorts = map[int]string{1883: "IoT (MQTT)", 8883: "IoT (MQTT over TLS)", 554: "camera (RTSP)",
		9100: "printer (JetDirect)", 515: "printer (LPD)", 631: "printer (IPP)", 5683: "IoT (CoAP)"}
	iotVendors = []string{"hikvision", "dahua", "axis communications", "espressif", "tuya", "ring", "nest labs",
		"sonos", "roku", "wyze", "reolink", "amcrest", "lorex", "shelly", "philips lighting", "signify",
		"ecobee", "hewlett packard printer", "brother industries", "seiko epson", "canon", "lexmark", "zebra technologies", "xerox"}
)

// mixedRoles finds segments where ePHI systems (databases, file servers,
// directories — classified from their services) sit alongside guest or IoT
// devices (classified from services and MAC vendor, or the segment's own
// guest/iot role).
func (e *Engine) mixedRoles(p SegmentPolicy, obs []observe.Observation, now time.Time) []observe.Finding {
	rule, ok := e.nativeRule(NativeMixedRoles)
	if !ok {
		return nil
	}
	type class struct {
		phi, iot map[string][]string // host -> reasons
		vantage  string
	}
	bySeg := map[string]*class{}
	add := func(seg, host, why string, phi bool, vantage string) {
		c := bySeg[seg]
		if c == nil {
			c = &class{phi: map[string][]string{}, iot: map[string][]string{}, vantage: vantage}
			bySeg[seg] = c
		}
		m := c.iot
		if phi {
			m = c.phi
		}
		if !slices.Contains(m[host], why) {
			m[host] = append(m[host], why)
		}
	}
	for _, o := range obs {
		if o.Segment == "" {
			continue
		}
		switch o.Kind {
		case observe.KindService:
			if o.Proto != "tcp" {
				continue
			}
			if why, ok := phiPorts[o.Port]; ok {
				add(o.Segment, o.Host, fmt.Sprintf("%s %d", why, o.Port), true, o.Vantage)
			}
			if why, ok := iotPorts[o.Port]; ok {
				add(o.Segment, o.Host, fmt.Sprintf("%s %d", why, o.Port), false, o.Vantage)
			}
		case observe.KindHost:
			vendor, _ := o.Attrs["mac_vendor"].(string)
			lv := strings.ToLower(vendor)
			for _, v := range iotVendors {
				if lv != "" && strings.Contains(lv, v) {
					add(o.Segment, o.Host, "IoT vendor "+vendor, false, o.Vantage)
					break
				}
			}
		}
	}
	var out []observe.Finding
	for _, seg := range p.Segments {
		c := bySeg[seg]
		if c == nil {
			continue
		}
		role := p.Roles[seg]
		// Hosts serving ePHI and acting as IoT both (a NAS with a printer
		// port) count as ePHI only.
		for h := range c.phi {
			delete(c.iot, h)
		}
		hasPHI := len(c.phi) > 0 || sensitive(role)
		hasUntrusted := len(c.iot) > 0 || untrusted(role)
		if !hasPHI || !hasUntrusted || (len(c.phi) == 0 && len(c.iot) == 0) {
			continue
		}
		if len(c.phi) == 0 && len(c.iot) > 0 && !sensitive(role) {
			continue
		}
		sev := rule.Severity
		if untrusted(role) && len(c.phi) > 0 {
			sev = observe.Critical
		}
		list := func(m map[string][]string) []string {
			var out []string
			for _, h := range slices.SortedFunc(maps.Keys(m), addrCmp) {
				out = append(out, h+": "+strings.Join(m[h], ", "))
			}
			return out
		}
		ev := map[string]any{
			"segment": seg, "segment_role": role,
			"phi_systems": list(c.phi), "guest_or_iot_devices": list(c.iot),
			"observed_at": now.UTC().Format(time.RFC3339), "sources": []string{"nmap"},
		}
		if len(c.phi) == 0 {
			ev["phi_systems"] = []string{"the segment's role is " + role}
		}
		if len(c.iot) == 0 {
			ev["guest_or_iot_devices"] = []string{"the segment's role is " + role}
		}
		out = append(out, e.finding(rule, p.Location, seg, sev, c.vantage, ev, now))
	}
	return out
}

// multiHomed finds machines that answer on addresses in two segments: the
// same SSH host key, the same self-signed certificate or the same MAC
// address on both. Such a machine bridges the segments whatever the
// firewall between them says. Addresses in other locations' segments
// count too (the key is then LOCATION/SEGMENT).
func (e *Engine) multiHomed(p SegmentPolicy, obs []observe.Observation, now time.Time) (map[[2]string]string, []observe.Finding) {
	type addr struct{ host, seg, vantage string }
	ids := map[string][]addr{} // "ssh host key SHA256:..." -> addresses
	for _, o := range obs {
		if o.Segment == "" {
			continue
		}
		seg := o.Segment
		if o.Location != p.Location {
			seg = o.Location + "/" + o.Segment
		}
		var id string
		switch o.Kind {
		case observe.KindSSH:
			if k, _ := o.Attrs["host_key_sha256"].(string); k != "" {
				id = "SSH host key " + k
			}
		case observe.KindTLS:
			if self, _ := o.Attrs["cert_self_signed"].(bool); self {
				if k, _ := o.Attrs["cert_sha256"].(string); k != "" {
					id = "self-signed certificate sha256:" + k
				}
			}
		case observe.KindHost:
			if mac, _ := o.Attrs["mac"].(string); mac != "" {
				id = "MAC " + mac
			}
		}
		if id == "" {
			continue
		}
		a := addr{o.Host, seg, o.Vantage}
		if !slices.Contains(ids[id], a) {
			ids[id] = append(ids[id], a)
		}
	}
	type bridge struct {
		lines   []string
		vantage string
	}
	bridges := map[[2]string]*bridge{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		as := ids[id]
		for i, a := range as {
			for _, b := range as[i+1:] {
				if a.seg == b.seg || a.host == b.host {
					continue
				}
				// Only pairs involving this location's segments are its business.
				if strings.Contains(a.seg, "/") && strings.Contains(b.seg, "/") {
					continue
				}
				k := unordered(a.seg, b.seg)
				br := bridges[k]
				if br == nil {
					br = &bridge{vantage: a.vantage}
					bridges[k] = br
				}
				x, y := a, b
				if k[0] != a.seg {
					x, y = b, a
				}
				line := fmt.Sprintf("%s (%s) and %s (%s): same %s", x.host, x.seg, y.host, y.seg, id)
				if !slices.Contains(br.lines, line) {
					br.lines = append(br.lines, line)
				}
			}
		}
	}
	reasons := map[[2]string]string{}
	rule, hasRule := e.nativeRule(NativeMultiHomed)
	var out []observe.Finding
	for _, k := range slices.SortedFunc(maps.Keys(bridges), func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) }) {
		br := bridges[k]
		reasons[k] = "multi-homed host: " + br.lines[0]
		if !hasRule || (p.allowsAny(k[0], k[1]) && p.allowsAny(k[1], k[0])) {
			continue
		}
		sev := rule.Severity
		if pairCritical(p.role(k[0]), p.role(k[1])) {
			sev = observe.Critical
		}
		sort.Strings(br.lines)
		out = append(out, e.finding(rule, p.Location, k[0]+"<->"+k[1], sev, br.vantage, map[string]any{
			"segments": []string{k[0], k[1]}, "roles": []string{p.role(k[0]), p.role(k[1])},
			"bridging_hosts": br.lines,
			"why":            "one machine answers in both segments: whoever controls it, or any service on it that forwards, crosses the firewall",
			"observed_at":    now.UTC().Format(time.RFC3339), "sources": []string{"ssh", "tls", "nmap"},
		}, now))
	}
	return reasons, out
}

func reachString(r observe.Reach) string {
	s := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	if r.Proto == "udp" {
		s += "/udp"
	}
	if r.Service != "" {
		s += " " + r.Service
	}
	return s
}

// sensitive roles hold ePHI or run the systems that do.
func sensitive(role string) bool {
	return role == "clinical" || role == "servers" || role == "management"
}

func untrusted(role string) bool { return role == "guest" || role == "iot" }

// nativeRule returns the loaded rule evaluated by the named Go evaluator.
func (e *Engine) nativeRule(name string) (*Rule, bool) {
	for _, r := range e.rules {
		if r.Native == name {
			return r, true
		}
	}
	return nil, false
}

func addrLess(a, b string) bool { return addrCmp(a, b) < 0 }

// addrCmp orders IP addresses numerically, anything else as text.
func addrCmp(a, b string) int {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	if errx == nil && erry == nil {
		return x.Compare(y)
	}
	return strings.Compare(a, b)
}
