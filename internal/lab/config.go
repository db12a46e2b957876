package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Ports is the TCP port list the lab's vigil config scans: every planted
// TCP service plus RDP and VNC, which the lab does not run (their absence
// must not produce findings).
const Ports = "21,22,23,80,139,443,445,1883,3389,5900,6379"

// WriteConfig writes a vigil YAML config for the lab to path: organisation
// "Vigil Lab", one location "lab" with the guest and servers segments, the
// scanner as vantage on guest, and the lab CA as an extra trusted CA.
// dataDir is vigil's data directory.
func (l *Lab) WriteConfig(path string, dataDir string) error {
	q := strconv.Quote // a YAML double-quoted scalar accepts Go's escapes for plain paths
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
      - {segment: guest, source: %s}
    ports: %s
scan:
  ca_files: [%s]
`, q(dataDir), GuestCIDR, ServersCIDR, ScannerAddr, q(Ports), q(l.CAFile()))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(conf), 0o644)
}
