package alerts

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// Secret holds a credential (an HMAC key, an SMTP password, a webhook URL
// whose path is a bearer token). However it is printed or logged it shows
// as [redacted]; Reveal returns the value for the one place that uses it.
type Secret struct{ v string }

// NewSecret wraps a credential.
func NewSecret(v string) Secret { return Secret{v} }

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return s.v }

// Empty reports whether no credential is set.
func (s Secret) Empty() bool { return s.v == "" }

const redacted = "[redacted]"

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the value.
func (s Secret) GoString() string { return redacted }

// Format redacts the value for every verb (%v, %+v, %s, %q, %x, ...).
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer without revealing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps the value out of JSON and YAML dumps.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// ReadSecret reads a credential named by an environment variable or a
// file, as the configuration's *_env and *_file fields do. A file's
// trailing newline is dropped. Errors name the variable or file, never the
// value.
func ReadSecret(env, file string, lookup func(string) (string, bool)) (Secret, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	switch {
	case env != "":
		v, ok := lookup(env)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("environment variable %s is not set", env)
		}
		return Secret{v}, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Secret{}, fmt.Errorf("secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return Secret{}, fmt.Errorf("secret file %s is empty", file)
		}
		return Secret{v}, nil
	}
	return Secret{}, nil
}

// redactURL shows where a URL points without the parts that may be a
// credential: scheme and host only ("https://hooks.slack.com/…").
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	return u.Scheme + "://" + u.Host + "/" + redacted
}
