package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/oauth2"
)

// redacted is what a Secret prints as.
const redacted = "[redacted]"

// Secret holds a credential. However it is printed, logged or marshalled
// it shows as [redacted]; only Value returns it. Keep Secrets in exported
// fields: fmt cannot call the redacting methods through unexported ones.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Value returns the credential itself, for the request that needs it.
func (s Secret) Value() string { return s.v }

// String returns [redacted].
func (s Secret) String() string { return redacted }

// GoString returns [redacted].
func (s Secret) GoString() string { return redacted }

// Format prints [redacted] for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue logs [redacted].
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// jwtRE matches a JSON Web Token: signed assertions and most access tokens
// are bearer credentials in their own right.
var jwtRE = regexp.MustCompile(`[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

// scrub replaces every secret's value in s, and anything shaped like a JWT,
// with [redacted]. Values shorter than 6 bytes are left alone: they would
// redact ordinary words.
func scrub(s string, secrets []Secret) string {
	for _, sec := range secrets {
		if len(sec.v) >= 6 {
			s = strings.ReplaceAll(s, sec.v, redacted)
		}
	}
	return jwtRE.ReplaceAllString(s, redacted)
}

// OAuth2 authorises requests with bearer tokens from ts. The token
// endpoint's refusal becomes an *Error of kind ErrUnauthorized (source,
// tokenURL's path, what the endpoint said, and hint), never the credential
// or the request it sent. Build ts with a context that carries the HTTP
// client (oauth2.HTTPClient) and the collection's cancellation.
func OAuth2(source string, ts oauth2.TokenSource, tokenURL *url.URL, hint string, redact []Secret) Authorizer {
	return func(ctx context.Context, req *http.Request) error {
		tok, err := ts.Token()
		if err != nil {
			return TokenError(source, tokenURL, err, hint, redact)
		}
		tok.SetAuthHeader(req)
		return nil
	}
}

// TokenError describes a failed token request for the user. oauth2's own
// errors can carry the endpoint's whole answer; this keeps the status, the
// OAuth error code and the first line of its description, scrubbed.
func TokenError(source string, tokenURL *url.URL, err error, hint string, redact []Secret) error {
	e := &Error{Source: source, Method: http.MethodPost, Path: tokenURL.Path, Kind: ErrUnauthorized, Hint: hint}
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		code, desc := re.ErrorCode, re.ErrorDescription
		if code == "" {
			code, desc = apiMessage(re.Body)
		}
		e.Code, e.Detail = shorten(code, desc, redact)
		if re.Response != nil {
			e.Status = re.Response.StatusCode
			if e.Status == http.StatusTooManyRequests || e.Status >= 500 {
				e.Kind, e.Hint = ErrServer, "the sign-in service is busy or failing: try again later"
			}
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Kind, e.Hint = ErrTransport, ""
		if errors.Is(err, context.Canceled) {
			e.Err = context.Canceled
		} else {
			e.Err = context.DeadlineExceeded
		}
	case errors.As(err, &ue):
		e.Kind, e.Hint = ErrTransport, "check the network path to "+tokenURL.Host
		e.Err = errors.New(scrub(ue.Err.Error(), redact))
	default:
		// A key that does not parse, a token answer that is not JSON:
		// oauth2 describes these without the credential.
		e.Hint = hint
		e.Err = errors.New(scrub(err.Error(), redact))
	}
	return e
}
