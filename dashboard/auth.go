package dashboard

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/pquerna/otp"

	"github.com/vigilhq/vigil/users"
)

// Context keys the authentication middleware sets.
const (
	principalKey = "vigil.principal" // users.Principal
	tenantKey    = "vigil.tenant"    // *tenant
	sessionKey   = "vigil.session"   // users.SessionToken ("" for bearer tokens)
)

// Cookie names besides users' session cookie. The tenant cookie says which
// tenant's session table the session token is looked up in; changing it
// only makes the session unknown. The pre-login cookie is the
// double-submit CSRF token of the sign-in and setup forms, which have no
// session yet.
const (
	tenantCookie         = "vigil_tenant"
	secureTenantCookie   = "__Host-vigil_tenant"
	preloginCookie       = "vigil_prelogin"
	securePreloginCookie = "__Host-vigil_prelogin"
)

// csrfPurpose is the users.CSRFToken purpose of the dashboard's forms. One
// per-session token covers them all; the MFA forms of a pending session
// use their own.
const (
	csrfPurpose    = ""
	csrfPurposeMFA = "mfa"
)

// isSecure reports whether cookies must be Secure for this request.
func (s *server) isSecure(c *gin.Context) bool { return s.secure || c.Request.TLS != nil }

func clientOf(c *gin.Context) users.Client {
	return users.Client{IP: c.ClientIP(), UserAgent: c.Request.UserAgent()}
}

// cookie reads the first of the names that is set.
func cookie(c *gin.Context, names ...string) string {
	for _, n := range names {
		if v, err := c.Cookie(n); err == nil && v != "" {
			return v
		}
	}
	return ""
}

// sessionToken and sessionTenant read the browser's session cookies.
func (s *server) sessionToken(c *gin.Context) users.SessionToken {
	return users.NewSessionToken(cookie(c, users.SessionCookieName, users.InsecureSessionCookieName))
}

func (s *server) sessionTenant(c *gin.Context) *tenant {
	return s.tenants[users.TenantID(cookie(c, secureTenantCookie, tenantCookie))]
}

// setSession writes the session and tenant cookies.
func (s *server) setSession(c *gin.Context, t users.TenantID, tok users.SessionToken, sess users.Session) {
	sec := s.isSecure(c)
	sc := users.SessionCookie(tok, sess, s.now(), sec)
	http.SetCookie(c.Writer, sc)
	tc := *sc
	tc.Name, tc.Value = tenantCookie, string(t)
	if sec {
		tc.Name = secureTenantCookie
	}
	http.SetCookie(c.Writer, &tc)
}

func (s *server) clearSession(c *gin.Context) {
	sec := s.isSecure(c)
	http.SetCookie(c.Writer, users.ClearSessionCookie(sec))
	name := tenantCookie
	if sec {
		name = secureTenantCookie
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Path: "/", MaxAge: -1, HttpOnly: true, Secure: sec, SameSite: http.SameSiteStrictMode})
}

// isAPI reports whether the request is for the JSON API (or /metrics),
// which answers 401 instead of redirecting to the sign-in page.
func isAPI(c *gin.Context) bool {
	p := c.Request.URL.Path
	return strings.HasPrefix(p, "/api/") || p == "/metrics" || strings.HasPrefix(p, "/export/")
}

// requireAuth lets a request through with a valid API token or a fully
// signed-in session, and sets the principal and its tenant. A browser
// half-way through sign-in is sent on to the MFA step.
func (s *server) requireAuth(c *gin.Context) {
	if h := c.GetHeader("Authorization"); h != "" {
		s.bearerAuth(c, h)
		return
	}
	t := s.sessionTenant(c)
	tok := s.sessionToken(c)
	if t == nil || tok.IsZero() {
		s.unauthenticated(c)
		return
	}
	p, _, err := s.users.Authenticate(c.Request.Context(), t.ID, tok)
	switch {
	case err == nil:
	case errors.Is(err, users.ErrMFARequired) && !isAPI(c):
		c.Redirect(http.StatusSeeOther, "/login/mfa")
		c.Abort()
		return
	case errors.Is(err, users.ErrMFAEnrollmentRequired) && !isAPI(c):
		c.Redirect(http.StatusSeeOther, "/login/enroll")
		c.Abort()
		return
	case errors.Is(err, users.ErrUnauthenticated), errors.Is(err, users.ErrMFARequired), errors.Is(err, users.ErrMFAEnrollmentRequired):
		s.clearSession(c)
		s.unauthenticated(c)
		return
	default:
		s.fail(c, err)
		return
	}
	c.Set(principalKey, p)
	c.Set(tenantKey, t)
	c.Set(sessionKey, tok)
	if c.Request.Method == http.MethodPost && !users.CheckCSRF(tok, csrfPurpose, c.PostForm(users.CSRFField)) {
		s.forbidden(c, "the form is out of date or came from another site: reload the page and try again")
		return
	}
	c.Next()
}

// bearerAuth authenticates an API token.
func (s *server) bearerAuth(c *gin.Context, h string) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || s.tokens == nil {
		s.unauthorized(c)
		return
	}
	rec, err := s.tokens.lookup(c.Request.Context(), strings.TrimSpace(tok), s.now())
	if err != nil {
		if !errors.Is(err, errNoToken) {
			s.log.Error("dashboard: API token lookup failed", "err", err)
		}
		s.unauthorized(c)
		return
	}
	t := s.tenants[rec.Tenant]
	if t == nil {
		s.unauthorized(c)
		return
	}
	u, err := s.ustore.UserByID(c.Request.Context(), rec.Tenant, rec.UserID)
	if err != nil || u.Disabled {
		s.unauthorized(c)
		return
	}
	c.Set(principalKey, u.Principal("api-token:"+rec.ID[:12]))
	c.Set(tenantKey, t)
	c.Next()
}

// unauthenticated sends a browser to the sign-in page and answers 401 to
// the API.
func (s *server) unauthenticated(c *gin.Context) {
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
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "sign in, or send Authorization: Bearer <API token>"})
		return
	}
	c.Data(http.StatusUnauthorized, "text/plain; charset=utf-8", []byte("sign in first\n"))
	c.Abort()
}

// principal and tenantOf return what requireAuth set.
func principal(c *gin.Context) users.Principal {
	p, _ := c.MustGet(principalKey).(users.Principal)
	return p
}

func tenantOf(c *gin.Context) *tenant {
	t, _ := c.MustGet(tenantKey).(*tenant)
	return t
}

// csrfToken is the per-session form token ("" for API-token requests,
// which render no forms).
func csrfToken(c *gin.Context) string {
	tok, ok := c.Get(sessionKey)
	if !ok {
		return ""
	}
	return users.CSRFToken(tok.(users.SessionToken), csrfPurpose)
}

// prelogin returns the double-submit token of the sign-in and setup forms,
// setting its cookie when the browser has none.
func (s *server) prelogin(c *gin.Context) string {
	if v := cookie(c, securePreloginCookie, preloginCookie); len(v) >= 32 {
		return v
	}
	b := make([]byte, 32)
	rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	sec := s.isSecure(c)
	name := preloginCookie
	if sec {
		name = securePreloginCookie
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: v, Path: "/", HttpOnly: true, Secure: sec, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return v
}

func (s *server) checkPrelogin(c *gin.Context) bool {
	v := cookie(c, securePreloginCookie, preloginCookie)
	return len(v) >= 32 && subtle.ConstantTimeCompare([]byte(v), []byte(c.PostForm(users.CSRFField))) == 1
}

// mountAuth registers sign-in, MFA, enrollment, setup and sign-out.
func (s *server) mountAuth(r *gin.Engine) {
	r.GET("/login", s.loginForm)
	r.POST("/login", s.login)
	r.GET("/login/mfa", s.mfaForm)
	r.POST("/login/mfa", s.mfa)
	r.GET("/login/enroll", s.enrollForm)
	r.POST("/login/enroll", s.enroll)
	r.GET("/setup", s.setupForm)
	r.POST("/setup", s.setup)
	r.POST("/logout", s.requireAuth, s.logout)
}

// loginPage is the sign-in form's data.
type loginPage struct {
	base
	Tenants  []tenantChoice
	Tenant   string
	Username string
	Next     string
	Error    string
	Notice   string
}

type tenantChoice struct{ ID, Name string }

func (s *server) tenantChoices() []tenantChoice {
	out := make([]tenantChoice, len(s.order))
	for i, t := range s.order {
		out[i] = tenantChoice{string(t.ID), t.Name}
	}
	return out
}

// safeNext keeps a post-sign-in redirect on this site.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") || strings.HasPrefix(n, "/login") {
		return "/"
	}
	return n
}

func (s *server) loginForm(c *gin.Context) {
	d := loginPage{base: base{Title: "Sign in", CSRF: s.prelogin(c)}, Tenants: s.tenantChoices(), Next: safeNext(c.Query("next"))}
	if len(s.order) == 1 {
		d.Tenant = string(s.order[0].ID)
	}
	if c.Query("setup") == "done" {
		d.Notice = "The owner account is ready: sign in, then set up your authenticator app."
	}
	if any, err := s.ustore.AnyUsers(c.Request.Context()); err == nil && !any {
		d.Notice = "vigil has no users yet: open the one-time setup link vigil serve printed on its console."
	}
	s.render(c, http.StatusOK, "login.html", d)
}

func (s *server) login(c *gin.Context) {
	d := loginPage{base: base{Title: "Sign in", CSRF: s.prelogin(c)}, Tenants: s.tenantChoices(),
		Tenant: c.PostForm("tenant"), Username: c.PostForm("username"), Next: safeNext(c.PostForm("next"))}
	if !s.checkPrelogin(c) {
		d.Error = "The sign-in form expired: try again."
		s.render(c, http.StatusForbidden, "login.html", d)
		return
	}
	if d.Tenant == "" && len(s.order) == 1 {
		d.Tenant = string(s.order[0].ID)
	}
	t := s.tenants[users.TenantID(d.Tenant)]
	if t == nil {
		d.Error = users.ErrInvalidCredentials.Error()
		s.render(c, http.StatusUnauthorized, "login.html", d)
		return
	}
	tok, sess, err := s.users.Login(c.Request.Context(), users.LoginRequest{
		Tenant: t.ID, Username: d.Username, Password: users.NewPassword(c.PostForm("password")),
		Client: clientOf(c), Previous: s.sessionToken(c),
	})
	var th *users.ThrottledError
	switch {
	case err == nil:
	case errors.As(err, &th), errors.Is(err, users.ErrThrottled):
		d.Error = err.Error()
		s.render(c, http.StatusTooManyRequests, "login.html", d)
		return
	case errors.Is(err, users.ErrInvalidCredentials):
		d.Error = err.Error()
		s.render(c, http.StatusUnauthorized, "login.html", d)
		return
	default:
		s.fail(c, err)
		return
	}
	s.setSession(c, t.ID, tok, sess)
	switch sess.Stage {
	case users.StageMFA:
		c.Redirect(http.StatusSeeOther, "/login/mfa")
	case users.StageEnrollMFA:
		c.Redirect(http.StatusSeeOther, "/login/enroll")
	default:
		c.Redirect(http.StatusSeeOther, d.Next)
	}
}

// mfaPage is the second-factor form.
type mfaPage struct {
	base
	Error string
}

// pending returns the tenant and token of a half-signed-in browser.
func (s *server) pending(c *gin.Context) (*tenant, users.SessionToken, error) {
	t, tok := s.sessionTenant(c), s.sessionToken(c)
	if t == nil || tok.IsZero() {
		return nil, tok, users.ErrUnauthenticated
	}
	_, _, err := s.users.Authenticate(c.Request.Context(), t.ID, tok)
	return t, tok, err
}

func (s *server) mfaForm(c *gin.Context) {
	_, tok, err := s.pending(c)
	if !errors.Is(err, users.ErrMFARequired) {
		s.afterSignIn(c, err)
		return
	}
	s.render(c, http.StatusOK, "mfa.html", mfaPage{base: base{Title: "Authenticator code", CSRF: users.CSRFToken(tok, csrfPurposeMFA)}})
}

// afterSignIn sends a browser that is not where the form expects to the
// right place.
func (s *server) afterSignIn(c *gin.Context, err error) {
	switch {
	case err == nil:
		c.Redirect(http.StatusSeeOther, "/")
	case errors.Is(err, users.ErrMFARequired):
		c.Redirect(http.StatusSeeOther, "/login/mfa")
	case errors.Is(err, users.ErrMFAEnrollmentRequired):
		c.Redirect(http.StatusSeeOther, "/login/enroll")
	case errors.Is(err, users.ErrUnauthenticated):
		c.Redirect(http.StatusSeeOther, "/login")
	default:
		s.fail(c, err)
	}
}

func (s *server) mfa(c *gin.Context) {
	t, tok, err := s.pending(c)
	if !errors.Is(err, users.ErrMFARequired) {
		s.afterSignIn(c, err)
		return
	}
	if !users.CheckCSRF(tok, csrfPurposeMFA, c.PostForm(users.CSRFField)) {
		s.forbidden(c, "the form is out of date: reload the page and try again")
		return
	}
	ntok, sess, err := s.users.CompleteMFA(c.Request.Context(), t.ID, tok, strings.TrimSpace(c.PostForm("code")), clientOf(c))
	d := mfaPage{base: base{Title: "Authenticator code", CSRF: users.CSRFToken(tok, csrfPurposeMFA)}}
	switch {
	case err == nil:
		s.setSession(c, t.ID, ntok, sess)
		c.Redirect(http.StatusSeeOther, "/")
	case errors.Is(err, users.ErrThrottled):
		d.Error = err.Error()
		s.render(c, http.StatusTooManyRequests, "mfa.html", d)
	case errors.Is(err, users.ErrTOTPInvalid), errors.Is(err, users.ErrTOTPReplay), errors.Is(err, users.ErrRecoveryInvalid):
		d.Error = err.Error()
		s.render(c, http.StatusUnauthorized, "mfa.html", d)
	case errors.Is(err, users.ErrUnauthenticated):
		c.Redirect(http.StatusSeeOther, "/login")
	default:
		s.fail(c, err)
	}
}

// enrollPage shows a new TOTP secret, then the recovery codes.
type enrollPage struct {
	base
	Secret string
	URL    string
	// QR is a data: URL of a PNG the server drew; html/template would
	// otherwise neutralise the data: scheme as unsafe.
	QR       template.URL
	Required bool
	Codes    []string
	Error    string
}

func (s *server) enrollForm(c *gin.Context) {
	t, tok, err := s.pending(c)
	if err != nil && !errors.Is(err, users.ErrMFAEnrollmentRequired) {
		s.afterSignIn(c, err)
		return
	}
	e, err := s.users.EnrollTOTP(c.Request.Context(), t.ID, tok)
	if err != nil {
		s.afterSignIn(c, err)
		return
	}
	d := enrollPage{base: base{Title: "Set up your authenticator", CSRF: users.CSRFToken(tok, csrfPurposeMFA)},
		Secret: e.Secret.Reveal(), URL: e.URL.Reveal(), Required: err == nil}
	if k, err := otp.NewKeyFromURL(e.URL.Reveal()); err == nil {
		if img, err := k.Image(200, 200); err == nil {
			var b bytes.Buffer
			if png.Encode(&b, img) == nil {
				d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
			}
		}
	}
	s.render(c, http.StatusOK, "enroll.html", d)
}

func (s *server) enroll(c *gin.Context) {
	t, tok, err := s.pending(c)
	if err != nil && !errors.Is(err, users.ErrMFAEnrollmentRequired) {
		s.afterSignIn(c, err)
		return
	}
	if !users.CheckCSRF(tok, csrfPurposeMFA, c.PostForm(users.CSRFField)) {
		s.forbidden(c, "the form is out of date: reload the page and try again")
		return
	}
	ntok, sess, codes, err := s.users.ConfirmTOTP(c.Request.Context(), t.ID, tok, strings.TrimSpace(c.PostForm("code")), clientOf(c))
	switch {
	case err == nil:
	case errors.Is(err, users.ErrTOTPInvalid):
		d := enrollPage{base: base{Title: "Set up your authenticator", CSRF: users.CSRFToken(tok, csrfPurposeMFA)}, Error: err.Error() + ": reload the page for a new secret if you lost it"}
		s.render(c, http.StatusUnauthorized, "enroll.html", d)
		return
	default:
		s.afterSignIn(c, err)
		return
	}
	s.setSession(c, t.ID, ntok, sess)
	d := enrollPage{base: base{Title: "Recovery codes", CSRF: users.CSRFToken(ntok, csrfPurpose), Authed: true}}
	for _, rc := range codes {
		d.Codes = append(d.Codes, rc.Reveal())
	}
	s.render(c, http.StatusOK, "enroll.html", d)
}

// setupPage creates the first owner.
type setupPage struct {
	base
	Token    string
	Tenants  []tenantChoice
	Tenant   string
	Username string
	Email    string
	Error    string
}

func (s *server) setupForm(c *gin.Context) {
	tok := c.Query("token")
	if tok == "" {
		s.notFound(c)
		return
	}
	s.render(c, http.StatusOK, "setup.html", setupPage{base: base{Title: "Create the first owner", CSRF: s.prelogin(c)},
		Token: tok, Tenants: s.tenantChoices(), Tenant: string(s.order[0].ID)})
}

func (s *server) setup(c *gin.Context) {
	d := setupPage{base: base{Title: "Create the first owner", CSRF: s.prelogin(c)}, Token: c.PostForm("token"),
		Tenants: s.tenantChoices(), Tenant: c.PostForm("tenant"), Username: c.PostForm("username"), Email: c.PostForm("email")}
	if d.Token == "" {
		d.Token = c.Query("token")
	}
	if !s.checkPrelogin(c) {
		d.Error = "The form expired: try again."
		s.render(c, http.StatusForbidden, "setup.html", d)
		return
	}
	t := s.tenants[users.TenantID(d.Tenant)]
	if t == nil {
		d.Error = "choose an organisation"
		s.render(c, http.StatusBadRequest, "setup.html", d)
		return
	}
	_, err := s.users.CompleteSetup(c.Request.Context(), users.NewSetupToken(d.Token), t.ID,
		users.NewUser{Username: d.Username, Email: d.Email, Password: users.NewPassword(c.PostForm("password"))}, clientOf(c))
	switch {
	case err == nil:
		c.Redirect(http.StatusSeeOther, "/login?setup=done")
	case errors.Is(err, users.ErrSetupUnavailable):
		d.Error = err.Error()
		s.render(c, http.StatusGone, "setup.html", d)
	default:
		// Policy and name errors say what to change; anything else is ours.
		if errors.Is(err, users.ErrWeakPassword) || strings.Contains(err.Error(), "user name") {
			d.Error = err.Error()
			s.render(c, http.StatusBadRequest, "setup.html", d)
			return
		}
		s.fail(c, err)
	}
}

func (s *server) logout(c *gin.Context) {
	if tok, ok := c.Get(sessionKey); ok {
		if err := s.users.Logout(c.Request.Context(), tenantOf(c).ID, tok.(users.SessionToken), clientOf(c)); err != nil {
			s.log.Warn("dashboard: logout not recorded", "err", err)
		}
	}
	s.clearSession(c)
	c.Redirect(http.StatusSeeOther, "/login")
}
