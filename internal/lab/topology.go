package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Topology is a custom lab network for segmentation tests: routers (each a
// namespace holding bridges, one per segment, and forwarding between
// them), site-to-site links between routers, and hosts with one or more
// interfaces into those bridges, running a real daemon or nothing. Every
// address must be inside TopologyCIDR.
type Topology struct {
	Routers []Router
	WAN     []WANLink
	Hosts   []TopoHost
}

// TopologyCIDR holds every address of a custom topology; hosts route it via
// their gateway, and nothing else exists in their namespaces.
const TopologyCIDR = "10.64.0.0/10"

// Router is a router namespace and its bridges.
type Router struct {
	Name    string
	Bridges []Bridge
}

// Bridge is one layer-2 segment behind a router; GW is the router's
// address on it with prefix length, e.g. "10.78.0.1/24".
type Bridge struct {
	Name string
	GW   string
}

// WANLink joins two routers with a veth pair (a site-to-site link); each
// side routes the other's prefixes over it.
type WANLink struct {
	A, B         string // router names
	AAddr, BAddr string // e.g. "10.99.0.1/30", "10.99.0.2/30"
	ARoutes      []string
	BRoutes      []string // prefixes B routes to A (A's sites), and A to B
}

// HostLink is one interface of a host: into Bridge of Router, at Addr
// (with prefix length), Gateway the router's address.
type HostLink struct {
	Router, Bridge string
	Addr           string // "10.78.0.70/24"
	Gateway        string // "10.78.0.1"
}

// Daemons a topology host can run.
const (
	DaemonNone      = ""
	DaemonRedis     = "redis"     // redis-server without auth on 6379
	DaemonMosquitto = "mosquitto" // anonymous MQTT on 1883
	DaemonSSHKeys   = "sshd"      // sshd, keys only, on 22
	DaemonNginx     = "nginx"     // nginx, plain HTTP on 80
)

// TopoHost is one host namespace.
type TopoHost struct {
	Name   string // [a-z0-9-]+, unique
	Links  []HostLink
	Daemon string
	// Sensor gives each interface its own routing table, chosen by source
	// address (ip rule from ADDR), as a sensor with one leg per VLAN needs:
	// probes bound to a vantage point's address leave through its leg and
	// its segment's gateway.
	Sensor bool
}

// Addr returns the host's first address without prefix length.
func (h TopoHost) Addr() string {
	if len(h.Links) == 0 {
		return ""
	}
	a, _, _ := strings.Cut(h.Links[0].Addr, "/")
	return a
}

var topoDaemons = map[string]struct {
	program string
	ports   []Port
	prepare func(ctx context.Context, l *Lab, dir string) ([]string, []string, error)
}{
	DaemonRedis:     {"redis-server", []Port{tcp(6379)}, prepareRedis},
	DaemonMosquitto: {"mosquitto", []Port{tcp(1883)}, prepareMosquitto},
	DaemonSSHKeys:   {"sshd", []Port{tcp(22)}, prepareSSHKeyOnly},
	DaemonNginx:     {"nginx", []Port{tcp(80)}, prepareNginxPlain},
}

// StartTopology builds topo in fresh namespaces and starts its daemons,
// returning once each listens. Close tears it down like any lab.
func StartTopology(ctx context.Context, topo Topology, opts Options) (l *Lab, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if err := topo.validate(); err != nil {
		return nil, err
	}
	if l, err = newLab(ctx, &opts); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = l.Close()
			l = nil
		}
	}()
	start := time.Now()
	fmt.Fprintf(l.progress, "building topology %s* (%d routers, %d hosts) ... ", l.prefix(), len(topo.Routers), len(topo.Hosts))
	if err = l.buildTopology(ctx, topo); err != nil {
		fmt.Fprintln(l.progress, "failed")
		return l, err
	}
	fmt.Fprintf(l.progress, "ok (%.1fs)\n", time.Since(start).Seconds())
	for _, th := range topo.Hosts {
		if th.Daemon == DaemonNone {
			continue
		}
		d := topoDaemons[th.Daemon]
		h := Host{Name: th.Name, Addr: th.Addr(), Daemon: d.program, Planted: th.Daemon, Weak: true,
			Namespace: l.hostNS[th.Name], Ports: d.ports}
		spec := daemonSpec{name: th.Name, addr: h.Addr, daemon: d.program, planted: th.Daemon, weak: true, ports: d.ports, prepare: d.prepare}
		fmt.Fprintf(l.progress, "starting %s at %s ... ", d.program, h.Addr)
		t0 := time.Now()
		if err = l.startDaemon(ctx, &h, spec, opts.DaemonTimeout); err != nil {
			fmt.Fprintln(l.progress, "failed")
			return l, err
		}
		l.hosts = append(l.hosts, h)
		fmt.Fprintf(l.progress, "ok (%.1fs)\n", time.Since(t0).Seconds())
	}
	fmt.Fprintf(l.progress, "topology up in %.1fs (dir %s)\n", time.Since(start).Seconds(), l.dir)
	return l, nil
}

func (t Topology) validate() error {
	lab := netip.MustParsePrefix(TopologyCIDR)
	inLab := func(what, a string) error {
		s, _, _ := strings.Cut(a, "/")
		ad, err := netip.ParseAddr(s)
		if err != nil || !lab.Contains(ad) {
			return fmt.Errorf("topology: %s %q is not an address inside %s", what, a, TopologyCIDR)
		}
		return nil
	}
	routers := map[string]map[string]bool{}
	for _, r := range t.Routers {
		routers[r.Name] = map[string]bool{}
		for _, b := range r.Bridges {
			if err := inLab("router "+r.Name+" bridge "+b.Name, b.GW); err != nil {
				return err
			}
			routers[r.Name][b.Name] = true
		}
	}
	for _, w := range t.WAN {
		for _, a := range []string{w.AAddr, w.BAddr} {
			if err := inLab("WAN link address", a); err != nil {
				return err
			}
		}
		if routers[w.A] == nil || routers[w.B] == nil {
			return fmt.Errorf("topology: WAN link %s-%s names an unknown router", w.A, w.B)
		}
	}
	for _, h := range t.Hosts {
		if _, ok := topoDaemons[h.Daemon]; !ok && h.Daemon != DaemonNone {
			return fmt.Errorf("topology: host %s: unknown daemon %q", h.Name, h.Daemon)
		}
		if len(h.Links) == 0 {
			return fmt.Errorf("topology: host %s has no link", h.Name)
		}
		for _, ln := range h.Links {
			if !routers[ln.Router][ln.Bridge] {
				return fmt.Errorf("topology: host %s: no bridge %s on router %s", h.Name, ln.Bridge, ln.Router)
			}
			if err := inLab("host "+h.Name, ln.Addr); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) buildTopology(ctx context.Context, topo Topology) error {
	for _, r := range topo.Routers {
		ns := l.ns("r-" + r.Name)
		l.routers[r.Name] = ns
		if err := l.addNS(ctx, ns); err != nil {
			return err
		}
		if _, err := execIn(ctx, ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
			return err
		}
		for _, b := range r.Bridges {
			for _, args := range [][]string{
				{"link", "add", b.Name, "type", "bridge"},
				{"addr", "add", b.GW, "dev", b.Name},
				{"link", "set", b.Name, "up"},
			} {
				if err := ipIn(ctx, ns, args...); err != nil {
					return err
				}
			}
		}
	}
	for i, w := range topo.WAN {
		a, b := l.routers[w.A], l.routers[w.B]
		an, bn := fmt.Sprintf("wan%d-a", i), fmt.Sprintf("wan%d-b", i)
		if _, err := run(ctx, "ip", "link", "add", "name", an, "netns", a, "type", "veth", "peer", "name", bn, "netns", b); err != nil {
			return err
		}
		steps := []struct {
			ns   string
			args []string
		}{
			{a, []string{"addr", "add", w.AAddr, "dev", an}}, {a, []string{"link", "set", an, "up"}},
			{b, []string{"addr", "add", w.BAddr, "dev", bn}}, {b, []string{"link", "set", bn, "up"}},
		}
		aIP, _, _ := strings.Cut(w.AAddr, "/")
		bIP, _, _ := strings.Cut(w.BAddr, "/")
		for _, p := range w.BRoutes {
			steps = append(steps, struct {
				ns   string
				args []string
			}{a, []string{"route", "add", p, "via", bIP}})
		}
		for _, p := range w.ARoutes {
			steps = append(steps, struct {
				ns   string
				args []string
			}{b, []string{"route", "add", p, "via", aIP}})
		}
		for _, s := range steps {
			if err := ipIn(ctx, s.ns, s.args...); err != nil {
				return err
			}
		}
	}
	for hi, h := range topo.Hosts {
		ns := l.ns("h-" + h.Name)
		l.hostNS[h.Name] = ns
		if err := l.addNS(ctx, ns); err != nil {
			return err
		}
		if h.Sensor {
			// Replies to one leg's address may arrive on another leg.
			if _, err := execIn(ctx, ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"); err != nil {
				return err
			}
		}
		for li, ln := range h.Links {
			rns := l.routers[ln.Router]
			port, dev := fmt.Sprintf("h%d-%d", hi, li), fmt.Sprintf("eth%d", li)
			if _, err := run(ctx, "ip", "link", "add", "name", port, "netns", rns, "type", "veth", "peer", "name", dev, "netns", ns); err != nil {
				return err
			}
			pf, err := netip.ParsePrefix(ln.Addr)
			if err != nil {
				return fmt.Errorf("host %s: %w", h.Name, err)
			}
			addr := pf.Addr().String()
			steps := [][2][]string{
				{{rns}, {"link", "set", port, "master", ln.Bridge}},
				{{rns}, {"link", "set", port, "up"}},
				{{ns}, {"addr", "add", ln.Addr, "dev", dev}},
				{{ns}, {"link", "set", dev, "up"}},
			}
			if li == 0 {
				steps = append(steps, [2][]string{{ns}, {"route", "add", TopologyCIDR, "via", ln.Gateway, "dev", dev}})
			}
			if h.Sensor {
				table := fmt.Sprint(100 + li)
				steps = append(steps,
					[2][]string{{ns}, {"route", "add", pf.Masked().String(), "dev", dev, "src", addr, "table", table}},
					[2][]string{{ns}, {"route", "add", TopologyCIDR, "via", ln.Gateway, "dev", dev, "table", table}},
					[2][]string{{ns}, {"rule", "add", "from", addr, "table", table, "priority", fmt.Sprint(1000 + li)}})
			}
			for _, s := range steps {
				if err := ipIn(ctx, s[0][0], s[1]...); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// RouterNS returns the namespace of the named router of a topology.
func (l *Lab) RouterNS(name string) string { return l.routers[name] }

// SetRulesOn replaces the nftables ruleset of the named topology router,
// atomically (see SetRouterRules).
func (l *Lab) SetRulesOn(ctx context.Context, router, rules string) error {
	ns, ok := l.routers[router]
	if !ok {
		return fmt.Errorf("no router %q in this lab", router)
	}
	return l.loadRules(ctx, ns, rules)
}

// CommandIn returns a command that runs inside the named topology host's
// namespace.
func (l *Lab) CommandIn(ctx context.Context, host, name string, args ...string) *exec.Cmd {
	ns := l.hostNS[host]
	if ns == "" {
		ns = "no-such-host-" + host // fails with a clear "netns" error
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// DialFrom connects from the named topology host's namespace.
func (l *Lab) DialFrom(ctx context.Context, host, network, address string) (net.Conn, error) {
	return dialIn(ctx, l.hostNS[host], network, address)
}

// prepareNginxPlain serves a plain HTTP page on 80.
func prepareNginxPlain(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	www := filepath.Join(dir, "www")
	if err := mkdirs(www, filepath.Join(dir, "tmp")); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(www, "index.html"), "<html><body>vigil lab</body></html>\n", 0o644); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	err := writeFile(conf, nginxConf(dir, fmt.Sprintf(`server {
    listen 80;
    root %s;
  }`, www)), 0o644)
	return []string{"nginx", "-e", "stderr", "-p", dir + "/", "-c", conf}, nil, err
}
