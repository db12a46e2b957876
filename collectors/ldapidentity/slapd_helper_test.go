package ldapidentity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Where Debian's slapd and ldap-utils packages put things.
const (
	slapdBin  = "/usr/sbin/slapd"
	ldapAdd   = "/usr/bin/ldapadd"
	schemaDir = "/etc/ldap/schema"
	moduleDir = "/usr/lib/ldap"
)

// The test directory's suffix, manager and the read-only account vigil
// binds as (from testdata/spa.ldif).
const (
	suffix       = "dc=spa,dc=test"
	managerDN    = "cn=admin," + suffix
	managerPW    = "manager-secret"
	vigilDN      = "cn=vigil,ou=Service," + suffix
	vigilPW      = "vigil-read-only"
	requireSlapd = "VIGIL_REQUIRE_SLAPD"
)

// slapd is an OpenLDAP server started by a test, listening on loopback
// only, killed when the test ends.
type slapd struct {
	dir      string
	ldapURL  string // ldap://127.0.0.1:port (StartTLS when tls is on)
	ldapsURL string // ldaps://127.0.0.1:port, "" without tls
	caFile   string // the test CA that signed the server certificate
	otherCA  string // a CA that did not
	logFile  string
	cmd      *exec.Cmd
}

type slapdOptions struct {
	// tls configures a certificate: StartTLS on ldap:// and an ldaps://
	// listener. Without it the server speaks plain LDAP only.
	tls bool
}

// needSlapd skips the test when slapd or ldapadd is missing, or fails it
// when VIGIL_REQUIRE_SLAPD=1 (CI installs them).
func needSlapd(t *testing.T) {
	t.Helper()
	for _, p := range []string{slapdBin, ldapAdd, filepath.Join(schemaDir, "core.schema")} {
		if _, err := os.Stat(p); err != nil {
			msg := fmt.Sprintf("%s not found: apt-get install slapd ldap-utils (or bash scripts/install-deps.sh) to run the LDAP tests", p)
			if os.Getenv(requireSlapd) == "1" {
				t.Fatal(msg + " (" + requireSlapd + "=1)")
			}
			t.Skip(msg)
		}
	}
}

// startSlapd starts a fresh directory with testdata/ad.schema loaded and
// the bind account able to read everything, seeded with ldifs.
func startSlapd(t *testing.T, opts slapdOptions, ldifs ...[]byte) *slapd {
	t.Helper()
	needSlapd(t)
	dir := t.TempDir()
	d := &slapd{dir: dir, logFile: filepath.Join(dir, "slapd.log")}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	schema, err := filepath.Abs("testdata/ad.schema")
	if err != nil {
		t.Fatal(err)
	}

	var tlsConf string
	ports := freePorts(t, 2)
	listen := fmt.Sprintf("ldap://127.0.0.1:%d/", ports[0])
	d.ldapURL = fmt.Sprintf("ldap://127.0.0.1:%d", ports[0])
	if opts.tls {
		d.caFile, d.otherCA = writeCerts(t, dir)
		tlsConf = fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n",
			d.caFile, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"))
		listen += fmt.Sprintf(" ldaps://127.0.0.1:%d/", ports[1])
		d.ldapsURL = fmt.Sprintf("ldaps://127.0.0.1:%d", ports[1])
	}
	conf := fmt.Sprintf(`include %[1]s/core.schema
include %[1]s/cosine.schema
include %[1]s/inetorgperson.schema
include %[1]s/nis.schema
include %[2]s
pidfile %[3]s/slapd.pid
modulepath %[4]s
moduleload back_mdb
moduleload ppolicy
%[5]s
database mdb
suffix "%[6]s"
rootdn "%[7]s"
rootpw %[8]s
directory %[3]s/db
maxsize 268435456
dbnosync
overlay ppolicy
# The bind account reads everything but passwords, like a directory
# reader in AD; its paged searches may go past the default size limit.
limits dn.exact="%[9]s" size.soft=unlimited size.hard=unlimited size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="%[9]s" read by * none
`, schemaDir, schema, dir, moduleDir, tlsConf, suffix, managerDN, managerPW, vigilDN)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	logf, err := os.Create(d.logFile)
	if err != nil {
		t.Fatal(err)
	}
	// -d 256 keeps slapd in the foreground, logging every operation
	// (stats) to stderr, which the tests read.
	cmd := exec.Command(slapdBin, "-f", confPath, "-h", listen, "-d", "256")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	d.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Kill) //nolint:errcheck // it may have exited
		<-exited
		if t.Failed() {
			t.Logf("slapd log (%s):\n%s", d.logFile, tail(d.log(t), 4000))
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for _, p := range ports[:1+btoi(opts.tls)] {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("slapd exited (%v):\n%s", err, d.log(t))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("slapd not listening on port %d after 15s:\n%s", p, d.log(t))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, l := range ldifs {
		d.add(t, l)
	}
	return d
}

// add loads LDIF as the manager, with the relax control so that it may
// set operational attributes (createTimestamp, pwdChangedTime).
func (d *slapd) add(t *testing.T, ldif []byte) {
	t.Helper()
	cmd := exec.Command(ldapAdd, "-x", "-e", "relax", "-H", d.ldapURL, "-D", managerDN, "-w", managerPW)
	cmd.Env = append(os.Environ(), "LDAPNOINIT=1") // no ~/.ldaprc or /etc/ldap/ldap.conf
	cmd.Stdin = bytes.NewReader(ldif)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("ldapadd: %v\n%s", err, tail(out.String(), 2000))
	}
}

func (d *slapd) log(t *testing.T) string {
	b, err := os.ReadFile(d.logFile)
	if err != nil {
		t.Logf("read slapd log: %v", err)
	}
	return string(b)
}

// stop freezes slapd with SIGSTOP and waits until it is stopped, so that
// no request sent after stop returns is answered.
func (d *slapd) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Every thread must have stopped: a worker still running could answer.
	tasks := fmt.Sprintf("/proc/%d/task/*/stat", d.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		stats, err := filepath.Glob(tasks)
		if err != nil || len(stats) == 0 {
			t.Fatalf("no threads of slapd in /proc: %v", err)
		}
		stopped := 0
		for _, stat := range stats {
			b, _ := os.ReadFile(stat)
			// pid (comm) state ...
			if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
				stopped++
			}
		}
		if stopped == len(stats) {
			return
		}
	}
	t.Fatal("slapd did not stop after SIGSTOP")
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// writeCerts writes a test CA, a server certificate it signed for
// 127.0.0.1 and localhost, and a second CA that signed nothing.
func writeCerts(t *testing.T, dir string) (caFile, otherCAFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	now := time.Now()
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(now.UnixNano()),
			Subject:               pkix.Name{CommonName: name},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key, der
	}
	ca, caKey, caDER := newCA("vigil test directory CA")
	_, _, otherDER := newCA("some other CA")

	key := newKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM("server.pem", "CERTIFICATE", der)
	writePEM("server.key", "PRIVATE KEY", keyDER)
	return writePEM("ca.pem", "CERTIFICATE", caDER), writePEM("other-ca.pem", "CERTIFICATE", otherDER)
}

// bulkUsers is LDIF for n AD-style users under ou=Bulk.
func bulkUsers(n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: ou=Bulk,%s\nobjectClass: organizationalUnit\nou: Bulk\n\n", suffix)
	for i := range n {
		fmt.Fprintf(&b, "dn: cn=Bulk User %04d,ou=Bulk,%s\nobjectClass: user\ncn: Bulk User %04d\nsn: User\n"+
			"sAMAccountName: bulk%04d\nuserAccountControl: 512\nlastLogonTimestamp: 134106966000000000\n\n", i, suffix, i, i)
	}
	return []byte(b.String())
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
