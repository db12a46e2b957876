package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Errors a Store returns and Service branches on.
var (
	ErrNotFound         = errors.New("not found")
	ErrDuplicate        = errors.New("already exists")
	ErrSetupUnavailable = errors.New("setup link is unknown, used or expired, or vigil already has users: ask an owner for an account")
)

// User is a dashboard account. Username is unique within a tenant and
// stored lower-case.
type User struct {
	Tenant    TenantID
	ID        string
	Username  string
	Email     string
	Role      Role
	Locations []string // RoleLocationManager's locations

	PasswordHash      string `json:"-"` // argon2id PHC string; kept out of fmt, slog and JSON output
	PasswordChangedAt time.Time

	TOTPSecret   TOTPSecret // zero until enrollment is confirmed
	TOTPPending  TOTPSecret // enrolled, awaiting the first code
	TOTPLastStep int64      // highest TOTP time step accepted; codes at or before it are refused

	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MFAEnrolled reports whether the user has a confirmed TOTP secret.
func (u User) MFAEnrolled() bool { return !u.TOTPSecret.IsZero() }

// Principal returns the user as a request's principal.
func (u User) Principal(sessionID string) Principal {
	return Principal{Tenant: u.Tenant, UserID: u.ID, Username: u.Username, Role: u.Role, Locations: u.Locations, SessionID: sessionID}
}

// String names the user without their credentials.
func (u User) String() string {
	return fmt.Sprintf("user %s (%s, %s, tenant %s)", u.Username, u.ID, u.Role, u.Tenant)
}

// GoString is String, so %#v shows no credentials either.
func (u User) GoString() string { return u.String() }

// Format prints String for every fmt verb.
func (u User) Format(f fmt.State, _ rune) { fmt.Fprint(f, u.String()) }

// LogValue logs who the user is and nothing of their credentials.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("tenant", string(u.Tenant)), slog.String("id", u.ID),
		slog.String("username", u.Username), slog.String("role", string(u.Role)))
}

// Stage is how far a session has got through sign-in.
type Stage string

// The stages. Only StageFull may see anything; the others may only finish
// signing in.
const (
	StageMFA       Stage = "mfa"        // password accepted, TOTP or recovery code awaited
	StageEnrollMFA Stage = "enroll-mfa" // password accepted, MFA required but not yet set up
	StageFull      Stage = "full"
)

// Session is a signed-in browser. ID is the hex SHA-256 of the cookie's
// token; the token itself is never stored.
type Session struct {
	Tenant     TenantID
	ID         string
	UserID     string
	Stage      Stage
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute expiry, CreatedAt + Config.SessionAbsolute
	IP         string
	UserAgent  string
}

// ThrottleKey names one login attempt counter: an account (tenant and
// username, whether or not the user exists) or a client address. Address
// counters are shared by all tenants and have an empty Tenant.
type ThrottleKey struct {
	Tenant  TenantID
	Kind    string // "account" or "ip"
	Subject string
}

// Attempts is a throttle counter. Version is compared and set by
// Store.SwapLoginAttempts so that concurrent logins cannot lose counts.
type Attempts struct {
	Failures    int
	LastFailure time.Time
	NextAllowed time.Time // no attempt before this: backoff or lockout
	Version     int64     // 0 when no counter is stored
}

// AuditEvent is one line of the append-only audit trail.
type AuditEvent struct {
	Tenant    TenantID
	Seq       int64 // assigned by the store, increasing
	At        time.Time
	UserID    string // "" when nobody is signed in (failed logins, setup)
	Username  string // as typed for failed logins
	Action    string
	Target    string // what was viewed, exported or changed
	Detail    string
	IP        string
	UserAgent string
}

// AuditQuery selects audit events of one tenant, newest first.
type AuditQuery struct {
	UserID string // "" for all users
	Since  time.Time
	Limit  int // 0 for 1000
}

// Store is the persistence Service needs. Every method that reads or writes
// tenant data takes the tenant and must never return a row of another
// tenant, whatever id it is given; users/sqlite implements it.
type Store interface {
	// CreateUser inserts u, or returns ErrDuplicate when the tenant has a
	// user of that name.
	CreateUser(ctx context.Context, u User) error
	// UserByID and UserByName return ErrNotFound for no such user in the tenant.
	UserByID(ctx context.Context, tenant TenantID, id string) (User, error)
	UserByName(ctx context.Context, tenant TenantID, username string) (User, error)
	// Users lists the tenant's users by name.
	Users(ctx context.Context, tenant TenantID) ([]User, error)
	// UpdateUser replaces the mutable fields of the user u.Tenant, u.ID.
	UpdateUser(ctx context.Context, u User) error
	// AdvanceTOTPStep sets the user's TOTPLastStep to step if it is lower,
	// and reports whether it was: false means the code was already used.
	AdvanceTOTPStep(ctx context.Context, tenant TenantID, userID string, step int64) (bool, error)
	// AnyUsers reports whether any tenant has a user; it returns no rows.
	AnyUsers(ctx context.Context) (bool, error)

	// SetRecoveryCodes replaces the user's recovery code hashes.
	SetRecoveryCodes(ctx context.Context, tenant TenantID, userID string, hashes []string) error
	// UseRecoveryCode deletes the matching hash and reports whether there was one.
	UseRecoveryCode(ctx context.Context, tenant TenantID, userID, hash string) (bool, error)
	// RecoveryCodesLeft counts the user's unused recovery codes.
	RecoveryCodesLeft(ctx context.Context, tenant TenantID, userID string) (int, error)

	// CreateSession inserts s.
	CreateSession(ctx context.Context, s Session) error
	// Session returns ErrNotFound for no such session in the tenant.
	Session(ctx context.Context, tenant TenantID, id string) (Session, error)
	// TouchSession sets the session's LastSeenAt; ErrNotFound for no such session.
	TouchSession(ctx context.Context, tenant TenantID, id string, at time.Time) error
	// DeleteSession deletes the session if it exists.
	DeleteSession(ctx context.Context, tenant TenantID, id string) error
	// DeleteUserSessions deletes the user's sessions except keep ("" for all).
	DeleteUserSessions(ctx context.Context, tenant TenantID, userID, keep string) error
	// DeleteExpiredSessions removes, in every tenant, sessions whose absolute
	// expiry is at or before now or that were last seen at or before idleSince.
	DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int64, error)

	// LoginAttempts returns the counter, or the zero Attempts.
	LoginAttempts(ctx context.Context, key ThrottleKey) (Attempts, error)
	// SwapLoginAttempts stores next if the stored counter's version is
	// still old.Version (0: none stored), incrementing the version, and
	// reports whether it did.
	SwapLoginAttempts(ctx context.Context, key ThrottleKey, old, next Attempts) (bool, error)

	// AppendAudit appends e; the store assigns Seq and never changes or
	// deletes an event.
	AppendAudit(ctx context.Context, e AuditEvent) error
	// AuditEvents returns the tenant's events matching q, newest first.
	AuditEvents(ctx context.Context, tenant TenantID, q AuditQuery) ([]AuditEvent, error)

	// PutSetupToken stores the hash of a new setup token, replacing any
	// earlier one.
	PutSetupToken(ctx context.Context, hash string, expires time.Time) error
	// CreateFirstUser, in one transaction, consumes the setup token with
	// this hash if it exists and has not expired at now, checks that no
	// user exists, and creates u; otherwise it returns ErrSetupUnavailable.
	CreateFirstUser(ctx context.Context, tokenHash string, now time.Time, u User) error
}
