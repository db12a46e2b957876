package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Every namespace a lab creates is named NamePrefix + four hex digits + "-"
// + a role, e.g. "vgl3fa2-scan". Sweep relies on that shape.
const NamePrefix = "vgl"

// registryDir holds one file per live lab, "<id>" containing the owner's PID
// and process start time, written before the first namespace is created.
// Sweep treats namespaces whose owner is gone as leftovers of a crashed run.
const registryDir = "/run/vigil-lab"

// cmdTimeout bounds every short administrative command (ip, sysctl, ss).
const cmdTimeout = 15 * time.Second

var nsNameRE = regexp.MustCompile(`^` + NamePrefix + `([0-9a-f]{4})-[a-z0-9-]+$`)

// newID returns four random hex digits that are not the id of a lab whose
// namespaces already exist.
func newID() (string, error) {
	existing, err := listNamespaces(context.Background())
	if err != nil {
		return "", err
	}
	for range 100 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := hex.EncodeToString(b[:])
		clash := false
		for _, ns := range existing {
			if strings.HasPrefix(ns, NamePrefix+id+"-") {
				clash = true
				break
			}
		}
		if _, err := os.Stat(filepath.Join(registryDir, id)); err == nil {
			clash = true
		}
		if !clash {
			return id, nil
		}
	}
	return "", errors.New("no free lab id")
}

// run executes a short command with a timeout and returns its combined output;
// the error names the command and carries its output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// ipIn runs `ip -n NS args...`. It refuses an empty namespace so that no lab
// command can ever change the host's own interfaces, addresses or routes.
func ipIn(ctx context.Context, ns string, args ...string) error {
	if !nsNameRE.MatchString(ns) {
		return fmt.Errorf("refusing to run ip outside a lab namespace (got %q)", ns)
	}
	_, err := run(ctx, "ip", append([]string{"-n", ns}, args...)...)
	return err
}

// execIn runs a short command inside a lab namespace.
func execIn(ctx context.Context, ns string, name string, args ...string) (string, error) {
	if !nsNameRE.MatchString(ns) {
		return "", fmt.Errorf("refusing to run %s outside a lab namespace (got %q)", name, ns)
	}
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// listNamespaces returns the names of all named network namespaces.
func listNamespaces(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// addNamespace creates a namespace with lo up and IPv6 off (the lab is
// IPv4-only; no router advertisements or DAD noise in captures).
func addNamespace(ctx context.Context, ns string) error {
	if !nsNameRE.MatchString(ns) {
		return fmt.Errorf("bad lab namespace name %q", ns)
	}
	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	// Best effort (sysctl sets the keys it can and goes on): a kernel
	// without IPv6 lacks the first two, which is fine. icmp_ratelimit is per
	// namespace; off, closed UDP ports answer every probe at once, so UDP
	// scans of the lab are quick.
	_, _ = execIn(ctx, ns, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.icmp_ratelimit=0")
	return ipIn(ctx, ns, "link", "set", "lo", "up")
}

// nsPIDs returns the PIDs of every process inside namespace ns.
func nsPIDs(ctx context.Context, ns string) []int {
	out, err := run(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killNamespace kills every process in ns (TERM, then KILL) and deletes it.
func killNamespace(ctx context.Context, ns string) error {
	if !nsNameRE.MatchString(ns) {
		return fmt.Errorf("refusing to delete namespace %q: not a lab namespace", ns)
	}
	if pids := nsPIDs(ctx, ns); len(pids) > 0 {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) && len(nsPIDs(ctx, ns)) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		for _, pid := range nsPIDs(ctx, ns) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := run(ctx, "ip", "netns", "del", ns)
	return err
}

// processStart returns the start time (clock ticks since boot) of pid, which
// together with the PID identifies a process across PID reuse.
func processStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// Fields after the parenthesised command name; starttime is field 22.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}

// register picks a free lab id and records that this process owns it. The
// entry is created exclusively, so two labs starting at once cannot share
// an id.
func register() (id, path string, err error) {
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return "", "", err
	}
	start, _ := processStart(os.Getpid())
	for range 10 {
		if id, err = newID(); err != nil {
			return "", "", err
		}
		path = filepath.Join(registryDir, id)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", "", err
		}
		_, err = fmt.Fprintf(f, "%d %s\n", os.Getpid(), start)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return id, path, err
	}
	return "", "", errors.New("no free lab id")
}

// ownerAlive reports whether the process that registered lab id still runs.
func ownerAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(registryDir, id))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	start, ok := processStart(pid)
	return ok && start == f[1]
}

// Sweep deletes the namespaces (and kills the daemons inside them) left by
// labs whose owning process is gone, e.g. a test binary killed by a timeout.
// Labs of live processes are left alone, so concurrent labs are safe.
// It returns the names of the namespaces it removed.
func Sweep(ctx context.Context) ([]string, error) {
	names, err := listNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	staleIDs := map[string]bool{}
	for _, ns := range names {
		m := nsNameRE.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		id := m[1]
		if ownerAlive(id) {
			continue
		}
		staleIDs[id] = true
		if err := killNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, ns)
	}
	// Registry entries of dead owners, with or without namespaces left.
	if entries, err := os.ReadDir(registryDir); err == nil {
		for _, e := range entries {
			if !ownerAlive(e.Name()) {
				staleIDs[e.Name()] = true
			}
		}
	}
	for id := range staleIDs {
		if ok, _ := regexp.MatchString(`^[0-9a-f]{4}$`, id); ok {
			_ = os.Remove(filepath.Join(registryDir, id))
		}
	}
	return removed, errors.Join(errs...)
}

// dialIn opens a connection from inside network namespace ns. The socket is
// created on an OS thread that has joined ns; the thread is discarded
// afterwards (its goroutine exits while still locked), so no other goroutine
// ever runs in the lab's namespace.
func dialIn(ctx context.Context, ns, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: see above.
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
