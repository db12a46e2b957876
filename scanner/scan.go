// Package scanner runs vigil's network checks over the locations of a
// configuration and turns what it sees into observations. nmap finds hosts
// and services; the TLS probe, the SSH probe and nuclei's templates then
// look closer at what nmap found.
package scanner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// SensitivePorts are always scanned on top of a top-N selection: the remote
// access, file sharing, database, IoT and admin ports vigil's rules judge.
var SensitivePorts = []int{21, 22, 23, 80, 139, 389, 443, 445, 636, 873, 1433, 1521, 1883,
	2049, 3306, 3389, 5432, 5900, 5901, 5985, 5986, 6379, 8080, 8443, 8883, 9200, 11211, 27017}

// Event reports progress of one location's scan.
type Event struct {
	Location string
	// Check is the stage: "nmap", "checks".
	Check string
	Done  int
	Total int
	// Detail is a short free text, e.g. nmap's task and percentage.
	Detail string
}

// Options configures a Scanner.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Progress receives progress events; nil ignores them.
	Progress func(Event)
	// Vantage names the segment this sensor sits in, overriding the
	// detection from local addresses.
	Vantage string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Scanner scans locations. Create it with New.
type Scanner struct {
	opts    Options
	log     *slog.Logger
	nmap    *Nmap
	tls     *TLSProbe
	limiter *rate.Limiter
}

// New checks that the tools the scan needs are present (nmap, its version)
// and loads the trust store; it sends no traffic.
func New(ctx context.Context, opts Options) (*Scanner, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	nm, err := FindNmap(ctx)
	if err != nil {
		return nil, err
	}
	roots, err := LoadCertPool(opts.Config.Scan.CAFiles)
	if err != nil {
		return nil, err
	}
	s := opts.Config.Scan
	// Half of scan.rate for the TLS and SSH probes; nuclei has the other half.
	lim := rate.NewLimiter(rate.Limit(max(1, s.Rate/2)), max(1, s.Rate/20))
	return &Scanner{
		opts:    opts,
		log:     opts.Logger,
		nmap:    nm,
		limiter: lim,
		tls: &TLSProbe{
			Timeout:        s.ProbeTimeout.Duration,
			Roots:          roots,
			ExpiryWarnDays: s.ExpiryWarnDays,
			Now:            opts.Now,
			Limiter:        lim,
		},
	}, nil
}

// Config returns the configuration the scanner runs with.
func (s *Scanner) Config() *config.Config { return s.opts.Config }

// Nmap returns the nmap binary the scanner uses.
func (s *Scanner) Nmap() *Nmap { return s.nmap }

// Plan is what a scan of one location will do, computed without traffic.
type Plan struct {
	Location *config.Location
	// Vantage is the segment the sensor probes from ("" if none applies).
	Vantage *config.Vantage
	Targets []string
	Job     NmapJob
	// Notes explains decisions a user may want to know about
	// (UDP skipped without privileges).
	Notes []string
	// VantageMissing is true when the location has vantage points and this
	// sensor is at none of them: exposure cannot be judged.
	VantageMissing bool
	// Source is the address every probe binds to, when the sensor is at
	// several vantage points; invalid otherwise (the kernel chooses).
	Source netip.Addr
}

// PlanLocation works out targets, ports and vantage for one location.
func (s *Scanner) PlanLocation(loc *config.Location) (Plan, error) {
	p := Plan{Location: loc}
	for _, seg := range loc.Segments {
		for _, pf := range seg.Prefixes {
			p.Targets = append(p.Targets, pf.String())
		}
	}
	for _, a := range loc.InternetAddrs {
		p.Targets = append(p.Targets, a.String())
	}
	ports, err := s.tcpPorts(loc.Ports)
	if err != nil {
		return p, fmt.Errorf("location %q ports: %w", loc.ID, err)
	}
	var udp []int
	if us := s.opts.Config.Scan.UDPPorts; us != "none" {
		ps, err := config.ParsePorts(us)
		if err != nil {
			return p, fmt.Errorf("scan.udp_ports: %w", err)
		}
		udp = ps.Ports
	}
	if len(udp) > 0 && !s.nmap.Privileged {
		p.Notes = append(p.Notes, "UDP ports skipped (SNMP not checked): UDP scanning needs root, or CAP_NET_RAW with VIGIL_NMAP_PRIVILEGED=1")
		udp = nil
	}
	p.Vantage = s.vantage(loc)
	p.VantageMissing = p.Vantage == nil && len(loc.Vantage) > 0
	p.Job = NmapJob{
		Targets:     p.Targets,
		TCPPorts:    ports,
		UDPPorts:    udp,
		Rate:        s.opts.Config.Scan.Rate,
		HostTimeout: s.opts.Config.Scan.HostTimeout.Duration,
	}
	if p.Vantage != nil {
		p.Job.Exclude = selfIn(p.Targets, p.Vantage.SourceAddr)
		p.Job.Interface = p.Vantage.Interface
		// A sensor at several vantage points sends the main scan from the
		// first (the others run only the segmentation test), pinned to its
		// address and leg: unpinned, packets to another vantage point's
		// segment would leave through that segment's leg and bypass the
		// firewall under test.
		if len(s.LocalVantages(loc)) > 1 {
			p.Source = p.Vantage.SourceAddr
			p.Job.Source = sourceOf(*p.Vantage)
			if p.Job.Interface == "" && p.Source.IsValid() {
				p.Job.Interface = localAddrs().ifOf[p.Source]
			}
		}
	}
	return p, nil
}

func (s *Scanner) tcpPorts(spec string) ([]int, error) {
	ps, err := config.ParsePorts(spec)
	if err != nil {
		return nil, err
	}
	if ps.Top == 0 {
		return ps.Ports, nil
	}
	top, err := nmapServicesTop(nmapServicesPath(s.nmap.Path), ps.Top)
	if err != nil {
		return nil, err
	}
	for _, p := range SensitivePorts {
		if !slices.Contains(top, p) {
			top = append(top, p)
		}
	}
	sort.Ints(top)
	return top, nil
}

// nmapServicesPath finds nmap-services in the data directory of the nmap
// binary in use (PREFIX/bin/nmap → PREFIX/share/nmap), then the usual places.
func nmapServicesPath(bin string) string {
	own := filepath.Join(filepath.Dir(filepath.Dir(bin)), "share", "nmap", "nmap-services")
	for _, p := range []string{own, "/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services", "/opt/homebrew/share/nmap/nmap-services"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/usr/share/nmap/nmap-services"
}

// vantage picks the location's vantage point this sensor is at: the one
// named in Options.Vantage, or the one whose source address (or interface)
// is on this machine.
func (s *Scanner) vantage(loc *config.Location) *config.Vantage {
	if s.opts.Vantage != "" {
		for i := range loc.Vantage {
			if loc.Vantage[i].Segment == s.opts.Vantage {
				return &loc.Vantage[i]
			}
		}
		// A segment without a declared vantage: trust the operator.
		if _, ok := loc.Segment(s.opts.Vantage); ok {
			return &config.Vantage{Segment: s.opts.Vantage}
		}
		return nil
	}
	local := localAddrs()
	for i := range loc.Vantage {
		v := &loc.Vantage[i]
		if v.SourceAddr.IsValid() && local.addrs[v.SourceAddr] {
			return v
		}
		if v.Interface != "" && local.ifaces[v.Interface] {
			return v
		}
	}
	return nil
}

type localInfo struct {
	addrs  map[netip.Addr]bool
	ifaces map[string]bool
	ifOf   map[netip.Addr]string // address -> interface name
}

func localAddrs() localInfo {
	li := localInfo{addrs: map[netip.Addr]bool{}, ifaces: map[string]bool{}, ifOf: map[netip.Addr]string{}}
	ifs, err := net.Interfaces()
	if err != nil {
		return li
	}
	for _, ifc := range ifs {
		li.ifaces[ifc.Name] = true
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ad, ok := netip.AddrFromSlice(ipn.IP); ok {
					li.addrs[ad.Unmap()] = true
					li.ifOf[ad.Unmap()] = ifc.Name
				}
			}
		}
	}
	return li
}

// LocationResult is what the scan of one location produced.
type LocationResult struct {
	Location     string
	Observations []observe.Observation
	// Errors lists checks that failed; the location's scan is then
	// incomplete and resolves nothing.
	Errors []string
	// Complete is true when every check ran to the end.
	Complete bool
	// Notes are the plan's notes.
	Notes []string
}

// ScanLocation runs every check over one location: nmap first (with
// nuclei's engine starting alongside), then TLS, SSH and template checks on
// what nmap found, bounded by scan.concurrency. Cancelling ctx stops it and
// returns what finished, marked incomplete.
func (s *Scanner) ScanLocation(ctx context.Context, loc *config.Location) LocationResult {
	res := LocationResult{Location: loc.ID}
	plan, err := s.PlanLocation(loc)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	res.Notes = plan.Notes
	if plan.VantageMissing {
		// Exposure findings depend on where the probes come from: judged
		// from nowhere, they would all look resolved.
		res.Errors = append(res.Errors, fmt.Sprintf("location %s: this sensor is at none of the location's vantage points, so exposure cannot be judged (run it from a vantage source address, or pass --vantage SEGMENT)", loc.ID))
	}
	cfg := s.opts.Config.Scan
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout.Duration)

	// Nuclei's engine takes a while to load; start it while nmap runs.
	type nucleiInit struct {
		n   *Nuclei
		err error
	}
	nucCh := make(chan nucleiInit, 1)
	go func() {
		n, err := NewNuclei(ctx, NucleiOptions{
			ExtraTemplateDirs: cfg.Templates,
			// The native probes and nuclei share scan.rate half and half.
			RateLimit:   max(1, cfg.Rate/2),
			Timeout:     cfg.ProbeTimeout.Duration,
			Concurrency: cfg.Concurrency,
			Logger:      s.log,
			SourceIP:    addrString(plan.Source),
		})
		nucCh <- nucleiInit{n, err}
	}()
	defer func() {
		// Cancel first, so a still-loading engine gives up at once.
		cancel()
		if ni := <-nucCh; ni.n != nil {
			ni.n.Close()
		}
	}()

	s.progress(Event{Location: loc.ID, Check: "nmap", Detail: "starting"})
	s.log.Info("nmap", "location", loc.ID, "args", strings.Join(s.nmap.Args(plan.Job), " "))
	run, err := s.nmap.Run(ctx, plan.Job, func(p NmapProgress) {
		s.progress(Event{Location: loc.ID, Check: "nmap", Done: p.HostsDone,
			Detail: fmt.Sprintf("%s %.0f%%", p.Task, p.Percent)})
	})
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	now := s.opts.Now().UTC()
	facts := FactsFromNmap(run)
	for _, h := range TimedOutHosts(run) {
		res.Errors = append(res.Errors, fmt.Sprintf("nmap: host %s hit scan.host_timeout (%s): not fully scanned", h, cfg.HostTimeout.Duration))
	}
	for _, f := range facts {
		base := s.base(loc, plan.Vantage, f.Addr, now)
		h := base
		h.Kind, h.Source, h.Attrs = observe.KindHost, "nmap", f.Host
		res.Observations = append(res.Observations, h)
		for _, p := range f.Ports {
			o := base
			o.Kind, o.Source, o.Port, o.Proto, o.Attrs = observe.KindService, "nmap", p.Port, p.Proto, p.Attrs
			res.Observations = append(res.Observations, o)
		}
	}
	s.progress(Event{Location: loc.ID, Check: "nmap", Done: len(facts), Total: len(facts), Detail: fmt.Sprintf("%d hosts up", len(facts))})

	ni := <-nucCh
	nucCh <- ni // for the deferred Close
	var nuc *Nuclei
	if ni.err != nil {
		if ctx.Err() == nil {
			res.Errors = append(res.Errors, "nuclei: "+ni.err.Error())
		}
	} else {
		nuc = ni.n
	}
	more, errs := s.followUp(ctx, loc, plan, facts, nuc, now)
	res.Observations = append(res.Observations, more...)
	res.Errors = append(res.Errors, errs...)
	if ctx.Err() != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("location %s: scan stopped: %v", loc.ID, context.Cause(ctx)))
	}
	res.Complete = len(res.Errors) == 0
	return res
}

// base fills the fields every observation of addr shares.
func (s *Scanner) base(loc *config.Location, v *config.Vantage, addr string, at time.Time) observe.Observation {
	o := observe.Observation{Location: loc.ID, Host: addr, At: at}
	if a, err := netip.ParseAddr(addr); err == nil {
		if seg, ok := loc.SegmentOf(a); ok {
			o.Segment, o.SegmentRole = seg.Name, seg.Role
		}
		o.InternetFacing = loc.IsInternetFacing(a)
	}
	if v != nil {
		o.Vantage = v.Segment
		if seg, ok := loc.Segment(v.Segment); ok {
			o.VantageRole = seg.Role
		}
	}
	return o
}

func (s *Scanner) progress(e Event) {
	if s.opts.Progress != nil {
		s.opts.Progress(e)
	}
}

// tlsServices are nmap service names that speak TLS from the first byte.
var tlsServices = []string{"https", "ssl", "imaps", "pop3s", "smtps", "ldaps", "ftps", "secure-mqtt", "https-alt"}

// SpeaksTLS reports whether a port nmap reported speaks TLS from its first
// byte: nmap saw a TLS tunnel, or the service is TLS by definition.
func SpeaksTLS(service, tunnel string) bool {
	return tunnel == "ssl" || slices.Contains(tlsServices, strings.ToLower(service))
}

// followUp runs the checks that need to know what nmap found. A probe that
// fails on a port nmap saw open is an error: the scan then resolves
// nothing, since "not seen" would only mean "not looked at".
func (s *Scanner) followUp(ctx context.Context, loc *config.Location, plan Plan, facts []NmapFacts, nuc *Nuclei, now time.Time) ([]observe.Observation, []string) {
	var (
		mu     sync.Mutex
		out    []observe.Observation
		errs   []string
		jobs   []NucleiJob
		native []func(context.Context)
		baseOf = map[string]observe.Observation{}
	)
	add := func(o observe.Observation) {
		mu.Lock()
		out = append(out, o)
		mu.Unlock()
	}
	fail := func(format string, a ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	cfg := s.opts.Config.Scan
	tlsProbe := *s.tls
	tlsProbe.Source = plan.Source
	for _, f := range facts {
		base := s.base(loc, plan.Vantage, f.Addr, now)
		for _, p := range f.Ports {
			svc, _ := p.Attrs["service"].(string)
			tunnel, _ := p.Attrs["tunnel"].(string)
			target := net.JoinHostPort(f.Addr, fmt.Sprint(p.Port))
			b := base
			b.Port, b.Proto = p.Port, p.Proto
			baseOf[target+"/"+p.Proto] = b
			if nuc != nil {
				// Extra template directories run on every open port.
				if job, ok := NucleiJobFor(f.Addr, p.Port, p.Proto, svc, tunnel); ok || len(cfg.Templates) > 0 {
					jobs = append(jobs, job)
				}
			}
			if p.Proto != "tcp" {
				continue
			}
			if SpeaksTLS(svc, tunnel) {
				native = append(native, func(ctx context.Context) {
					attrs, err := tlsProbe.Probe(ctx, f.Addr, p.Port, "")
					switch {
					case errors.Is(err, ErrNotTLS):
						s.log.Debug("not TLS after all", "target", target)
					case err != nil:
						if ctx.Err() == nil {
							fail("tls %s: %v", target, err)
						}
					default:
						o := b
						o.Kind, o.Source, o.Attrs = observe.KindTLS, "tls", attrs
						add(o)
					}
				})
			}
			if svc == "ssh" {
				native = append(native, func(ctx context.Context) {
					if err := s.limiter.Wait(ctx); err != nil {
						return
					}
					auth, err := ProbeSSHAuthFrom(ctx, plan.Source, f.Addr, p.Port, cfg.ProbeTimeout.Duration)
					if err != nil {
						if ctx.Err() == nil {
							fail("ssh %s: %v", target, err)
						}
						return
					}
					add(sshFacts(b, auth))
					if o, ok := sshObservation(b, auth); ok {
						add(o)
					}
				})
			}
		}
	}

	// Progress: native probes count one each; nuclei reports its probes.
	var nativeDone, nucDone, nucTotal atomic.Int64
	report := func() {
		s.progress(Event{Location: loc.ID, Check: "checks",
			Done:  int(nativeDone.Load() + nucDone.Load()),
			Total: len(native) + int(nucTotal.Load())})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Concurrency + 1) // +1: the nuclei run holds one slot
	if len(jobs) > 0 {
		g.Go(func() error {
			results, err := nuc.Run(gctx, jobs, func(d, t int) {
				nucDone.Store(int64(d))
				nucTotal.Store(int64(t))
				report()
			})
			if err != nil && gctx.Err() == nil {
				fail("nuclei: %v", err)
			}
			for _, r := range results {
				key := net.JoinHostPort(r.Host, fmt.Sprint(r.Port)) + "/" + r.Proto
				b, ok := baseOf[key]
				if !ok {
					b = s.base(loc, plan.Vantage, r.Host, now)
					b.Port, b.Proto = r.Port, r.Proto
				}
				o := b
				o.Kind, o.Source, o.Attrs = observe.KindCheck, "nuclei", r.Attrs()
				if !r.At.IsZero() {
					o.At = r.At.UTC()
				}
				add(o)
			}
			return nil
		})
	}
	for _, probe := range native {
		g.Go(func() error {
			probe(gctx)
			nativeDone.Add(1)
			report()
			return nil
		})
	}
	_ = g.Wait()
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Port < out[j].Port
	})
	sort.Strings(errs)
	return out, errs
}

// sshFacts is what an SSH server said about itself, whatever it allows:
// its host key identifies the machine on every address it answers on.
func sshFacts(b observe.Observation, auth SSHAuth) observe.Observation {
	o := b
	o.Kind, o.Source = observe.KindSSH, "ssh"
	methods := []string{}
	if auth.Password {
		methods = append(methods, "password")
	}
	if auth.KeyboardInteractive {
		methods = append(methods, "keyboard-interactive")
	}
	o.Attrs = map[string]any{"banner": auth.Banner, "host_key_type": auth.HostKeyType,
		"host_key_sha256": auth.HostKeySHA256, "auth_methods": methods, "no_auth": auth.NoAuth}
	return o
}

// sshObservation turns what the SSH probe learnt into a check observation,
// if there is anything to report.
func sshObservation(b observe.Observation, auth SSHAuth) (observe.Observation, bool) {
	o := b
	o.Kind, o.Source = observe.KindCheck, "ssh"
	keys := map[string]any{"engine": "native", "host_key_sha256": auth.HostKeySHA256, "host_key_type": auth.HostKeyType}
	switch {
	case auth.NoAuth:
		o.Attrs = map[string]any{"check": "ssh-no-auth", "name": "SSH login without any credential",
			"details": "the server let an unknown user in without a password or key", "extracted": []string{auth.Banner}}
	case auth.Password || auth.KeyboardInteractive:
		var methods []string
		if auth.Password {
			methods = append(methods, "password")
		}
		if auth.KeyboardInteractive {
			methods = append(methods, "keyboard-interactive")
		}
		o.Attrs = map[string]any{"check": "ssh-password-auth", "name": "SSH password authentication offered",
			"details": "server offers " + strings.Join(methods, " and ") + " login", "extracted": methods}
	default:
		return o, false
	}
	for k, v := range keys {
		o.Attrs[k] = v
	}
	return o, true
}

func addrString(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

// localTCPAddr is a dialer's LocalAddr for a source address, or nil.
func localTCPAddr(a netip.Addr) net.Addr {
	if !a.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
}
