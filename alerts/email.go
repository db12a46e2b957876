package alerts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultSMTPTimeout bounds one SMTP delivery attempt when no timeout is set.
const DefaultSMTPTimeout = 30 * time.Second

// EmailOptions configure an SMTP channel.
type EmailOptions struct {
	Host string
	Port int // default 587
	From string
	To   []string
	// Username and Password, when Username is set, log in with AUTH PLAIN
	// (only ever over TLS, or to a loopback server).
	Username string
	Password Secret
	// RootCAs verify the server's certificate (default: the system pool).
	RootCAs *x509.CertPool
	// HelloName is sent in EHLO (default: this host's name).
	HelloName string
	Timeout   time.Duration
	Retry     Retry
	Format    Format

	// requireTLS makes STARTTLS mandatory even on loopback (tests).
	requireTLS bool
}

// Email sends alerts as a plain-text email over SMTP. STARTTLS is required
// unless the server is on a loopback address (a local relay).
type Email struct {
	o    EmailOptions
	from *mail.Address
	to   []*mail.Address
	now  func() time.Time
}

// NewEmail checks the options and returns the channel.
func NewEmail(o EmailOptions) (*Email, error) {
	if o.Host == "" {
		return nil, errors.New("email: an SMTP host is required")
	}
	if o.Port == 0 {
		o.Port = 587
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultSMTPTimeout
	}
	from, err := mail.ParseAddress(o.From)
	if err != nil {
		return nil, fmt.Errorf("email: from %q: %v", o.From, err)
	}
	if len(o.To) == 0 {
		return nil, errors.New("email: at least one recipient is required")
	}
	e := &Email{o: o, from: from, now: time.Now}
	for _, t := range o.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("email: to %q: %v", t, err)
		}
		e.to = append(e.to, a)
	}
	if o.Username != "" && o.Password.Empty() {
		return nil, errors.New("email: username is set but no password (password_env or password_file)")
	}
	if e.o.HelloName == "" {
		e.o.HelloName = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
			e.o.HelloName = h
		}
	}
	return e, nil
}

// String names the channel for logs.
func (e *Email) String() string {
	return "email smtp://" + net.JoinHostPort(e.o.Host, strconv.Itoa(e.o.Port))
}

// Send delivers all alerts in one message.
func (e *Email) Send(ctx context.Context, as []Alert) error {
	if len(as) == 0 {
		return nil
	}
	msg, err := e.message(as)
	if err != nil {
		return err
	}
	err = e.o.Retry.do(ctx, e.o.Timeout, func(ctx context.Context) error { return e.deliver(ctx, msg) })
	if err != nil {
		return fmt.Errorf("%s: %w", e, e.redact(err))
	}
	return nil
}

// redact removes the password from an error, should a server echo it.
func (e *Email) redact(err error) error {
	p := e.o.Password.Reveal()
	if p == "" || !strings.Contains(err.Error(), p) {
		return err
	}
	wrapped := errors.New(strings.ReplaceAll(err.Error(), p, redacted))
	if errors.Is(err, ErrPermanent) {
		return permanent(wrapped)
	}
	return wrapped
}

// deliver runs one SMTP transaction.
func (e *Email) deliver(ctx context.Context, msg []byte) error {
	addr := net.JoinHostPort(e.o.Host, strconv.Itoa(e.o.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Closing the connection is what unblocks a stuck read when ctx is
	// cancelled before the deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, e.o.Host)
	if err != nil {
		return smtpErr("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(e.o.HelloName); err != nil {
		return smtpErr("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: e.o.Host, RootCAs: e.o.RootCAs, MinVersion: tls.VersionTLS12}
		if err := c.StartTLS(cfg); err != nil {
			return permanent(fmt.Errorf("STARTTLS: %v", err))
		}
	} else if e.o.requireTLS || !IsLoopback(e.o.Host) {
		return permanent(errors.New("the server does not offer STARTTLS; vigil does not send alerts in clear text except to a loopback relay"))
	}
	if e.o.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanent(errors.New("the server does not offer AUTH, but a username is configured"))
		}
		if err := c.Auth(smtp.PlainAuth("", e.o.Username, e.o.Password.Reveal(), e.o.Host)); err != nil {
			return smtpErr("AUTH", err)
		}
	}
	if err := c.Mail(e.from.Address); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	for _, t := range e.to {
		if err := c.Rcpt(t.Address); err != nil {
			return smtpErr("RCPT TO "+t.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return smtpErr("end of DATA", err)
	}
	return c.Quit()
}

// smtpErr marks 5xx replies permanent; 4xx replies and network errors are
// retried.
func smtpErr(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return permanent(fmt.Errorf("%s: %w", step, err))
	}
	if step == "AUTH" && !errors.As(err, &te) {
		// net/smtp refuses locally (e.g. unencrypted connection): no use
		// retrying.
		return permanent(fmt.Errorf("%s: %w", step, err))
	}
	return fmt.Errorf("%s: %w", step, err)
}

// message builds the RFC 5322 message: headers, then a quoted-printable
// UTF-8 plain-text body, with CRLF line ends.
func (e *Email) message(as []Alert) ([]byte, error) {
	d := e.o.Format.digest(as)
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	now := e.now()
	h("Date", now.Format(time.RFC1123Z))
	h("From", e.from.String())
	to := make([]string, len(e.to))
	for i, a := range e.to {
		to[i] = a.String()
	}
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", oneLine(d.Subject)))
	h("Message-ID", messageID(e.from.Address))
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	h("X-Vigil-Delivery", deliveryID(as))
	b.WriteString("\r\n")

	var body strings.Builder
	body.WriteString(d.Summary + "\n\n")
	for i, a := range d.Items {
		fmt.Fprintf(&body, "%d. %s\n", i+1, a.headline())
		if a.Details != "" {
			body.WriteString("   " + oneLine(a.Details) + "\n")
		}
		for _, l := range a.Links {
			body.WriteString("   " + oneLine(l.Title) + ": " + l.URL + "\n")
		}
		body.WriteString("\n")
	}
	if d.More > 0 {
		body.WriteString(moreLine(d.More) + " The dashboard and `vigil scan` list them all.\n\n")
	}
	body.WriteString("-- \nSent by vigil. Alerts are listed worst first; each is sent once.\n")

	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body.String(), "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// messageID is a unique Message-ID in the sender's domain.
func messageID(from string) string {
	var r [16]byte
	rand.Read(r[:])
	domain := "vigil.invalid"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = d
	}
	return "<" + hex.EncodeToString(r[:]) + ".vigil@" + domain + ">"
}
