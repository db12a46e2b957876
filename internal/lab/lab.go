// Package lab builds a small clinic network out of Linux network namespaces
// and real Debian daemons, each planted with a known weakness (or none), so
// that vigil's scanner can be tested end to end and demonstrated without
// touching any real network. Everything lives in namespaces named
// "vgl<id>-..."; the host's own interfaces, addresses and routes are never
// changed.
//
// Topology (one location "lab"):
//
//	scanner ns 10.77.1.50 ──┐ guest 10.77.1.0/24          servers 10.77.2.0/24 ┌── ftp 10.77.2.10 ... sshkey 10.77.2.21
//	                        └── bridge ── router ns (10.77.1.1 | 10.77.2.1) ── bridge ──┘
//
// The router namespace holds both bridges and forwards between them; every
// other namespace has one veth into a bridge and a route to 10.77.0.0/16 via
// the router. There is deliberately no default route anywhere: a packet to
// any other address (the host's DNS server, the internet) fails at once with
// "network unreachable" inside the sending namespace. With a default route
// the router would answer with rate-limited ICMP errors, and every daemon's
// reverse lookup of its client (telnetd's, for one) would stall for 5 s.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Addresses of the lab. They exist only inside the lab's namespaces.
const (
	LabCIDR     = "10.77.0.0/16" // routed via the router; nothing else is
	GuestCIDR   = "10.77.1.0/24"
	ServersCIDR = "10.77.2.0/24"
	GuestGW     = "10.77.1.1"
	ServersGW   = "10.77.2.1"
	ScannerAddr = "10.77.1.50"
	// ScannerServersAddr is the scanner's second leg, in servers, when
	// Options.ServersVantage is set.
	ScannerServersAddr = "10.77.2.50"
)

// Options tune Start. The zero value is ready to use.
type Options struct {
	// Dir is where the lab keeps configs, keys, PID files and logs. If
	// empty, Start creates a temporary directory and Close removes it.
	Dir string
	// Progress receives one line per step ("starting vsftpd (anonymous
	// FTP) at 10.77.2.10 ... ok"); nil discards it.
	Progress io.Writer
	// DaemonTimeout bounds how long one daemon may take to listen;
	// default 20s.
	DaemonTimeout time.Duration
	// RouterRules is an nftables ruleset (`nft -f` syntax) loaded into the
	// router namespace, and only there, once every daemon has been checked
	// reachable from the scanner (so a restrictive ruleset cannot fail
	// Start). Empty means no rules: the router forwards everything. See
	// (*Lab).SetRouterRules, which also replaces it later.
	RouterRules string
	// ServersVantage gives the scanner namespace a second leg (eth1,
	// ScannerServersAddr) in the servers segment, with one routing table
	// per source address, as a sensor serving two VLANs has: traffic from
	// 10.77.1.50 leaves through guest and the router, traffic from
	// 10.77.2.50 through servers.
	ServersVantage bool
}

// Host is one daemon host of the lab's servers segment.
type Host struct {
	Name      string // role, e.g. "ftp"; also the namespace suffix
	Addr      string // e.g. "10.77.2.10"
	Daemon    string // program, e.g. "vsftpd"
	Planted   string // the weakness planted, e.g. "anonymous FTP"
	Weak      bool   // false for the well-configured hosts (10.77.2.20, 10.77.2.21)
	Namespace string
	Ports     []Port
	LogFile   string // the daemon's stdout and stderr
}

// Lab is a running lab. Close it when done.
type Lab struct {
	ctx      context.Context // for setup commands; never cancels daemons
	id       string
	dir      string
	ownDir   bool
	regFile  string
	router   string
	scanner  string
	hosts    []Host
	progress io.Writer

	mu             sync.Mutex
	namespaces     []string          // created, in order
	routers        map[string]string // topology router name -> namespace
	serversVantage bool
	hostNS         map[string]string // topology host name -> namespace
	daemons        []*daemon
	ruleGen        int // router ruleset files written, for unique names

	closeOnce sync.Once
	closeErr  error
}

type daemon struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// Start builds the lab and starts every daemon, returning once each one
// listens and is reachable from the scanner namespace. ctx bounds the
// setup only; the daemons run until Close. On error everything created so
// far is torn down.
func Start(ctx context.Context, opts Options) (l *Lab, err error) {
	if err := Check(); err != nil {
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
	l.router = l.ns("rt")
	l.scanner = l.ns("scan")
	l.serversVantage = opts.ServersVantage

	start := time.Now()
	fmt.Fprintf(l.progress, "building network namespaces %s* (guest %s, servers %s) ... ", l.prefix(), GuestCIDR, ServersCIDR)
	if err = l.buildNetwork(ctx); err != nil {
		fmt.Fprintln(l.progress, "failed")
		return l, err
	}
	fmt.Fprintf(l.progress, "ok (%.1fs)\n", time.Since(start).Seconds())

	for i := range l.hosts {
		h := &l.hosts[i]
		fmt.Fprintf(l.progress, "starting %s (%s) at %s ... ", h.Daemon, h.Planted, h.Addr)
		t0 := time.Now()
		if err = l.startDaemon(ctx, h, daemonSpecs[i], opts.DaemonTimeout); err != nil {
			fmt.Fprintln(l.progress, "failed")
			return l, err
		}
		fmt.Fprintf(l.progress, "ok (%.1fs)\n", time.Since(t0).Seconds())
	}
	fmt.Fprintf(l.progress, "checking every daemon is reachable from the scanner at %s ... ", ScannerAddr)
	if err = l.checkReachable(ctx); err != nil {
		fmt.Fprintln(l.progress, "failed")
		return l, err
	}
	fmt.Fprintln(l.progress, "ok")
	if opts.RouterRules != "" {
		fmt.Fprintf(l.progress, "loading nftables rules into the router %s ... ", l.router)
		if err = l.SetRouterRules(ctx, opts.RouterRules); err != nil {
			fmt.Fprintln(l.progress, "failed")
			return l, err
		}
		fmt.Fprintln(l.progress, "ok")
	}
	fmt.Fprintf(l.progress, "lab up in %.1fs (dir %s)\n", time.Since(start).Seconds(), l.dir)
	return l, nil
}

// newLab sweeps leftovers of crashed labs, registers a new lab and creates
// its directory; Start and StartTopology then build its network. On error
// nothing is left behind.
func newLab(ctx context.Context, opts *Options) (l *Lab, err error) {
	// Leftovers of crashed labs do not stop this one (its names are
	// unique), so a failed sweep is only reported.
	removed, serr := Sweep(ctx)
	if opts.Progress != nil {
		if len(removed) > 0 {
			fmt.Fprintf(opts.Progress, "removed %d namespaces left by a crashed lab: %s\n", len(removed), strings.Join(removed, " "))
		}
		if serr != nil {
			fmt.Fprintf(opts.Progress, "warning: removing leftovers of crashed labs: %v\n", serr)
		}
	}
	if opts.DaemonTimeout <= 0 {
		opts.DaemonTimeout = 20 * time.Second
	}
	l = &Lab{progress: opts.Progress, routers: map[string]string{}, hostNS: map[string]string{}}
	if l.progress == nil {
		l.progress = io.Discard
	}
	if l.id, l.regFile, err = register(); err != nil {
		return nil, fmt.Errorf("registering lab in %s: %w", registryDir, err)
	}
	defer func() {
		if err != nil {
			_ = l.Close()
			l = nil
		}
	}()
	if opts.Dir == "" {
		if l.dir, err = os.MkdirTemp("", "vigil-lab-"+l.id+"-"); err != nil {
			return l, err
		}
		l.ownDir = true
	} else {
		l.dir = opts.Dir
		if err = os.MkdirAll(l.dir, 0o755); err != nil {
			return l, err
		}
	}
	// Daemons drop privileges (vsftpd, smbd guest, mosquitto) and must
	// traverse the lab directory to reach their files.
	return l, os.Chmod(l.dir, 0o755)
}

// RouterNamespace returns the name of the router namespace, which holds
// both bridges and forwards between the segments.
func (l *Lab) RouterNamespace() string { return l.router }

// SetRouterRules replaces the router namespace's whole nftables ruleset
// with rules (`nft -f` syntax), atomically: the file loaded is
// "flush ruleset" followed by rules, as one transaction, so a bad ruleset
// leaves the previous one in place. Empty rules removes every rule, so the
// router forwards everything again. It runs `nft -f` inside the router
// namespace only; the host's own firewall is never touched.
func (l *Lab) SetRouterRules(ctx context.Context, rules string) error {
	return l.loadRules(ctx, l.router, rules)
}

// loadRules replaces namespace ns's nftables ruleset with rules, atomically.
func (l *Lab) loadRules(ctx context.Context, ns, rules string) error {
	nft, err := lookTool("nft")
	if err != nil {
		return fmt.Errorf("router rules need nft (Debian package nftables): %w", err)
	}
	l.mu.Lock()
	l.ruleGen++
	path := filepath.Join(l.dir, fmt.Sprintf("router-%d.nft", l.ruleGen))
	l.mu.Unlock()
	if err := writeFile(path, "flush ruleset\n"+rules+"\n", 0o644); err != nil {
		return err
	}
	if _, err := execIn(ctx, ns, nft, "-f", path); err != nil {
		return fmt.Errorf("loading router rules %s: %w", path, err)
	}
	return nil
}

func (l *Lab) prefix() string        { return NamePrefix + l.id + "-" }
func (l *Lab) ns(role string) string { return l.prefix() + role }

// Dir returns the lab's directory (configs, keys, logs).
func (l *Lab) Dir() string { return l.dir }

// CAFile returns the PEM file of the lab CA that signed 10.77.2.20's
// certificate; scanners should trust it (config scan.ca_files).
func (l *Lab) CAFile() string { return filepath.Join(l.dir, "ca.pem") }

// ScannerNamespace returns the name of the namespace at ScannerAddr.
func (l *Lab) ScannerNamespace() string { return l.scanner }

// Hosts returns the daemon hosts of the servers segment.
func (l *Lab) Hosts() []Host { return append([]Host(nil), l.hosts...) }

// Command returns a command that runs name with args inside the scanner
// namespace (source address ScannerAddr on the guest segment). The caller
// sets Stdout/Stderr and runs it; cancelling ctx kills it.
func (l *Lab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.scanner, name}, args...)...)
}

// Dial connects from the scanner namespace, e.g. Dial(ctx, "tcp", "10.77.2.11:6379").
func (l *Lab) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return dialIn(ctx, l.scanner, network, address)
}

// buildNetwork creates the router (with both bridges), the scanner and one
// namespace per daemon host, and wires them up.
func (l *Lab) buildNetwork(ctx context.Context) error {
	if err := l.addNS(ctx, l.router); err != nil {
		return err
	}
	if _, err := execIn(ctx, l.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	for _, br := range []struct{ name, addr string }{{"br-guest", GuestGW + "/24"}, {"br-servers", ServersGW + "/24"}} {
		if err := ipIn(ctx, l.router, "link", "add", br.name, "type", "bridge"); err != nil {
			return err
		}
		if err := ipIn(ctx, l.router, "addr", "add", br.addr, "dev", br.name); err != nil {
			return err
		}
		if err := ipIn(ctx, l.router, "link", "set", br.name, "up"); err != nil {
			return err
		}
	}
	if err := l.attach(ctx, l.scanner, "scan", "br-guest", ScannerAddr, GuestGW); err != nil {
		return err
	}
	if l.serversVantage {
		if err := l.secondLeg(ctx); err != nil {
			return err
		}
	}
	for _, s := range daemonSpecs {
		h := Host{Name: s.name, Addr: s.addr, Daemon: s.daemon, Planted: s.planted, Weak: s.weak,
			Namespace: l.ns(s.name), Ports: s.ports}
		if err := l.attach(ctx, h.Namespace, s.name, "br-servers", s.addr, ServersGW); err != nil {
			return err
		}
		l.hosts = append(l.hosts, h)
	}
	return nil
}

// secondLeg gives the scanner an eth1 in br-servers and source-based
// routing: one table per leg, chosen by "ip rule from ADDR".
func (l *Lab) secondLeg(ctx context.Context) error {
	if _, err := run(ctx, "ip", "link", "add", "name", "scan2", "netns", l.router, "type", "veth",
		"peer", "name", "eth1", "netns", l.scanner); err != nil {
		return err
	}
	if _, err := execIn(ctx, l.scanner, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"); err != nil {
		return err
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{l.router, []string{"link", "set", "scan2", "master", "br-servers"}},
		{l.router, []string{"link", "set", "scan2", "up"}},
		{l.scanner, []string{"addr", "add", ScannerServersAddr + "/24", "dev", "eth1"}},
		{l.scanner, []string{"link", "set", "eth1", "up"}},
		{l.scanner, []string{"route", "add", GuestCIDR, "dev", "eth0", "src", ScannerAddr, "table", "100"}},
		{l.scanner, []string{"route", "add", LabCIDR, "via", GuestGW, "dev", "eth0", "table", "100"}},
		{l.scanner, []string{"rule", "add", "from", ScannerAddr, "table", "100", "priority", "1000"}},
		{l.scanner, []string{"route", "add", ServersCIDR, "dev", "eth1", "src", ScannerServersAddr, "table", "101"}},
		{l.scanner, []string{"route", "add", LabCIDR, "via", ServersGW, "dev", "eth1", "table", "101"}},
		{l.scanner, []string{"rule", "add", "from", ScannerServersAddr, "table", "101", "priority", "1001"}},
	}
	for _, s := range steps {
		if err := ipIn(ctx, s.ns, s.args...); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) addNS(ctx context.Context, ns string) error {
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns) // before creation: Close removes half-made ones too
	l.mu.Unlock()
	return addNamespace(ctx, ns)
}

// attach creates namespace ns with an eth0 at addr/24 whose peer, named
// port, sits in bridge br of the router, and a route to LabCIDR via gw. The
// veth is created directly inside the two lab namespaces, never in the
// host's.
func (l *Lab) attach(ctx context.Context, ns, port, br, addr, gw string) error {
	if err := l.addNS(ctx, ns); err != nil {
		return err
	}
	if _, err := run(ctx, "ip", "link", "add", "name", port, "netns", l.router, "type", "veth",
		"peer", "name", "eth0", "netns", ns); err != nil {
		return err
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{l.router, []string{"link", "set", port, "master", br}},
		{l.router, []string{"link", "set", port, "up"}},
		{ns, []string{"addr", "add", addr + "/24", "dev", "eth0"}},
		{ns, []string{"link", "set", "eth0", "up"}},
		{ns, []string{"route", "add", LabCIDR, "via", gw}},
	}
	for _, s := range steps {
		if err := ipIn(ctx, s.ns, s.args...); err != nil {
			return err
		}
	}
	return nil
}

// startDaemon prepares and starts one daemon in its namespace and waits
// until it listens on every port.
func (l *Lab) startDaemon(ctx context.Context, h *Host, s daemonSpec, timeout time.Duration) error {
	dir := filepath.Join(l.dir, s.name)
	if err := mkdirs(dir); err != nil {
		return err
	}
	argv, env, err := s.prepare(ctx, l, dir)
	if err != nil {
		return fmt.Errorf("%s at %s: preparing config: %w", s.daemon, s.addr, err)
	}
	bin, err := lookTool(argv[0])
	if err != nil {
		return fmt.Errorf("%s at %s: %w", s.daemon, s.addr, err)
	}
	h.LogFile = filepath.Join(dir, "daemon.log")
	logf, err := os.Create(h.LogFile)
	if err != nil {
		return err
	}
	// `ip netns exec` joins the namespace and execs the daemon, so cmd's
	// PID is the daemon's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Namespace, bin}, argv[1:]...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group: a Ctrl-C at the terminal reaches the owner, which
	// tears the lab down in order, not the daemons directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s at %s: %w", s.daemon, s.addr, err)
	}
	d := &daemon{cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	l.mu.Lock()
	l.daemons = append(l.daemons, d)
	l.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, p := range h.Ports {
		if err := waitListening(wctx, h.Namespace, p, d); err != nil {
			return fmt.Errorf("%s (%s) at %s did not start: %w\n--- %s (last lines) ---\n%s",
				s.daemon, s.planted, s.addr, err, h.LogFile, tail(h.LogFile, 25))
		}
	}
	return nil
}

// waitListening polls `ss` inside ns until something listens on p, the
// daemon exits, or ctx ends.
func waitListening(ctx context.Context, ns string, p Port, d *daemon) error {
	flag := "-Hlnt"
	if p.Proto == "udp" {
		flag = "-Hlnu"
	}
	suffix := ":" + strconv.Itoa(p.Number)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("exited before listening on %s: %v", p, d.err)
		default:
		}
		out, err := execIn(ctx, ns, "ss", flag)
		if err == nil {
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) >= 4 && strings.HasSuffix(f[3], suffix) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not listening on %s: %w", p, ctx.Err())
		case <-d.done:
			return fmt.Errorf("exited before listening on %s: %v", p, d.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkReachable connects from the scanner namespace to every TCP port, which
// proves addressing, bridges and routing, not just the daemons.
func (l *Lab) checkReachable(ctx context.Context) error {
	for _, h := range l.hosts {
		for _, p := range h.Ports {
			if p.Proto != "tcp" {
				continue
			}
			addr := net.JoinHostPort(h.Addr, strconv.Itoa(p.Number))
			var err error
			for attempt := 0; attempt < 20; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				var c net.Conn
				c, err = l.Dial(cctx, "tcp", addr)
				cancel()
				if err == nil {
					c.Close()
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("%s (%s) listens but %s is not reachable from the scanner: %w", h.Daemon, h.Planted, addr, err)
			}
		}
	}
	return nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Close stops every daemon (TERM, then KILL after a grace period), kills
// anything else left in the lab's namespaces, deletes them, and removes the
// lab directory if Start created it. It is safe to call more than once.
func (l *Lab) Close() error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	// A fresh context: Close must work even when the caller's is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l.mu.Lock()
	daemons, namespaces := l.daemons, l.namespaces
	l.mu.Unlock()
	var errs []error
	for _, d := range daemons {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
	}
	grace := time.After(5 * time.Second)
	for _, d := range daemons {
		select {
		case <-d.done:
		case <-grace:
		}
	}
	for _, d := range daemons {
		select {
		case <-d.done:
		default:
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
		d.log.Close()
	}
	for i := len(namespaces) - 1; i >= 0; i-- {
		if err := killNamespace(ctx, namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if left := l.leftover(ctx); len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces still present after Close: %s", strings.Join(left, " ")))
	}
	if len(errs) == 0 {
		if l.ownDir && l.dir != "" {
			if err := os.RemoveAll(l.dir); err != nil {
				errs = append(errs, err)
			}
		}
		if l.regFile != "" {
			_ = os.Remove(l.regFile)
		}
	}
	return errors.Join(errs...)
}

// leftover lists namespaces with this lab's prefix that still exist.
func (l *Lab) leftover(ctx context.Context) []string {
	names, _ := listNamespaces(ctx)
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, l.prefix()) {
			out = append(out, n)
		}
	}
	return out
}
