package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Errors Service returns for callers to branch on. Sign-in failures are
// deliberately few: a wrong password, an unknown user and a disabled
// account are all ErrInvalidCredentials.
var (
	ErrInvalidCredentials    = errors.New("user name or password is not right")
	ErrUnauthenticated       = errors.New("not signed in, or the session has ended: sign in again")
	ErrMFARequired           = errors.New("enter the code from your authenticator app")
	ErrMFAEnrollmentRequired = errors.New("set up an authenticator app before continuing")
	ErrForbidden             = errors.New("your role does not allow this")
	ErrLastOwner             = errors.New("the organisation must keep at least one owner")
)

// Audit actions Service records; dashboards record ActionView and
// ActionExport themselves through Service.Audit.
const (
	ActionLogin           = "login"
	ActionLoginPassword   = "login-password" // password right, second factor awaited
	ActionLoginFailed     = "login-failed"
	ActionLoginThrottled  = "login-throttled"
	ActionMFAFailed       = "mfa-failed"
	ActionRecoveryUsed    = "mfa-recovery-code-used"
	ActionMFAEnrolled     = "mfa-enrolled"
	ActionMFAReset        = "mfa-reset"
	ActionLogout          = "logout"
	ActionPasswordChanged = "password-changed"
	ActionUserCreated     = "user-created"
	ActionRoleChanged     = "role-changed"
	ActionUserDisabled    = "user-disabled"
	ActionSetupComplete   = "setup-complete"
	ActionView            = "view"
	ActionExport          = "export"
	ActionChange          = "change"
)

// Client is where a request came from, for throttling and the audit trail.
type Client struct {
	IP        string
	UserAgent string
}

// Config configures a Service. Zero fields take the defaults named.
type Config struct {
	Store  Store
	Now    func() time.Time // time.Now
	Logger *slog.Logger     // slog.Default()

	Params          Params         // DefaultParams
	Policy          PasswordPolicy // DefaultPolicy
	AccountThrottle ThrottlePolicy // DefaultAccountThrottle
	IPThrottle      ThrottlePolicy // DefaultIPThrottle

	// SessionIdle ends a session not used for this long: 15 minutes, the
	// automatic logoff of HIPAA 164.312(a)(2)(iii) for a screen showing
	// findings about PHI systems.
	SessionIdle time.Duration
	// SessionAbsolute ends every session this long after sign-in: 12 hours,
	// one working day.
	SessionAbsolute time.Duration
	// PendingTTL is how long a half-finished sign-in (awaiting a TOTP code
	// or an enrollment) lasts: 10 minutes.
	PendingTTL time.Duration
	// SetupTTL is how long a setup link works: 1 hour.
	SetupTTL time.Duration

	// RequireMFA makes every role use a second factor; owners and admins
	// always do.
	RequireMFA bool
	// Issuer names vigil in authenticator apps: "vigil".
	Issuer string
	// MaxConcurrentHashes bounds argon2id work in flight (each takes
	// Params.Memory): 2.
	MaxConcurrentHashes int
}

// Service is the dashboard's account and session logic over a Store.
type Service struct {
	cfg      Config
	store    Store
	now      func() time.Time
	log      *slog.Logger
	throttle throttle
	hashSlot chan struct{}
	dummy    string // hash checked for unknown users, so they cost the same
}

// New returns a Service. It hashes one dummy password, which takes as long
// as a sign-in.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("users: Config.Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Params == (Params{}) {
		cfg.Params = DefaultParams
	}
	if cfg.Policy == (PasswordPolicy{}) {
		cfg.Policy = DefaultPolicy
	}
	if cfg.AccountThrottle == (ThrottlePolicy{}) {
		cfg.AccountThrottle = DefaultAccountThrottle
	}
	if cfg.IPThrottle == (ThrottlePolicy{}) {
		cfg.IPThrottle = DefaultIPThrottle
	}
	cfg.SessionIdle = cmpOr(cfg.SessionIdle, 15*time.Minute)
	cfg.SessionAbsolute = cmpOr(cfg.SessionAbsolute, 12*time.Hour)
	cfg.PendingTTL = cmpOr(cfg.PendingTTL, 10*time.Minute)
	cfg.SetupTTL = cmpOr(cfg.SetupTTL, time.Hour)
	if cfg.Issuer == "" {
		cfg.Issuer = "vigil"
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = 2
	}
	s := &Service{
		cfg: cfg, store: cfg.Store, now: cfg.Now, log: cfg.Logger,
		throttle: throttle{store: cfg.Store, now: cfg.Now},
		hashSlot: make(chan struct{}, cfg.MaxConcurrentHashes),
	}
	dummy, err := HashPassword(NewPassword(randomToken(16)), cfg.Params)
	if err != nil {
		return nil, err
	}
	s.dummy = dummy
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// randomToken returns n random bytes, URL-safe base64. crypto/rand.Read
// never fails.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenHash is the stored id of a bearer token.
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// SessionID returns the stored id of a session token: its SHA-256 in hex.
func SessionID(tok SessionToken) string { return tokenHash(tok.Reveal()) }

// normalizeName is how user names are compared and stored.
func normalizeName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// hash and verify run argon2id within the concurrency bound.
func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashSlot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) release() { <-s.hashSlot }

func (s *Service) hash(ctx context.Context, pw Password) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(pw, s.cfg.Params)
}

func (s *Service) verify(ctx context.Context, phc string, pw Password) (ok, rehash bool, err error) {
	if err := s.acquire(ctx); err != nil {
		return false, false, err
	}
	defer s.release()
	return VerifyPassword(phc, pw, s.cfg.Params)
}

func (s *Service) audit(ctx context.Context, e AuditEvent, c Client) error {
	e.At, e.IP, e.UserAgent = s.now().UTC(), c.IP, c.UserAgent
	if err := s.store.AppendAudit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", "tenant", string(e.Tenant), "action", e.Action, "err", err)
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// Audit records that p did action to target (a page, an export, a change).
// The dashboard must not serve the page or the export when it fails.
func (s *Service) Audit(ctx context.Context, p Principal, action, target, detail string, c Client) error {
	return s.audit(ctx, AuditEvent{Tenant: p.Tenant, UserID: p.UserID, Username: p.Username, Action: action, Target: target, Detail: detail}, c)
}

// AuditEvents returns the tenant's audit trail to an owner, admin or auditor.
func (s *Service) AuditEvents(ctx context.Context, p Principal, q AuditQuery) ([]AuditEvent, error) {
	if !slices.Contains([]Role{RoleOwner, RoleAdmin, RoleAuditor}, p.Role) {
		return nil, ErrForbidden
	}
	return s.store.AuditEvents(ctx, p.Tenant, q)
}

func accountKey(t TenantID, username string) ThrottleKey {
	return ThrottleKey{Tenant: t, Kind: "account", Subject: normalizeName(username)}
}

func ipKey(ip string) ThrottleKey { return ThrottleKey{Kind: "ip", Subject: ip} }

// LoginRequest is a sign-in form.
type LoginRequest struct {
	Tenant   TenantID
	Username string
	Password Password
	Client   Client
	// Previous is the session cookie the browser already had, if any; it
	// is ended, so a session fixed before sign-in never gains rights.
	Previous SessionToken
}

// Login checks a user name and password and starts a session. The session's
// Stage says what comes next: StageMFA (call CompleteMFA), StageEnrollMFA
// (EnrollTOTP and ConfirmTOTP) or StageFull. Unknown users, wrong passwords
// and disabled accounts cost the same argon2id work and all return
// ErrInvalidCredentials; too many failures return a *ThrottledError.
func (s *Service) Login(ctx context.Context, r LoginRequest) (SessionToken, Session, error) {
	if err := r.Tenant.Validate(); err != nil {
		return SessionToken{}, Session{}, err
	}
	name := normalizeName(r.Username)
	if len(name) > 254 {
		name = name[:254]
	}
	if !r.Previous.IsZero() {
		_ = s.store.DeleteSession(ctx, r.Tenant, SessionID(r.Previous))
	}
	fail := AuditEvent{Tenant: r.Tenant, Username: name, Action: ActionLoginFailed}
	if err := s.reserve(ctx, r.Tenant, name, r.Client); err != nil {
		if errors.Is(err, ErrThrottled) {
			fail.Action, fail.Detail = ActionLoginThrottled, err.Error()
			s.audit(ctx, fail, r.Client)
		}
		return SessionToken{}, Session{}, err
	}

	u, err := s.store.UserByName(ctx, r.Tenant, name)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return SessionToken{}, Session{}, err
	}
	phc := s.dummy
	if known {
		phc = u.PasswordHash
	}
	ok, rehash, err := s.verify(ctx, phc, r.Password)
	if err != nil && known {
		s.log.ErrorContext(ctx, "stored password hash unusable", "user", u, "err", err)
	}
	if !known || !ok || u.Disabled {
		fail.UserID = u.ID
		fail.Detail = "wrong user name or password"
		s.audit(ctx, fail, r.Client)
		return SessionToken{}, Session{}, ErrInvalidCredentials
	}
	if rehash {
		if h, err := s.hash(ctx, r.Password); err == nil {
			u.PasswordHash, u.UpdatedAt = h, s.now().UTC()
			if err := s.store.UpdateUser(ctx, u); err != nil {
				s.log.WarnContext(ctx, "password rehash not stored", "user", u, "err", err)
			}
		}
	}
	if err := s.throttle.release(ctx, ipKey(r.Client.IP), s.cfg.IPThrottle, false); err != nil {
		return SessionToken{}, Session{}, err
	}

	stage := StageFull
	switch {
	case u.MFAEnrolled():
		stage = StageMFA
	case u.Role.RequiresMFA() || s.cfg.RequireMFA:
		stage = StageEnrollMFA
	}
	if stage == StageFull {
		// The account counter is kept through a pending stage, so that
		// knowing the password does not buy unlimited code guesses.
		if err := s.throttle.release(ctx, accountKey(r.Tenant, name), s.cfg.AccountThrottle, true); err != nil {
			return SessionToken{}, Session{}, err
		}
	}
	tok, sess, err := s.newSession(ctx, u, stage, r.Client)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	action := ActionLogin
	if stage != StageFull {
		action = ActionLoginPassword
	}
	if err := s.audit(ctx, AuditEvent{Tenant: u.Tenant, UserID: u.ID, Username: u.Username, Action: action, Detail: "stage " + string(stage)}, r.Client); err != nil {
		s.store.DeleteSession(ctx, u.Tenant, sess.ID)
		return SessionToken{}, Session{}, err
	}
	return tok, sess, nil
}

// reserve counts a sign-in attempt against the client address and the
// account.
func (s *Service) reserve(ctx context.Context, t TenantID, name string, c Client) error {
	if err := s.throttle.reserve(ctx, ipKey(c.IP), s.cfg.IPThrottle); err != nil {
		return err
	}
	return s.throttle.reserve(ctx, accountKey(t, name), s.cfg.AccountThrottle)
}

func (s *Service) newSession(ctx context.Context, u User, stage Stage, c Client) (SessionToken, Session, error) {
	now := s.now().UTC()
	expires := now.Add(s.cfg.SessionAbsolute)
	if stage != StageFull {
		expires = now.Add(s.cfg.PendingTTL)
	}
	return s.createSession(ctx, u, stage, c, now, expires)
}

func (s *Service) createSession(ctx context.Context, u User, stage Stage, c Client, created, expires time.Time) (SessionToken, Session, error) {
	tok := SessionToken{randomToken(32)}
	sess := Session{
		Tenant: u.Tenant, ID: SessionID(tok), UserID: u.ID, Stage: stage,
		CreatedAt: created, LastSeenAt: s.now().UTC(), ExpiresAt: expires,
		IP: c.IP, UserAgent: c.UserAgent,
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return SessionToken{}, Session{}, fmt.Errorf("create session: %w", err)
	}
	return tok, sess, nil
}

// session loads a live session and its user, ending it if it has expired
// or the user was disabled.
func (s *Service) session(ctx context.Context, t TenantID, tok SessionToken) (Session, User, error) {
	if t.Validate() != nil || tok.IsZero() {
		return Session{}, User{}, ErrUnauthenticated
	}
	sess, err := s.store.Session(ctx, t, SessionID(tok))
	if errors.Is(err, ErrNotFound) {
		return Session{}, User{}, ErrUnauthenticated
	} else if err != nil {
		return Session{}, User{}, err
	}
	now := s.now()
	expired := !now.Before(sess.ExpiresAt) ||
		(sess.Stage == StageFull && !now.Before(sess.LastSeenAt.Add(s.cfg.SessionIdle)))
	u, err := s.store.UserByID(ctx, t, sess.UserID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Session{}, User{}, err
	}
	if expired || err != nil || u.Disabled {
		s.store.DeleteSession(ctx, t, sess.ID)
		return Session{}, User{}, ErrUnauthenticated
	}
	return sess, u, nil
}

// Authenticate returns the principal of a fully signed-in session, and
// refreshes its idle timer. A half-finished sign-in returns its session
// with ErrMFARequired or ErrMFAEnrollmentRequired so the caller can send the
// browser to the right form; a missing, expired or revoked one
// ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, t TenantID, tok SessionToken) (Principal, Session, error) {
	sess, u, err := s.session(ctx, t, tok)
	if err != nil {
		return Principal{}, Session{}, err
	}
	switch sess.Stage {
	case StageMFA:
		return Principal{}, sess, ErrMFARequired
	case StageEnrollMFA:
		return Principal{}, sess, ErrMFAEnrollmentRequired
	}
	// Writing on every request is wasted work: a minute's granularity is
	// enough for a 15-minute idle timeout.
	if now := s.now().UTC(); now.Sub(sess.LastSeenAt) >= time.Minute {
		if err := s.store.TouchSession(ctx, t, sess.ID, now); err != nil {
			return Principal{}, Session{}, err
		}
		sess.LastSeenAt = now
	}
	return u.Principal(sess.ID), sess, nil
}

// Rotate replaces a live session by a new one with a new token and the same
// expiry, so a token seen before a privilege change is worthless after it.
func (s *Service) Rotate(ctx context.Context, t TenantID, tok SessionToken, c Client) (SessionToken, Session, error) {
	sess, u, err := s.session(ctx, t, tok)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	return s.rotate(ctx, sess, u, sess.Stage, c)
}

func (s *Service) rotate(ctx context.Context, old Session, u User, stage Stage, c Client) (SessionToken, Session, error) {
	if err := s.store.DeleteSession(ctx, old.Tenant, old.ID); err != nil {
		return SessionToken{}, Session{}, err
	}
	if old.Stage == StageFull && stage == StageFull {
		// Rotation does not extend the absolute lifetime.
		return s.createSession(ctx, u, stage, c, old.CreatedAt, old.ExpiresAt)
	}
	return s.newSession(ctx, u, stage, c)
}

// Logout ends the session.
func (s *Service) Logout(ctx context.Context, t TenantID, tok SessionToken, c Client) error {
	if t.Validate() != nil || tok.IsZero() {
		return nil
	}
	sess, err := s.store.Session(ctx, t, SessionID(tok))
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if err := s.store.DeleteSession(ctx, t, sess.ID); err != nil {
		return err
	}
	u, _ := s.store.UserByID(ctx, t, sess.UserID)
	return s.audit(ctx, AuditEvent{Tenant: t, UserID: sess.UserID, Username: u.Username, Action: ActionLogout}, c)
}

// CompleteMFA finishes a StageMFA sign-in with a TOTP code or a recovery
// code, returning a new StageFull session in place of the pending one.
// Wrong codes count against the account like wrong passwords; a TOTP code
// already used (ErrTOTPReplay) and a used recovery code are refused.
func (s *Service) CompleteMFA(ctx context.Context, t TenantID, tok SessionToken, code string, c Client) (SessionToken, Session, error) {
	sess, u, err := s.session(ctx, t, tok)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	if sess.Stage != StageMFA {
		return SessionToken{}, Session{}, ErrUnauthenticated
	}
	akey := accountKey(t, u.Username)
	if err := s.throttle.reserve(ctx, akey, s.cfg.AccountThrottle); err != nil {
		if errors.Is(err, ErrThrottled) {
			s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: ActionLoginThrottled, Detail: err.Error()}, c)
		}
		return SessionToken{}, Session{}, err
	}
	action, detail := ActionLogin, "totp"
	if looksLikeRecoveryCode(code) {
		ok, err := s.store.UseRecoveryCode(ctx, t, u.ID, HashRecoveryCode(t, u.ID, NewRecoveryCode(code)))
		if err != nil {
			return SessionToken{}, Session{}, err
		}
		if !ok {
			s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: ActionMFAFailed, Detail: ErrRecoveryInvalid.Error()}, c)
			return SessionToken{}, Session{}, ErrRecoveryInvalid
		}
		left, _ := s.store.RecoveryCodesLeft(ctx, t, u.ID)
		action, detail = ActionRecoveryUsed, fmt.Sprintf("%d recovery codes left", left)
	} else {
		if err := s.useTOTP(ctx, u, u.TOTPSecret, code); err != nil {
			if errors.Is(err, ErrTOTPInvalid) || errors.Is(err, ErrTOTPReplay) {
				s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: ActionMFAFailed, Detail: err.Error()}, c)
			}
			return SessionToken{}, Session{}, err
		}
	}
	if err := s.throttle.release(ctx, akey, s.cfg.AccountThrottle, true); err != nil {
		return SessionToken{}, Session{}, err
	}
	ntok, nsess, err := s.rotate(ctx, sess, u, StageFull, c)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	if err := s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: action, Detail: detail}, c); err != nil {
		s.store.DeleteSession(ctx, t, nsess.ID)
		return SessionToken{}, Session{}, err
	}
	return ntok, nsess, nil
}

// useTOTP checks code and records its step, atomically refusing a second
// use of the same or an earlier step.
func (s *Service) useTOTP(ctx context.Context, u User, secret TOTPSecret, code string) error {
	step, err := CheckTOTP(secret, code, s.now(), u.TOTPLastStep)
	if err != nil {
		return err
	}
	ok, err := s.store.AdvanceTOTPStep(ctx, u.Tenant, u.ID, step)
	if err != nil {
		return err
	}
	if !ok {
		return ErrTOTPReplay
	}
	return nil
}

// EnrollTOTP starts TOTP enrollment for the session's user, from a full
// session or one that must enroll before continuing. The secret takes
// effect once ConfirmTOTP sees a code made from it.
func (s *Service) EnrollTOTP(ctx context.Context, t TenantID, tok SessionToken) (TOTPEnrollment, error) {
	sess, u, err := s.session(ctx, t, tok)
	if err != nil {
		return TOTPEnrollment{}, err
	}
	if sess.Stage == StageMFA {
		return TOTPEnrollment{}, ErrMFARequired
	}
	e, err := NewTOTP(s.cfg.Issuer, u.Username+"@"+string(u.Tenant))
	if err != nil {
		return TOTPEnrollment{}, err
	}
	u.TOTPPending, u.UpdatedAt = e.Secret, s.now().UTC()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return TOTPEnrollment{}, err
	}
	return e, nil
}

// ConfirmTOTP activates the pending TOTP secret when code matches it,
// replaces the user's recovery codes with new ones (returned once, to be
// shown once), and rotates the session, raising a StageEnrollMFA session to
// StageFull.
func (s *Service) ConfirmTOTP(ctx context.Context, t TenantID, tok SessionToken, code string, c Client) (SessionToken, Session, []RecoveryCode, error) {
	sess, u, err := s.session(ctx, t, tok)
	if err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	if sess.Stage == StageMFA || u.TOTPPending.IsZero() {
		return SessionToken{}, Session{}, nil, ErrUnauthenticated
	}
	step, err := CheckTOTP(u.TOTPPending, code, s.now(), 0)
	if err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	codes, err := NewRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	hashes := make([]string, len(codes))
	for i, rc := range codes {
		hashes[i] = HashRecoveryCode(t, u.ID, rc)
	}
	u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.UpdatedAt = u.TOTPPending, TOTPSecret{}, step, s.now().UTC()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	if err := s.store.SetRecoveryCodes(ctx, t, u.ID, hashes); err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	if sess.Stage == StageEnrollMFA {
		if err := s.throttle.release(ctx, accountKey(t, u.Username), s.cfg.AccountThrottle, true); err != nil {
			return SessionToken{}, Session{}, nil, err
		}
	}
	ntok, nsess, err := s.rotate(ctx, sess, u, StageFull, c)
	if err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	if err := s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: ActionMFAEnrolled}, c); err != nil {
		return SessionToken{}, Session{}, nil, err
	}
	return ntok, nsess, codes, nil
}

// NewUser is what an owner or admin fills in to create an account.
type NewUser struct {
	Username  string
	Email     string
	Role      Role
	Locations []string
	Password  Password
}

// newID is a random user id.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) checkNewUser(n NewUser) (string, error) {
	name := normalizeName(n.Username)
	if name == "" || len(name) > 254 || strings.ContainsAny(name, " \t\r\n") {
		return "", fmt.Errorf("user name %q: use 1-254 characters without spaces", n.Username)
	}
	if !n.Role.Valid() {
		return "", fmt.Errorf("role %q: want one of %v", n.Role, Roles)
	}
	if n.Role == RoleLocationManager && len(n.Locations) == 0 {
		return "", fmt.Errorf("a %s needs at least one location", RoleLocationManager)
	}
	return name, s.cfg.Policy.Check(n.Password, name, n.Email)
}

// CreateUser creates an account in the actor's tenant. Only owners create
// owners.
func (s *Service) CreateUser(ctx context.Context, actor Principal, n NewUser, c Client) (User, error) {
	if !actor.CanManage(n.Role) {
		return User{}, ErrForbidden
	}
	name, err := s.checkNewUser(n)
	if err != nil {
		return User{}, err
	}
	h, err := s.hash(ctx, n.Password)
	if err != nil {
		return User{}, err
	}
	now := s.now().UTC()
	u := User{
		Tenant: actor.Tenant, ID: newID(), Username: name, Email: strings.TrimSpace(n.Email), Role: n.Role,
		PasswordHash: h, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if n.Role == RoleLocationManager {
		u.Locations = slices.Clone(n.Locations)
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, s.audit(ctx, AuditEvent{Tenant: actor.Tenant, UserID: actor.UserID, Username: actor.Username,
		Action: ActionUserCreated, Target: "user:" + u.ID, Detail: fmt.Sprintf("%s as %s", name, n.Role)}, c)
}

// managed loads a user of the actor's tenant that the actor may manage.
func (s *Service) managed(ctx context.Context, actor Principal, userID string) (User, error) {
	u, err := s.store.UserByID(ctx, actor.Tenant, userID)
	if err != nil {
		return User{}, err
	}
	if !actor.CanManage(u.Role) {
		return User{}, ErrForbidden
	}
	return u, nil
}

// lastOwner reports whether u is the tenant's only enabled owner.
func (s *Service) lastOwner(ctx context.Context, u User) (bool, error) {
	if u.Role != RoleOwner {
		return false, nil
	}
	all, err := s.store.Users(ctx, u.Tenant)
	if err != nil {
		return false, err
	}
	for _, o := range all {
		if o.ID != u.ID && o.Role == RoleOwner && !o.Disabled {
			return false, nil
		}
	}
	return true, nil
}

// SetRole changes a user's role and locations and ends all their sessions,
// so that the new rights start with a new sign-in.
func (s *Service) SetRole(ctx context.Context, actor Principal, userID string, role Role, locations []string, c Client) error {
	u, err := s.managed(ctx, actor, userID)
	if err != nil {
		return err
	}
	if !role.Valid() || (role == RoleLocationManager && len(locations) == 0) {
		return fmt.Errorf("role %q with locations %v: want one of %v, and locations for a %s", role, locations, Roles, RoleLocationManager)
	}
	if !actor.CanManage(role) {
		return ErrForbidden
	}
	if last, err := s.lastOwner(ctx, u); err != nil {
		return err
	} else if last && role != RoleOwner {
		return ErrLastOwner
	}
	old := fmt.Sprintf("%s %v", u.Role, u.Locations)
	u.Role, u.Locations, u.UpdatedAt = role, nil, s.now().UTC()
	if role == RoleLocationManager {
		u.Locations = slices.Clone(locations)
	}
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := s.store.DeleteUserSessions(ctx, u.Tenant, u.ID, ""); err != nil {
		return err
	}
	return s.audit(ctx, AuditEvent{Tenant: actor.Tenant, UserID: actor.UserID, Username: actor.Username,
		Action: ActionRoleChanged, Target: "user:" + u.ID, Detail: fmt.Sprintf("%s: %s -> %s %v", u.Username, old, role, u.Locations)}, c)
}

// DisableUser disables an account and ends its sessions. Rows are kept:
// the audit trail names the user.
func (s *Service) DisableUser(ctx context.Context, actor Principal, userID string, c Client) error {
	u, err := s.managed(ctx, actor, userID)
	if err != nil {
		return err
	}
	if last, err := s.lastOwner(ctx, u); err != nil {
		return err
	} else if last {
		return ErrLastOwner
	}
	u.Disabled, u.UpdatedAt = true, s.now().UTC()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := s.store.DeleteUserSessions(ctx, u.Tenant, u.ID, ""); err != nil {
		return err
	}
	return s.audit(ctx, AuditEvent{Tenant: actor.Tenant, UserID: actor.UserID, Username: actor.Username,
		Action: ActionUserDisabled, Target: "user:" + u.ID, Detail: u.Username}, c)
}

// ResetMFA removes a user's second factor and recovery codes (a lost
// phone) and ends their sessions; their next sign-in enrolls again if
// their role or the policy requires it.
func (s *Service) ResetMFA(ctx context.Context, actor Principal, userID string, c Client) error {
	u, err := s.managed(ctx, actor, userID)
	if err != nil {
		return err
	}
	u.TOTPSecret, u.TOTPPending, u.UpdatedAt = TOTPSecret{}, TOTPSecret{}, s.now().UTC()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := s.store.SetRecoveryCodes(ctx, u.Tenant, u.ID, nil); err != nil {
		return err
	}
	if err := s.store.DeleteUserSessions(ctx, u.Tenant, u.ID, ""); err != nil {
		return err
	}
	return s.audit(ctx, AuditEvent{Tenant: actor.Tenant, UserID: actor.UserID, Username: actor.Username,
		Action: ActionMFAReset, Target: "user:" + u.ID, Detail: u.Username}, c)
}

// ChangePassword changes the signed-in user's password after checking the
// current one (throttled like a sign-in), ends every session of the user
// and returns a new one for this browser.
func (s *Service) ChangePassword(ctx context.Context, t TenantID, tok SessionToken, current, next Password, c Client) (SessionToken, Session, error) {
	sess, u, err := s.session(ctx, t, tok)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	if sess.Stage != StageFull {
		return SessionToken{}, Session{}, ErrUnauthenticated
	}
	if err := s.reserve(ctx, t, u.Username, c); err != nil {
		return SessionToken{}, Session{}, err
	}
	ok, _, err := s.verify(ctx, u.PasswordHash, current)
	if err != nil || !ok {
		s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: ActionLoginFailed, Detail: "wrong current password on password change"}, c)
		return SessionToken{}, Session{}, ErrInvalidCredentials
	}
	s.throttle.release(ctx, ipKey(c.IP), s.cfg.IPThrottle, false)
	s.throttle.release(ctx, accountKey(t, u.Username), s.cfg.AccountThrottle, true)
	if err := s.cfg.Policy.Check(next, u.Username, u.Email); err != nil {
		return SessionToken{}, Session{}, err
	}
	h, err := s.hash(ctx, next)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	now := s.now().UTC()
	u.PasswordHash, u.PasswordChangedAt, u.UpdatedAt = h, now, now
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return SessionToken{}, Session{}, err
	}
	if err := s.store.DeleteUserSessions(ctx, t, u.ID, ""); err != nil {
		return SessionToken{}, Session{}, err
	}
	ntok, nsess, err := s.newSession(ctx, u, StageFull, c)
	if err != nil {
		return SessionToken{}, Session{}, err
	}
	return ntok, nsess, s.audit(ctx, AuditEvent{Tenant: t, UserID: u.ID, Username: u.Username, Action: ActionPasswordChanged, Detail: "all sessions ended"}, c)
}

// Sweep deletes expired sessions of every tenant; run it now and then.
func (s *Service) Sweep(ctx context.Context) (int64, error) {
	now := s.now().UTC()
	return s.store.DeleteExpiredSessions(ctx, now, now.Add(-s.cfg.SessionIdle))
}
