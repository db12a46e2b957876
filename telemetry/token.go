// Package telemetry connects vigil to telegraf agents in both directions:
// IngestHandler accepts InfluxDB line protocol from agents at the sites and
// stores each metric as an observation, and MetricsHandler serves vigil's
// own posture (open findings, last scans, control gaps) as Prometheus text
// or line protocol for a monitoring stack to scrape.
package telemetry

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
)

// Token is the shared secret telegraf agents present. It prints, logs and
// marshals as "[redacted]"; only string(t) gives the value.
type Token string

const redacted = "[redacted]"

func (Token) String() string               { return redacted }
func (Token) GoString() string             { return redacted }
func (Token) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MinTokenLength is the shortest token IngestHandler accepts as
// configured: a guessable token would open the store to anyone who can
// reach the dashboard.
const MinTokenLength = 16

// TokenSource returns the current token. IngestHandler asks on every
// request, so a rotated token file takes effect without a restart.
type TokenSource func() (Token, error)

// ConfigToken reads the token from telegraf.token_env or
// telegraf.token_file (collectors.Secret); errors name the field and never
// contain the token.
func ConfigToken(s config.TelegrafSettings) TokenSource {
	return func() (Token, error) {
		v, err := collectors.Secret("telegraf.token", s.TokenEnv, s.TokenFile)
		return Token(v), err
	}
}

// StaticToken always returns t (tests, and callers that read the secret
// themselves).
func StaticToken(t string) TokenSource {
	return func() (Token, error) { return Token(t), nil }
}

// credential extracts the token from "Token <t>" (outputs.influxdb_v2) or
// "Bearer <t>" (outputs.http with a bearer header); the scheme is
// case-insensitive.
func credential(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !(strings.EqualFold(scheme, "Token") || strings.EqualFold(scheme, "Bearer")) {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// sameToken compares digests, so neither the token's content nor its
// length leaks through timing.
func sameToken(given string, want Token) bool {
	a := sha256.Sum256([]byte(given))
	b := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func checkConfigured(t Token) error {
	if len(t) < MinTokenLength {
		return fmt.Errorf("the telegraf token is %d characters; use at least %d (openssl rand -hex 32)", len(t), MinTokenLength)
	}
	return nil
}
