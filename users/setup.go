package users

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// BeginSetup makes a one-time setup token when vigil has no users at all,
// replacing any earlier one, and returns it with its expiry; print it with
// SetupURL on the console. With users it returns ErrSetupUnavailable.
func (s *Service) BeginSetup(ctx context.Context) (SetupToken, time.Time, error) {
	exists, err := s.store.AnyUsers(ctx)
	if err != nil {
		return SetupToken{}, time.Time{}, err
	}
	if exists {
		return SetupToken{}, time.Time{}, ErrSetupUnavailable
	}
	tok := SetupToken{randomToken(32)}
	exp := s.now().UTC().Add(s.cfg.SetupTTL)
	if err := s.store.PutSetupToken(ctx, tokenHash(tok.Reveal()), exp); err != nil {
		return SetupToken{}, time.Time{}, err
	}
	s.log.InfoContext(ctx, "no dashboard users: setup link issued", "expires", exp)
	return tok, exp, nil
}

// SetupURL is the console link: base (the dashboard's external URL) with
// path /setup and the token as a query parameter.
func SetupURL(base string, tok SetupToken) string {
	return strings.TrimRight(base, "/") + "/setup?token=" + url.QueryEscape(tok.Reveal())
}

// CompleteSetup uses the setup token once to create the first owner, of
// tenant. It fails with ErrSetupUnavailable when the token is unknown,
// used or expired, or a user already exists. The owner then signs in and,
// being an owner, enrolls a second factor.
func (s *Service) CompleteSetup(ctx context.Context, tok SetupToken, tenant TenantID, n NewUser, c Client) (User, error) {
	if err := tenant.Validate(); err != nil {
		return User{}, err
	}
	n.Role = RoleOwner
	name, err := s.checkNewUser(n)
	if err != nil {
		return User{}, err
	}
	h, err := s.hash(ctx, n.Password)
	if err != nil {
		return User{}, err
	}
	now := s.now().UTC()
	u := User{Tenant: tenant, ID: newID(), Username: name, Email: strings.TrimSpace(n.Email), Role: RoleOwner,
		PasswordHash: h, PasswordChangedAt: now, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateFirstUser(ctx, tokenHash(tok.Reveal()), now, u); err != nil {
		if !errors.Is(err, ErrSetupUnavailable) {
			err = fmt.Errorf("first user: %w", err)
		}
		return User{}, err
	}
	return u, s.audit(ctx, AuditEvent{Tenant: tenant, UserID: u.ID, Username: u.Username, Action: ActionSetupComplete,
		Target: "user:" + u.ID, Detail: "first owner created with the console setup link"}, c)
}
