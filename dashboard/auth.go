package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Cookie names. The session cookie holds an expiry and a MAC keyed by the
// token, never the token itself, so changing the token ends every session.
const (
	sessionCookie = "vigil_session"
	csrfCookie    = "vigil_csrf"
	csrfField     = "csrf_token"
	actorKey      = "vigil.actor"
)

// Actors passed to Options.Audit.
const (
	ActorToken     = "api-token" // Authorization: Bearer
	ActorSession   = "session"   // logged in through /login
	ActorAnonymous = "anonymous"
)

// authenticator checks the shared token and the sessions derived from it.
type authenticator struct {
	tokenSum [32]byte
	macKey   []byte
	ttl      time.Duration
	now      func() time.Time
}

func newAuthenticator(token string, ttl time.Duration, now func() time.Time) *authenticator {
	key := sha256.Sum256([]byte("vigil dashboard session key\x00" + token))
	return &authenticator{tokenSum: sha256.Sum256([]byte(token)), macKey: key[:], ttl: ttl, now: now}
}

// checkToken compares digests so that neither the content nor the length of
// the token leaks through timing.
func (a *authenticator) checkToken(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

func (a *authenticator) mac(expiry string) string {
	m := hmac.New(sha256.New, a.macKey)
	m.Write([]byte("session\x00" + expiry))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns a cookie value valid for the TTL.
func (a *authenticator) newSession() (value string, expires time.Time) {
	expires = a.now().Add(a.ttl)
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + a.mac(exp), expires
}

func (a *authenticator) checkSession(value string) bool {
	exp, sig, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || a.now().Unix() >= unix {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(a.mac(exp)))
}

// requireAuth lets a request through with a valid bearer token or session
// cookie. A wrong bearer token is refused even when a session cookie is
// also present. Without credentials, API clients get 401 and browsers are
// sent to the login page.
func (s *server) requireAuth(c *gin.Context) {
	if h := c.GetHeader("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") && s.auth.checkToken(strings.TrimSpace(tok)) {
			c.Set(actorKey, ActorToken)
			c.Next()
			return
		}
		s.unauthorized(c)
		return
	}
	if v, err := c.Cookie(sessionCookie); err == nil && s.auth.checkSession(v) {
		c.Set(actorKey, ActorSession)
		c.Next()
		return
	}
	if isAPI(c) || c.Request.Method != http.MethodGet {
		s.unauthorized(c)
		return
	}
	c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
	c.Abort()
}

func (s *server) unauthorized(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="vigil"`)
	if isAPI(c) {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "authentication required: send Authorization: Bearer <token>"})
		return
	}
	c.AbortWithStatus(http.StatusUnauthorized)
}

func isAPI(c *gin.Context) bool { return strings.HasPrefix(c.Request.URL.Path, "/api/") }

func actor(c *gin.Context) string {
	if a := c.GetString(actorKey); a != "" {
		return a
	}
	return ActorAnonymous
}

// csrfToken returns the browser's CSRF token, setting a new one if it has
// none. Forms echo it in a hidden field; POST handlers compare the two
// (double submit), which a cross-site form cannot do because it cannot read
// the cookie.
func (s *server) csrfToken(c *gin.Context) string {
	if v, err := c.Cookie(csrfCookie); err == nil && len(v) >= 32 {
		return v
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	v := base64.RawURLEncoding.EncodeToString(b)
	s.setCookie(c, csrfCookie, v, time.Time{})
	return v
}

func (s *server) checkCSRF(c *gin.Context) bool {
	cookie, err := c.Cookie(csrfCookie)
	form := c.PostForm(csrfField)
	return err == nil && len(cookie) >= 32 && subtle.ConstantTimeCompare([]byte(cookie), []byte(form)) == 1
}

// setCookie sets an HttpOnly, SameSite=Strict cookie; a zero expiry makes it
// a session cookie, a past one deletes it.
func (s *server) setCookie(c *gin.Context, name, value string, expires time.Time) {
	ck := &http.Cookie{
		Name: name, Value: value, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: s.secure || c.Request.TLS != nil,
	}
	if !expires.IsZero() {
		ck.Expires = expires
		if d := time.Until(expires); d <= 0 {
			ck.MaxAge = -1
		}
	}
	http.SetCookie(c.Writer, ck)
}

// safeNext keeps post-login redirects on this site: a local absolute path,
// not "//host" or "/\host".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

type loginData struct {
	base
	Next  string
	Error string
}

func (s *server) loginForm(c *gin.Context) {
	s.render(c, http.StatusOK, "login.html", loginData{base: s.base(c, "Sign in"), Next: safeNext(c.Query("next"))})
}

const maxFormBytes = 64 << 10

func (s *server) login(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	data := loginData{Next: safeNext(c.PostForm("next"))}
	if !s.checkCSRF(c) {
		data.base = s.base(c, "Sign in")
		data.Error = "Your sign-in form expired. Please try again."
		s.render(c, http.StatusForbidden, "login.html", data)
		return
	}
	if !s.auth.checkToken(c.PostForm("token")) {
		s.audit(c.Request.Context(), ActorAnonymous, ActionLoginFailed, c.ClientIP())
		data.base = s.base(c, "Sign in")
		data.Error = "That token is not right."
		s.render(c, http.StatusUnauthorized, "login.html", data)
		return
	}
	v, exp := s.auth.newSession()
	s.setCookie(c, sessionCookie, v, exp)
	s.audit(c.Request.Context(), ActorSession, ActionLogin, c.ClientIP())
	c.Redirect(http.StatusSeeOther, data.Next)
}

func (s *server) logout(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxFormBytes)
	if !s.checkCSRF(c) {
		c.AbortWithStatus(http.StatusForbidden)
		return
	}
	s.setCookie(c, sessionCookie, "", time.Unix(1, 0))
	s.audit(c.Request.Context(), actor(c), ActionLogout, "")
	c.Redirect(http.StatusSeeOther, "/login")
}
