package users

import (
	"fmt"
	"log/slog"
)

// redacted is what every secret type prints instead of its value.
const redacted = "[REDACTED]"

// The secret types below hold a value in an unexported field so that no
// conversion, fmt verb, slog handler or JSON encoder reaches it by accident;
// Reveal is the one way out and is greppable.

// Password is a plaintext password on its way to being checked or hashed.
type Password struct{ s string }

// NewPassword wraps a plaintext password.
func NewPassword(s string) Password { return Password{s} }

// Reveal returns the plaintext.
func (p Password) Reveal() string { return p.s }

// IsZero reports whether the password is empty.
func (p Password) IsZero() bool { return p.s == "" }

// String redacts the password.
func (Password) String() string { return redacted }

// GoString redacts the password for %#v.
func (Password) GoString() string { return redacted }

// Format redacts the password for every fmt verb.
func (Password) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue redacts the password in slog output.
func (Password) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the password in JSON, YAML and other encoders.
func (Password) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// TOTPSecret is a base32 TOTP shared secret.
type TOTPSecret struct{ s string }

// NewTOTPSecret wraps a base32 TOTP secret read back from storage.
func NewTOTPSecret(s string) TOTPSecret { return TOTPSecret{s} }

// Reveal returns the base32 secret.
func (t TOTPSecret) Reveal() string { return t.s }

// IsZero reports whether no secret is set.
func (t TOTPSecret) IsZero() bool { return t.s == "" }

// String redacts the secret.
func (TOTPSecret) String() string { return redacted }

// GoString redacts the secret for %#v.
func (TOTPSecret) GoString() string { return redacted }

// Format redacts the secret for every fmt verb.
func (TOTPSecret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue redacts the secret in slog output.
func (TOTPSecret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the secret in encoders.
func (TOTPSecret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// OTPAuthURL is an otpauth:// enrollment URL; it carries the TOTP secret.
type OTPAuthURL struct{ s string }

// Reveal returns the URL, for the QR code shown once at enrollment.
func (u OTPAuthURL) Reveal() string { return u.s }

// String redacts the URL.
func (OTPAuthURL) String() string { return redacted }

// GoString redacts the URL for %#v.
func (OTPAuthURL) GoString() string { return redacted }

// Format redacts the URL for every fmt verb.
func (OTPAuthURL) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue redacts the URL in slog output.
func (OTPAuthURL) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the URL in encoders.
func (OTPAuthURL) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// SessionToken is the bearer value of a session cookie. The store keeps
// only its SHA-256 (see SessionID).
type SessionToken struct{ s string }

// NewSessionToken wraps a token read from a request's cookie.
func NewSessionToken(s string) SessionToken { return SessionToken{s} }

// Reveal returns the token, for the Set-Cookie header.
func (t SessionToken) Reveal() string { return t.s }

// IsZero reports whether the token is empty.
func (t SessionToken) IsZero() bool { return t.s == "" }

// String redacts the token.
func (SessionToken) String() string { return redacted }

// GoString redacts the token for %#v.
func (SessionToken) GoString() string { return redacted }

// Format redacts the token for every fmt verb.
func (SessionToken) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue redacts the token in slog output.
func (SessionToken) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the token in encoders.
func (SessionToken) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// RecoveryCode is a single-use MFA recovery code, shown to the user once.
type RecoveryCode struct{ s string }

// NewRecoveryCode wraps a recovery code typed by a user.
func NewRecoveryCode(s string) RecoveryCode { return RecoveryCode{s} }

// Reveal returns the code, for showing it to its owner once.
func (c RecoveryCode) Reveal() string { return c.s }

// String redacts the code.
func (RecoveryCode) String() string { return redacted }

// GoString redacts the code for %#v.
func (RecoveryCode) GoString() string { return redacted }

// Format redacts the code for every fmt verb.
func (RecoveryCode) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue redacts the code in slog output.
func (RecoveryCode) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the code in encoders.
func (RecoveryCode) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// SetupToken is the one-time token of the first-start setup link.
type SetupToken struct{ s string }

// NewSetupToken wraps a setup token taken from a request.
func NewSetupToken(s string) SetupToken { return SetupToken{s} }

// Reveal returns the token, for the console link.
func (t SetupToken) Reveal() string { return t.s }

// String redacts the token.
func (SetupToken) String() string { return redacted }

// GoString redacts the token for %#v.
func (SetupToken) GoString() string { return redacted }

// Format redacts the token for every fmt verb.
func (SetupToken) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue redacts the token in slog output.
func (SetupToken) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts the token in encoders.
func (SetupToken) MarshalText() ([]byte, error) { return []byte(redacted), nil }
