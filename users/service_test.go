package users_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/vigilhq/vigil/users"
	"github.com/vigilhq/vigil/users/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testParams = users.Params{Memory: 256, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type fixture struct {
	svc   *users.Service
	store *sqlite.Store
	db    *sql.DB
	clock *clock
	owner users.Principal
}

const (
	ownerPW = "grape lantern orbit fog"
	userPW  = "quiet harbour lights 7"
)

var ip = users.Client{IP: "203.0.113.7", UserAgent: "Mozilla/5.0 test"}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "vigil.db")+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newFixture makes a service whose first owner of tenant "glow" was created
// through the setup link.
func newFixture(t *testing.T, cfg users.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	db := openDB(t)
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)}
	cfg.Store, cfg.Now = st, c.Now
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.Params == (users.Params{}) {
		cfg.Params = testParams
	}
	svc, err := users.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.BeginSetup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.CompleteSetup(ctx, tok, "glow", users.NewUser{Username: "Owner", Email: "owner@glow.example", Password: users.NewPassword(ownerPW)}, ip)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, store: st, db: db, clock: c, owner: u.Principal("")}
}

func (f *fixture) addUser(t *testing.T, name string, role users.Role, locs ...string) users.User {
	t.Helper()
	u, err := f.svc.CreateUser(context.Background(), f.owner, users.NewUser{Username: name, Role: role, Locations: locs, Password: users.NewPassword(userPW)}, ip)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) login(name, pw string) (users.SessionToken, users.Session, error) {
	return f.svc.Login(context.Background(), users.LoginRequest{Tenant: "glow", Username: name, Password: users.NewPassword(pw), Client: ip})
}

func totpCode(t *testing.T, secret users.TOTPSecret, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret.Reveal(), at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enroll signs owner in, enrolls TOTP and returns the secret, the full
// session's token and the recovery codes.
func (f *fixture) enroll(t *testing.T, name, pw string) (users.TOTPSecret, users.SessionToken, []users.RecoveryCode) {
	t.Helper()
	ctx := context.Background()
	tok, sess, err := f.login(name, pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", tok); sess.Stage == users.StageEnrollMFA && !errors.Is(err, users.ErrMFAEnrollmentRequired) {
		t.Fatalf("Authenticate before enrollment: %v", err)
	}
	e, err := f.svc.EnrollTOTP(ctx, "glow", tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.svc.ConfirmTOTP(ctx, "glow", tok, "000000", ip); !errors.Is(err, users.ErrTOTPInvalid) && totpCode(t, e.Secret, f.clock.Now()) != "000000" {
		t.Errorf("ConfirmTOTP with a wrong code: %v", err)
	}
	full, _, codes, err := f.svc.ConfirmTOTP(ctx, "glow", tok, totpCode(t, e.Secret, f.clock.Now()), ip)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", tok); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("the pre-enrollment token still works after rotation: %v", err)
	}
	return e.Secret, full, codes
}

func TestLoginPasswords(t *testing.T) {
	f := newFixture(t, users.Config{})
	f.addUser(t, "ana", users.RoleAnalyst)
	tests := []struct {
		name, user, pw string
		err            error
		stage          users.Stage
	}{
		{"right", "ana", userPW, nil, users.StageFull},
		{"name is case-insensitive", " ANA ", userPW, nil, users.StageFull},
		{"wrong password", "ana", "ana walks the long rive", users.ErrInvalidCredentials, ""},
		{"unknown user, same error", "bob", userPW, users.ErrInvalidCredentials, ""},
		{"empty", "", "", users.ErrInvalidCredentials, ""},
		{"owner must enroll MFA first", "owner", ownerPW, nil, users.StageEnrollMFA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, sess, err := f.login(tt.user, tt.pw)
			if !errors.Is(err, tt.err) || sess.Stage != tt.stage {
				t.Fatalf("Login = stage %q, %v; want %q, %v", sess.Stage, err, tt.stage, tt.err)
			}
			if err == nil && (len(tok.Reveal()) != 43 || sess.ID != users.SessionID(tok) || sess.ID == tok.Reveal()) {
				t.Errorf("token %d chars, id %q: want 32 random bytes stored as SHA-256", len(tok.Reveal()), sess.ID)
			}
		})
	}
	if _, _, err := f.svc.Login(context.Background(), users.LoginRequest{Tenant: "other", Username: "ana", Password: users.NewPassword(userPW), Client: ip}); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Errorf("ana signing in to another tenant: %v", err)
	}
}

// TestUnknownUserCostsTheSame checks that an unknown name runs argon2id too,
// with the real parameters: an attacker timing the response cannot tell.
func TestUnknownUserCostsTheSame(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes with DefaultParams")
	}
	f := newFixture(t, users.Config{Params: users.DefaultParams, IPThrottle: users.ThrottlePolicy{Free: 1000, LockoutAfter: 0}})
	f.addUser(t, "ana", users.RoleAnalyst)
	timeIt := func(name string) time.Duration {
		start := time.Now()
		if _, _, err := f.login(name, "not the password at all"); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	known, unknown := timeIt("ana"), timeIt("nobody")
	if unknown < known/2 {
		t.Errorf("unknown user took %s, known user %s: unknown names are cheaper", unknown, known)
	}
}

func TestLockoutAndUnlock(t *testing.T) {
	ctx := context.Background()
	// The address limit is TestIPThrottle's; here only the account's counts.
	f := newFixture(t, users.Config{IPThrottle: users.ThrottlePolicy{Free: 1000}})
	f.addUser(t, "ana", users.RoleAnalyst)
	const right = userPW
	for _, name := range []string{"ana", "ghost"} { // an unknown name locks alike
		t.Run(name, func(t *testing.T) {
			var err error
			for i := 1; i <= users.DefaultAccountThrottle.LockoutAfter; i++ {
				if _, _, err = f.login(name, "wrong guess number x"); !errors.Is(err, users.ErrInvalidCredentials) {
					t.Fatalf("attempt %d: %v", i, err)
				}
				d, _ := backoff(i)
				f.clock.Add(d)
			}
			_, _, err = f.login(name, right)
			var te *users.ThrottledError
			if !errors.As(err, &te) || !te.Locked || !errors.Is(err, users.ErrThrottled) {
				t.Fatalf("after %d failures the right password gave %v, want a lockout", users.DefaultAccountThrottle.LockoutAfter, err)
			}
			f.clock.Add(14 * time.Minute)
			if _, _, err = f.login(name, right); !errors.Is(err, users.ErrThrottled) {
				t.Fatalf("14 minutes into the lockout: %v", err)
			}
			f.clock.Add(time.Minute)
			_, _, err = f.login(name, right)
			if name == "ana" && err != nil {
				t.Fatalf("after the lockout period: %v", err)
			}
			if name == "ghost" && !errors.Is(err, users.ErrInvalidCredentials) {
				t.Fatalf("after the lockout period: %v", err)
			}
		})
	}
	// Backoff before the lockout: the 4th attempt must wait a second.
	f.addUser(t, "bea", users.RoleAuditor)
	for range 4 {
		f.login("bea", "wrong guess number y")
	}
	if _, _, err := f.login("bea", userPW); !errors.Is(err, users.ErrThrottled) {
		t.Errorf("no backoff after 4 failures: %v", err)
	}
	f.clock.Add(time.Second)
	if _, _, err := f.login("bea", userPW); err != nil {
		t.Errorf("after the backoff: %v", err)
	}
	ev, _ := f.svc.AuditEvents(ctx, f.owner, users.AuditQuery{})
	var throttled, failed int
	for _, e := range ev {
		switch e.Action {
		case users.ActionLoginThrottled:
			throttled++
		case users.ActionLoginFailed:
			failed++
		}
		if e.IP != ip.IP || e.UserAgent != ip.UserAgent || e.At.IsZero() {
			t.Errorf("audit event %+v lacks ip, user agent or time", e)
		}
	}
	if throttled == 0 || failed < 2*users.DefaultAccountThrottle.LockoutAfter {
		t.Errorf("audit has %d throttled and %d failed sign-ins", throttled, failed)
	}
}

func backoff(n int) (time.Duration, bool) {
	p := users.DefaultAccountThrottle
	if n >= p.LockoutAfter {
		return 0, true
	}
	if n < p.Free {
		return 0, false
	}
	d := p.Base
	for i := p.Free + 1; i <= n; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay), false
}

func TestIPThrottle(t *testing.T) {
	f := newFixture(t, users.Config{IPThrottle: users.ThrottlePolicy{Free: 5, Base: time.Minute, MaxDelay: time.Minute, LockoutAfter: 8, Lockout: time.Hour}})
	// Password spraying: one address, a different name each time.
	var err error
	for i := range 6 {
		_, _, err = f.login("name"+string(rune('a'+i)), "spring spring 2026")
	}
	if !errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("6th spray: %v", err)
	}
	if _, _, err = f.login("fresh", "spring spring 2026"); !errors.Is(err, users.ErrThrottled) {
		t.Errorf("7th spray from one address, new name: %v, want throttled", err)
	}
	other := users.LoginRequest{Tenant: "glow", Username: "fresh", Password: users.NewPassword("x"), Client: users.Client{IP: "198.51.100.9"}}
	if _, _, err = f.svc.Login(context.Background(), other); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Errorf("another address: %v", err)
	}
}

func TestMFA(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, users.Config{})
	secret, full, codes := f.enroll(t, "owner", ownerPW)
	if len(codes) != users.RecoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	if p, _, err := f.svc.Authenticate(ctx, "glow", full); err != nil || p.Role != users.RoleOwner {
		t.Fatalf("after enrollment: %v %v", p, err)
	}

	f.clock.Add(30 * time.Second) // the next step: enrollment used this one
	step := f.clock.Now()
	tok, sess, err := f.login("owner", ownerPW)
	if err != nil || sess.Stage != users.StageMFA {
		t.Fatalf("login with MFA enrolled: %q %v", sess.Stage, err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", tok); !errors.Is(err, users.ErrMFARequired) {
		t.Errorf("a password-only session is let in: %v", err)
	}
	if _, err := f.svc.EnrollTOTP(ctx, "glow", tok); !errors.Is(err, users.ErrMFARequired) {
		t.Errorf("a password-only session can re-enroll: %v", err)
	}
	good := totpCode(t, secret, step)
	wrong := "000000"
	if wrong == good {
		wrong = "111111"
	}
	if _, _, err := f.svc.CompleteMFA(ctx, "glow", tok, wrong, ip); !errors.Is(err, users.ErrTOTPInvalid) {
		t.Errorf("wrong TOTP: %v", err)
	}
	full2, s2, err := f.svc.CompleteMFA(ctx, "glow", tok, good, ip)
	if err != nil || s2.Stage != users.StageFull {
		t.Fatalf("right TOTP: %v", err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", tok); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("the pending token survives MFA: %v (want rotation)", err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", full2); err != nil {
		t.Errorf("new token: %v", err)
	}

	// The same code, within its validity, on another sign-in: refused.
	f.clock.Add(5 * time.Second)
	tok3, _, err := f.login("owner", ownerPW)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.CompleteMFA(ctx, "glow", tok3, good, ip); !errors.Is(err, users.ErrTOTPReplay) {
		t.Errorf("replayed TOTP: %v", err)
	}
	// An earlier step's code, still within the skew: refused too.
	if _, _, err := f.svc.CompleteMFA(ctx, "glow", tok3, totpCode(t, secret, step.Add(-30*time.Second)), ip); !errors.Is(err, users.ErrTOTPReplay) {
		t.Errorf("older TOTP after a newer one: %v", err)
	}
	// A recovery code works once.
	rc := codes[3].Reveal()
	if _, _, err := f.svc.CompleteMFA(ctx, "glow", tok3, rc, ip); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	f.clock.Add(3 * time.Second) // past the backoff of the failures above
	tok4, _, _ := f.login("owner", ownerPW)
	if _, _, err := f.svc.CompleteMFA(ctx, "glow", tok4, rc, ip); !errors.Is(err, users.ErrRecoveryInvalid) {
		t.Errorf("recovery code used twice: %v", err)
	}
	if n, _ := f.store.RecoveryCodesLeft(ctx, "glow", f.owner.UserID); n != users.RecoveryCodeCount-1 {
		t.Errorf("%d recovery codes left, want %d", n, users.RecoveryCodeCount-1)
	}
	// Wrong codes count against the account: the password is not enough to guess.
	var last error
	for range users.DefaultAccountThrottle.LockoutAfter {
		f.clock.Add(5 * time.Minute)
		_, _, last = f.svc.CompleteMFA(ctx, "glow", tok4, wrong, ip)
		if errors.Is(last, users.ErrUnauthenticated) { // the pending session expired
			f.clock.Add(time.Second)
			tok4, _, _ = f.login("owner", ownerPW)
		}
	}
	if _, _, err := f.svc.CompleteMFA(ctx, "glow", tok4, totpCode(t, secret, f.clock.Now()), ip); !errors.Is(err, users.ErrThrottled) && !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("after %d wrong codes the right one is accepted: %v", users.DefaultAccountThrottle.LockoutAfter, err)
	}
}

func TestOptionalMFAPolicy(t *testing.T) {
	f := newFixture(t, users.Config{RequireMFA: true})
	f.addUser(t, "aud", users.RoleAuditor)
	if _, s, err := f.login("aud", userPW); err != nil || s.Stage != users.StageEnrollMFA {
		t.Errorf("auditor under RequireMFA: %q %v", s.Stage, err)
	}
	g := newFixture(t, users.Config{})
	g.addUser(t, "aud", users.RoleAuditor)
	if _, s, err := g.login("aud", userPW); err != nil || s.Stage != users.StageFull {
		t.Errorf("auditor without RequireMFA: %q %v", s.Stage, err)
	}
}

func TestSessionLifetimes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, users.Config{SessionIdle: 15 * time.Minute, SessionAbsolute: 12 * time.Hour})
	f.addUser(t, "ana", users.RoleAnalyst)
	login := func() users.SessionToken {
		tok, _, err := f.login("ana", userPW)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	auth := func(tok users.SessionToken) error { _, _, err := f.svc.Authenticate(ctx, "glow", tok); return err }

	idle := login()
	f.clock.Add(14 * time.Minute)
	if err := auth(idle); err != nil {
		t.Fatalf("after 14 idle minutes: %v", err)
	}
	f.clock.Add(14 * time.Minute) // active 14 minutes ago: still alive
	if err := auth(idle); err != nil {
		t.Fatalf("14 minutes after the last request: %v", err)
	}
	f.clock.Add(15 * time.Minute)
	if err := auth(idle); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("after 15 idle minutes: %v", err)
	}
	if err := auth(idle); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("expired session came back: %v", err)
	}

	busy := login()
	for range 12*6 - 1 { // a request every 10 minutes for almost 12 hours
		f.clock.Add(10 * time.Minute)
		if err := auth(busy); err != nil {
			t.Fatalf("busy session ended early at %s: %v", f.clock.Now(), err)
		}
	}
	f.clock.Add(10 * time.Minute)
	if err := auth(busy); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("after 12 hours: %v", err)
	}
	// Rotation keeps the absolute expiry.
	r := login()
	for range 11 * 6 {
		f.clock.Add(10 * time.Minute)
		auth(r)
	}
	r2, s2, err := f.svc.Rotate(ctx, "glow", r, ip)
	if err != nil || auth(r) == nil || auth(r2) != nil {
		t.Fatalf("rotate: %v", err)
	}
	if want := f.clock.Now().Add(time.Hour); !s2.ExpiresAt.Equal(want) {
		t.Errorf("rotated session expires %s, want %s", s2.ExpiresAt, want)
	}
	if err := f.svc.Logout(ctx, "glow", r2, ip); err != nil || auth(r2) == nil {
		t.Errorf("logout: %v", err)
	}
	if n, err := f.svc.Sweep(ctx); err != nil || n < 0 {
		t.Errorf("Sweep: %d %v", n, err)
	}
}

func TestSessionRevocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, users.Config{})
	ana := f.addUser(t, "ana", users.RoleAnalyst)
	const pw = userPW
	a, _, _ := f.login("ana", pw)
	b, _, _ := f.login("ana", pw)
	// Login ends the browser's previous session (fixation).
	c, _, err := f.svc.Login(ctx, users.LoginRequest{Tenant: "glow", Username: "ana", Password: users.NewPassword(pw), Client: ip, Previous: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", b); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("previous session survives login: %v", err)
	}
	const next = "a new and longer passphrase"
	if _, _, err := f.svc.ChangePassword(ctx, "glow", c, users.NewPassword("wrong current pw"), users.NewPassword(next), ip); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Errorf("change with wrong current password: %v", err)
	}
	if _, _, err := f.svc.ChangePassword(ctx, "glow", c, users.NewPassword(pw), users.NewPassword("password1234"), ip); !errors.Is(err, users.ErrWeakPassword) {
		t.Errorf("change to a common password: %v", err)
	}
	d, _, err := f.svc.ChangePassword(ctx, "glow", c, users.NewPassword(pw), users.NewPassword(next), ip)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]users.SessionToken{"other browser": a, "this browser's old token": c} {
		if _, _, err := f.svc.Authenticate(ctx, "glow", tok); !errors.Is(err, users.ErrUnauthenticated) {
			t.Errorf("%s survives a password change: %v", name, err)
		}
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", d); err != nil {
		t.Errorf("the new session: %v", err)
	}
	if _, _, err := f.login("ana", pw); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Errorf("old password: %v", err)
	}
	// A role change ends the user's sessions.
	if err := f.svc.SetRole(ctx, f.owner, ana.ID, users.RoleLocationManager, []string{"austin"}, ip); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", d); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("session survives a role change: %v", err)
	}
	e, _, _ := f.login("ana", next)
	p, _, err := f.svc.Authenticate(ctx, "glow", e)
	if err != nil || p.Role != users.RoleLocationManager || !p.Allowed(users.PermView, "austin") || p.Allowed(users.PermView, "dallas") {
		t.Errorf("after the role change: %+v %v", p, err)
	}
	// Disabling ends sessions and sign-ins.
	if err := f.svc.DisableUser(ctx, f.owner, ana.ID, ip); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Authenticate(ctx, "glow", e); !errors.Is(err, users.ErrUnauthenticated) {
		t.Errorf("disabled user's session: %v", err)
	}
	if _, _, err := f.login("ana", next); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Errorf("disabled user's login: %v", err)
	}
	if err := f.svc.DisableUser(ctx, f.owner, f.owner.UserID, ip); !errors.Is(err, users.ErrLastOwner) {
		t.Errorf("disabling the last owner: %v", err)
	}
}

func TestUserManagementPermissions(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, users.Config{})
	admin := f.addUser(t, "adm", users.RoleAdmin).Principal("")
	analyst := f.addUser(t, "ana", users.RoleAnalyst).Principal("")
	nu := func(name string, r users.Role, locs ...string) users.NewUser {
		return users.NewUser{Username: name, Role: r, Locations: locs, Password: users.NewPassword("purple monkey dishwasher")}
	}
	tests := []struct {
		name  string
		actor users.Principal
		n     users.NewUser
		err   error
	}{
		{"owner creates owner", f.owner, nu("o2", users.RoleOwner), nil},
		{"admin creates analyst", admin, nu("a2", users.RoleAnalyst), nil},
		{"admin cannot create owner", admin, nu("o3", users.RoleOwner), users.ErrForbidden},
		{"analyst cannot create users", analyst, nu("x", users.RoleAuditor), users.ErrForbidden},
		{"weak password", f.owner, users.NewUser{Username: "w", Role: users.RoleAuditor, Password: users.NewPassword("short")}, users.ErrWeakPassword},
		{"duplicate name", f.owner, nu("ANA", users.RoleAuditor), users.ErrDuplicate},
		{"manager needs locations", f.owner, nu("m", users.RoleLocationManager), nil},
	}
	for _, tt := range tests {
		_, err := f.svc.CreateUser(ctx, tt.actor, tt.n, ip)
		if tt.name == "manager needs locations" {
			if err == nil {
				t.Errorf("%s: created", tt.name)
			}
			continue
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
	if err := f.svc.SetRole(ctx, admin, f.owner.UserID, users.RoleAuditor, nil, ip); !errors.Is(err, users.ErrForbidden) {
		t.Errorf("admin demotes owner: %v", err)
	}
	if err := f.svc.SetRole(ctx, admin, analyst.UserID, users.RoleOwner, nil, ip); !errors.Is(err, users.ErrForbidden) {
		t.Errorf("admin promotes to owner: %v", err)
	}
	if _, err := f.svc.AuditEvents(ctx, analyst, users.AuditQuery{}); !errors.Is(err, users.ErrForbidden) {
		t.Errorf("analyst reads the audit trail: %v", err)
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t, users.Config{})
	f.addUser(t, "ana", users.RoleAnalyst)
	a, _, _ := f.login("ana", userPW)
	b, _, _ := f.login("ana", userPW)
	tokA := users.CSRFToken(a, "")
	tests := []struct {
		name    string
		sess    users.SessionToken
		purpose string
		given   string
		ok      bool
	}{
		{"match", a, "", tokA, true},
		{"other session's token", b, "", tokA, false},
		{"other purpose", a, "user-edit", tokA, false},
		{"purpose match", a, "user-edit", users.CSRFToken(a, "user-edit"), true},
		{"empty", a, "", "", false},
		{"truncated", a, "", tokA[:len(tokA)-1], false},
		{"no session", users.SessionToken{}, "", users.CSRFToken(users.SessionToken{}, ""), false},
	}
	for _, tt := range tests {
		if got := users.CheckCSRF(tt.sess, tt.purpose, tt.given); got != tt.ok {
			t.Errorf("%s: CheckCSRF = %v", tt.name, got)
		}
	}
	// Rotation changes the CSRF token.
	r, _, _ := f.svc.Rotate(context.Background(), "glow", a, ip)
	if users.CheckCSRF(r, "", tokA) {
		t.Error("CSRF token survives rotation")
	}
	ck := users.SessionCookie(a, users.Session{ExpiresAt: f.clock.Now().Add(time.Hour)}, f.clock.Now(), true)
	if ck.Name != users.SessionCookieName || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 3600 {
		t.Errorf("cookie %+v", ck)
	}
}

func TestSetupToken(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)}
	svc, err := users.New(users.Config{Store: st, Now: c.Now, Params: testParams, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	owner := users.NewUser{Username: "owner", Password: users.NewPassword(ownerPW)}
	expired, _, _ := svc.BeginSetup(ctx)
	c.Add(61 * time.Minute)
	if _, err := svc.CompleteSetup(ctx, expired, "glow", owner, ip); !errors.Is(err, users.ErrSetupUnavailable) {
		t.Errorf("expired token: %v", err)
	}
	old, _, _ := svc.BeginSetup(ctx)
	tok, exp, err := svc.BeginSetup(ctx)
	if err != nil || !exp.Equal(c.Now().Add(time.Hour)) {
		t.Fatalf("BeginSetup: %v, expires %s", err, exp)
	}
	if u := users.SetupURL("https://vigil.glow.example/", tok); u != "https://vigil.glow.example/setup?token="+tok.Reveal() {
		t.Errorf("SetupURL = %q", u)
	}
	if _, err := svc.CompleteSetup(ctx, old, "glow", owner, ip); !errors.Is(err, users.ErrSetupUnavailable) {
		t.Errorf("replaced token: %v", err)
	}
	if _, err := svc.CompleteSetup(ctx, users.NewSetupToken("guess"), "glow", owner, ip); !errors.Is(err, users.ErrSetupUnavailable) {
		t.Errorf("guessed token: %v", err)
	}
	if _, err := svc.CompleteSetup(ctx, tok, "glow", users.NewUser{Username: "owner", Password: users.NewPassword("short")}, ip); !errors.Is(err, users.ErrWeakPassword) {
		t.Errorf("weak password: %v", err)
	}
	u, err := svc.CompleteSetup(ctx, tok, "glow", owner, ip)
	if err != nil || u.Role != users.RoleOwner {
		t.Fatalf("setup: %v %v", u, err)
	}
	if _, err := svc.CompleteSetup(ctx, tok, "glow", users.NewUser{Username: "second", Password: users.NewPassword(ownerPW)}, ip); !errors.Is(err, users.ErrSetupUnavailable) {
		t.Errorf("token used twice: %v", err)
	}
	if _, _, err := svc.BeginSetup(ctx); !errors.Is(err, users.ErrSetupUnavailable) {
		t.Errorf("BeginSetup with users: %v", err)
	}
	ev, _ := svc.AuditEvents(ctx, u.Principal(""), users.AuditQuery{})
	if len(ev) != 1 || ev[0].Action != users.ActionSetupComplete || ev[0].IP != ip.IP {
		t.Errorf("audit after setup: %+v", ev)
	}
}

func TestAuditViewsAndExports(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, users.Config{})
	aud := f.addUser(t, "aud", users.RoleAuditor).Principal("s1")
	if err := f.svc.Audit(ctx, aud, users.ActionView, "/findings?location=austin", "", ip); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Audit(ctx, aud, users.ActionExport, "ocr-audit-pack.pdf", "austin, 2025", ip); err != nil {
		t.Fatal(err)
	}
	ev, err := f.svc.AuditEvents(ctx, aud, users.AuditQuery{UserID: aud.UserID})
	if err != nil || len(ev) != 2 || ev[0].Action != users.ActionExport || ev[1].Target != "/findings?location=austin" ||
		ev[0].Username != "aud" || ev[0].UserAgent != ip.UserAgent || ev[0].Seq <= ev[1].Seq {
		t.Errorf("audit events: %+v %v", ev, err)
	}
}
