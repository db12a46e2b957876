package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/vigilhq/vigil/users"
)

func openT(t *testing.T) (*Store, *sql.DB) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "vigil.db")+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	return s, db
}

var t0 = time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC)

// TestTenantIsolation gives tenants A and B a user, session, recovery code
// and audit event each, with B's user having the same name, and checks that
// nothing of A's is reachable through B, including by A's exact ids.
func TestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	s, _ := openT(t)
	mk := func(tenant users.TenantID, id string) users.User {
		u := users.User{Tenant: tenant, ID: id, Username: "dana", Role: users.RoleOwner, PasswordHash: "$argon2id$" + id,
			TOTPSecret: users.NewTOTPSecret("SECRET" + id), PasswordChangedAt: t0, CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSession(ctx, users.Session{Tenant: tenant, ID: "sess-" + id, UserID: id, Stage: users.StageFull, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetRecoveryCodes(ctx, tenant, id, []string{"code-" + id}); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAudit(ctx, users.AuditEvent{Tenant: tenant, At: t0, UserID: id, Action: "view", Target: "secret-of-" + id}); err != nil {
			t.Fatal(err)
		}
		return u
	}
	a := mk("tenant-a", "ua")
	mk("tenant-b", "ub")
	const b = users.TenantID("tenant-b")

	if _, err := s.UserByID(ctx, b, a.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("UserByID(B, A's id): %v", err)
	}
	if u, err := s.UserByName(ctx, b, "dana"); err != nil || u.ID != "ub" {
		t.Errorf("UserByName(B, dana) = %s %v, want B's dana", u.ID, err)
	}
	if list, _ := s.Users(ctx, b); len(list) != 1 || list[0].Tenant != b {
		t.Errorf("Users(B) = %v", list)
	}
	if _, err := s.Session(ctx, b, "sess-ua"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("Session(B, A's id): %v", err)
	}
	if err := s.TouchSession(ctx, b, "sess-ua", t0); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("TouchSession(B, A's id): %v", err)
	}
	ev, _ := s.AuditEvents(ctx, b, users.AuditQuery{})
	ev2, _ := s.AuditEvents(ctx, b, users.AuditQuery{UserID: a.ID})
	if len(ev) != 1 || ev[0].UserID != "ub" || len(ev2) != 0 {
		t.Errorf("AuditEvents(B) = %+v; by A's user id %+v", ev, ev2)
	}
	if ok, _ := s.UseRecoveryCode(ctx, b, a.ID, "code-ua"); ok {
		t.Error("UseRecoveryCode(B, A's user and code) succeeded")
	}
	if n, _ := s.RecoveryCodesLeft(ctx, b, a.ID); n != 0 {
		t.Errorf("RecoveryCodesLeft(B, A's user) = %d", n)
	}
	if ok, _ := s.AdvanceTOTPStep(ctx, b, a.ID, 99); ok {
		t.Error("AdvanceTOTPStep(B, A's user) succeeded")
	}
	hijack := a
	hijack.Tenant, hijack.Role = b, users.RoleAuditor
	if err := s.UpdateUser(ctx, hijack); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("UpdateUser with B and A's id: %v", err)
	}
	// Writes through B must not have touched A.
	s.DeleteSession(ctx, b, "sess-ua")
	s.DeleteUserSessions(ctx, b, a.ID, "")
	s.SetRecoveryCodes(ctx, b, a.ID, nil)
	if _, err := s.Session(ctx, "tenant-a", "sess-ua"); err != nil {
		t.Errorf("A's session after deletes through B: %v", err)
	}
	if n, _ := s.RecoveryCodesLeft(ctx, "tenant-a", a.ID); n != 1 {
		t.Errorf("A's recovery codes after a reset through B: %d", n)
	}
	if u, _ := s.UserByID(ctx, "tenant-a", a.ID); u.Role != users.RoleOwner || u.TOTPSecret.Reveal() != "SECRETua" {
		t.Errorf("A's user after updates through B: %v", u)
	}
	// An empty or malformed tenant matches nothing and cannot be written.
	for _, bad := range []users.TenantID{"", "TENANT-A", "tenant-a' OR '1'='1"} {
		if _, err := s.UserByID(ctx, bad, a.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("UserByID(%q): %v", bad, err)
		}
	}
	if err := s.AppendAudit(ctx, users.AuditEvent{At: t0, Action: "x"}); err == nil {
		t.Error("audit event without a tenant accepted")
	}
}

func TestAuditAppendOnly(t *testing.T) {
	ctx := context.Background()
	s, db := openT(t)
	for i := range 3 {
		if err := s.AppendAudit(ctx, users.AuditEvent{Tenant: "glow", At: t0.Add(time.Duration(i) * time.Second), Action: "view", IP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, stmt := range []string{
		`UPDATE auth_audit SET action = 'nothing' WHERE seq = 1`,
		`DELETE FROM auth_audit WHERE seq = 2`,
		`DELETE FROM auth_audit`,
		`INSERT OR REPLACE INTO auth_audit (seq, tenant, at, action) VALUES (1, 'glow', 'x', 'forged')`,
		`REPLACE INTO auth_audit (seq, tenant, at, action) VALUES (3, 'glow', 'x', 'forged')`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", stmt, err)
		}
	}
	ev, _ := s.AuditEvents(ctx, "glow", users.AuditQuery{})
	if len(ev) != 3 || ev[0].Seq != 3 || ev[2].Action != "view" {
		t.Errorf("after tampering attempts: %+v", ev)
	}
	if ev, _ := s.AuditEvents(ctx, "glow", users.AuditQuery{Since: t0.Add(time.Second), Limit: 1}); len(ev) != 1 || ev[0].Seq != 3 {
		t.Errorf("Since/Limit: %+v", ev)
	}
}

func TestLoginAttemptsSwap(t *testing.T) {
	ctx := context.Background()
	s, _ := openT(t)
	k := users.ThrottleKey{Kind: "ip", Subject: "192.0.2.1"}
	a, _ := s.LoginAttempts(ctx, k)
	next := users.Attempts{Failures: 1, LastFailure: t0, NextAllowed: t0}
	if ok, err := s.SwapLoginAttempts(ctx, k, a, next); !ok || err != nil {
		t.Fatalf("first swap: %v %v", ok, err)
	}
	if ok, _ := s.SwapLoginAttempts(ctx, k, a, next); ok {
		t.Error("a second insert from the same stale read succeeded")
	}
	b, _ := s.LoginAttempts(ctx, k)
	if b.Failures != 1 || b.Version != 1 || !b.LastFailure.Equal(t0) {
		t.Errorf("stored %+v", b)
	}
	next.Failures = 2
	if ok, _ := s.SwapLoginAttempts(ctx, k, b, next); !ok {
		t.Error("swap from the current version failed")
	}
	if ok, _ := s.SwapLoginAttempts(ctx, k, b, next); ok {
		t.Error("swap from a stale version succeeded: a concurrent failure would be lost")
	}
}

func TestMigrationsOwnTables(t *testing.T) {
	_, db := openT(t)
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		rows.Scan(&name)
		if !strings.HasPrefix(name, "auth_") {
			t.Errorf("table %q is not prefixed auth_", name)
		}
	}
	var v int
	db.QueryRow(`SELECT MAX(version) FROM auth_schema_migrations`).Scan(&v)
	if v != LatestVersion {
		t.Errorf("version %d, want %d", v, LatestVersion)
	}
}

// Concurrent page views are each committed once, in few transactions, and a
// caller that gives up does not lose the others' events.
func TestAuditGroupCommit(t *testing.T) {
	s, db := openT(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx
			if i%10 == 0 {
				cc, cancel := context.WithCancel(ctx)
				cancel() // this caller has already gone away
				c = cc
			}
			errs <- s.AppendAudit(c, users.AuditEvent{Tenant: "glow", At: time.Now(), UserID: "u", Username: "ana",
				Action: users.ActionView, Target: fmt.Sprintf("finding:%03d", i)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	var count, distinct int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT target) FROM auth_audit`).Scan(&count, &distinct); err != nil {
		t.Fatal(err)
	}
	if count != n || distinct != n {
		t.Errorf("%d events, %d distinct, want %d each", count, distinct, n)
	}
}
