package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNotRoot is returned by Check and Start when the process is not root:
// building network namespaces needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
var ErrNotRoot = errors.New("the lab builds network namespaces and needs root")

// ErrMissingTools is returned by Check and Start when a daemon or tool the
// lab runs is not installed.
var ErrMissingTools = errors.New("programs the lab needs are not installed")

// Tool is a program the lab runs and the Debian package that ships it.
type Tool struct {
	Binary  string // e.g. "vsftpd"
	Package string // e.g. "vsftpd"
}

// Tools lists every program Start runs, with its Debian package.
// scripts/install-deps.sh installs the same packages.
var Tools = []Tool{
	{"ip", "iproute2"},
	{"ss", "iproute2"},
	{"sysctl", "procps"},
	{"vsftpd", "vsftpd"},
	{"redis-server", "redis-server"},
	{"mosquitto", "mosquitto"},
	{"snmpd", "snmpd"},
	{"inetutils-inetd", "inetutils-inetd"},
	{"telnetd", "inetutils-telnetd"},
	{"smbd", "samba"},
	{"nginx", "nginx-light"},
	{"sshd", "openssh-server"},
	{"ssh-keygen", "openssh-client"},
}

// lookTool finds a program on PATH or in the sbin directories, which are
// often missing from a non-login root PATH (sudo, CI runners).
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", name)
}

// Missing returns the tools from Tools that are not installed.
func Missing() []Tool {
	var out []Tool
	for _, t := range Tools {
		if _, err := lookTool(t.Binary); err != nil {
			out = append(out, t)
		}
	}
	return out
}

// Check reports whether Start can run here: it returns an error wrapping
// ErrNotRoot or ErrMissingTools that says what to do, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (run the tests or the demo as root, e.g. with sudo)", ErrNotRoot)
	}
	if m := Missing(); len(m) > 0 {
		var names, pkgs []string
		seen := map[string]bool{}
		for _, t := range m {
			names = append(names, t.Binary)
			if !seen[t.Package] {
				seen[t.Package] = true
				pkgs = append(pkgs, t.Package)
			}
		}
		return fmt.Errorf("%w: %s (packages %s): run scripts/install-deps.sh",
			ErrMissingTools, strings.Join(names, ", "), strings.Join(pkgs, " "))
	}
	return nil
}
