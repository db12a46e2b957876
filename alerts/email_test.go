package alerts

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// selfSigned makes a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vigil test smtp"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// mailbox is an in-process SMTP server on 127.0.0.1 that keeps what it
// receives.
type mailbox struct {
	addr string
	port int
	mu   sync.Mutex
	msgs []received
	// failRcpt, when set, is returned by the first RCPT commands.
	failRcpt []error
}

type received struct {
	from   string
	to     []string
	data   []byte
	tls    bool
	user   string
	authed bool
}

type session struct {
	mb   *mailbox
	conn *smtp.Conn
	cur  received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "vigil" || password != "smtp-pass-Zq9" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.cur.user, s.cur.authed = username, true
		return nil
	}), nil
}
func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	if len(s.mb.failRcpt) > 0 {
		err := s.mb.failRcpt[0]
		s.mb.failRcpt = s.mb.failRcpt[1:]
		return err
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.cur.data = b
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, s.cur)
	s.mb.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.cur = received{user: s.cur.user, authed: s.cur.authed} }
func (s *session) Logout() error { return nil }

func newMailbox(t *testing.T, cert *tls.Certificate) *mailbox {
	t.Helper()
	mb := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{mb: mb, conn: c}, nil
	}))
	srv.Domain = "127.0.0.1"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	mb.addr = l.Addr().String()
	mb.port = l.Addr().(*net.TCPAddr).Port
	return mb
}

func TestEmailSTARTTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	mb := newMailbox(t, &cert)
	e, err := NewEmail(EmailOptions{Host: "127.0.0.1", Port: mb.port, From: "vigil@glow.example",
		To: []string{"IT Desk <it@glow.example>", "owner@glow.example"}, Username: "vigil",
		Password: NewSecret("smtp-pass-Zq9"), RootCAs: pool, HelloName: "sensor-1", Format: Format{Organization: "Glow Aesthetics", MaxItems: 5},
		requireTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	as := sample(50)
	as[0].Title = "Héllo\r\nBcc: attacker@evil.example"
	if err := e.Send(context.Background(), as); err != nil {
		t.Fatal(err)
	}
	if len(mb.msgs) != 1 {
		t.Fatalf("%d messages, want one digest", len(mb.msgs))
	}
	got := mb.msgs[0]
	if !got.tls || !got.authed || got.user != "vigil" {
		t.Errorf("tls %v, authed %v as %q", got.tls, got.authed, got.user)
	}
	if got.from != "vigil@glow.example" || strings.Join(got.to, ",") != "it@glow.example,owner@glow.example" {
		t.Errorf("envelope: %s → %v", got.from, got.to)
	}
	if bytes.Contains(got.data, []byte("\nBcc:")) {
		t.Errorf("header injection:\n%s", got.data)
	}
	if n := bytes.Count(got.data, []byte("\n")); n != bytes.Count(got.data, []byte("\r\n")) {
		t.Errorf("bare LF line ends in the message")
	}
	m, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Date", "Message-Id", "From", "To", "Subject", "Mime-Version", "Content-Type"} {
		if m.Header.Get(h) == "" {
			t.Errorf("missing header %s", h)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if id := m.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@glow.example>") {
		t.Errorf("Message-ID %q", id)
	}
	if to, err := m.Header.AddressList("To"); err != nil || len(to) != 2 || to[0].Name != "IT Desk" {
		t.Errorf("To: %v %v", to, err)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if subj != "vigil (Glow Aesthetics): 50 alerts (5 critical, 45 high)" {
		t.Errorf("Subject %q", subj)
	}
	if ct := m.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	// net/mail does not undo quoted-printable; mime/quotedprintable does.
	body := decodeQP(t, m.Body)
	for _, want := range []string{"vigil saw 50 things change for the worse (5 critical, 45 high).",
		"1. [critical] downtown: Héllo Bcc: attacker@evil.example", "5. [critical] downtown:", "and 45 more alerts."} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "6. ") {
		t.Errorf("more than max_items listed:\n%s", body)
	}
}

// A loopback relay without TLS is accepted (postfix on the same host);
// requireTLS stands in for a remote server that does not offer STARTTLS.
func TestEmailTLSPolicy(t *testing.T) {
	mb := newMailbox(t, nil)
	o := EmailOptions{Host: "127.0.0.1", Port: mb.port, From: "vigil@localhost", To: []string{"root@localhost"}}
	e, err := NewEmail(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Send(context.Background(), sample(1)); err != nil {
		t.Fatalf("loopback relay without TLS: %v", err)
	}
	if len(mb.msgs) != 1 || mb.msgs[0].tls {
		t.Fatalf("messages: %+v", mb.msgs)
	}
	o.requireTLS = true
	o.Retry = Retry{Attempts: 3, sleep: func(context.Context, time.Duration) error { t.Error("retried a TLS refusal"); return nil }}
	e, _ = NewEmail(o)
	err = e.Send(context.Background(), sample(1))
	if err == nil || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("remote server without STARTTLS: %v", err)
	}
	if len(mb.msgs) != 1 {
		t.Error("sent in clear although TLS was required")
	}
}

func TestEmailRetries(t *testing.T) {
	mb := newMailbox(t, nil)
	mb.failRcpt = []error{&smtp.SMTPError{Code: 451, Message: "try again later"}}
	var ns noSleep
	e, _ := NewEmail(EmailOptions{Host: "127.0.0.1", Port: mb.port, From: "vigil@localhost", To: []string{"root@localhost"}, Retry: ns.retry(3)})
	if err := e.Send(context.Background(), sample(2)); err != nil {
		t.Fatalf("4xx then success: %v", err)
	}
	if len(ns.waits) != 1 || len(mb.msgs) != 1 {
		t.Errorf("waits %v, messages %d", ns.waits, len(mb.msgs))
	}

	mb.failRcpt = []error{&smtp.SMTPError{Code: 550, Message: "no such user"}}
	ns = noSleep{}
	e, _ = NewEmail(EmailOptions{Host: "127.0.0.1", Port: mb.port, From: "vigil@localhost", To: []string{"root@localhost"}, Retry: ns.retry(3)})
	err := e.Send(context.Background(), sample(2))
	if !errors.Is(err, ErrPermanent) || len(ns.waits) != 0 {
		t.Errorf("5xx: %v after %d retries", err, len(ns.waits))
	}
}

func TestEmailBadPasswordNotLeaked(t *testing.T) {
	cert, pool := selfSigned(t)
	mb := newMailbox(t, &cert)
	e, _ := NewEmail(EmailOptions{Host: "127.0.0.1", Port: mb.port, From: "vigil@localhost", To: []string{"root@localhost"},
		Username: "vigil", Password: NewSecret("wrong-pass-Kx7"), RootCAs: pool, Retry: Retry{Attempts: 1}})
	err := e.Send(context.Background(), sample(1))
	if err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("bad password: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pass-Kx7") || strings.Contains(e.String(), "wrong-pass") {
		t.Errorf("password leaked: %v", err)
	}
	if !errors.Is(err, ErrPermanent) {
		t.Errorf("535 should not be retried: %v", err)
	}
}

func decodeQP(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(qpReader(r))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func qpReader(r io.Reader) io.Reader { return quotedprintable.NewReader(r) }
