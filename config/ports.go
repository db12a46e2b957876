package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// PortSpec is a parsed port selection: either the top N ports by nmap's
// frequency table, or an explicit sorted list.
type PortSpec struct {
	Top   int
	Ports []int
}

// ParsePorts parses "top-N", or a comma-separated list of ports and ranges
// ("22,80,443", "1-1024,3389").
func ParsePorts(spec string) (PortSpec, error) {
	spec = strings.TrimSpace(spec)
	if rest, ok := strings.CutPrefix(spec, "top-"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > 65535 {
			return PortSpec{}, fmt.Errorf("invalid port selection %q: top-N needs N between 1 and 65535", spec)
		}
		return PortSpec{Top: n}, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err != nil || a < 1 || b > 65535 || a > b {
			return PortSpec{}, fmt.Errorf("invalid port or range %q in %q (use e.g. \"22,80,443\", \"1-1024\" or \"top-100\")", part, spec)
		}
		for p := a; p <= b; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return PortSpec{}, fmt.Errorf("empty port selection %q", spec)
	}
	slices.Sort(out)
	return PortSpec{Ports: out}, nil
}

func joinDir(configFile, path string) string {
	return filepath.Join(filepath.Dir(configFile), path)
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
