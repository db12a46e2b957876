package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Ports is the TCP port list the lab's vigil config scans: every planted
// TCP service plus RDP and VNC, which the lab does not run (their absence
// must not produce findings).
const Ports = "21,22,23,80,139,443,445,1883,3389,5900,6379"

// Flow is one flow a location's policy allows, written to the config as
// an entry of `policy:`. No Ports means any port.
type Flow struct {
	From, To string // segment names: "guest", "servers"
	Ports    []int
}

// ConfigOptions vary the config WriteConfigWith writes. The zero value
// writes exactly what WriteConfig writes.
type ConfigOptions struct {
	// Ports is the location's TCP port selection; empty means Ports.
	Ports string
	// UDPPorts is scan.udp_ports ("161", "none"); empty leaves it out
	// (vigil's default).
	UDPPorts string
	// Policy is the location's `policy:` list; nil leaves it out (no flow
	// is allowed).
	Policy []Flow
	// ServersVantage adds the scanner's second leg (ScannerServersAddr,
	// see Options.ServersVantage) as a vantage point in servers.
	ServersVantage bool
	// Extra is YAML appended at the top level (identity sources, roster,
	// software paths) for sources outside the lab's network.
	Extra string
}

// WriteConfig writes a vigil YAML config for the lab to path: organisation
// "Vigil Lab", one location "lab" with the guest and servers segments, the
// scanner as vantage on guest, and the lab CA as an extra trusted CA.
// dataDir is vigil's data directory.
func (l *Lab) WriteConfig(path string, dataDir string) error {
	return l.WriteConfigWith(path, dataDir, ConfigOptions{})
}

// WriteConfigWithPolicy is WriteConfig plus a `policy:` list for the
// location.
func (l *Lab) WriteConfigWithPolicy(path, dataDir string, policy []Flow) error {
	return l.WriteConfigWith(path, dataDir, ConfigOptions{Policy: policy})
}

// WriteConfigWith is WriteConfig with the changes opts asks for.
func (l *Lab) WriteConfigWith(path, dataDir string, opts ConfigOptions) error {
	q := strconv.Quote // a YAML double-quoted scalar accepts Go's escapes for plain paths
	ports := opts.Ports
	if ports == "" {
		ports = Ports
	}
	var policy strings.Builder
	if opts.Policy != nil {
		policy.WriteString("    policy:\n")
		for _, f := range opts.Policy {
			ps := make([]string, len(f.Ports))
			for i, p := range f.Ports {
				ps[i] = strconv.Itoa(p)
			}
			fmt.Fprintf(&policy, "      - {from: %s, to: %s", q(f.From), q(f.To))
			if len(ps) > 0 {
				fmt.Fprintf(&policy, ", ports: [%s]", strings.Join(ps, ", "))
			}
			policy.WriteString("}\n")
		}
		if len(opts.Policy) == 0 {
			policy.Reset()
			policy.WriteString("    policy: []\n")
		}
	}
	vantage := fmt.Sprintf("      - {segment: guest, source: %s}\n", ScannerAddr)
	if opts.ServersVantage {
		vantage += fmt.Sprintf("      - {segment: servers, source: %s}\n", ScannerServersAddr)
	}
	udp := ""
	if opts.UDPPorts != "" {
		udp = "  udp_ports: " + q(opts.UDPPorts) + "\n"
	}
	conf := fmt.Sprintf(`# vigil configuration for the network-namespace lab (internal/lab).
organization: Vigil Lab
data_dir: %s
locations:
  - id: lab
    name: Lab Clinic
    state: CA
    segments:
      - {name: guest, cidr: %s, role: guest}
      - {name: servers, cidr: %s, role: servers}
    vantage:
%s    ports: %s
%sscan:
  ca_files: [%s]
%s%s`, q(dataDir), GuestCIDR, ServersCIDR, vantage, q(ports), policy.String(), q(l.CAFile()), udp, opts.Extra)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(conf), 0o644)
}
