package ldapidentity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// session is one bound connection to the directory.
type session struct {
	raw     net.Conn // the TCP connection: closing it aborts whatever is in flight
	lc      *ldap.Conn
	addr    string
	timeout time.Duration
}

// op runs f, giving it at most the session's timeout. When ctx ends or the
// time is up the connection is closed, which makes f return; op then says
// why. go-ldap has no contexts, so this is how its calls get them.
func (s *session) op(ctx context.Context, what string, f func(ctx context.Context) error) error {
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	stop := context.AfterFunc(octx, func() { s.raw.Close() })
	err := f(octx)
	if !stop() {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return fmt.Errorf("%s: %w: %s did not answer within %s", what, ErrTimeout, s.addr, s.timeout)
	}
	return err
}

// ErrTimeout is wrapped by errors for an operation the directory did not
// finish within Source.Timeout.
var ErrTimeout = errors.New("timed out")

// ErrPlaintext is wrapped by the error for an ldap:// server that will not
// start TLS when allow_plaintext is off.
var ErrPlaintext = errors.New("refusing to bind without TLS")

func (s *session) close() {
	s.raw.Close()
	if s.lc != nil {
		s.lc.Close()
	}
}

// connect dials the directory and sets up TLS: implicitly for ldaps://,
// with StartTLS for ldap://. Nothing that carries a credential is sent
// before TLS is up, unless allow_plaintext says so.
func (s *Source) connect(ctx context.Context, set settings) (*session, error) {
	cfg, err := s.tlsConfig(set.host)
	if err != nil {
		return nil, err
	}
	timeout := s.timeout()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", set.hostport)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect: %w", ctx.Err())
		}
		if dctx.Err() != nil {
			return nil, fmt.Errorf("connect: %w: %s did not answer within %s", ErrTimeout, set.hostport, timeout)
		}
		return nil, fmt.Errorf("cannot connect to %s: %v", set.hostport, err)
	}
	sess := &session{raw: raw, addr: set.hostport, timeout: timeout}

	var conn net.Conn = raw
	isTLS := true
	if set.implicitTLS {
		tc := tls.Client(raw, cfg)
		err = sess.op(ctx, "TLS handshake", func(ctx context.Context) error { return tc.HandshakeContext(ctx) })
		conn = tc
	} else {
		conn, isTLS, err = sess.startTLS(ctx, cfg, s.Config.AllowPlaintext)
	}
	if err != nil {
		raw.Close()
		return nil, tlsError(err, set.hostport, s.Config.CAFile)
	}
	sess.lc = ldap.NewConn(conn, isTLS)
	sess.lc.Start()
	return sess, nil
}

// startTLSRequest is the StartTLS extended request (RFC 4511 4.14) with
// message id 1.
var startTLSRequest = func() []byte {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 1, "MessageID"))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", "TLS Extended Command"))
	p.AppendChild(req)
	return p.Bytes()
}()

var errNotLDAP = errors.New("not an LDAP response")

// maxStartTLSResponse bounds the StartTLS answer: a result code and a
// short message.
const maxStartTLSResponse = 16 << 10

// startTLS asks an ldap:// server to start TLS. It speaks the one request
// itself, before go-ldap takes the connection, so that the TLS handshake
// honours ctx and its errors keep their types (an unknown CA must be told
// apart from a wrong host name). When the server refuses and allowPlain
// is set, the connection carries on unencrypted.
func (s *session) startTLS(ctx context.Context, cfg *tls.Config, allowPlain bool) (net.Conn, bool, error) {
	var resp *ber.Packet
	err := s.op(ctx, "StartTLS", func(context.Context) error {
		if _, err := s.raw.Write(startTLSRequest); err != nil {
			return err
		}
		// An LDAP message is a SEQUENCE; anything else is another protocol.
		var first [1]byte
		if _, err := io.ReadFull(s.raw, first[:]); err != nil {
			return err
		}
		if first[0] != 0x30 {
			return errNotLDAP
		}
		p, err := ber.ReadPacket(io.MultiReader(bytes.NewReader(first[:]), &limitedReader{r: s.raw, n: maxStartTLSResponse}))
		resp = p
		return err
	})
	if err == nil && !isStartTLSResponse(resp) {
		err = errNotLDAP
	}
	switch {
	case errors.Is(err, errNotLDAP):
		return nil, false, fmt.Errorf("StartTLS: %w from %s: is this the directory's LDAP port (389)?", errNotLDAP, s.addr)
	case errors.Is(err, ErrTimeout) || ctx.Err() != nil:
		return nil, false, err
	case err != nil:
		return nil, false, fmt.Errorf("StartTLS: no answer from %s: %w", s.addr, err)
	}
	if lerr := ldap.GetLDAPError(resp); lerr != nil {
		if allowPlain {
			return s.raw, false, nil
		}
		return nil, false, fmt.Errorf("%w: the server will not start TLS (%s), so the bind password would travel unencrypted: "+
			"enable TLS on the directory or use ldaps://; on a network you trust, allow_plaintext: true permits it",
			ErrPlaintext, resultText(lerr))
	}
	tc := tls.Client(s.raw, cfg)
	if err := s.op(ctx, "TLS handshake", func(ctx context.Context) error { return tc.HandshakeContext(ctx) }); err != nil {
		return nil, false, err
	}
	return tc, true, nil
}

// isStartTLSResponse reports whether p is an ExtendedResponse to message 1
// carrying a result code the server chose (go-ldap's own codes, 200 and
// up, mean the packet was malformed). Only such an answer can be taken as
// a refusal that allow_plaintext may accept.
func isStartTLSResponse(p *ber.Packet) bool {
	if p == nil || len(p.Children) < 2 {
		return false
	}
	if id, ok := p.Children[0].Value.(int64); !ok || id != 1 {
		return false
	}
	op := p.Children[1]
	if op.ClassType != ber.ClassApplication || op.Tag != ldap.ApplicationExtendedResponse {
		return false
	}
	var lerr *ldap.Error
	return !errors.As(ldap.GetLDAPError(p), &lerr) || lerr.ResultCode < ldap.ErrorNetwork
}

// limitedReader fails, rather than ending, past n bytes.
type limitedReader struct {
	r io.Reader
	n int
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("answer too long")
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= n
	return n, err
}

// tlsConfig is Source.TLSConfig or a strict default, trusting ca_file
// when it is set.
func (s *Source) tlsConfig(host string) (*tls.Config, error) {
	var cfg *tls.Config
	if s.TLSConfig != nil {
		cfg = s.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if s.Config.CAFile != "" && cfg.RootCAs == nil {
		pem, err := os.ReadFile(s.Config.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", s.Config.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// tlsError explains a failed TLS set-up.
func tlsError(err error, addr, caFile string) error {
	for _, pass := range []error{ErrPlaintext, ErrTimeout, errNotLDAP, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, pass) {
			return err
		}
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown) && caFile == "":
		return fmt.Errorf("TLS: the certificate of %s is signed by an authority this host does not trust: set ca_file to the directory's CA certificate (PEM)", addr)
	case errors.As(err, &unknown):
		return fmt.Errorf("TLS: the certificate of %s is not signed by the CA in ca_file %s: export the CA that issued the directory's certificate into ca_file", addr, caFile)
	case errors.As(err, &hostname):
		return fmt.Errorf("TLS: %v: put a name the certificate holds in url", hostname)
	case errors.As(err, &invalid):
		return fmt.Errorf("TLS: the certificate of %s is not valid (%v): renew it on the directory", addr, invalid)
	case errors.As(err, &verify):
		return fmt.Errorf("TLS: the certificate of %s failed verification (%v): check ca_file", addr, verify.Err)
	case errors.As(err, &record):
		return fmt.Errorf("TLS: %s does not speak TLS: for a plain LDAP port (389) use ldap://, which starts TLS with StartTLS", addr)
	}
	return fmt.Errorf("TLS with %s: %w", addr, err)
}

// bind authenticates with a simple bind.
func (s *session) bind(ctx context.Context, dn, password string) error {
	err := s.op(ctx, "bind", func(context.Context) error { return s.lc.Bind(dn, password) })
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrTimeout) || ctx.Err() != nil {
		return err
	}
	var lerr *ldap.Error
	if !errors.As(err, &lerr) {
		return fmt.Errorf("bind as %q: %w", dn, err)
	}
	switch lerr.ResultCode {
	case ldap.LDAPResultInvalidCredentials:
		why := "wrong bind DN or password"
		if hint := adBindHint(lerr); hint != "" {
			why = hint
		}
		return fmt.Errorf("bind refused: %s (bind DN %q; check bind_dn_env/bind_dn_file and password_env/password_file)", why, dn)
	case ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired:
		return fmt.Errorf("bind as %q refused: the server requires a protected connection (%s): use ldaps:// or ldap:// with StartTLS", dn, resultText(lerr))
	case ldap.LDAPResultInvalidDNSyntax:
		return fmt.Errorf("bind refused: %q is not a valid bind DN: use a DN (CN=vigil,OU=Service,DC=spa,DC=local) or, for AD, user@domain", dn)
	case ldap.LDAPResultUnwillingToPerform:
		return fmt.Errorf("bind as %q refused: the server is unwilling (%s)", dn, resultText(lerr))
	}
	return fmt.Errorf("bind as %q failed: %s", dn, resultText(lerr))
}

// adBindHint reads Active Directory's sub-code ("data 52e") out of an
// invalid-credentials result.
func adBindHint(e *ldap.Error) string {
	msg := ""
	if e.Err != nil {
		msg = strings.ToLower(e.Err.Error())
	}
	for code, hint := range map[string]string{
		"data 525": "no such user: wrong bind DN",
		"data 52e": "wrong bind DN or password",
		"data 530": "the bind account may not sign in at this time",
		"data 531": "the bind account may not sign in from this computer",
		"data 532": "the bind account's password has expired",
		"data 533": "the bind account is disabled",
		"data 701": "the bind account has expired",
		"data 773": "the bind account must change its password first",
		"data 775": "the bind account is locked out",
	} {
		if strings.Contains(msg, code) {
			return hint
		}
	}
	return ""
}

// resultText is an LDAP error as "Result Name: server message".
func resultText(err error) string {
	var lerr *ldap.Error
	if !errors.As(err, &lerr) {
		return err.Error()
	}
	name := ldap.LDAPResultCodeMap[lerr.ResultCode]
	if name == "" {
		name = fmt.Sprintf("result %d", lerr.ResultCode)
	}
	if lerr.Err != nil && lerr.Err.Error() != "" {
		return name + ": " + lerr.Err.Error()
	}
	return name
}

// searchLimit bounds one paged search.
type searchLimit struct {
	pageSize   int
	maxEntries int
}

// search runs a paged subtree search under base and calls each for every
// entry. It checks ctx between pages; every page has the session timeout.
func (s *session) search(ctx context.Context, base, filter string, attrs []string, lim searchLimit, afterPage func(int), each func(*ldap.Entry)) error {
	paging := ldap.NewControlPaging(uint32(lim.pageSize))
	n := 0
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("after %d entries: %w", n, err)
		}
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
			int(s.timeout/time.Second), false, filter, attrs, []ldap.Control{paging})
		var res *ldap.SearchResult
		err := s.op(ctx, fmt.Sprintf("search page %d", page), func(context.Context) error {
			var err error
			res, err = s.lc.Search(req)
			return err
		})
		if err != nil {
			return searchError(err, base, n)
		}
		for _, e := range res.Entries {
			n++
			if n > lim.maxEntries {
				return fmt.Errorf("more than %d entries under %q match %s: narrow base_dn or user_filter", lim.maxEntries, base, filter)
			}
			each(e)
		}
		if afterPage != nil {
			afterPage(page)
		}
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctrl == nil || len(ctrl.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

// searchError explains a failed search after read entries.
func searchError(err error, base string, read int) error {
	var lerr *ldap.Error
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &lerr) {
		if read > 0 {
			return fmt.Errorf("listing incomplete after %d entries: %w", read, err)
		}
		return err
	}
	switch lerr.ResultCode {
	case ldap.LDAPResultNoSuchObject:
		return fmt.Errorf("base_dn %q does not exist (or the bind account cannot see it)", base)
	case ldap.LDAPResultInsufficientAccessRights:
		return fmt.Errorf("the bind account may not search %q: grant it read access", base)
	case ldap.LDAPResultSizeLimitExceeded, ldap.LDAPResultAdminLimitExceeded:
		return fmt.Errorf("the server stopped the listing at its size limit after %d entries: raise the limit for the bind account "+
			"(OpenLDAP: limits dn.exact=\"<bind DN>\" size.prtotal=unlimited)", read)
	case ldap.LDAPResultTimeLimitExceeded:
		return fmt.Errorf("the server's time limit ended the listing after %d entries: narrow base_dn or raise the limit", read)
	case ldap.LDAPResultUnavailableCriticalExtension:
		return fmt.Errorf("the server does not support paged results (RFC 2696): %s", resultText(lerr))
	case ldap.ErrorNetwork:
		return fmt.Errorf("connection lost, listing incomplete after %d entries: %s", read, resultText(lerr))
	}
	return fmt.Errorf("search under %q failed after %d entries: %s", base, read, resultText(lerr))
}

// namingContext is the naming context (from the root DSE) that holds
// base, or base itself when the server does not say.
// defaultBase reads where users live when base_dn is not configured: AD's
// defaultNamingContext, else the directory's only naming context.
func (s *session) defaultBase(ctx context.Context) (string, error) {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
		int(s.timeout/time.Second), false, "(objectClass=*)", []string{"defaultNamingContext", "namingContexts"}, nil)
	var res *ldap.SearchResult
	err := s.op(ctx, "root DSE", func(context.Context) error {
		var err error
		res, err = s.lc.Search(req)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("no base_dn configured, and the root DSE could not be read to find it: %w", err)
	}
	if len(res.Entries) > 0 {
		e := res.Entries[0]
		if d := e.GetEqualFoldAttributeValue("defaultNamingContext"); d != "" {
			return d, nil
		}
		if ncs := e.GetEqualFoldAttributeValues("namingContexts"); len(ncs) == 1 {
			return ncs[0], nil
		} else if len(ncs) > 1 {
			return "", fmt.Errorf("no base_dn configured and the directory has %d naming contexts (%s): set base_dn", len(ncs), strings.Join(ncs, "; "))
		}
	}
	return "", errors.New("no base_dn configured and the root DSE names no naming context: set base_dn")
}

func (s *session) namingContext(ctx context.Context, base string) string {
	bdn, err := ldap.ParseDN(base)
	if err != nil {
		return base
	}
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
		int(s.timeout/time.Second), false, "(objectClass=*)", []string{"namingContexts"}, nil)
	var res *ldap.SearchResult
	err = s.op(ctx, "root DSE", func(context.Context) error {
		var err error
		res, err = s.lc.Search(req)
		return err
	})
	if err != nil || len(res.Entries) == 0 {
		return base
	}
	best, bestLen := base, -1
	for _, nc := range res.Entries[0].GetEqualFoldAttributeValues("namingContexts") {
		ndn, err := ldap.ParseDN(nc)
		if err != nil || len(ndn.RDNs) == 0 {
			continue
		}
		if (ndn.EqualFold(bdn) || ndn.AncestorOfFold(bdn)) && len(ndn.RDNs) > bestLen {
			best, bestLen = nc, len(ndn.RDNs)
		}
	}
	return best
}

// redact removes secret from err's message. The wrapped chain stays
// reachable for errors.Is but not for errors.As or Unwrap, so the secret
// cannot leak back through it.
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), secret, "[redacted]"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
