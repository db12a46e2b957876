package scanner

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ---- certificates -------------------------------------------------------

type tlsCertSpec struct {
	cn                  string
	ips                 []net.IP
	dns                 []string
	notBefore, notAfter time.Time
	key                 crypto.Signer // nil: ECDSA P-256
	sigAlg              x509.SignatureAlgorithm
	isCA                bool
}

type tlsTestCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var tlsSerial atomic.Int64

// tlsMakeCert creates a certificate from spec, signed by parent, or
// self-signed when parent is nil.
func tlsMakeCert(t testing.TB, spec tlsCertSpec, parent *tlsTestCert) *tlsTestCert {
	t.Helper()
	key := spec.key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(tlsSerial.Add(1)),
		Subject:               pkix.Name{CommonName: spec.cn, Organization: []string{"vigil test"}},
		NotBefore:             spec.notBefore,
		NotAfter:              spec.notAfter,
		IPAddresses:           spec.ips,
		DNSNames:              spec.dns,
		SignatureAlgorithm:    spec.sigAlg,
		BasicConstraintsValid: true,
		IsCA:                  spec.isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if spec.isCA {
		tpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	issuer, signer := tpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatalf("create certificate %q: %v", spec.cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsTestCert{cert: cert, key: key}
}

func tlsRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (c *tlsTestCert) tlsCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

// writePEM writes the certificate and its key to dir/name.crt and dir/name.key.
func (c *tlsTestCert) writePEM(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	der, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func tlsPool(certs ...*tlsTestCert) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c.cert)
	}
	return p
}

var tlsLoopback = []net.IP{net.IPv4(127, 0, 0, 1)}

// ---- servers ------------------------------------------------------------

// tlsGoServer serves TLS handshakes with cfg on 127.0.0.1 and returns the
// port and a counter of accepted connections (one per handshake).
func tlsGoServer(t testing.TB, cfg *tls.Config) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = tls.Server(c, cfg).Handshake()
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port, &conns
}

// tlsRawServer accepts TCP connections and hands each to serve.
func tlsRawServer(t testing.TB, serve func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(c)
				<-done
			})
		}
	})
	t.Cleanup(func() { ln.Close(); close(done); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// ---- assertions ---------------------------------------------------------

// tlsCheck compares the listed attributes; attributes not listed are not checked.
func tlsCheck(t *testing.T, attrs map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := attrs[k]
		if !ok {
			t.Errorf("attribute %s missing", k)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v, want %#v", k, got, w)
		}
	}
	if t.Failed() {
		t.Logf("all attributes: %v", attrs)
	}
}

// tlsAllKeys are the keys docs/observations.md documents for kind tls.
var tlsAllKeys = []string{
	"tls_versions", "weak_ciphers", "server_name", "cert_subject", "cert_issuer",
	"cert_not_before", "cert_not_after", "cert_days_left", "cert_expired",
	"cert_not_yet_valid", "cert_self_signed", "cert_untrusted",
	"cert_hostname_mismatch", "cert_key_type", "cert_key_bits", "cert_sig_alg", "cert_sha1",
}

// tlsClean is what a server with nothing wrong must report.
var tlsClean = map[string]any{
	"weak_ciphers":           []string{},
	"cert_expired":           false,
	"cert_not_yet_valid":     false,
	"cert_expiring_soon":     false,
	"cert_self_signed":       false,
	"cert_untrusted":         false,
	"cert_verify_error":      "",
	"cert_hostname_mismatch": false,
	"cert_sha1":              false,
}

func tlsMerge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// ---- in-process tests (Go's TLS server) ---------------------------------

func TestTLSProbeCertificates(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	day := 24 * time.Hour
	ca := tlsMakeCert(t, tlsCertSpec{cn: "vigil test CA", notBefore: now.Add(-10 * 365 * day), notAfter: now.Add(10 * 365 * day), isCA: true}, nil)
	valid := func(spec tlsCertSpec) tlsCertSpec {
		if spec.notBefore.IsZero() {
			spec.notBefore = now.Add(-day)
		}
		if spec.notAfter.IsZero() {
			spec.notAfter = now.Add(365 * day)
		}
		if spec.ips == nil && spec.dns == nil {
			spec.ips = tlsLoopback
		}
		return spec
	}
	modern := []string{"TLS1.2", "TLS1.3"}

	tests := []struct {
		name       string
		leaf       *tlsTestCert
		serverName string
		probeNow   time.Time // zero: now
		want       map[string]any
	}{
		{
			name: "good ECDSA leaf from trusted CA",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "good"}), ca),
			want: tlsMerge(tlsClean, map[string]any{
				"tls_versions": modern, "server_name": "127.0.0.1",
				"cert_subject": "CN=good,O=vigil test", "cert_issuer": "CN=vigil test CA,O=vigil test",
				"cert_days_left": 365, "cert_key_type": "ECDSA", "cert_key_bits": 256, "cert_sig_alg": "ECDSA-SHA256",
				"cert_not_after": now.Add(365 * day).UTC().Format(time.RFC3339),
			}),
		},
		{
			name: "Ed25519 leaf",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "ed", key: func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }()}), ca),
			want: tlsMerge(tlsClean, map[string]any{"cert_key_type": "Ed25519", "cert_key_bits": 256, "cert_sig_alg": "ECDSA-SHA256"}),
		},
		{
			name:       "hostname mismatch (DNS name vs other name)",
			leaf:       tlsMakeCert(t, valid(tlsCertSpec{cn: "portal", dns: []string{"portal.clinic.test"}}), ca),
			serverName: "ehr.clinic.test",
			want: tlsMerge(tlsClean, map[string]any{
				"server_name": "ehr.clinic.test", "cert_hostname_mismatch": true,
			}),
		},
		{
			name:       "hostname matches DNS name",
			leaf:       tlsMakeCert(t, valid(tlsCertSpec{cn: "portal", dns: []string{"portal.clinic.test"}}), ca),
			serverName: "portal.clinic.test",
			want:       tlsMerge(tlsClean, map[string]any{"server_name": "portal.clinic.test"}),
		},
		{
			name: "scanned by IP, certificate names only DNS names: not judged",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "portal", dns: []string{"portal.clinic.test"}}), ca),
			want: tlsClean,
		},
		{
			name: "IP not in certificate",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "other-ip", ips: []net.IP{net.IPv4(127, 0, 0, 2)}}), ca),
			want: tlsMerge(tlsClean, map[string]any{"cert_hostname_mismatch": true}),
		},
		{
			name: "not yet valid, still trusted",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "future", notBefore: now.Add(5 * day), notAfter: now.Add(400 * day)}), ca),
			want: tlsMerge(tlsClean, map[string]any{"cert_not_yet_valid": true, "cert_days_left": 400}),
		},
		{
			name: "expires in 10 days",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "soon", notAfter: now.Add(10*day + time.Hour)}), ca),
			want: tlsMerge(tlsClean, map[string]any{"cert_days_left": 10, "cert_expiring_soon": true}),
		},
		{
			name: "expired yesterday, from a trusted CA: expired but not untrusted",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "old", notBefore: now.Add(-400 * day), notAfter: now.Add(-day)}), ca),
			want: tlsMerge(tlsClean, map[string]any{"cert_expired": true, "cert_days_left": -1}),
		},
		{
			name:     "Now in the future makes a good certificate expired",
			leaf:     tlsMakeCert(t, valid(tlsCertSpec{cn: "good"}), ca),
			probeNow: now.Add(400 * day),
			want:     tlsMerge(tlsClean, map[string]any{"cert_expired": true, "cert_days_left": -35}),
		},
		{
			name: "self-signed RSA-1024, not in roots",
			leaf: tlsMakeCert(t, valid(tlsCertSpec{cn: "selfie", key: tlsRSAKey(t, 1024)}), nil),
			want: map[string]any{
				"cert_self_signed": true, "cert_untrusted": true, "cert_key_type": "RSA", "cert_key_bits": 1024,
				"cert_sig_alg": "SHA256-RSA", "cert_issuer": "CN=selfie,O=vigil test", "cert_hostname_mismatch": false,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, _ := tlsGoServer(t, &tls.Config{Certificates: []tls.Certificate{tt.leaf.tlsCertificate()}})
			probeNow := now
			if !tt.probeNow.IsZero() {
				probeNow = tt.probeNow
			}
			p := &TLSProbe{Timeout: 2 * time.Second, Roots: tlsPool(ca), Now: func() time.Time { return probeNow }}
			attrs, err := p.Probe(t.Context(), "127.0.0.1", port, tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tlsAllKeys {
				if _, ok := attrs[k]; !ok {
					t.Errorf("documented attribute %s missing", k)
				}
			}
			tlsCheck(t, attrs, tt.want)
		})
	}
}

// TestTLSProbeSHA1TrustedCA: a SHA-1 leaf signed by a CA in Roots is still
// untrusted, because Go will not verify SHA-1 signatures in a chain.
func TestTLSProbeSHA1TrustedCA(t *testing.T) {
	now := time.Now()
	ca := tlsMakeCert(t, tlsCertSpec{cn: "rsa CA", notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour), isCA: true, key: tlsRSAKey(t, 2048)}, nil)
	leaf := tlsMakeCert(t, tlsCertSpec{cn: "sha1", ips: tlsLoopback, notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour), key: tlsRSAKey(t, 2048), sigAlg: x509.SHA1WithRSA}, ca)
	port, _ := tlsGoServer(t, &tls.Config{Certificates: []tls.Certificate{leaf.tlsCertificate()}})
	attrs, err := (&TLSProbe{Roots: tlsPool(ca)}).Probe(t.Context(), "127.0.0.1", port, "")
	if err != nil {
		t.Fatal(err)
	}
	tlsCheck(t, attrs, map[string]any{"cert_sha1": true, "cert_untrusted": true, "cert_hostname_mismatch": false})
	if msg, _ := attrs["cert_verify_error"].(string); !strings.Contains(msg, "SHA1") {
		t.Errorf("cert_verify_error = %q, want it to name SHA1", msg)
	}
}

// TestTLSProbeWeakGoServer uses Go's own server with every legacy option
// on, including RC4 and 3DES, which Debian's OpenSSL no longer has.
func TestTLSProbeWeakGoServer(t *testing.T) {
	now := time.Now()
	leaf := tlsMakeCert(t, tlsCertSpec{cn: "legacy", ips: tlsLoopback, notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour), key: tlsRSAKey(t, 2048)}, nil)
	suites := []uint16{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, // fine
		tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA,
		tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	}
	port, conns := tlsGoServer(t, &tls.Config{
		Certificates: []tls.Certificate{leaf.tlsCertificate()},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: suites,
	})
	attrs, err := (&TLSProbe{Roots: tlsPool(leaf)}).Probe(t.Context(), "127.0.0.1", port, "")
	if err != nil {
		t.Fatal(err)
	}
	tlsCheck(t, attrs, map[string]any{
		"tls_versions": []string{"TLS1.0", "TLS1.1", "TLS1.2"},
		"weak_ciphers": []string{
			"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
			"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_RC4_128_SHA",
		},
		"cert_self_signed": true, "cert_untrusted": false, // the self-signed cert is in Roots
	})
	// 4 versions + TLS1.2: 7 weak + 1 refusal; TLS1.1 and TLS1.0 have
	// nothing left to find beyond one refusal each.
	t.Logf("handshakes: %d", conns.Load())
	if n := conns.Load(); n > 14 {
		t.Errorf("%d handshakes, want at most 14", n)
	}
}

func TestTLSProbeNotTLS(t *testing.T) {
	sshLike := tlsRawServer(t, func(c net.Conn) { fmt.Fprintf(c, "SSH-2.0-OpenSSH_9.2\r\n") })
	httpLike := tlsRawServer(t, func(c net.Conn) {
		_, _ = bufio.NewReader(c).ReadByte()
		fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
	})
	silent := tlsRawServer(t, func(net.Conn) {})
	for _, tc := range []struct {
		name    string
		port    int
		maxTime time.Duration
	}{
		{"ssh banner", sshLike, time.Second},
		{"plain http", httpLike, time.Second},
		// A silent port costs one handshake timeout, not one per version.
		{"silent", silent, 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := (&TLSProbe{Timeout: 500 * time.Millisecond}).Probe(t.Context(), "127.0.0.1", tc.port, "")
			if !errors.Is(err, ErrNotTLS) {
				t.Fatalf("err = %v, want ErrNotTLS", err)
			}
			if d := time.Since(start); d > tc.maxTime {
				t.Errorf("took %s, want under %s", d, tc.maxTime)
			}
			t.Log(err)
		})
	}

	t.Run("closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		_, err = (&TLSProbe{}).Probe(t.Context(), "127.0.0.1", port, "")
		if !errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, ErrNotTLS) {
			t.Fatalf("err = %v, want connection refused (not ErrNotTLS)", err)
		}
	})
}

func TestTLSProbeCancel(t *testing.T) {
	silent := tlsRawServer(t, func(net.Conn) {})
	p := &TLSProbe{Timeout: 10 * time.Second}

	t.Run("cancelled while waiting for the server", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := p.Probe(ctx, "127.0.0.1", silent, "")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("returned after %s; Timeout is %s", d, p.Timeout)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		if _, err := p.Probe(ctx, "127.0.0.1", silent, ""); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("returned after %s", d)
		}
	})
}

type tlsCountingLimiter struct{ n atomic.Int64 }

func (l *tlsCountingLimiter) Wait(ctx context.Context) error { l.n.Add(1); return ctx.Err() }

func TestTLSProbeLimiterAndHandshakeCount(t *testing.T) {
	now := time.Now()
	leaf := tlsMakeCert(t, tlsCertSpec{cn: "good", ips: tlsLoopback, notBefore: now.Add(-time.Hour), notAfter: now.Add(90 * 24 * time.Hour)}, nil)
	port, conns := tlsGoServer(t, &tls.Config{Certificates: []tls.Certificate{leaf.tlsCertificate()}})
	lim := &tlsCountingLimiter{}
	if _, err := (&TLSProbe{Roots: tlsPool(leaf), Limiter: lim}).Probe(t.Context(), "127.0.0.1", port, ""); err != nil {
		t.Fatal(err)
	}
	// Every connection waits on the limiter first.
	if lim.n.Load() != conns.Load() {
		t.Errorf("limiter waited %d times for %d connections", lim.n.Load(), conns.Load())
	}
	// A modern server: 4 version handshakes + 1 refused weak offer at TLS 1.2.
	if conns.Load() != 5 {
		t.Errorf("%d handshakes for a modern server, want 5", conns.Load())
	}
}

func TestTLSWeakCipher(t *testing.T) {
	for _, s := range tls.CipherSuites() {
		if tlsWeakCipher(s.ID) {
			t.Errorf("%s is in Go's secure list but classified weak", s.Name)
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if !tlsWeakCipher(s.ID) {
			t.Errorf("%s is in Go's insecure list but not classified weak", s.Name)
		}
	}
}

func TestLoadCertPool(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca := tlsMakeCert(t, tlsCertSpec{cn: "pool CA", notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour), isCA: true}, nil)
	caFile, keyFile := ca.writePEM(t, dir, "ca")
	missing := filepath.Join(dir, "missing.pem")

	pool, err := LoadCertPool([]string{caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("CA from file not trusted: %v", err)
	}
	for _, bad := range []string{missing, keyFile} {
		if _, err := LoadCertPool([]string{caFile, bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("LoadCertPool(%s) error = %v, want it to name the file", filepath.Base(bad), err)
		}
	}
}

// ---- real nginx (OpenSSL) -----------------------------------------------

// tlsNginx runs nginx in the foreground on 127.0.0.1:<free port> with the
// given certificate and TLS settings and returns the port.
func tlsNginx(t *testing.T, certFile, keyFile, protocols, ciphers string) int {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed (apt-get install nginx-light): skipping the real-server TLS test")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`# single process: no workers that would drop privileges and lose the temp dir
master_process off;
worker_processes 1;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen 127.0.0.1:%[2]d ssl;
        ssl_certificate %[3]s;
        ssl_certificate_key %[4]s;
        ssl_protocols %[5]s;
        ssl_ciphers %[6]s;
        location / { return 200 "ok\n"; }
    }
}
`, dir, port, certFile, keyFile, protocols, ciphers)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confFile, "-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx log:\n%s", errorLog())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("nginx exited at start:\n%s", errorLog())
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %d after 10s:\n%s", port, errorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlsOpenSSLWeak lists the weak suites (by tlsWeakCipher) that Go can offer
// and that `openssl ciphers` says cipherString enables, with RSA
// authentication: the suites a server with an RSA certificate must accept.
func tlsOpenSSLWeak(t *testing.T, cipherString string) []string {
	t.Helper()
	out, err := exec.Command("openssl", "ciphers", "-stdname", cipherString).Output()
	if err != nil {
		t.Skipf("openssl ciphers: %v: cannot cross-check weak suites", err)
	}
	enabled := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			enabled[f[0]] = true
		}
	}
	var want []string
	for _, s := range tls.InsecureCipherSuites() {
		if enabled[s.Name] && !strings.Contains(s.Name, "ECDSA") {
			want = append(want, s.Name)
		}
	}
	slices.Sort(want)
	return want
}

func TestTLSProbeNginx(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed (apt-get install nginx-light): skipping the real-server TLS test")
	}
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second) // certificates hold whole seconds
	day := 24 * time.Hour

	t.Run("good server flags nothing", func(t *testing.T) {
		ca := tlsMakeCert(t, tlsCertSpec{cn: "clinic CA", notBefore: now.Add(-day), notAfter: now.Add(3650 * day), isCA: true, key: tlsRSAKey(t, 2048)}, nil)
		leaf := tlsMakeCert(t, tlsCertSpec{cn: "ehr.clinic.test", ips: tlsLoopback, dns: []string{"ehr.clinic.test"}, notBefore: now.Add(-day), notAfter: now.Add(200 * day), key: tlsRSAKey(t, 2048)}, ca)
		caFile, _ := ca.writePEM(t, dir, "ca")
		certFile, keyFile := leaf.writePEM(t, dir, "good")
		port := tlsNginx(t, certFile, keyFile, "TLSv1.2 TLSv1.3", "ECDHE+AESGCM:ECDHE+CHACHA20")

		roots, err := LoadCertPool([]string{caFile})
		if err != nil {
			t.Fatal(err)
		}
		attrs, err := (&TLSProbe{Roots: roots}).Probe(t.Context(), "127.0.0.1", port, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		tlsCheck(t, attrs, tlsMerge(tlsClean, map[string]any{
			"tls_versions": []string{"TLS1.2", "TLS1.3"}, "server_name": "127.0.0.1",
			"cert_key_type": "RSA", "cert_key_bits": 2048, "cert_sig_alg": "SHA256-RSA",
			"cert_subject": "CN=ehr.clinic.test,O=vigil test",
		}))

		// Without the CA in Roots, the same server is untrusted, and nothing else.
		attrs, err = (&TLSProbe{Roots: x509.NewCertPool()}).Probe(t.Context(), "127.0.0.1", port, "ehr.clinic.test")
		if err != nil {
			t.Fatal(err)
		}
		tlsCheck(t, attrs, tlsMerge(tlsClean, map[string]any{
			"cert_untrusted":    true,
			"cert_verify_error": "x509: certificate signed by unknown authority",
		}))
	})

	t.Run("weak server", func(t *testing.T) {
		leaf := tlsMakeCert(t, tlsCertSpec{cn: "old-nas", ips: tlsLoopback, notBefore: now.Add(-800 * day), notAfter: now.Add(-30 * day), key: tlsRSAKey(t, 1024)}, nil)
		certFile, keyFile := leaf.writePEM(t, dir, "weak")
		ciphers := "DEFAULT:@SECLEVEL=0"
		port := tlsNginx(t, certFile, keyFile, "TLSv1 TLSv1.1 TLSv1.2", ciphers)

		attrs, err := (&TLSProbe{Now: func() time.Time { return now }}).Probe(t.Context(), "127.0.0.1", port, "")
		if err != nil {
			t.Fatal(err)
		}
		tlsCheck(t, attrs, map[string]any{
			"tls_versions":     []string{"TLS1.0", "TLS1.1", "TLS1.2"},
			"cert_expired":     true,
			"cert_days_left":   -30,
			"cert_self_signed": true,
			"cert_untrusted":   true,
			"cert_key_type":    "RSA",
			"cert_key_bits":    1024,
			"cert_sha1":        false,
			"weak_ciphers":     tlsOpenSSLWeak(t, ciphers),
		})
		if len(attrs["weak_ciphers"].([]string)) == 0 {
			t.Error("no weak cipher found on DEFAULT:@SECLEVEL=0")
		}
		t.Logf("weak_ciphers: %v", attrs["weak_ciphers"])
	})

	// Go 1.24+ refuses RSA keys under 1024 bits even with
	// InsecureSkipVerify: the handshake fails after the server has chosen
	// version and suite and sent its certificate. The probe still reports
	// what the server accepted and the certificate it showed.
	t.Run("RSA-512 server Go cannot finish a handshake with", func(t *testing.T) {
		if _, err := exec.LookPath("openssl"); err != nil {
			t.Skip("openssl CLI not installed: cannot make an RSA-512 key (Go refuses to)")
		}
		certFile, keyFile := filepath.Join(dir, "rsa512.crt"), filepath.Join(dir, "rsa512.key")
		out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:512", "-nodes", "-sha256",
			"-keyout", keyFile, "-out", certFile, "-days", "30", "-subj", "/CN=rsa512",
			"-addext", "subjectAltName=IP:127.0.0.1").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl req: %v\n%s", err, out)
		}
		port := tlsNginx(t, certFile, keyFile, "TLSv1.2", "DEFAULT:@SECLEVEL=0")
		// Show that Go itself will not complete this handshake.
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Log("Go completed a handshake with an RSA-512 server; the refusal path is no longer exercised")
		} else {
			t.Logf("Go's own handshake fails as expected: %v", err)
		}
		attrs, err := (&TLSProbe{}).Probe(t.Context(), "127.0.0.1", port, "")
		if err != nil {
			t.Fatal(err)
		}
		tlsCheck(t, attrs, map[string]any{
			"tls_versions":     []string{"TLS1.2"},
			"cert_key_bits":    512,
			"cert_self_signed": true,
			"cert_untrusted":   true,
			"cert_expired":     false,
		})
		if len(attrs["weak_ciphers"].([]string)) == 0 {
			t.Error("weak ciphers not enumerated on a server Go cannot finish a handshake with")
		}
		t.Logf("tls_versions %v, weak_ciphers %v", attrs["tls_versions"], attrs["weak_ciphers"])
	})
}

// ---- benchmark ----------------------------------------------------------

// BenchmarkTLSProbe probes an in-process modern server (ECDSA P-256, TLS
// 1.2 + 1.3) and reports handshakes per probe next to ns/op.
func BenchmarkTLSProbe(b *testing.B) {
	now := time.Now()
	leaf := tlsMakeCert(b, tlsCertSpec{cn: "bench", ips: tlsLoopback, notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour)}, nil)
	port, conns := tlsGoServer(b, &tls.Config{Certificates: []tls.Certificate{leaf.tlsCertificate()}})
	p := &TLSProbe{Roots: tlsPool(leaf)}
	ctx := context.Background()
	conns.Store(0)
	probes := 0
	for b.Loop() {
		if _, err := p.Probe(ctx, "127.0.0.1", port, ""); err != nil {
			b.Fatal(err)
		}
		probes++
	}
	b.ReportMetric(float64(conns.Load())/float64(probes), "handshakes/op")
}
