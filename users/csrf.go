package users

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"
)

// CSRFField is the conventional name of the hidden form field.
const CSRFField = "csrf_token"

// CSRFToken returns the synchronizer token for forms of the session whose
// cookie is tok: HMAC-SHA256 keyed by the session token. It needs no server
// secret and no storage, changes whenever the session is rotated, and
// cannot be computed by a page that cannot read the HttpOnly cookie.
// Binding it to purpose ("logout", "user-edit", ...) keeps a token leaked
// from one form from working on another; use "" for a per-session token.
func CSRFToken(tok SessionToken, purpose string) string {
	m := hmac.New(sha256.New, []byte(tok.Reveal()))
	m.Write([]byte("vigil csrf\x00" + purpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports, in constant time, whether given is the session's
// token for purpose. An empty session token never checks.
func CheckCSRF(tok SessionToken, purpose, given string) bool {
	if tok.IsZero() {
		return false
	}
	return hmac.Equal([]byte(CSRFToken(tok, purpose)), []byte(given))
}

// Cookie names. Browsers accept a __Host- cookie only if it is Secure, has
// Path=/ and no Domain, which pins it to this origin over HTTPS; without TLS
// (a loopback test) the plain name is used.
const (
	SessionCookieName         = "__Host-vigil_session"
	InsecureSessionCookieName = "vigil_session"
)

// SessionCookie returns the Set-Cookie for a session: HttpOnly,
// SameSite=Strict, Path=/, Secure unless insecure, expiring with the
// session's absolute lifetime (the idle timeout is enforced server-side).
func SessionCookie(tok SessionToken, sess Session, now time.Time, secure bool) *http.Cookie {
	c := &http.Cookie{
		Name: InsecureSessionCookieName, Value: tok.Reveal(), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure,
		MaxAge: max(1, int(sess.ExpiresAt.Sub(now).Seconds())),
	}
	if secure {
		c.Name = SessionCookieName
	}
	return c
}

// ClearSessionCookie returns a Set-Cookie that deletes the session cookie.
func ClearSessionCookie(secure bool) *http.Cookie {
	c := &http.Cookie{Name: InsecureSessionCookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure, MaxAge: -1}
	if secure {
		c.Name = SessionCookieName
	}
	return c
}
