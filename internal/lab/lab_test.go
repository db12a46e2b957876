package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLabUp starts the lab, talks to every daemon from the scanner
// namespace the way a client would, and checks that Close leaves nothing.
func TestLabUp(t *testing.T) {
	l := StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dial := func(t *testing.T, addr string) net.Conn {
		t.Helper()
		c, err := l.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("dial %s from the scanner: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	readLine := func(t *testing.T, c net.Conn) string {
		t.Helper()
		s, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading from %s: %v (got %q)", c.RemoteAddr(), err, s)
		}
		return s
	}
	inScanner := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		out, err := l.Command(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s in the scanner namespace: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	t.Run("ftp anonymous", func(t *testing.T) {
		c := dial(t, "10.77.2.10:21")
		if s := readLine(t, c); !strings.HasPrefix(s, "220") {
			t.Fatalf("FTP greeting = %q, want 220", s)
		}
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "USER anonymous\r\n")
		if s, _ := r.ReadString('\n'); !strings.HasPrefix(s, "230") && !strings.HasPrefix(s, "331") {
			t.Fatalf("USER anonymous: %q, want 230 or 331", s)
		}
	})
	t.Run("redis without auth", func(t *testing.T) {
		c := dial(t, "10.77.2.11:6379")
		fmt.Fprintf(c, "PING\r\n")
		if s := readLine(t, c); s != "+PONG\r\n" {
			t.Fatalf("PING: %q, want +PONG", s)
		}
	})
	t.Run("mqtt anonymous", func(t *testing.T) {
		c := dial(t, "10.77.2.12:1883")
		// MQTT 3.1.1 CONNECT, clean session, keepalive 60, client id "vigil-lab".
		id := "vigil-lab"
		vh := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
		if _, err := c.Write(append([]byte{0x10, byte(len(vh))}, vh...)); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := io.ReadFull(c, ack); err != nil {
			t.Fatalf("CONNACK: %v", err)
		}
		if !bytes.Equal(ack, []byte{0x20, 2, 0, 0}) {
			t.Fatalf("CONNACK = % x, want 20 02 00 00 (accepted)", ack)
		}
	})
	t.Run("snmp public", func(t *testing.T) {
		if _, err := exec.LookPath("snmpget"); err != nil {
			t.Skip("snmpget not installed (package snmp): run scripts/install-deps.sh")
		}
		out := inScanner(t, "snmpget", "-v2c", "-c", "public", "-t", "2", "-r", "2", "10.77.2.13", "1.3.6.1.2.1.1.1.0")
		if !strings.Contains(out, "STRING") {
			t.Fatalf("snmpget sysDescr.0: %s", out)
		}
	})
	t.Run("telnet", func(t *testing.T) {
		c := dial(t, "10.77.2.14:23")
		b := make([]byte, 3)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatalf("telnet: %v", err)
		}
		if b[0] != 0xff { // IAC: option negotiation starts every telnet session
			t.Fatalf("telnet first bytes % x, want IAC (ff)", b)
		}
	})
	t.Run("smb guest", func(t *testing.T) {
		dial(t, "10.77.2.15:139")
		if _, err := exec.LookPath("smbclient"); err != nil {
			t.Skip("smbclient not installed: run scripts/install-deps.sh")
		}
		out := inScanner(t, "smbclient", "-N", "//10.77.2.15/public", "-c", "ls")
		if !strings.Contains(out, "intake-2024.csv") {
			t.Fatalf("guest listing of //10.77.2.15/public lacks intake-2024.csv:\n%s", out)
		}
	})
	t.Run("http login form", func(t *testing.T) {
		c := dial(t, "10.77.2.16:80")
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: 10.77.2.16\r\n\r\n")
		body, _ := io.ReadAll(c)
		if !bytes.Contains(body, []byte(`type="password"`)) {
			t.Fatalf("GET http://10.77.2.16/ has no password field:\n%s", body)
		}
	})
	t.Run("weak tls", func(t *testing.T) {
		c := dial(t, "10.77.2.16:443")
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10})
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatalf("TLS 1.0 handshake with 10.77.2.16: %v", err)
		}
		leaf := tc.ConnectionState().PeerCertificates[0]
		if !time.Now().After(leaf.NotAfter) {
			t.Errorf("certificate not expired: NotAfter %s", leaf.NotAfter)
		}
		if leaf.Subject.String() != leaf.Issuer.String() || leaf.CheckSignatureFrom(leaf) != nil {
			t.Errorf("certificate not self-signed: subject %s issuer %s", leaf.Subject, leaf.Issuer)
		}
		if pk, ok := leaf.PublicKey.(interface{ Size() int }); !ok || pk.Size()*8 != 1024 {
			t.Errorf("certificate key is not RSA-1024: %T", leaf.PublicKey)
		}
	})
	t.Run("good tls", func(t *testing.T) {
		pemBytes, err := os.ReadFile(l.CAFile())
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			t.Fatalf("%s holds no certificate", l.CAFile())
		}
		c := dial(t, "10.77.2.20:443")
		tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "10.77.2.20"})
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatalf("verified handshake with 10.77.2.20 using the lab CA: %v", err)
		}
		if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("negotiated %s", tls.VersionName(v))
		}
		old := tls.Client(dial(t, "10.77.2.20:443"), &tls.Config{RootCAs: pool, ServerName: "10.77.2.20", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err := old.HandshakeContext(ctx); err == nil {
			t.Errorf("10.77.2.20 accepted TLS 1.1")
		}
	})
	t.Run("ssh", func(t *testing.T) {
		for _, addr := range []string{"10.77.2.17:22", "10.77.2.21:22"} {
			if s := readLine(t, dial(t, addr)); !strings.HasPrefix(s, "SSH-2.0-") {
				t.Errorf("%s banner = %q, want SSH-2.0-", addr, s)
			}
		}
	})

	prefix, dir := l.prefix(), l.Dir()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	names, _ := listNamespaces(ctx)
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			t.Errorf("namespace %s still exists after Close", n)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir %s still exists after Close (%v)", dir, err)
	}
	if _, err := os.Stat(filepath.Join(registryDir, l.id)); !os.IsNotExist(err) {
		t.Errorf("registry entry for lab %s still exists after Close", l.id)
	}
}

// TestSweepRemovesStale plants a namespace with a process in it, as a
// crashed lab would leave, and checks Sweep kills the process and removes it.
func TestSweepRemovesStale(t *testing.T) {
	if err := Check(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	ns := NamePrefix + id + "-stale"
	if err := addNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = killNamespace(context.Background(), ns) })
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	// `ip netns exec` joins the namespace just after it starts; wait for it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if slices.Contains(nsPIDs(ctx, ns), sleeper.Process.Pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep did not enter namespace %s", ns)
		}
	}

	removed, err := Sweep(ctx)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	found := false
	for _, r := range removed {
		found = found || r == ns
	}
	if !found {
		t.Errorf("Sweep removed %v, want it to include %s", removed, ns)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists", ns)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("process in the stale namespace was not killed")
		_ = sleeper.Process.Kill()
	}
}
