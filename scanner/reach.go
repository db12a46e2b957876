package scanner

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Ullaakut/nmap/v3"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// ReachPorts are the ports the segmentation test probes from every vantage
// point into every other segment, on top of the ports the policy names and
// the services the main scan found: remote access, file sharing,
// databases, EMR and web, printing, and IoT.
var ReachPorts = []int{
	21, 22, 23, 3389, 5900, 5985, 5986, // remote access
	139, 445, 2049, // file sharing
	1433, 1521, 3306, 5432, 6379, 27017, // databases
	80, 443, 8080, 8443, // EMR, web and admin panels
	515, 631, 9100, // printing
	554, 1883, 8883, // cameras (RTSP) and IoT (MQTT)
}

// maxReachPorts bounds the port list of one vantage point's probe run.
const maxReachPorts = 128

// ReachPair is one (vantage point, other segment) pair of the
// segmentation test and the hosts sampled for it.
type ReachPair struct {
	ToLocation string
	ToSegment  string
	ToRole     string
	Prefixes   []netip.Prefix
	// Hosts are the live hosts sampled for probing, at most the budget
	// divided by the number of ports.
	Hosts []string
	// Known is how many live hosts of the segment were known before
	// sampling (from the main scan, or from discovery).
	Known int
	// Discover is true when no live host of the segment was known, so the
	// vantage point first runs host discovery over its prefixes.
	Discover bool
}

// ReachPlan is the segmentation test from one vantage point.
type ReachPlan struct {
	Location string
	Vantage  config.Vantage
	// Connect is true when the sensor is at several vantage points of the
	// location: probes are then connect() calls bound to the vantage
	// point's address, which the kernel routes through its leg.
	Connect bool
	Role    string
	Ports   []int
	Pairs   []ReachPair
	// HostsPerPair is the sampling cap: scan.reach_budget / len(Ports).
	HostsPerPair int
}

// Probes is the number of host:port probes the plan sends, not counting
// host discovery.
func (p ReachPlan) Probes() int {
	n := 0
	for _, pr := range p.Pairs {
		n += len(pr.Hosts)
	}
	return n * len(p.Ports)
}

// job returns the nmap job of the plan's port probes.
func (p ReachPlan) job(rate int) NmapJob {
	var targets []string
	for _, pr := range p.Pairs {
		targets = append(targets, pr.Hosts...)
	}
	return NmapJob{Mode: ModeReach, Targets: targets, TCPPorts: p.Ports, Rate: rate,
		Source: sourceOf(p.Vantage), Interface: p.Vantage.Interface, Connect: p.Connect}
}

func sourceOf(v config.Vantage) string {
	if v.SourceAddr.IsValid() {
		return v.SourceAddr.String()
	}
	return ""
}

// liveHost is what the main scans knew about a host before the test.
type liveHost struct {
	addr  netip.Addr
	ports []int
}

// LocalVantages returns the vantage points of loc this sensor is at: the
// one --vantage names, or every one whose source address or interface is
// on this machine, in config order.
func (s *Scanner) LocalVantages(loc *config.Location) []config.Vantage {
	if s.opts.Vantage != "" {
		if v := s.vantage(loc); v != nil {
			return []config.Vantage{*v}
		}
		return nil
	}
	local := localAddrs()
	var out []config.Vantage
	for _, v := range loc.Vantage {
		if (v.SourceAddr.IsValid() && local.addrs[v.SourceAddr]) || (v.Interface != "" && local.ifaces[v.Interface]) {
			out = append(out, v)
		}
	}
	return out
}

// PlanReach works out, without traffic, the segmentation test of loc from
// each of its vantage points this sensor is at. known are observations of
// this scan so far (any location): hosts they show up are sampled instead
// of sweeping their segments again.
func (s *Scanner) PlanReach(loc *config.Location, known []observe.Observation) []ReachPlan {
	cfg := s.opts.Config
	self := localAddrs().addrs
	live := map[netip.Addr]*liveHost{}
	for _, o := range known {
		if o.Kind != observe.KindHost && o.Kind != observe.KindService {
			continue
		}
		a, err := netip.ParseAddr(o.Host)
		if err != nil || self[a] {
			continue
		}
		h := live[a]
		if h == nil {
			h = &liveHost{addr: a}
			live[a] = h
		}
		if o.Kind == observe.KindService && o.Proto == "tcp" && !slices.Contains(h.ports, o.Port) {
			h.ports = append(h.ports, o.Port)
		}
	}
	type target struct {
		loc *config.Location
		seg config.Segment
	}
	var plans []ReachPlan
	vps := s.LocalVantages(loc)
	for _, v := range vps {
		plan := ReachPlan{Location: loc.ID, Vantage: v, Connect: len(vps) > 1 && v.Interface == ""}
		if seg, ok := loc.Segment(v.Segment); ok {
			plan.Role = seg.Role
		}
		var targets []target
		for _, seg := range loc.Segments {
			if seg.Name != v.Segment {
				targets = append(targets, target{loc, seg})
			}
		}
		if cfg.Scan.CrossLocation != config.CrossLocationSkip {
			for i := range cfg.Locations {
				other := &cfg.Locations[i]
				if other.ID == loc.ID {
					continue
				}
				for _, seg := range other.Segments {
					targets = append(targets, target{other, seg})
				}
			}
		}
		// Ports: the fixed set, what the policy names from here, and what
		// the main scans found open in the target segments.
		ports := slices.Clone(ReachPorts)
		for _, f := range loc.Policy {
			if f.From == v.Segment {
				ports = append(ports, f.Ports...)
			}
		}
		var extra []int
		hostsOf := map[int][]*liveHost{}
		for ti, t := range targets {
			for _, h := range live {
				if slices.ContainsFunc(t.seg.Prefixes, func(p netip.Prefix) bool { return p.Contains(h.addr) }) {
					hostsOf[ti] = append(hostsOf[ti], h)
					extra = append(extra, h.ports...)
				}
			}
		}
		sort.Ints(ports)
		ports = slices.Compact(ports)
		sort.Ints(extra)
		for _, p := range slices.Compact(extra) {
			if len(ports) >= maxReachPorts {
				break
			}
			if !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
		sort.Ints(ports)
		plan.Ports = ports
		plan.HostsPerPair = max(1, cfg.Scan.ReachBudget/len(ports))
		for ti, t := range targets {
			pr := ReachPair{ToLocation: t.loc.ID, ToSegment: t.seg.Name, ToRole: t.seg.Role, Prefixes: t.seg.Prefixes}
			hs := hostsOf[ti]
			pr.Known = len(hs)
			pr.Discover = len(hs) == 0
			pr.Hosts = sample(hs, plan.HostsPerPair)
			plan.Pairs = append(plan.Pairs, pr)
		}
		plans = append(plans, plan)
	}
	return plans
}

// sample picks up to n hosts, those with the most known services first
// (they say the most about what a flow could reach), then by address, so
// that repeated scans probe the same hosts.
func sample(hs []*liveHost, n int) []string {
	hs = slices.Clone(hs)
	sort.Slice(hs, func(i, j int) bool {
		if len(hs[i].ports) != len(hs[j].ports) {
			return len(hs[i].ports) > len(hs[j].ports)
		}
		return hs[i].addr.Less(hs[j].addr)
	})
	var out []string
	for _, h := range hs[:min(n, len(hs))] {
		out = append(out, h.addr.String())
	}
	return out
}

// ReachResult is what the segmentation test of one location produced.
type ReachResult struct {
	Observations []observe.Observation
	// Vantages are the segments the test probed from.
	Vantages []string
	Errors   []string
	Plans    []ReachPlan
}

// Reach runs the segmentation test of loc: from each of its vantage points
// this sensor is at, it probes a sample of the live hosts of every other
// segment (and, unless scan.cross_location is skip, of the other
// locations' segments) on ReachPorts, the policy's ports and the services
// found there, bound to the vantage point's source address and interface.
// Segments with no known live host get a host discovery sweep first. Each
// probe becomes a KindReach observation (open, closed or filtered);
// scan.reach_budget bounds the probes per pair.
func (s *Scanner) Reach(ctx context.Context, loc *config.Location, known []observe.Observation) ReachResult {
	var res ReachResult
	cfg := s.opts.Config.Scan
	res.Plans = s.PlanReach(loc, known)
	now := s.opts.Now().UTC()
	for pi := range res.Plans {
		plan := &res.Plans[pi]
		v := plan.Vantage
		res.Vantages = append(res.Vantages, v.Segment)
		where := fmt.Sprintf("segmentation test of %s from %s", loc.ID, v.Segment)
		if err := s.discover(ctx, plan); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: host discovery: %v", where, err))
			continue
		}
		if plan.Probes() == 0 {
			continue
		}
		s.progress(Event{Location: loc.ID, Check: "reach", Detail: fmt.Sprintf("from %s: %d probes", v.Segment, plan.Probes())})
		job := plan.job(cfg.Rate)
		job.HostTimeout = cfg.HostTimeout.Duration
		s.log.Info("nmap", "location", loc.ID, "check", "reach", "vantage", v.Segment, "args", strings.Join(s.nmap.Args(job), " "))
		run, err := s.nmap.Run(ctx, job, nil)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		for _, h := range TimedOutHosts(run) {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: host %s hit scan.host_timeout", where, h))
		}
		res.Observations = append(res.Observations, reachObservations(s.opts.Config, loc, *plan, run, now)...)
	}
	if ctx.Err() != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("segmentation test of %s stopped: %v", loc.ID, context.Cause(ctx)))
	}
	return res
}

// discover sweeps the prefixes of the plan's pairs with no known live
// host, from the vantage point, and samples what answered.
func (s *Scanner) discover(ctx context.Context, plan *ReachPlan) error {
	var targets []string
	for _, pr := range plan.Pairs {
		if pr.Discover {
			for _, p := range pr.Prefixes {
				targets = append(targets, p.String())
			}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	cfg := s.opts.Config.Scan
	job := NmapJob{Mode: ModeDiscover, Targets: targets, Rate: cfg.Rate,
		Source: sourceOf(plan.Vantage), Interface: plan.Vantage.Interface, Exclude: selfIn(targets, netip.Addr{}), Connect: plan.Connect}
	s.log.Info("nmap", "location", plan.Location, "check", "discovery", "vantage", plan.Vantage.Segment, "args", strings.Join(s.nmap.Args(job), " "))
	run, err := s.nmap.Run(ctx, job, nil)
	if err != nil {
		return err
	}
	var up []netip.Addr
	self := localAddrs().addrs
	for _, f := range FactsFromNmap(run) {
		if a, err := netip.ParseAddr(f.Addr); err == nil && !self[a] {
			up = append(up, a)
		}
	}
	for i := range plan.Pairs {
		pr := &plan.Pairs[i]
		if !pr.Discover {
			continue
		}
		var hs []*liveHost
		for _, a := range up {
			if slices.ContainsFunc(pr.Prefixes, func(p netip.Prefix) bool { return p.Contains(a) }) {
				hs = append(hs, &liveHost{addr: a})
			}
		}
		pr.Known = len(hs)
		pr.Hosts = sample(hs, plan.HostsPerPair)
	}
	return nil
}

// reachObservations turns the probe run into one observation per sampled
// host and port. nmap folds ports of one state into <extraports>; when it
// folded a single state, the ports it did not list have that state, and
// when it folded several, they are "closed|filtered".
func reachObservations(cfg *config.Config, loc *config.Location, plan ReachPlan, run *nmap.Run, at time.Time) []observe.Observation {
	pairOf := map[string]ReachPair{}
	for _, pr := range plan.Pairs {
		for _, h := range pr.Hosts {
			pairOf[h] = pr
		}
	}
	var out []observe.Observation
	seen := map[string]bool{}
	for _, h := range run.Hosts {
		addr := ""
		for _, a := range h.Addresses {
			if a.AddrType == "ipv4" {
				addr = a.Addr
			}
		}
		pr, ok := pairOf[addr]
		if !ok || seen[addr] {
			continue
		}
		seen[addr] = true
		states := map[int]nmap.Port{}
		for _, p := range h.Ports {
			if p.Protocol == "tcp" {
				states[int(p.ID)] = p
			}
		}
		rest := "closed|filtered"
		if len(h.ExtraPorts) == 1 {
			rest = h.ExtraPorts[0].State
		}
		if h.Status.State != "up" && len(h.Ports) == 0 {
			rest = "filtered"
		}
		for _, port := range plan.Ports {
			o := reachBase(cfg, loc, plan, pr, addr, at)
			o.Port = port
			st, svc := rest, ""
			if p, ok := states[port]; ok {
				st, svc = p.State.State, serviceName(p.Service.Name)
			}
			o.Attrs["state"] = st
			if svc != "" {
				o.Attrs["service"] = svc
			}
			out = append(out, o)
		}
	}
	// Sampled hosts nmap did not report at all (down, or timed out) count
	// as filtered: nothing answered.
	for _, pr := range plan.Pairs {
		for _, addr := range pr.Hosts {
			if seen[addr] {
				continue
			}
			for _, port := range plan.Ports {
				o := reachBase(cfg, loc, plan, pr, addr, at)
				o.Port = port
				o.Attrs["state"] = "filtered"
				out = append(out, o)
			}
		}
	}
	return out
}

func reachBase(cfg *config.Config, loc *config.Location, plan ReachPlan, pr ReachPair, addr string, at time.Time) observe.Observation {
	o := observe.Observation{
		Kind: observe.KindReach, Location: loc.ID, Host: addr, Proto: "tcp", Source: "nmap", At: at,
		Segment: pr.ToSegment, SegmentRole: pr.ToRole, Vantage: plan.Vantage.Segment, VantageRole: plan.Role,
		Attrs: map[string]any{},
	}
	if pr.ToLocation != loc.ID {
		o.Attrs["to_location"] = pr.ToLocation
		if other, ok := cfg.Location(pr.ToLocation); ok {
			if a, err := netip.ParseAddr(addr); err == nil {
				o.InternetFacing = other.IsInternetFacing(a)
			}
		}
	} else if a, err := netip.ParseAddr(addr); err == nil {
		o.InternetFacing = loc.IsInternetFacing(a)
	}
	return o
}

// selfIn lists this machine's addresses inside targets (CIDRs or
// addresses), for nmap's --exclude: a sensor probing its own leg in
// another segment goes over loopback and would prove nothing about the
// network. Loopback addresses and keep (the vantage point's own address)
// stay: scanning them is scanning this machine on purpose.
func selfIn(targets []string, keep netip.Addr) []string {
	var pfs []netip.Prefix
	for _, t := range targets {
		if p, err := netip.ParsePrefix(t); err == nil {
			pfs = append(pfs, p)
		} else if a, err := netip.ParseAddr(t); err == nil {
			pfs = append(pfs, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	var out []string
	for a := range localAddrs().addrs {
		if a.IsLoopback() || a == keep {
			continue
		}
		if slices.ContainsFunc(pfs, func(p netip.Prefix) bool { return p.Contains(a) }) {
			out = append(out, a.String())
		}
	}
	sort.Strings(out)
	return out
}
