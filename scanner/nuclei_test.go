package scanner

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/projectdiscovery/nuclei/v3/pkg/model"
	"github.com/projectdiscovery/nuclei/v3/pkg/model/types/severity"
	"github.com/projectdiscovery/nuclei/v3/pkg/output"
	ztls "github.com/zmap/zcrypto/tls"
)

// nucleiEngine starts an engine for one test and closes it when the test
// ends. Starting one is cheap (the pack compiles in milliseconds).
func nucleiEngine(t *testing.T) *Nuclei {
	t.Helper()
	start := time.Now()
	n, err := NewNuclei(context.Background(), NucleiOptions{
		RateLimit:   50,
		Timeout:     2 * time.Second,
		Concurrency: 8,
		Logger:      nucleiTestLogger(),
	})
	if err != nil {
		t.Fatalf("NewNuclei: %v", err)
	}
	t.Logf("engine init took %v", time.Since(start))
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

// nucleiTestLogger shows nuclei's debug output with VIGIL_TEST_DEBUG=1.
func nucleiTestLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("VIGIL_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// nucleiRun runs the templates tagged tags against target and returns the
// ids that matched, with the results.
func nucleiRun(t *testing.T, target string, tags ...string) ([]string, []NucleiResult) {
	t.Helper()
	n := nucleiEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	res, err := n.Run(ctx, []NucleiJob{{Target: target, Tags: tags}}, nil)
	if err != nil {
		t.Fatalf("Run(%s, %v): %v", target, tags, err)
	}
	t.Logf("Run(%s, %v) took %v: %d result(s)", target, tags, time.Since(start), len(res))
	var ids []string
	for _, r := range res {
		t.Logf("  %s %s:%d/%s extracted=%q details=%q", r.TemplateID, r.Host, r.Port, r.Proto, r.Extracted, r.Details)
		ids = append(ids, r.TemplateID)
	}
	return ids, res
}

func nucleiWant(t *testing.T, ids []string, id string, match bool) {
	t.Helper()
	if got := slices.Contains(ids, id); got != match {
		t.Fatalf("%s matched = %v, want %v (matched: %v)", id, got, match, ids)
	}
}

func nucleiResultFor(t *testing.T, res []NucleiResult, id string) NucleiResult {
	t.Helper()
	for _, r := range res {
		if r.TemplateID == id {
			return r
		}
	}
	t.Fatalf("no result for %s", id)
	return NucleiResult{}
}

// --- helpers for daemons on loopback ---

// nucleiFreePort returns a loopback port that was free a moment ago.
func nucleiFreePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Skipf("cannot bind a UDP port on loopback: %v", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Skipf("cannot bind a TCP port on loopback: %v", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

func nucleiNeedBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Skipf("%s not installed (apt-get install the package providing it)", name)
	}
	return p
}

func nucleiNeedRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

// nucleiDaemon starts a daemon in the foreground, kills it in t.Cleanup
// and returns its output so far on demand.
func nucleiDaemon(t *testing.T, env []string, name string, args ...string) func() string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	var mu sync.Mutex
	w := nucleiLockedWriter{w: &out, mu: &mu}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
}

type nucleiLockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l nucleiLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// nucleiWaitTCP waits until addr accepts TCP connections.
func nucleiWaitTCP(t *testing.T, addr string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never accepted connections; daemon output:\n%s", addr, logs())
}

func nucleiWriteFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// --- the pack itself ---

func TestNucleiPackLoads(t *testing.T) {
	n := nucleiEngine(t)
	want := []string{
		"vigil-ftp-anonymous", "vigil-http-login-plaintext", "vigil-mqtt-anonymous",
		"vigil-redis-unauth", "vigil-smb-guest", "vigil-smb-signing-not-required",
		"vigil-snmp-public", "vigil-telnet-banner", "vigil-tls-sslv3", "vigil-vnc-noauth",
	}
	got := n.Templates()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("templates = %v\nwant %v", got, want)
	}
	for _, tpl := range n.pack {
		if v, ok := tpl.Info.Metadata["vigil-check"].(bool); !ok || !v {
			t.Errorf("%s: metadata vigil-check: true missing", tpl.ID)
		}
		if tpl.Info.Description == "" || tpl.Info.Name == "" {
			t.Errorf("%s: name and description are required", tpl.ID)
		}
	}
}

func TestNucleiBadExtraDir(t *testing.T) {
	empty := t.TempDir()
	file := nucleiWriteFile(t, filepath.Join(t.TempDir(), "x.yaml"), "id: x\n")
	for _, dir := range []string{filepath.Join(t.TempDir(), "missing"), file, empty} {
		_, err := NewNuclei(context.Background(), NucleiOptions{ExtraTemplateDirs: []string{dir}, Logger: nucleiTestLogger()})
		if !errors.Is(err, ErrNucleiTemplateDir) || !strings.Contains(err.Error(), dir) {
			t.Errorf("NewNuclei(extra %s) error = %v, want ErrNucleiTemplateDir naming the directory", dir, err)
		}
	}
}

func TestNucleiRunRejectsHostnames(t *testing.T) {
	n := nucleiEngine(t)
	for _, target := range []string{"localhost:6379", "127.0.0.1", "127.0.0.1:0", "example.com:80"} {
		if _, err := n.Run(context.Background(), []NucleiJob{{Target: target, Tags: []string{"redis"}}}, nil); !errors.Is(err, ErrNucleiTarget) {
			t.Errorf("Run(%q) error = %v, want ErrNucleiTarget", target, err)
		}
	}
}

// --- Redis ---

func TestNucleiRedis(t *testing.T) {
	bin := nucleiNeedBinary(t, "redis-server")
	for _, tc := range []struct {
		name  string
		extra []string
		match bool
	}{
		{"no-auth", nil, true},
		{"requirepass", []string{"--requirepass", "s3cret-vigil"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := nucleiFreePort(t, "tcp")
			args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
				"--appendonly", "no", "--dir", t.TempDir(), "--protected-mode", "no"}, tc.extra...)
			logs := nucleiDaemon(t, nil, bin, args...)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			nucleiWaitTCP(t, addr, logs)
			ids, res := nucleiRun(t, addr, "redis")
			nucleiWant(t, ids, "vigil-redis-unauth", tc.match)
			if tc.match {
				r := nucleiResultFor(t, res, "vigil-redis-unauth")
				if len(r.Extracted) == 0 || !strings.Contains(r.Extracted[0], ".") {
					t.Errorf("extracted version = %q", r.Extracted)
				}
				if r.Host != "127.0.0.1" || r.Port != port || r.Proto != "tcp" {
					t.Errorf("result address = %s:%d/%s", r.Host, r.Port, r.Proto)
				}
			}
		})
	}
}

// --- MQTT ---

func TestNucleiMQTT(t *testing.T) {
	bin := nucleiNeedBinary(t, "mosquitto")
	for _, tc := range []struct {
		name      string
		anonymous bool
	}{
		{"anonymous", true},
		{"no-anonymous", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			port := nucleiFreePort(t, "tcp")
			conf := nucleiWriteFile(t, filepath.Join(dir, "mosquitto.conf"), fmt.Sprintf(
				"listener %d 127.0.0.1\nallow_anonymous %t\npersistence false\nlog_dest stderr\n", port, tc.anonymous))
			logs := nucleiDaemon(t, nil, bin, "-c", conf)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			nucleiWaitTCP(t, addr, logs)
			ids, _ := nucleiRun(t, addr, "mqtt")
			nucleiWant(t, ids, "vigil-mqtt-anonymous", tc.anonymous)
		})
	}
}

// --- FTP ---

func TestNucleiFTP(t *testing.T) {
	bin := nucleiNeedBinary(t, "vsftpd")
	nucleiNeedRoot(t, "vsftpd runs as root and chroots")
	for _, tc := range []struct {
		name      string
		anonymous bool
	}{
		{"anonymous", true},
		{"no-anonymous", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// vsftpd's unprivileged helpers need to traverse these.
			for _, d := range []string{dir, filepath.Join(dir, "anon"), filepath.Join(dir, "empty")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			port := nucleiFreePort(t, "tcp")
			yesNo := map[bool]string{true: "YES", false: "NO"}
			conf := nucleiWriteFile(t, filepath.Join(dir, "vsftpd.conf"), fmt.Sprintf(`listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=%d
background=NO
anonymous_enable=%s
no_anon_password=NO
anon_root=%s
local_enable=NO
write_enable=NO
secure_chroot_dir=%s
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=NO
ftpd_banner=vigil test FTP
`, port, yesNo[tc.anonymous], filepath.Join(dir, "anon"), filepath.Join(dir, "empty")))
			if err := os.Chmod(conf, 0o600); err != nil {
				t.Fatal(err)
			}
			logs := nucleiDaemon(t, nil, bin, conf)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			nucleiWaitTCP(t, addr, logs)
			ids, res := nucleiRun(t, addr, "ftp")
			nucleiWant(t, ids, "vigil-ftp-anonymous", tc.anonymous)
			if tc.anonymous {
				if r := nucleiResultFor(t, res, "vigil-ftp-anonymous"); !slices.Contains(r.Extracted, "vigil test FTP") {
					t.Errorf("extracted banner = %q, want %q", r.Extracted, "vigil test FTP")
				}
			}
		})
	}
}

// --- SNMP ---

func TestNucleiSNMP(t *testing.T) {
	bin := nucleiNeedBinary(t, "snmpd")
	for _, tc := range []struct {
		name      string
		community string
		match     bool
	}{
		{"public", "public", true},
		{"private-community", "n0t-public-vigil", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			port := nucleiFreePort(t, "udp")
			listen := fmt.Sprintf("udp:127.0.0.1:%d", port)
			conf := nucleiWriteFile(t, filepath.Join(dir, "snmpd.conf"), fmt.Sprintf(
				"rocommunity %s 127.0.0.1\nsysDescr vigil test agent\nsysLocation lab\n", tc.community))
			// -C: no system config; persistent state stays in the test's
			// directory; MIBS= keeps snmpd from loading (and complaining
			// about) MIB files it does not need.
			env := []string{"SNMP_PERSISTENT_DIR=" + dir, "MIBS="}
			logs := nucleiDaemon(t, env, bin, "-f", "-C", "-c", conf, "-Lo", "-p", filepath.Join(dir, "snmpd.pid"), listen)
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs(), "NET-SNMP version") {
				if time.Now().After(deadline) {
					t.Fatalf("snmpd did not start:\n%s", logs())
				}
				time.Sleep(50 * time.Millisecond)
			}
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			// The agent is up and answers its own community: a no-match
			// below is about "public", not about a dead agent.
			if !nucleiSNMPAnswers(addr, tc.community) {
				t.Fatalf("snmpd does not answer community %q:\n%s", tc.community, logs())
			}
			ids, res := nucleiRun(t, addr, "snmp")
			nucleiWant(t, ids, "vigil-snmp-public", tc.match)
			if tc.match {
				r := nucleiResultFor(t, res, "vigil-snmp-public")
				if r.Proto != "udp" || !slices.Contains(r.Extracted, "vigil test agent") {
					t.Errorf("result proto %s extracted %q, want udp and the sysDescr", r.Proto, r.Extracted)
				}
			}
		})
	}
}

// nucleiSNMPAnswers sends an SNMPv2c GET of sysDescr.0 with community and
// reports whether a response came back.
func nucleiSNMPAnswers(addr, community string) bool {
	tlv := func(tag byte, body []byte) []byte { return append([]byte{tag, byte(len(body))}, body...) }
	oid := []byte{0x2b, 6, 1, 2, 1, 1, 1, 0}
	varbind := tlv(0x30, append(tlv(0x06, oid), 0x05, 0x00))
	pdu := tlv(0xa0, slices.Concat(tlv(0x02, []byte{1, 2, 3, 4}), tlv(0x02, []byte{0}), tlv(0x02, []byte{0}), tlv(0x30, varbind)))
	msg := tlv(0x30, slices.Concat(tlv(0x02, []byte{1}), tlv(0x04, []byte(community)), pdu))
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for range 3 {
		_, _ = c.Write(msg)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// --- HTTP login over plain HTTP ---

func TestNucleiHTTPLogin(t *testing.T) {
	login := `<html><head><title>Clinic Portal Login</title></head><body>
<form method="post" action="/session"><input name="user"><input type="password" name="pw"><button>Sign in</button></form></body></html>`
	plain := `<html><head><title>Welcome</title></head><body><p>Opening hours 9-5</p><form><input type="text" name="q"></form></body></html>`
	page := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, body)
		})
	}
	for _, tc := range []struct {
		name  string
		srv   *httptest.Server
		tls   bool
		match bool
	}{
		{"login-over-http", httptest.NewServer(page(login)), false, true},
		{"no-password-field", httptest.NewServer(page(plain)), false, false},
		{"login-over-https", httptest.NewTLSServer(page(login)), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.srv.Close()
			addr := tc.srv.Listener.Addr().String()
			n := nucleiEngine(t)
			res, err := n.Run(context.Background(), []NucleiJob{{Target: addr, Tags: []string{"http"}, TLS: tc.tls}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range res {
				t.Logf("  %s %s:%d extracted=%q details=%q", r.TemplateID, r.Host, r.Port, r.Extracted, r.Details)
				ids = append(ids, r.TemplateID)
			}
			nucleiWant(t, ids, "vigil-http-login-plaintext", tc.match)
			if tc.match {
				if r := nucleiResultFor(t, res, "vigil-http-login-plaintext"); !slices.Contains(r.Extracted, "Clinic Portal Login") {
					t.Errorf("extracted = %q, want the page title", r.Extracted)
				}
			}
		})
	}
}

// --- telnet ---

func TestNucleiTelnet(t *testing.T) {
	inetd := nucleiNeedBinary(t, "inetutils-inetd")
	telnetd := nucleiNeedBinary(t, "telnetd")
	nucleiNeedRoot(t, "inetd runs telnetd and login as root")
	dir := t.TempDir()
	port := nucleiFreePort(t, "tcp")
	conf := nucleiWriteFile(t, filepath.Join(dir, "inetd.conf"),
		fmt.Sprintf("127.0.0.1:%d stream tcp nowait root %s telnetd\n", port, telnetd))
	logs := nucleiDaemon(t, nil, inetd, "-d", "--pidfile="+filepath.Join(dir, "inetd.pid"), conf)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	nucleiWaitTCP(t, addr, logs)
	ids, res := nucleiRun(t, addr, "telnet")
	nucleiWant(t, ids, "vigil-telnet-banner", true)
	r := nucleiResultFor(t, res, "vigil-telnet-banner")
	if !slices.ContainsFunc(r.Extracted, func(s string) bool { return strings.Contains(s, "login:") }) {
		t.Errorf("extracted = %q, want the banner up to the login prompt", r.Extracted)
	}
}

func TestNucleiTelnetNotTelnet(t *testing.T) {
	// An SSH server on a port nmap guessed was telnet must not match.
	addr := nucleiFakeServer(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n")
		_, _ = io.Copy(io.Discard, c)
	})
	ids, _ := nucleiRun(t, addr, "telnet")
	nucleiWant(t, ids, "vigil-telnet-banner", false)
}

// nucleiFakeServer serves handle on a loopback port until the test ends.
func nucleiFakeServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot bind a TCP port on loopback: %v", err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// --- VNC (fake RFB servers) ---

func TestNucleiVNC(t *testing.T) {
	rfb := func(version string, security []byte) func(net.Conn) {
		return func(c net.Conn) {
			_, _ = io.WriteString(c, version)
			buf := make([]byte, 12)
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			_, _ = c.Write(security)
			_, _ = io.Copy(io.Discard, c)
		}
	}
	for _, tc := range []struct {
		name    string
		version string
		sec     []byte
		match   bool
	}{
		{"3.8-none", "RFB 003.008\n", []byte{1, 1}, true},
		{"3.8-vnc-auth-and-none", "RFB 003.008\n", []byte{2, 2, 1}, true},
		{"3.3-none", "RFB 003.003\n", []byte{0, 0, 0, 1}, true},
		{"3.8-vnc-auth", "RFB 003.008\n", []byte{1, 2}, false},
		{"3.8-tight-and-vnc-auth", "RFB 003.008\n", []byte{2, 16, 2}, false},
		{"3.3-vnc-auth", "RFB 003.003\n", []byte{0, 0, 0, 2}, false},
		{"3.8-refused", "RFB 003.008\n", []byte{0, 0, 0, 0, 4, 'n', 'o', 'p', 'e'}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := nucleiFakeServer(t, rfb(tc.version, tc.sec))
			ids, res := nucleiRun(t, addr, "vnc")
			nucleiWant(t, ids, "vigil-vnc-noauth", tc.match)
			if tc.match {
				if r := nucleiResultFor(t, res, "vigil-vnc-noauth"); !slices.Contains(r.Extracted, strings.TrimSpace(tc.version)) {
					t.Errorf("extracted = %q", r.Extracted)
				}
			}
		})
	}
}

// --- SMB (smbd on loopback) ---

func TestNucleiSMB(t *testing.T) {
	bin := nucleiNeedBinary(t, "smbd")
	nucleiNeedRoot(t, "smbd needs root")
	for _, tc := range []struct {
		name        string
		mapToGuest  string
		signing     string
		wantGuest   bool
		wantSigning bool // vigil-smb-signing-not-required matches
	}{
		{"guest-unsigned", "bad user", "default", true, true},
		{"no-guest-signing-required", "never", "mandatory", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"share", "private", "lock", "state", "cache", "pid", "ncalrpc", "log"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			port := nucleiFreePort(t, "tcp")
			conf := nucleiWriteFile(t, filepath.Join(dir, "smb.conf"), fmt.Sprintf(`[global]
   server role = standalone server
   workgroup = VIGILTEST
   netbios name = VIGILTEST
   smb ports = %d
   interfaces = lo
   bind interfaces only = yes
   map to guest = %s
   server signing = %s
   pid directory = %[4]s/pid
   lock directory = %[4]s/lock
   state directory = %[4]s/state
   cache directory = %[4]s/cache
   private dir = %[4]s/private
   ncalrpc dir = %[4]s/ncalrpc
   log file = %[4]s/log/log.%%m
   passdb backend = tdbsam:%[4]s/private/passdb.tdb
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   disable netbios = yes

[clinicdocs]
   path = %[4]s/share
   guest ok = yes
   read only = yes
`, port, tc.mapToGuest, tc.signing, dir))
			// smbd starts samba-dcerpcd (and its rpcd_* workers) on demand
			// for the share listing; they outlive smbd, so end them too.
			// They are found by this test's own config path.
			t.Cleanup(func() { nucleiKillByArg(t, conf) })
			logs := nucleiDaemon(t, nil, bin, "--foreground", "--no-process-group", "--debug-stdout", "-d", "1", "-s", conf)
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			nucleiWaitTCP(t, addr, logs)
			ids, res := nucleiRun(t, addr, "smb")
			nucleiWant(t, ids, "vigil-smb-guest", tc.wantGuest)
			nucleiWant(t, ids, "vigil-smb-signing-not-required", tc.wantSigning)
			if tc.wantGuest {
				if r := nucleiResultFor(t, res, "vigil-smb-guest"); !slices.ContainsFunc(r.Extracted, func(s string) bool { return strings.Contains(s, "clinicdocs") }) {
					t.Errorf("extracted shares = %q, want clinicdocs", r.Extracted)
				}
			}
		})
	}
}

// nucleiKillByArg kills the processes whose command line mentions arg (a
// path unique to the calling test), by pid.
func nucleiKillByArg(t *testing.T, arg string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(arg)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if proc, err := os.FindProcess(pid); err == nil {
			_ = proc.Kill()
		}
	}
}

// --- SSL 3.0 (zcrypto can still serve it; Go's crypto/tls cannot) ---

func TestNucleiSSLv3(t *testing.T) {
	certDER, key := nucleiTestCert(t)
	t.Run("sslv3-server", func(t *testing.T) {
		cfg := &ztls.Config{
			Certificates: []ztls.Certificate{{Certificate: [][]byte{certDER}, PrivateKey: key}},
			MinVersion:   ztls.VersionSSL30,
			MaxVersion:   ztls.VersionSSL30,
			CipherSuites: []uint16{ztls.TLS_RSA_WITH_AES_128_CBC_SHA, ztls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
		}
		addr := nucleiFakeServer(t, func(c net.Conn) {
			s := ztls.Server(c, cfg)
			_ = s.Handshake()
			_, _ = io.Copy(io.Discard, s)
		})
		ids, _ := nucleiRun(t, addr, "tls")
		nucleiWant(t, ids, "vigil-tls-sslv3", true)
	})
	t.Run("modern-server", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		defer srv.Close()
		ids, _ := nucleiRun(t, srv.Listener.Addr().String(), "tls")
		nucleiWant(t, ids, "vigil-tls-sslv3", false)
	})
}

// nucleiTestCert makes a throwaway self-signed RSA certificate (SSL 3.0 has
// no ECDHE, so RSA key exchange it is).
func nucleiTestCert(t *testing.T) ([]byte, any) {
	t.Helper()
	key, err := rsa.GenerateKey(crand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vigil-sslv3-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// --- the engine: user templates, mixed jobs, progress, cancellation, rate ---

const nucleiUserTemplate = `id: user-hello-banner
info:
  name: HELLO banner
  author: someone
  severity: low
  tags: custom
tcp:
  - host:
      - "{{Hostname}}"
    read-size: 64
    matchers:
      - type: word
        words:
          - "HELLO vigil"
    extractors:
      - type: regex
        regex:
          - 'HELLO [a-z]+'
`

func TestNucleiExtraTemplates(t *testing.T) {
	dir := t.TempDir()
	nucleiWriteFile(t, filepath.Join(dir, "hello.yaml"), nucleiUserTemplate)
	nucleiWriteFile(t, filepath.Join(dir, "broken.yaml"), "id: broken\ninfo: [\n")
	n, err := NewNuclei(context.Background(), NucleiOptions{ExtraTemplateDirs: []string{dir}, Timeout: 2 * time.Second, Logger: nucleiTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !slices.Contains(n.Templates(), "user-hello-banner") {
		t.Fatalf("templates = %v, want the unsigned user template loaded", n.Templates())
	}
	hello := nucleiFakeServer(t, func(c net.Conn) { _, _ = io.WriteString(c, "HELLO vigil\r\n"); _, _ = io.Copy(io.Discard, c) })
	other := nucleiFakeServer(t, func(c net.Conn) { _, _ = io.WriteString(c, "GOODBYE\r\n"); _, _ = io.Copy(io.Discard, c) })
	res, err := n.Run(context.Background(), []NucleiJob{{Target: hello}, {Target: other}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].TemplateID != "user-hello-banner" || net.JoinHostPort(res[0].Host, strconv.Itoa(res[0].Port)) != hello {
		t.Fatalf("results = %+v, want user-hello-banner on %s only", res, hello)
	}
	if !slices.Contains(res[0].Extracted, "HELLO vigil") || res[0].TemplateSeverity != "low" {
		t.Errorf("result = %+v", res[0])
	}
}

func TestNucleiCodeTemplatesRefused(t *testing.T) {
	dir := t.TempDir()
	nucleiWriteFile(t, filepath.Join(dir, "code.yaml"), `id: user-code
info:
  name: runs a shell
  author: someone
  severity: info
code:
  - engine:
      - sh
    source: id
`)
	_, err := NewNuclei(context.Background(), NucleiOptions{ExtraTemplateDirs: []string{dir}, Logger: nucleiTestLogger()})
	if !errors.Is(err, ErrNucleiTemplateDir) {
		t.Fatalf("NewNuclei with only a code template: err = %v, want ErrNucleiTemplateDir", err)
	}
}

func TestNucleiMixedJobs(t *testing.T) {
	vnc := nucleiFakeServer(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "RFB 003.008\n")
		_, _ = io.ReadFull(c, make([]byte, 12))
		_, _ = c.Write([]byte{1, 1})
		_, _ = io.Copy(io.Discard, c)
	})
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `<form><input type="password" name="p"></form>`)
	}))
	defer web.Close()
	webAddr := web.Listener.Addr().String()

	n := nucleiEngine(t)
	var calls []int
	var total int
	res, err := n.Run(context.Background(), []NucleiJob{
		{Target: vnc, Tags: []string{"vnc"}},
		{Target: webAddr, Tags: []string{"http"}},
		{Target: webAddr, Tags: []string{"redis", "ftp", "mqtt"}}, // wrong service: nothing matches
	}, func(done, tot int) { calls = append(calls, done); total = tot })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range res {
		got[r.TemplateID] = net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	}
	want := map[string]string{"vigil-vnc-noauth": vnc, "vigil-http-login-plaintext": webAddr}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("results = %v, want %v", got, want)
	}
	if total != 5 || len(calls) != 5 || calls[len(calls)-1] != 5 || !slices.IsSorted(calls) {
		t.Errorf("progress calls %v of total %d, want 1..5 of 5", calls, total)
	}
	for _, r := range res {
		a := r.Attrs()
		if a["check"] != r.TemplateID || a["engine"] != "nuclei" || a["name"] == "" || a["template_severity"] == "" {
			t.Errorf("Attrs() = %v", a)
		}
		if _, ok := a["extracted"].([]string); !ok {
			t.Errorf("Attrs()[extracted] = %T, want []string", a["extracted"])
		}
	}
}

func TestNucleiCancel(t *testing.T) {
	// A server that accepts and never answers: every probe would wait for
	// its read timeout.
	silent := nucleiFakeServer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	n, err := NewNuclei(context.Background(), NucleiOptions{Timeout: 3 * time.Second, Concurrency: 2, RateLimit: 100, Logger: nucleiTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var jobs []NucleiJob
	for range 20 {
		jobs = append(jobs, NucleiJob{Target: silent, Tags: []string{"redis", "mqtt", "vnc"}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	var done int
	_, err = n.Run(ctx, jobs, func(d, _ int) { done = d })
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want context.DeadlineExceeded", err)
	}
	// 60 probes at 3s each, two at a time, would take 90s.
	if took > 8*time.Second || done >= len(jobs)*3 {
		t.Fatalf("cancelled Run took %v and finished %d probes", took, done)
	}
	t.Logf("cancelled Run returned after %v, %d probes done", took, done)
}

func TestNucleiRateLimit(t *testing.T) {
	fast := nucleiFakeServer(t, func(c net.Conn) { _, _ = io.WriteString(c, "-NOAUTH Authentication required.\r\n") })
	n, err := NewNuclei(context.Background(), NucleiOptions{RateLimit: 5, Concurrency: 8, Timeout: time.Second, Logger: nucleiTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() }) // Close is idempotent; checked below
	jobs := make([]NucleiJob, 10)
	for i := range jobs {
		jobs[i] = NucleiJob{Target: fast, Tags: []string{"redis"}}
	}
	start := time.Now()
	if _, err := n.Run(context.Background(), jobs, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 1700*time.Millisecond {
		t.Errorf("10 probes at 5/s took %v, want at least 1.8s", took)
	}
	dir := n.dir
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private directory %s still there after Close: %v", dir, err)
	}
	if _, err := n.Run(context.Background(), jobs, nil); !errors.Is(err, ErrNucleiClosed) {
		t.Errorf("Run after Close: %v, want ErrNucleiClosed", err)
	}
}

func TestNucleiJobFor(t *testing.T) {
	for _, tc := range []struct {
		proto, service, tunnel string
		tags                   []string
		tls                    bool
	}{
		{"tcp", "redis", "", []string{"redis"}, false},
		{"tcp", "microsoft-ds", "", []string{"smb"}, false},
		{"udp", "snmp", "", []string{"snmp"}, false},
		{"tcp", "http", "", []string{"http"}, false},
		{"tcp", "http", "ssl", []string{"tls"}, true},
		{"tcp", "https", "", []string{"tls"}, true},
		{"tcp", "imap", "ssl", []string{"tls"}, true},
		{"tcp", "ssh", "", nil, false},
		{"udp", "ftp", "", nil, false},
	} {
		job, ok := NucleiJobFor("10.0.0.5", 1234, tc.proto, tc.service, tc.tunnel)
		if ok != (len(tc.tags) > 0) || !slices.Equal(job.Tags, tc.tags) || job.TLS != tc.tls || job.Target != "10.0.0.5:1234" {
			t.Errorf("NucleiJobFor(%s/%s tunnel %q) = %+v, %v; want tags %v tls %v", tc.proto, tc.service, tc.tunnel, job, ok, tc.tags, tc.tls)
		}
	}
	// every tag the mapping hands out selects at least one pack template
	n := nucleiEngine(t)
	for _, tag := range nucleiServiceTags {
		if len(n.selectTemplates([]string{tag})) == 0 {
			t.Errorf("tag %q selects no pack template", tag)
		}
	}
}

// --- the adapter ---

func TestNucleiResultFromEvent(t *testing.T) {
	info := model.Info{
		Name:           "Redis without authentication",
		SeverityHolder: severity.Holder{Severity: severity.Critical},
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		ev      *output.ResultEvent
		want    NucleiResult
		wantErr bool
	}{
		{
			name: "network event",
			ev: &output.ResultEvent{TemplateID: "vigil-redis-unauth", Info: info, Type: "tcp", Host: "10.1.2.5:6379", Port: "6379",
				IP: "10.1.2.5", Matched: "10.1.2.5:6379", MatcherName: "info-without-auth", ExtractedResults: []string{"7.2.4", "7.2.4", ""}, MatcherStatus: true, Timestamp: at},
			want: NucleiResult{Host: "10.1.2.5", Port: 6379, Proto: "tcp", TemplateID: "vigil-redis-unauth", Name: info.Name, TemplateSeverity: "critical",
				Extracted: []string{"7.2.4"}, Details: "Redis without authentication at 10.1.2.5:6379 (info-without-auth)", At: at},
		},
		{
			name: "http URL, no port in event",
			ev:   &output.ResultEvent{TemplateID: "x", Host: "http://10.0.0.1/login", MatcherStatus: true, Timestamp: at},
			want: NucleiResult{Host: "10.0.0.1", Port: 80, Proto: "tcp", TemplateID: "x", Name: "x", TemplateSeverity: "", Details: "x at 10.0.0.1:80", At: at},
		},
		{
			name: "ipv6 and udp metadata",
			ev: &output.ResultEvent{TemplateID: "vigil-snmp-public", Host: "[fe80::1]:161", MatcherStatus: true, Timestamp: at,
				Info: model.Info{Name: "SNMP", Metadata: map[string]any{"vigil-proto": "udp"}}},
			want: NucleiResult{Host: "fe80::1", Port: 161, Proto: "udp", TemplateID: "vigil-snmp-public", Name: "SNMP", Details: "SNMP at [fe80::1]:161", At: at},
		},
		{name: "not a match", ev: &output.ResultEvent{TemplateID: "x", Host: "1.2.3.4:1"}, wantErr: true},
		{name: "no template id", ev: &output.ResultEvent{Host: "1.2.3.4:1", MatcherStatus: true}, wantErr: true},
		{name: "no host", ev: &output.ResultEvent{TemplateID: "x", MatcherStatus: true}, wantErr: true},
		{name: "bad port", ev: &output.ResultEvent{TemplateID: "x", Host: "1.2.3.4", Port: "99999", MatcherStatus: true}, wantErr: true},
		{name: "nil", ev: nil, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NucleiResultFromEvent(tc.ev)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tc.want)
			if string(g) != string(w) {
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
	if _, err := NucleiResultFromEvent(&output.ResultEvent{TemplateID: "x", Host: "1.2.3.4:1"}); !errors.Is(err, ErrNucleiNoMatch) {
		t.Errorf("unmatched event: %v, want ErrNucleiNoMatch", err)
	}
}

// nucleiJSONSeed is a line of `nuclei -jsonl` output.
const nucleiJSONSeed = `{"template-id":"vigil-ftp-anonymous","info":{"name":"FTP anonymous login allowed","author":["vigil"],"tags":["vigil","ftp"],"severity":"high","metadata":{"vigil-check":true}},"type":"tcp","host":"127.0.0.1:2121","port":"2121","matched-at":"127.0.0.1:2121","extracted-results":["(vsFTPd 3.0.5)"],"ip":"127.0.0.1","timestamp":"2026-11-23T00:00:00Z","matcher-status":true}`

func TestNucleiResultFromJSON(t *testing.T) {
	r, err := NucleiResultFromJSON([]byte(nucleiJSONSeed))
	if err != nil {
		t.Fatal(err)
	}
	if r.TemplateID != "vigil-ftp-anonymous" || r.Host != "127.0.0.1" || r.Port != 2121 || r.TemplateSeverity != "high" ||
		!slices.Equal(r.Extracted, []string{"(vsFTPd 3.0.5)"}) {
		t.Fatalf("result = %+v", r)
	}
	for _, bad := range []string{"", "{", "null", `{"template-id":"x"}`, `[]`} {
		if _, err := NucleiResultFromJSON([]byte(bad)); err == nil {
			t.Errorf("NucleiResultFromJSON(%q) succeeded", bad)
		}
	}
}

func FuzzNucleiResultJSON(f *testing.F) {
	f.Add([]byte(nucleiJSONSeed))
	f.Add([]byte(`{"template-id":"a","host":"http://[::1]:8080/x","matcher-status":true,"info":{"severity":"critical","metadata":{"vigil-proto":"udp"}}}`))
	f.Add([]byte(`{"template-id":"a","host":"1.2.3.4","port":"-1","matcher-status":true}`))
	f.Add([]byte(`{"template-id":"\u0000","host":"\u00ff:1","extracted-results":["\n\r\t",""],"matcher-status":true}`))
	f.Add([]byte(`{"info":{"severity":"nope"}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := NucleiResultFromJSON(line)
		if err != nil {
			return
		}
		if r.TemplateID == "" || r.Host == "" || r.Port < 0 || r.Port > 65535 || (r.Proto != "tcp" && r.Proto != "udp") {
			t.Fatalf("accepted an unusable result: %+v", r)
		}
		if strings.ContainsAny(r.Details, "\r\n") {
			t.Fatalf("details has line breaks: %q", r.Details)
		}
		a := r.Attrs()
		for _, k := range []string{"check", "name", "engine", "extracted", "details", "template_severity"} {
			if _, ok := a[k]; !ok {
				t.Fatalf("Attrs() lacks %s", k)
			}
		}
	})
}
