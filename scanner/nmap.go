package scanner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	nmap "github.com/Ullaakut/nmap/v3"
)

// MinNmapVersion is the oldest nmap whose XML and service detection vigil
// relies on.
const MinNmapVersion = "7.80"

// ErrNmapMissing means no usable nmap binary was found.
var ErrNmapMissing = errors.New("nmap not found: install it (Debian/Ubuntu: apt-get install nmap; macOS: brew install nmap) or set VIGIL_NMAP to its path")

// Nmap runs the nmap binary and turns its XML into observations.
type Nmap struct {
	Path    string
	Version string
	// Privileged means nmap may use raw sockets (SYN and UDP scans).
	Privileged bool
}

var nmapVersionRE = regexp.MustCompile(`Nmap version (\d+\.\d+)`)

// FindNmap locates nmap (VIGIL_NMAP, then PATH) and checks its version.
func FindNmap(ctx context.Context) (*Nmap, error) {
	path := os.Getenv("VIGIL_NMAP")
	if path == "" {
		p, err := exec.LookPath("nmap")
		if err != nil {
			return nil, ErrNmapMissing
		}
		path = p
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%w (running %s --version: %v)", ErrNmapMissing, path, err)
	}
	m := nmapVersionRE.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%s --version printed no version; is it nmap?", path)
	}
	v := string(m[1])
	if versionLess(v, MinNmapVersion) {
		return nil, fmt.Errorf("nmap %s at %s is too old: vigil needs %s or newer (apt-get install nmap from a current release)", v, path, MinNmapVersion)
	}
	return &Nmap{Path: path, Version: v, Privileged: privileged()}, nil
}

// privileged reports whether nmap can use raw sockets: vigil runs as root,
// or the operator says nmap has the capabilities (VIGIL_NMAP_PRIVILEGED=1,
// as in the container image, where nmap carries cap_net_raw).
func privileged() bool {
	if os.Getenv("VIGIL_NMAP_PRIVILEGED") == "1" {
		return true
	}
	return os.Geteuid() == 0
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 2; i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return false
}

// NmapJob is one nmap invocation: discovery plus service detection over a
// set of targets.
type NmapJob struct {
	Targets     []string
	TCPPorts    []int
	UDPPorts    []int
	Rate        int
	HostTimeout time.Duration
	// Source and Interface pin the probes to a vantage point (-S, -e).
	Source    string
	Interface string
	// ReverseDNS enables PTR lookups (off by default: no DNS traffic).
	ReverseDNS bool
	// Mode is ModeService (the zero value), ModeDiscover or ModeReach.
	Mode string
	// Exclude are addresses inside Targets not to probe (--exclude): the
	// sensor's own.
	Exclude []string
	// Connect forces connect() probes even with raw-socket rights. nmap
	// routes raw packets by the main routing table alone, so a sensor
	// with one leg per VLAN and source-based routing (ip rule from ADDR)
	// must let the kernel route: connect() sockets bound to -S are.
	Connect bool
}

// Args returns nmap's command-line arguments for the job (without -oX),
// which is also what `vigil scan --dry-run` prints.
func (n *Nmap) Args(j NmapJob) []string {
	var args []string
	raw := n.Privileged && !j.Connect
	switch {
	case raw:
		args = append(args, "--privileged")
	case n.Privileged:
		args = append(args, "--unprivileged") // connect() scans, bound to -S by the kernel
	}
	switch j.Mode {
	case ModeDiscover:
		if raw {
			args = append(args, "-sn", "-T4", "-PE", "-PP", "-PS21,22,23,80,443,445,3389", "-PA80", "--max-retries", "1")
		} else {
			args = append(args, "-sn", "-T4", "-PS21,22,23,80,443,445,3389", "--max-retries", "1")
		}
	case ModeReach:
		args = append(args, scanType(raw), "-Pn", "-T4", "--max-retries", "1")
	default:
		args = append(args, scanType(raw))
		if raw && len(j.UDPPorts) > 0 {
			args = append(args, "-sU")
		}
		args = append(args, "-sV", "-T4",
			"-PE", "-PP", "-PS21,22,23,80,443,445,3389", "-PA80",
			"--max-retries", "2")
	}
	if !j.ReverseDNS {
		args = append(args, "-n")
	}
	if j.Rate > 0 {
		args = append(args, "--max-rate", strconv.Itoa(j.Rate))
	}
	if j.HostTimeout > 0 {
		args = append(args, "--host-timeout", fmt.Sprintf("%ds", int(j.HostTimeout.Seconds())))
	}
	// -S binds connect() scans to the address and sets raw probes' source;
	// -e picks the interface (and its gateway) when the sensor has several.
	if j.Source != "" {
		args = append(args, "-S", j.Source)
	}
	if j.Interface != "" {
		args = append(args, "-e", j.Interface)
	}
	if len(j.Exclude) > 0 {
		args = append(args, "--exclude", strings.Join(j.Exclude, ","))
	}
	if j.Mode != ModeDiscover {
		args = append(args, "-p", portArg(j.TCPPorts, n.udp(j)))
	}
	return append(args, j.Targets...)
}

// scanType is the TCP scan type: SYN with raw sockets, else connect().
func scanType(raw bool) string {
	if raw {
		return "-sS"
	}
	return "-sT"
}

// Job modes.
const (
	ModeService  = ""         // ports plus service detection (-sV)
	ModeDiscover = "discover" // host discovery only (-sn)
	ModeReach    = "reach"    // the listed ports on hosts known to be up (-Pn), no service detection
)

func (n *Nmap) udp(j NmapJob) []int {
	if !n.Privileged || j.Connect {
		return nil
	}
	return j.UDPPorts
}

func portArg(tcp, udp []int) string {
	// Consecutive ports become ranges: 1-65535 must stay one argument.
	join := func(ps []int) string {
		var s []string
		for i := 0; i < len(ps); {
			j := i
			for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
				j++
			}
			if j > i {
				s = append(s, strconv.Itoa(ps[i])+"-"+strconv.Itoa(ps[j]))
			} else {
				s = append(s, strconv.Itoa(ps[i]))
			}
			i = j + 1
		}
		return strings.Join(s, ",")
	}
	if len(udp) == 0 {
		return join(tcp)
	}
	return "T:" + join(tcp) + ",U:" + join(udp)
}

// NmapProgress is what nmap last said about its progress.
type NmapProgress struct {
	Task      string
	Percent   float64
	HostsDone int
}

// Run runs the job and returns nmap's parsed report. progress, if not nil,
// is called as nmap reports progress (every two seconds) and finished hosts.
// Cancelling ctx stops nmap; the error then wraps context.Canceled.
func (n *Nmap) Run(ctx context.Context, j NmapJob, progress func(NmapProgress)) (*nmap.Run, error) {
	if len(j.Targets) == 0 {
		return &nmap.Run{}, nil
	}
	args := append(n.Args(j), "--stats-every", "2s")
	s, err := nmap.NewScanner(ctx, nmap.WithBinaryPath(n.Path), nmap.WithCustomArguments(args...))
	if err != nil {
		return nil, err
	}
	if progress != nil {
		s.Streamer(&progressWriter{fn: progress})
	}
	run, warnings, err := s.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("nmap: %w", ctx.Err())
	}
	if err != nil {
		msg := err.Error()
		if warnings != nil && len(*warnings) > 0 {
			msg += ": " + strings.Join(*warnings, "; ")
		}
		return nil, fmt.Errorf("nmap %s: %s", strings.Join(j.Targets, " "), msg)
	}
	return run, nil
}

// progressWriter watches nmap's XML stream for <taskprogress> and finished
// <host> elements without buffering the whole document.
type progressWriter struct {
	mu    sync.Mutex
	fn    func(NmapProgress)
	buf   []byte
	state NmapProgress
}

var (
	taskProgressRE = regexp.MustCompile(`<taskprogress[^>]*task="([^"]*)"[^>]*percent="([0-9.]+)"`)
)

func (w *progressWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := w.buf[:i]
		changed := false
		if m := taskProgressRE.FindSubmatch(line); m != nil {
			w.state.Task = string(m[1])
			w.state.Percent, _ = strconv.ParseFloat(string(m[2]), 64)
			changed = true
		}
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("</host>")) {
			w.state.HostsDone++
			changed = true
		}
		if changed {
			w.fn(w.state)
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 1<<20 { // a pathological line: drop it
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// ParseNmapXML parses nmap's XML report.
func ParseNmapXML(data []byte) (*nmap.Run, error) {
	var run nmap.Run
	if err := nmap.Parse(data, &run); err != nil {
		return nil, fmt.Errorf("nmap XML: %w", err)
	}
	return &run, nil
}

// NmapFacts is one host's facts as nmap reported them, before they are
// placed in a location: the host itself and each open port.
type NmapFacts struct {
	Addr  string
	Host  map[string]any
	Ports []NmapPort
}

// NmapPort is one open (or open|filtered UDP) port.
type NmapPort struct {
	Port  int
	Proto string
	Attrs map[string]any
}

// FactsFromNmap converts nmap's report into per-host facts: hosts that are
// up, their open ports and what service detection said. Closed and filtered
// ports are dropped; UDP ports that are open|filtered are kept only when
// service detection identified them.
func FactsFromNmap(run *nmap.Run) []NmapFacts {
	if run == nil {
		return nil
	}
	var out []NmapFacts
	for _, h := range run.Hosts {
		if h.Status.State != "up" {
			continue
		}
		f := NmapFacts{Host: map[string]any{}}
		for _, a := range h.Addresses {
			switch a.AddrType {
			case "ipv4", "ipv6":
				if f.Addr == "" {
					f.Addr = a.Addr
				}
			case "mac":
				f.Host["mac"] = a.Addr
				if a.Vendor != "" {
					f.Host["mac_vendor"] = a.Vendor
				}
			}
		}
		if f.Addr == "" {
			continue
		}
		if len(h.Hostnames) > 0 {
			f.Host["hostname"] = h.Hostnames[0].Name
		}
		if len(h.OS.Matches) > 0 {
			f.Host["os"] = h.OS.Matches[0].Name
		}
		for _, p := range h.Ports {
			st := p.State.State
			if st != "open" && !(st == "open|filtered" && p.Protocol == "udp" && p.Service.Name != "" && p.Service.Product != "") {
				continue
			}
			attrs := map[string]any{
				"service":   serviceName(p.Service.Name),
				"product":   p.Service.Product,
				"version":   p.Service.Version,
				"extrainfo": p.Service.ExtraInfo,
				"tunnel":    p.Service.Tunnel,
				"state":     st,
				"cpe":       cpes(p.Service.CPEs),
			}
			f.Ports = append(f.Ports, NmapPort{Port: int(p.ID), Proto: p.Protocol, Attrs: attrs})
		}
		sort.Slice(f.Ports, func(i, j int) bool {
			if f.Ports[i].Proto != f.Ports[j].Proto {
				return f.Ports[i].Proto < f.Ports[j].Proto
			}
			return f.Ports[i].Port < f.Ports[j].Port
		})
		out = append(out, f)
	}
	return out
}

// serviceName undoes what nmap's scripts sometimes do to the service name:
// nmap 7.93's mqtt-subscribe replaces "mqtt" with the broker's version
// topic ("mosquitto version 2.0.11"), which no rule would recognise.
func serviceName(name string) string {
	l := strings.ToLower(name)
	switch {
	case strings.HasPrefix(l, "mosquitto"), strings.HasPrefix(l, "mqtt"):
		return "mqtt"
	}
	return name
}

// TimedOutHosts lists the hosts nmap gave up on (--host-timeout): their
// ports were not all scanned.
func TimedOutHosts(run *nmap.Run) []string {
	if run == nil {
		return nil
	}
	var out []string
	for _, h := range run.Hosts {
		if !h.TimedOut {
			continue
		}
		for _, a := range h.Addresses {
			if a.AddrType == "ipv4" || a.AddrType == "ipv6" {
				out = append(out, a.Addr)
				break
			}
		}
	}
	return out
}

func cpes(c []nmap.CPE) []string {
	out := make([]string, 0, len(c))
	for _, x := range c {
		out = append(out, string(x))
	}
	return out
}

// nmapServicesTop returns the n most frequent TCP ports from nmap's
// nmap-services table (what --top-ports uses), so vigil can pass an explicit
// list and add its own sensitive ports.
func nmapServicesTop(path string, n int) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nmap-services: %w (is nmap installed completely?)", err)
	}
	defer f.Close()
	return parseNmapServices(f, n)
}

func parseNmapServices(r io.Reader, n int) ([]int, error) {
	type entry struct {
		port int
		freq float64
	}
	var es []entry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) < 3 {
			continue
		}
		port, proto, ok := strings.Cut(fs[1], "/")
		if !ok || proto != "tcp" {
			continue
		}
		p, err1 := strconv.Atoi(port)
		fq, err2 := strconv.ParseFloat(fs[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		es = append(es, entry{p, fq})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].freq > es[j].freq })
	if n > len(es) {
		n = len(es)
	}
	out := make([]int, 0, n)
	for _, e := range es[:n] {
		out = append(out, e.port)
	}
	sort.Ints(out)
	return out, nil
}
