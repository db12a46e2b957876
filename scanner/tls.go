package scanner

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNotTLS is returned (wrapped) by TLSProbe.Probe when no TLS version
// could be negotiated with the target: the port does not speak TLS, or
// speaks only what Go's crypto/tls cannot (SSL 3.0, DHE-only or other
// suites Go does not implement). The wrapping error says which.
var ErrNotTLS = errors.New("no TLS handshake succeeded")

// TLSProbe checks what a TLS server accepts and what certificate it shows.
// It produces the attributes of observations of kind tls (see
// docs/observations.md). The zero value is usable.
//
// Every handshake skips Go's own certificate verification
// (InsecureSkipVerify) so that broken certificates can still be inspected;
// the chain, validity window and host name are then checked by hand.
//
// The probe can only see what Go's crypto/tls can speak:
//   - SSL 3.0 cannot be negotiated (gone since Go 1.14). A server that
//     speaks only SSL 3.0 ends in ErrNotTLS, and "SSL3" never appears in
//     tls_versions.
//   - Only suites Go implements can be offered. DHE, CAMELLIA, ARIA, SEED,
//     IDEA, PSK, NULL, EXPORT, anon and single DES suites are invisible, and
//     so are the AES-CBC-SHA256/384 suites Go lacks. A server that accepts
//     nothing else at some version (for example DHE-only TLS 1.2) looks as
//     if it does not accept that version.
//   - Go refuses RSA keys under 1024 bits (Go 1.24+) even with
//     InsecureSkipVerify. The server's choice of version and suite, and
//     its certificate, are recorded before Go gives up, so such servers are
//     still reported in full. Certificates Go cannot parse (P-192 or
//     brainpool curves, DSA) and RSA keys over 8192 bits fail before that
//     point, and those servers end in ErrNotTLS.
//   - Go 1.24+ never verifies SHA-1 or MD5 signatures in a chain, so such a
//     chain is reported as cert_untrusted as well as cert_sha1.
//   - With GODEBUG=fips140=only, TLS 1.0/1.1 and the weak suites cannot be
//     offered at all.
type TLSProbe struct {
	// Timeout bounds each handshake, TCP connect included. Default 5s.
	Timeout time.Duration
	// Roots are the trust anchors the certificate chain is verified
	// against: system roots plus configured CA files (see LoadCertPool).
	// Nil means the system roots.
	Roots *x509.CertPool
	// ExpiryWarnDays sets cert_expiring_soon: a valid certificate with
	// fewer days left than this. Default 30.
	ExpiryWarnDays int
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
	// Source, if valid, is the address connections are bound to (a
	// sensor at several vantage points probes from one of them).
	Source netip.Addr
	// Limiter, if set, is waited on before every connection, for example
	// a golang.org/x/time/rate.Limiter shared by all probes of a scan.
	Limiter interface{ Wait(context.Context) error }
}

// LoadCertPool returns the system root pool plus every certificate in the
// PEM files caFiles. Errors name the file that could not be used.
func LoadCertPool(caFiles []string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		return nil, fmt.Errorf("load system root certificates: %w", err)
	}
	for _, f := range caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: %w", f, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)", f)
		}
	}
	return pool, nil
}

// tlsVersionOrder is the order versions are tried in. TLS 1.2 goes first:
// it is the ClientHello the widest range of servers answers, old ones
// included, so its outcome tells whether the port speaks TLS at all before
// any more handshakes are spent on it.
var tlsVersionOrder = []uint16{tls.VersionTLS12, tls.VersionTLS13, tls.VersionTLS11, tls.VersionTLS10}

// tlsVersionName maps a protocol version to its name in tls_versions.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS1.0"
	case tls.VersionTLS11:
		return "TLS1.1"
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// tlsWeakCipher reports whether a TLS 1.0–1.2 cipher suite counts as weak
// for weak_ciphers. A suite is weak when any of these holds:
//
//   - RC4 or 3DES/DES bulk encryption (broken or 64-bit block, Sweet32);
//   - static RSA key exchange (TLS_RSA_WITH_*): no forward secrecy, and the
//     Bleichenbacher/ROBOT family of attacks;
//   - CBC mode with an HMAC-SHA256/384 MAC (*_CBC_SHA256): Go left these
//     out of its constant-time Lucky13 countermeasures;
//   - NULL encryption, EXPORT strength, anonymous (anon) key exchange or an
//     MD5 MAC — Go can never negotiate these, but the name test keeps the
//     definition complete if a suite name ever reaches this function.
//
// For the suites Go implements this is exactly the set Go itself marks
// Insecure (tls.InsecureCipherSuites). ECDHE with AES-GCM or ChaCha20 is
// never weak, and neither is ECDHE with AES-CBC-SHA1: those are the only
// suites TLS 1.0/1.1 have, and accepting those versions is reported on its
// own in tls_versions. TLS 1.3 suites are all AEAD with forward secrecy and
// are not enumerated.
func tlsWeakCipher(id uint16) bool {
	for _, s := range tls.InsecureCipherSuites() {
		if s.ID == id {
			return true
		}
	}
	name := tls.CipherSuiteName(id)
	if strings.HasPrefix(name, "0x") { // not implemented by Go: unknown
		return false
	}
	if strings.HasPrefix(name, "TLS_RSA_WITH_") || strings.HasSuffix(name, "_CBC_SHA256") || strings.HasSuffix(name, "_CBC_SHA384") {
		return true
	}
	for _, bad := range []string{"_RC4_", "_DES_", "3DES", "_NULL_", "NULL_", "EXPORT", "_anon_", "_MD5"} {
		if strings.Contains(name, bad) {
			return true
		}
	}
	return false
}

// tlsSuites returns the IDs of every TLS 1.0–1.2 cipher suite Go's client
// can offer at version v, secure first (Go's preference), then insecure.
// Go's default client list leaves out the insecure ones, so they must be
// named explicitly in Config.CipherSuites to be offered at all.
func tlsSuites(v uint16, weakOnly bool) []uint16 {
	var ids []uint16
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range list {
			if !slices.Contains(s.SupportedVersions, v) {
				continue
			}
			if weakOnly && !tlsWeakCipher(s.ID) {
				continue
			}
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// tlsHandshake is what one handshake attempt showed.
type tlsHandshake struct {
	// accepted: the server chose a protocol version and cipher suite we
	// offered and sent its certificate. A handshake can be accepted and
	// still fail afterwards on Go's side (for example an RSA key below
	// 1024 bits, which Go 1.24+ refuses to use): the server's willingness
	// is what the probe reports.
	accepted bool
	version  uint16
	suite    uint16
	certs    []*x509.Certificate
	err      error // the handshake error, nil when it completed
	dialErr  bool  // err came from the TCP connect, not from TLS
}

// Probe connects to host:port and returns the tls observation attributes
// documented in docs/observations.md (plus cert_expiring_soon and
// cert_verify_error). serverName is the name the certificate is checked
// against and sent as SNI (Go sends no SNI for an IP address); empty means
// host. It returns an error wrapping ErrNotTLS when no handshake succeeds,
// and the context's error when ctx ends first.
//
// Handshakes per probe: one per protocol version (4), then, for each
// accepted version up to TLS 1.2, one per weak suite the server accepts
// plus one that it refuses (suites already found at another version are
// not offered again). A modern server costs 5 handshakes.
func (p *TLSProbe) Probe(ctx context.Context, host string, port int, serverName string) (map[string]any, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if serverName == "" {
		serverName = host
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tls probe %s: %w", addr, err)
	}

	// 1. Which protocol versions does the server accept?
	results := map[uint16]tlsHandshake{}
	for i, v := range tlsVersionOrder {
		var suites []uint16 // TLS 1.3: Go offers its fixed, all-AEAD list
		if v != tls.VersionTLS13 {
			suites = tlsSuites(v, false)
		}
		h := p.handshake(ctx, addr, serverName, v, suites)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("tls probe %s: %w", addr, err)
		}
		results[v] = h
		if i == 0 && !h.accepted {
			// The first answer tells whether anything TLS is listening;
			// when it clearly is not, further handshakes only cost time.
			var rh tls.RecordHeaderError
			switch {
			case h.dialErr:
				return nil, fmt.Errorf("tls probe %s: %w", addr, h.err)
			case errors.As(h.err, &rh):
				return nil, fmt.Errorf("tls probe %s: %w: the port does not speak TLS (%v)", addr, ErrNotTLS, h.err)
			case errors.Is(h.err, context.DeadlineExceeded):
				return nil, fmt.Errorf("tls probe %s: %w: no answer to a TLS ClientHello within %s", addr, ErrNotTLS, p.timeout())
			}
		}
	}

	var best *tlsHandshake
	versions := []string{}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		if h := results[v]; h.accepted {
			versions = append(versions, tlsVersionName(v))
			best = &h
		}
	}
	if best == nil {
		first := results[tlsVersionOrder[0]].err
		return nil, fmt.Errorf("tls probe %s: %w: %v (servers that speak only SSL 3.0 or cipher suites Go lacks, e.g. DHE or CAMELLIA, also end here)", addr, ErrNotTLS, first)
	}

	// 2. Which weak cipher suites does it accept? Offer only the weak
	// suites for each accepted version, remove the one the server picks,
	// and repeat until it refuses: k accepted suites cost k+1 handshakes.
	weak := map[uint16]bool{}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS11, tls.VersionTLS10} {
		h := results[v]
		if !h.accepted {
			continue
		}
		if tlsWeakCipher(h.suite) {
			weak[h.suite] = true
		}
		offer := slices.DeleteFunc(tlsSuites(v, true), func(id uint16) bool { return weak[id] })
		for len(offer) > 0 {
			h := p.handshake(ctx, addr, serverName, v, offer)
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("tls probe %s: %w", addr, err)
			}
			if !h.accepted || !slices.Contains(offer, h.suite) {
				break
			}
			weak[h.suite] = true
			offer = slices.DeleteFunc(offer, func(id uint16) bool { return id == h.suite })
		}
	}
	weakNames := []string{}
	for id := range weak {
		weakNames = append(weakNames, tls.CipherSuiteName(id))
	}
	slices.Sort(weakNames)

	attrs := map[string]any{
		"tls_versions": versions,
		"weak_ciphers": weakNames,
		"server_name":  serverName,
	}
	p.certFacts(attrs, best.certs, serverName)
	return attrs, nil
}

func (p *TLSProbe) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return 5 * time.Second
}

func (p *TLSProbe) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// handshake makes one TLS handshake at exactly version v, offering suites
// (ignored by Go for TLS 1.3, whose suites are all acceptable).
func (p *TLSProbe) handshake(ctx context.Context, addr, serverName string, v uint16, suites []uint16) tlsHandshake {
	var h tlsHandshake
	if p.Limiter != nil {
		if err := p.Limiter.Wait(ctx); err != nil {
			h.err = err
			return h
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()

	cfg := &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // verified by hand in certFacts, so bad certificates can be described
		MinVersion:         v,
		MaxVersion:         v,
		CipherSuites:       suites,
		// VerifyConnection runs as soon as the server's certificate has
		// arrived, after it chose version and suite: record the server's
		// choice even if Go later refuses to finish the handshake.
		VerifyConnection: func(cs tls.ConnectionState) error {
			h.accepted = true
			h.version = cs.Version
			h.suite = cs.CipherSuite
			h.certs = cs.PeerCertificates
			return nil
		},
	}
	d := net.Dialer{LocalAddr: localTCPAddr(p.Source)}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		h.err, h.dialErr = err, true
		return h
	}
	defer raw.Close()
	conn := tls.Client(raw, cfg)
	h.err = conn.HandshakeContext(ctx)
	if h.accepted && h.version != v {
		h.accepted = false // cannot happen with MinVersion == MaxVersion; be safe
	}
	if h.err == nil {
		_ = conn.Close() // sends close_notify
	}
	return h
}

// certFacts adds the cert_* attributes for the leaf certs[0], verifying the
// chain by hand against p.Roots with certs[1:] as intermediates.
func (p *TLSProbe) certFacts(attrs map[string]any, certs []*x509.Certificate, serverName string) {
	if len(certs) == 0 {
		return
	}
	leaf := certs[0]
	now := p.now()
	warn := p.ExpiryWarnDays
	if warn <= 0 {
		warn = 30
	}
	daysLeft := int(math.Floor(leaf.NotAfter.Sub(now).Hours() / 24))
	expired := now.After(leaf.NotAfter)
	notYetValid := now.Before(leaf.NotBefore)

	fp := sha256.Sum256(leaf.Raw)
	attrs["cert_sha256"] = hex.EncodeToString(fp[:])
	attrs["cert_subject"] = leaf.Subject.String()
	attrs["cert_issuer"] = leaf.Issuer.String()
	attrs["cert_not_before"] = leaf.NotBefore.UTC().Format(time.RFC3339)
	attrs["cert_not_after"] = leaf.NotAfter.UTC().Format(time.RFC3339)
	attrs["cert_days_left"] = daysLeft
	attrs["cert_expired"] = expired
	attrs["cert_not_yet_valid"] = notYetValid
	attrs["cert_expiring_soon"] = !expired && !notYetValid && daysLeft < warn
	attrs["cert_self_signed"] = tlsSelfSigned(leaf)

	// Trust is judged apart from the validity window: verify at a moment
	// inside it, so an expired certificate from a trusted CA is reported
	// as expired, not also as untrusted.
	at := now
	if expired {
		at = leaf.NotAfter
	} else if notYetValid {
		at = leaf.NotBefore
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{
		Roots:         p.Roots,
		Intermediates: inter,
		CurrentTime:   at,
	})
	attrs["cert_untrusted"] = verr != nil
	attrs["cert_verify_error"] = ""
	if verr != nil {
		attrs["cert_verify_error"] = verr.Error()
	}
	// Scanned by address with no host name known, a certificate that names
	// only DNS names cannot be judged: nearly every certificate would
	// "mismatch" its server's IP. It can only be judged when it lists IPs.
	mismatch := leaf.VerifyHostname(serverName) != nil
	if net.ParseIP(serverName) != nil && len(leaf.IPAddresses) == 0 {
		mismatch = false
	}
	attrs["cert_hostname_mismatch"] = mismatch

	keyType, bits := tlsKeyFacts(leaf)
	attrs["cert_key_type"] = keyType
	attrs["cert_key_bits"] = bits
	attrs["cert_sig_alg"] = leaf.SignatureAlgorithm.String()
	switch leaf.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1:
		attrs["cert_sha1"] = true
	default:
		attrs["cert_sha1"] = false
	}
}

// tlsSelfSigned reports whether c names itself as issuer and its signature
// verifies with its own key. When Go cannot check the signature at all (MD5
// signatures, RSA keys below 1024 bits), matching names and key ids decide.
func tlsSelfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawSubject, c.RawIssuer) {
		return false
	}
	// CheckSignature, unlike CheckSignatureFrom, does not require c to be
	// a CA, and still accepts SHA-1 signatures.
	err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
	if err == nil {
		return true
	}
	var insecure x509.InsecureAlgorithmError
	uncheckable := errors.As(err, &insecure) || errors.Is(err, x509.ErrUnsupportedAlgorithm)
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 1024 {
		uncheckable = true
	}
	return uncheckable && (len(c.AuthorityKeyId) == 0 || bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId))
}

// tlsKeyFacts returns the leaf's public key type and size in bits.
func tlsKeyFacts(c *x509.Certificate) (string, int) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "Ed25519", 256
	}
	return c.PublicKeyAlgorithm.String(), 0
}
