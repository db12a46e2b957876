// Package okta collects the accounts of an Okta org through its management
// API as collectors.KindAccount observations: users, their active factors
// and their admin roles. It authenticates with a read-only admin's API
// token (SSWS) and keeps within Okta's rate limits.
package okta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/httpapi"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// Grants errors name on a 403.
const (
	GrantUsers = "the API token's administrator the Read-only Administrator role (or higher): tokens act with their creator's rights"
	GrantRoles = "the API token's administrator the okta.roles.read permission (Read-only Administrator has it)"
)

// DefaultConcurrency is how many per-user requests run at once.
const DefaultConcurrency = 4

// pageSize is Okta's largest page for /api/v1/users.
const pageSize = "200"

// Source is one configured Okta org as a collectors.Collector. The
// embedded httpapi.Options (HTTPClient, Now, MaxPages, MaxRetries, Logger)
// tune how it reaches the API; their zero values are the defaults.
type Source struct {
	Config config.IdentitySource
	httpapi.Options
	// Concurrency bounds the per-user requests (factors, roles) in flight
	// (default DefaultConcurrency).
	Concurrency int
}

var _ collectors.Collector = (*Source)(nil)

// New checks src and returns its Source. It reads no token and makes no
// request.
func New(src config.IdentitySource) (*Source, error) {
	s := &Source{Config: src}
	if _, err := s.org(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name is "okta:<system>", the Source of the observations.
func (s *Source) Name() string { return "okta:" + s.Config.System }

// org validates the configuration and returns the API root: api_url if
// set, else org_url.
func (s *Source) org() (*url.URL, error) {
	c := s.Config
	fail := func(format string, a ...any) (*url.URL, error) {
		return nil, fmt.Errorf("%s: %s", s.Name(), fmt.Sprintf(format, a...))
	}
	if c.Type != "" && c.Type != "okta" {
		return fail("type is %q, not okta", c.Type)
	}
	if c.System == "" {
		return nil, errors.New("okta identity source: set system (the label findings show, e.g. okta)")
	}
	if c.TokenEnv == "" && c.TokenFile == "" {
		return fail("set token_env or token_file (an API token created by a read-only administrator)")
	}
	field, raw := "org_url", c.OrgURL
	if c.APIURL != "" {
		field, raw = "api_url", c.APIURL
	}
	if raw == "" {
		return fail("set org_url (https://yourorg.okta.com)")
	}
	u, err := httpapi.HTTPS(field, strings.TrimSuffix(raw, "/"))
	if err != nil {
		return fail("%v", err)
	}
	if strings.Contains(u.Host, "-admin.") {
		return fail("%s %q is the admin console; use the org URL without -admin", field, raw)
	}
	return u, nil
}

// Collect lists every user, then reads each user's factors and roles, a
// few at a time. Any failed request fails the whole collection with no
// observations: a listing with some users' factors missing would call them
// unprotected.
func (s *Source) Collect(ctx context.Context) ([]observe.Observation, error) {
	base, err := s.org()
	if err != nil {
		return nil, err
	}
	at := s.Time()
	raw, err := collectors.Secret("token", s.Config.TokenEnv, s.Config.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	token := httpapi.NewSecret(raw)
	c, err := s.NewClient(s.Name(), s.Config.CAFile)
	if err != nil {
		return nil, err
	}
	c.Base = base
	c.Auth = httpapi.Static("SSWS", token)
	c.AuthHint = "check the API token (Security > API > Tokens): it expires after 30 days unused, and when its creator is deactivated"
	c.Redact = []httpapi.Secret{token}

	var users []user
	err = httpapi.Pages(ctx, c, "api/v1/users?limit="+pageSize, GrantUsers,
		func(h http.Header, _ *[]user) string { return httpapi.NextLink(h) },
		func(p *[]user) error {
			users = append(users, *p...)
			return nil
		})
	if err != nil {
		return nil, err
	}

	details, err := s.perUser(ctx, c, users)
	if err != nil {
		return nil, err
	}
	obs := make([]observe.Observation, 0, len(users))
	for i, u := range users {
		obs = append(obs, account(s.Config, u, details[i]).Observation(s.Name(), at))
	}
	return obs, nil
}

// user is the part of Okta's User object vigil reads.
type user struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Created         string `json:"created"`
	Activated       string `json:"activated"`
	LastLogin       string `json:"lastLogin"`
	PasswordChanged string `json:"passwordChanged"`
	Profile         struct {
		Login       string `json:"login"`
		Email       string `json:"email"`
		FirstName   string `json:"firstName"`
		LastName    string `json:"lastName"`
		DisplayName string `json:"displayName"`
		Title       string `json:"title"`
	} `json:"profile"`
	Credentials struct {
		Provider struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"provider"`
	} `json:"credentials"`
}

// factor is one enrolled factor (GET /api/v1/users/{id}/factors).
type factor struct {
	FactorType string `json:"factorType"`
	Provider   string `json:"provider"`
	Status     string `json:"status"`
}

// role is one role assignment (GET /api/v1/users/{id}/roles), direct
// (assignmentType USER) or through a group (GROUP).
type role struct {
	Label          string `json:"label"`
	Type           string `json:"type"`
	Status         string `json:"status"`
	AssignmentType string `json:"assignmentType"`
}

// detail is what the per-user requests found.
type detail struct {
	factors      []factor
	factorsKnown bool
	roles        []role
}

// perUser reads every user's factors and roles with at most Concurrency
// requests in flight. The first failure cancels the rest.
func (s *Source) perUser(ctx context.Context, c *httpapi.Client, users []user) ([]detail, error) {
	out := make([]detail, len(users))
	if len(users) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := s.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	n = min(n, len(users))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	jobs := make(chan int)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				d, err := userDetail(ctx, c, users[i].ID)
				if err != nil {
					fail(err)
					continue
				}
				out[i] = d
			}
		}()
	}
feed:
	for i := range users {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Source, err)
	}
	return out, nil
}

// userDetail reads one user's factors and roles. A user deleted since the
// listing (404) has unknown factors rather than failing the collection.
func userDetail(ctx context.Context, c *httpapi.Client, id string) (detail, error) {
	var d detail
	p := "api/v1/users/" + url.PathEscape(id)
	_, err := c.Get(ctx, p+"/factors", GrantUsers, &d.factors)
	switch {
	case err == nil:
		d.factorsKnown = true
	case errors.Is(err, httpapi.ErrNotFound):
		return d, nil
	default:
		return d, err
	}
	_, err = c.Get(ctx, p+"/roles", GrantRoles, &d.roles)
	if err != nil && !errors.Is(err, httpapi.ErrNotFound) {
		return d, err
	}
	return d, nil
}

// factorNames maps Okta factor types to the names every source uses
// (collectors.AttrMFAMethods).
var factorNames = map[string]string{
	"push":                "push",
	"token:software:totp": "totp",
	"token:hotp":          "hotp",
	"token:hardware":      "hardware-token",
	"token":               "hardware-token",
	"sms":                 "sms",
	"call":                "voice",
	"email":               "email",
	"question":            "security-question",
	"webauthn":            "fido2",
	"u2f":                 "fido2",
	"signed_nonce":        "fastpass",
	"web":                 "web",
}

// disabledStatuses cannot sign in; every other status (ACTIVE,
// PROVISIONED, STAGED, RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT) is an
// account someone can still get into.
var disabledStatuses = []string{"SUSPENDED", "DEPROVISIONED"}

// account turns one user and its details into an Account.
func account(cfg config.IdentitySource, u user, d detail) collectors.Account {
	extra := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			extra[k] = v
		}
	}
	set("id", u.ID)
	set("status", u.Status)
	set("credentials_provider", u.Credentials.Provider.Type)

	name := u.Profile.DisplayName
	if name == "" {
		name = strings.TrimSpace(u.Profile.FirstName + " " + u.Profile.LastName)
	}
	a := collectors.Account{
		System:         cfg.System,
		SourceType:     "okta",
		Username:       u.Profile.Login,
		Email:          u.Profile.Email,
		Name:           name,
		Enabled:        !slices.Contains(disabledStatuses, strings.ToUpper(u.Status)),
		MFA:            "unknown",
		MFAEnforced:    "unknown", // sign-on policies decide; not read here
		Role:           u.Profile.Title,
		LastLoginKnown: true,
		Locations:      slices.Clone(cfg.Locations),
	}
	var ok bool
	if a.LastLogin, ok = httpapi.ParseTime(u.LastLogin); !ok {
		a.LastLoginKnown = false
		extra["last_login_raw"] = u.LastLogin
	}
	if a.Created, ok = httpapi.ParseTime(u.Created); !ok {
		extra["created_raw"] = u.Created
	}
	if a.PasswordLastSet, ok = httpapi.ParseTime(u.PasswordChanged); !ok {
		extra["password_last_set_raw"] = u.PasswordChanged
	}

	if d.factorsKnown {
		active := 0
		var types []string
		for _, f := range d.factors {
			if !strings.EqualFold(f.Status, "ACTIVE") {
				continue
			}
			active++
			types = append(types, f.FactorType)
			n, ok := factorNames[strings.ToLower(f.FactorType)]
			if !ok {
				n = strings.ToLower(f.FactorType)
			}
			if n != "" && !slices.Contains(a.MFAMethods, n) {
				a.MFAMethods = append(a.MFAMethods, n)
			}
		}
		slices.Sort(a.MFAMethods)
		a.MFA = fmt.Sprint(active > 0)
		set("factor_types", strings.Join(types, ","))
	} else {
		extra["factors"] = "not readable (user removed during collection)"
	}

	for _, r := range d.roles {
		if r.Status != "" && !strings.EqualFold(r.Status, "ACTIVE") {
			continue
		}
		name := r.Label
		if name == "" {
			name = r.Type
		}
		if name != "" && !slices.Contains(a.AdminRoles, name) {
			a.AdminRoles = append(a.AdminRoles, name)
		}
		if strings.EqualFold(r.AssignmentType, "GROUP") {
			extra["admin_via_group"] = "true"
		}
	}
	slices.Sort(a.AdminRoles)
	a.IsAdmin = len(a.AdminRoles) > 0
	a.Extra = extra
	return a
}
