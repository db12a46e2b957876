package telegrafin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/plugins/inputs/net_response"
	"github.com/influxdata/telegraf/plugins/inputs/x509_cert"
	"github.com/influxdata/toml"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// testCA issues certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Vigil Test CA"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a certificate for 127.0.0.1 valid until notAfter.
func (ca *testCA) leaf(t *testing.T, cn string, notAfter time.Time) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Glow Aesthetics"}},
		NotBefore:    time.Now().Add(-30 * 24 * time.Hour),
		NotAfter:     notAfter,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// serveTLS starts a TLS listener on 127.0.0.1 that completes handshakes
// with cert until the test ends, and returns its port.
func serveTLS(t *testing.T, cert tls.Certificate) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestX509CertAgainstTLSListenerAndFile(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", ca.pem)

	soon := time.Now().Add(10*24*time.Hour + time.Hour).UTC().Truncate(time.Second)
	soonCert, soonPEM := ca.leaf(t, "frontdesk.glow.test", soon)
	port := serveTLS(t, soonCert)
	certFile := writeFile(t, dir, "cert.pem", soonPEM)

	gone := time.Now().Add(-2*24*time.Hour + time.Hour).UTC().Truncate(time.Second)
	goneCert, _ := ca.leaf(t, "old-nas.glow.test", gone)
	expiredPort := serveTLS(t, goneCert)

	tcpSource := "tcp://127.0.0.1:" + strconv.Itoa(port)
	in, err := New(config.TelegrafInput{
		Plugin:   "x509_cert",
		Location: "downtown",
		Options: map[string]any{
			"sources": []any{tcpSource, "file://" + certFile, "https://127.0.0.1:" + strconv.Itoa(expiredPort)},
			"timeout": "5s",
			"tls_ca":  caFile,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.input.(*x509_cert.X509Cert).Timeout; time.Duration(got) != 5*time.Second {
		t.Errorf("timeout option: plugin has %v, want 5s", time.Duration(got))
	}
	obs, err := in.Collect(context.Background())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	bySource := map[string]observe.Observation{}
	for _, o := range obs {
		tags := o.Attrs[AttrTags].(map[string]string)
		bySource[tags["source"]] = o
	}
	if len(bySource) != 3 {
		t.Fatalf("want one certificate from each of 3 sources, got %d observations: %+v", len(obs), obs)
	}

	tests := []struct {
		source      string
		host        string
		port        int
		subject     string
		notAfter    time.Time
		daysLeft    int
		expired     bool
		verified    string
		hasCertFile bool
	}{
		{tcpSource, "127.0.0.1", port, "frontdesk.glow.test", soon, 10, false, "valid", false},
		{"file://" + certFile, "frontdesk.glow.test", 0, "frontdesk.glow.test", soon, 10, false, "valid", true},
		// Go refuses an expired chain, so telegraf says invalid as well.
		{"https://127.0.0.1:" + strconv.Itoa(expiredPort), "127.0.0.1", expiredPort, "old-nas.glow.test", gone, -2, true, "invalid", false},
	}
	for _, tc := range tests {
		t.Run(tc.source, func(t *testing.T) {
			o, ok := bySource[tc.source]
			if !ok {
				t.Fatalf("no observation for source %s", tc.source)
			}
			if o.Kind != observe.KindMetric || o.Source != "telegraf:x509_cert" || o.Location != "downtown" {
				t.Errorf("kind/source/location = %s/%s/%s", o.Kind, o.Source, o.Location)
			}
			if o.Host != tc.host || o.Port != tc.port {
				t.Errorf("host:port = %s:%d, want %s:%d", o.Host, o.Port, tc.host, tc.port)
			}
			want := map[string]any{
				AttrMeasurement:  "x509_cert",
				"cert_subject":   tc.subject,
				"cert_issuer":    "Vigil Test CA",
				"cert_not_after": tc.notAfter.Format(time.RFC3339),
				"cert_days_left": tc.daysLeft,
				"cert_expired":   tc.expired,
				"verification":   tc.verified,
				"cert_type":      "leaf",
			}
			for k, v := range want {
				if o.Attrs[k] != v {
					t.Errorf("%s = %#v, want %#v", k, o.Attrs[k], v)
				}
			}
			if _, ok := o.Attrs["cert_file"]; ok != tc.hasCertFile {
				t.Errorf("cert_file present = %v, want %v", ok, tc.hasCertFile)
			}
			if tc.verified == "invalid" && o.Attrs["cert_verify_error"] == "" {
				t.Error("an invalid certificate should say why")
			}
			fields := o.Attrs[AttrFields].(map[string]any)
			if _, ok := fields["expiry"]; !ok {
				t.Errorf("fields lack expiry: %v", fields)
			}
		})
	}
}

func TestX509CertUntrustedWithoutCA(t *testing.T) {
	ca := newCA(t)
	cert, _ := ca.leaf(t, "reception.glow.test", time.Now().Add(90*24*time.Hour))
	port := serveTLS(t, cert)
	in, err := New(config.TelegrafInput{Plugin: "x509_cert", Options: map[string]any{
		"sources": []string{"tcp://127.0.0.1:" + strconv.Itoa(port)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	in.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	obs, err := in.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 1 || obs[0].Attrs["verification"] != "invalid" || obs[0].Attrs["cert_verify_error"] == "" {
		t.Fatalf("a certificate from an unknown CA should fail verification: %+v", obs)
	}
	if !strings.Contains(logs.String(), "collector=telegraf:x509_cert") {
		t.Errorf("the plugin's debug log should go through the Input's logger, got %q", logs.String())
	}
}

func TestX509CertMissingFileIsAnError(t *testing.T) {
	in, err := New(config.TelegrafInput{Plugin: "x509_cert", Options: map[string]any{
		"sources": []string{"file://" + filepath.Join(t.TempDir(), "*.pem")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := in.Collect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "could not find file") {
		t.Fatalf("a glob that matches nothing must make the collection incomplete, got %v (%d observations)", err, len(obs))
	}
}

func TestNetResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 vigil test ready\r\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	open := ln.Addr().(*net.TCPAddr).Port

	// A port that was just listened on and closed: nothing answers there.
	tmp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := tmp.Addr().(*net.TCPAddr).Port
	tmp.Close()

	tests := []struct {
		name    string
		port    int
		options map[string]any
		result  string
		timed   bool
	}{
		{"listening", open, nil, "success", true},
		{"expect banner", open, map[string]any{"expect": "220", "read_timeout": "2s"}, "success", true},
		{"banner mismatch", open, map[string]any{"expect": "SSH-2.0"}, "string_mismatch", true},
		{"closed", closed, nil, "connection_failed", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]any{"protocol": "tcp", "address": "127.0.0.1:" + strconv.Itoa(tc.port), "timeout": "2s"}
			for k, v := range tc.options {
				opts[k] = v
			}
			in, err := New(config.TelegrafInput{Plugin: "net_response", Location: "uptown", Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			if in.Name() != "telegraf:net_response" {
				t.Errorf("Name() = %q", in.Name())
			}
			obs, err := in.Collect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(obs) != 1 {
				t.Fatalf("want 1 observation, got %d", len(obs))
			}
			o := obs[0]
			if o.Host != "127.0.0.1" || o.Port != tc.port || o.Proto != "tcp" || o.Location != "uptown" || o.Kind != observe.KindMetric {
				t.Errorf("observation = %+v", o)
			}
			if o.Attrs["result"] != tc.result {
				t.Errorf("result = %v, want %s", o.Attrs["result"], tc.result)
			}
			rt, ok := o.Attrs["response_time"].(float64)
			if ok != tc.timed || (ok && (rt <= 0 || rt > 2)) {
				t.Errorf("response_time = %v (present %v), want present=%v and under 2s", rt, ok, tc.timed)
			}
			if o.Target() != "127.0.0.1:"+strconv.Itoa(tc.port) {
				t.Errorf("Target() = %s", o.Target())
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Setenv("VIGIL_TEST_JKS_PASSWORD", "hunter2-jks")
	tests := []struct {
		name    string
		plugin  string
		options map[string]any
		wantErr string // substring of NewAll's error; "" for success
	}{
		{"unknown option", "net_response", map[string]any{"address": "127.0.0.1:1", "protocol": "tcp", "adress": "x"},
			"telegraf.inputs[0].options.adress: unknown option for net_response (it takes: address, expect, protocol, read_timeout, send, timeout)"},
		{"bad duration", "net_response", map[string]any{"address": "127.0.0.1:1", "protocol": "tcp", "timeout": "soon"},
			"telegraf.inputs[0].options.timeout:"},
		{"wrong type", "x509_cert", map[string]any{"sources": "tcp://127.0.0.1:1"},
			"telegraf.inputs[0].options.sources:"},
		{"plugin Init refuses", "net_response", map[string]any{"address": "127.0.0.1:1", "protocol": "sctp"},
			"telegraf.inputs[0]: telegraf input net_response: config option protocol"},
		{"unknown plugin", "cpu", nil, `telegraf.inputs[0]: unknown telegraf input "cpu"`},
		{"plain-text password", "x509_cert", map[string]any{"sources": []any{"jks:///k.jks"}, "password": "hunter2"},
			"telegraf.inputs[0].options.password: a secret is not accepted in the config file: set password_env or password_file"},
		{"password from env", "x509_cert", map[string]any{"sources": []any{"jks:///k.jks"}, "password_env": "VIGIL_TEST_JKS_PASSWORD"}, ""},
		{"password env unset", "x509_cert", map[string]any{"sources": []any{"jks:///k.jks"}, "password_env": "VIGIL_TEST_UNSET_VAR"},
			"environment variable VIGIL_TEST_UNSET_VAR is not set"},
		{"integer seconds", "net_response", map[string]any{"address": "127.0.0.1:1", "protocol": "tcp", "timeout": 3}, ""},
		{"log is not an option", "x509_cert", map[string]any{"sources": []any{"file:///x.pem"}, "log": "x"}, "unknown option"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ins, err := NewAll(config.TelegrafSettings{Inputs: []config.TelegrafInput{{Plugin: tc.plugin, Options: tc.options}}})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(ins) != 1 {
					t.Fatalf("got %d inputs", len(ins))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

func TestDurationOption(t *testing.T) {
	in, err := New(config.TelegrafInput{Plugin: "net_response", Options: map[string]any{
		"address": "127.0.0.1:1", "protocol": "tcp", "timeout": "1m30s", "read_timeout": 2.5,
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := in.input.(*net_response.NetResponse)
	if time.Duration(p.Timeout) != 90*time.Second || time.Duration(p.ReadTimeout) != 2500*time.Millisecond {
		t.Errorf("timeout %v read_timeout %v", time.Duration(p.Timeout), time.Duration(p.ReadTimeout))
	}
}

// TestTOMLStrings checks that any string survives the trip through the
// TOML document options are decoded from.
func TestTOMLStrings(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnewline\nnul\x00del\x7f", "ünïcødé ✓", "\u2028"} {
		doc, err := tomlDocument("send", s)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Send string `toml:"send"`
		}
		if err := toml.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("%q: %v (document %q)", s, err, doc)
		}
		if got.Send != s {
			t.Errorf("round trip of %q gave %q", s, got.Send)
		}
	}
}

// hangInput gathers until released.
type hangInput struct{ release chan struct{} }

func (*hangInput) SampleConfig() string { return "" }
func (h *hangInput) Gather(acc telegraf.Accumulator) error {
	acc.AddFields("early", map[string]any{"v": 1}, nil)
	<-h.release
	acc.AddFields("late", map[string]any{"v": 2}, nil)
	return nil
}

func TestCollectTimeout(t *testing.T) {
	h := &hangInput{release: make(chan struct{})}
	inputs.Add("vigil_test_hang", func() telegraf.Input { return h })
	t.Cleanup(func() { delete(inputs.Inputs, "vigil_test_hang") })

	in, err := New(config.TelegrafInput{Plugin: "vigil_test_hang"})
	if err != nil {
		t.Fatal(err)
	}
	in.Timeout = 50 * time.Millisecond
	start := time.Now()
	obs, err := in.Collect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not finish within 50ms") {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Collect took %v despite a 50ms timeout", d)
	}
	if len(obs) != 1 || obs[0].Attrs[AttrMeasurement] != "early" {
		t.Errorf("want what was gathered before the timeout, got %+v", obs)
	}
	if _, err := in.Collect(context.Background()); !errors.Is(err, ErrBusy) {
		t.Errorf("a second Collect while the first gather runs: got %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	close(h.release)
	in.Close() // waits for the abandoned gather
	in.Timeout = time.Second
	if _, err := in.Collect(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Collect with a cancelled context: %v", err)
	}
	in.Close()
}
