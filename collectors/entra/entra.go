// Package entra collects the accounts of a Microsoft Entra ID (Microsoft 365)
// tenant through Microsoft Graph v1.0 as collectors.KindAccount
// observations. It signs in as an app registration with a client secret
// (app-only), and joins users, their MFA registration and their directory
// roles on the user id.
package entra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/httpapi"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// Microsoft's public-cloud endpoints; api_url and token_url replace them
// for a sovereign cloud (graph.microsoft.us, login.microsoftonline.us, ...).
const (
	DefaultAPIURL   = "https://graph.microsoft.com/v1.0"
	DefaultLoginURL = "https://login.microsoftonline.com"
)

// Permissions the app registration needs (application permissions, with
// admin consent), as errors name them.
const (
	GrantUsers        = "the app registration the Microsoft Graph application permission User.Read.All, with admin consent"
	GrantRegistration = "the app registration the Microsoft Graph application permission AuditLog.Read.All, with admin consent"
	GrantRoles        = "the app registration the Microsoft Graph application permission RoleManagement.Read.Directory, with admin consent"
)

// Extra notes set when the tenant cannot say something.
const (
	SignInUnavailable       = "unavailable (needs AuditLog.Read.All and Entra ID P1)"
	RegistrationUnavailable = "unavailable (needs Entra ID P1 or P2)"
)

// userSelect is what vigil reads of a user; signInActivity is asked for
// separately because it needs a licence the tenant may not have.
const userSelect = "id,userPrincipalName,mail,displayName,accountEnabled,createdDateTime,passwordPolicies,officeLocation,jobTitle,userType,lastPasswordChangeDateTime"

// nonPremium is Graph's error code for a tenant without Entra ID P1/P2.
const nonPremium = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"

// tenantRE accepts a tenant GUID or domain; it goes into the token URL.
var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$`)

// Source is one configured Entra tenant as a collectors.Collector. The
// embedded httpapi.Options (HTTPClient, Now, MaxPages, MaxRetries, Logger)
// tune how it reaches Graph; their zero values are the defaults.
type Source struct {
	Config config.IdentitySource
	httpapi.Options
}

var _ collectors.Collector = (*Source)(nil)

// New checks src and returns its Source. It reads no secret and makes no
// request.
func New(src config.IdentitySource) (*Source, error) {
	s := &Source{Config: src}
	if _, _, err := s.endpoints(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name is "entra:<system>", the Source of the observations.
func (s *Source) Name() string { return "entra:" + s.Config.System }

// endpoints validates the configuration and returns the Graph root and the
// token URL.
func (s *Source) endpoints() (api, token *url.URL, err error) {
	c := s.Config
	fail := func(format string, a ...any) (*url.URL, *url.URL, error) {
		return nil, nil, fmt.Errorf("%s: %s", s.Name(), fmt.Sprintf(format, a...))
	}
	if c.Type != "" && c.Type != "entra" {
		return fail("type is %q, not entra", c.Type)
	}
	if c.System == "" {
		return nil, nil, errors.New("entra identity source: set system (the label findings show, e.g. m365)")
	}
	if !tenantRE.MatchString(c.TenantID) {
		return fail("tenant_id %q: set the directory (tenant) ID from the app registration's overview page", c.TenantID)
	}
	if strings.TrimSpace(c.ClientID) == "" {
		return fail("set client_id (the app registration's application (client) ID)")
	}
	if c.ClientSecretEnv == "" && c.ClientSecretFile == "" {
		return fail("set client_secret_env or client_secret_file")
	}
	apiURL := DefaultAPIURL
	if c.APIURL != "" {
		apiURL = c.APIURL
	}
	if api, err = httpapi.HTTPS("api_url", apiURL); err != nil {
		return fail("%v", err)
	}
	tokenURL := DefaultLoginURL + "/" + c.TenantID + "/oauth2/v2.0/token"
	if c.TokenURL != "" {
		tokenURL = c.TokenURL
	}
	if token, err = httpapi.HTTPS("token_url", tokenURL); err != nil {
		return fail("%v", err)
	}
	return api, token, nil
}

// Collect reads every user with its MFA registration and admin roles. Any
// failed request fails the whole collection: it returns no observations
// rather than a directory in which, say, admins are missing their roles.
// Two things a tenant may lack degrade instead, with a note in each
// account's extra: sign-in times (no AuditLog.Read.All or no P1 licence:
// last_login_known is false) and MFA registration (no P1/P2 licence: mfa
// is unknown).
func (s *Source) Collect(ctx context.Context) ([]observe.Observation, error) {
	api, tokenURL, err := s.endpoints()
	if err != nil {
		return nil, err
	}
	at := s.Time()
	raw, err := collectors.Secret("client_secret", s.Config.ClientSecretEnv, s.Config.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	secret := httpapi.NewSecret(raw)
	c, err := s.NewClient(s.Name(), s.Config.CAFile)
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		ClientID:     s.Config.ClientID,
		ClientSecret: secret.Value(),
		TokenURL:     tokenURL.String(),
		Scopes:       []string{api.Scheme + "://" + api.Host + "/.default"},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	ts := cc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, c.HTTP))
	c.Base = api
	c.Redact = []httpapi.Secret{secret}
	c.Auth = httpapi.OAuth2(s.Name(), ts, tokenURL,
		"check tenant_id, client_id and the client secret (an expired secret is the usual cause: add a new one under Certificates & secrets)", c.Redact)
	c.AuthHint = "the access token was refused: check tenant_id and that the app registration is not disabled"
	log := c.Logger

	users, signIns, err := s.users(ctx, c, log)
	if err != nil {
		return nil, err
	}
	reg, regOK, err := registrations(ctx, c, log)
	if err != nil {
		return nil, err
	}
	roles, err := adminRoles(ctx, c, log)
	if err != nil {
		return nil, err
	}
	obs := make([]observe.Observation, 0, len(users))
	for _, u := range users {
		r, hasReg := reg[u.ID]
		a := account(s.Config, u, signIns, r, hasReg, regOK, roles[u.ID])
		obs = append(obs, a.Observation(s.Name(), at))
	}
	return obs, nil
}

// page is one page of a Graph collection.
type page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

func nextLink[T any](_ http.Header, p *page[T]) string { return p.NextLink }

// user is the part of Graph's user resource vigil reads.
type user struct {
	ID                         string          `json:"id"`
	UserPrincipalName          string          `json:"userPrincipalName"`
	Mail                       string          `json:"mail"`
	DisplayName                string          `json:"displayName"`
	AccountEnabled             *bool           `json:"accountEnabled"`
	CreatedDateTime            string          `json:"createdDateTime"`
	LastPasswordChangeDateTime string          `json:"lastPasswordChangeDateTime"`
	PasswordPolicies           string          `json:"passwordPolicies"`
	OfficeLocation             string          `json:"officeLocation"`
	JobTitle                   string          `json:"jobTitle"`
	UserType                   string          `json:"userType"`
	SignInActivity             *signInActivity `json:"signInActivity"`
}

type signInActivity struct {
	LastSignInDateTime               string `json:"lastSignInDateTime"`
	LastNonInteractiveSignInDateTime string `json:"lastNonInteractiveSignInDateTime"`
	LastSuccessfulSignInDateTime     string `json:"lastSuccessfulSignInDateTime"`
}

// registration is Graph's userRegistrationDetails.
type registration struct {
	ID                string   `json:"id"`
	IsAdmin           bool     `json:"isAdmin"`
	IsMfaRegistered   bool     `json:"isMfaRegistered"`
	IsMfaCapable      bool     `json:"isMfaCapable"`
	MethodsRegistered []string `json:"methodsRegistered"`
}

type directoryRole struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

type member struct {
	Type string `json:"@odata.type"`
	ID   string `json:"id"`
}

// users lists every user, with sign-in activity if the tenant allows it:
// Graph refuses the whole listing (403) when signInActivity is selected
// without AuditLog.Read.All or a P1 licence, so a refusal of the first page
// is retried without it.
func (s *Source) users(ctx context.Context, c *httpapi.Client, log *slog.Logger) ([]user, bool, error) {
	list := func(sel string) ([]user, int, error) {
		var out []user
		pages := 0
		err := httpapi.Pages(ctx, c, "users?$select="+sel+"&$top=999", GrantUsers, nextLink[user],
			func(p *page[user]) error {
				pages++
				out = append(out, p.Value...)
				return nil
			})
		return out, pages, err
	}
	users, pages, err := list(userSelect + ",signInActivity")
	if err == nil {
		return users, true, nil
	}
	if pages > 0 || !errors.Is(err, httpapi.ErrForbidden) {
		return nil, false, err
	}
	log.Warn("Graph refused sign-in activity; collecting without last sign-in times", "source", c.Source,
		"needs", "AuditLog.Read.All and Entra ID P1", "graph_error", apiCode(err))
	users, _, err = list(userSelect)
	if err != nil {
		return nil, false, err
	}
	return users, false, nil
}

// registrations reads every user's MFA registration by user id. ok is false
// when the tenant has no licence for the report.
func registrations(ctx context.Context, c *httpapi.Client, log *slog.Logger) (map[string]registration, bool, error) {
	out := map[string]registration{}
	err := httpapi.Pages(ctx, c, "reports/authenticationMethods/userRegistrationDetails", GrantRegistration, nextLink[registration],
		func(p *page[registration]) error {
			for _, r := range p.Value {
				out[r.ID] = r
			}
			return nil
		})
	if err != nil {
		if errors.Is(err, httpapi.ErrForbidden) && apiCode(err) == nonPremium {
			log.Warn("Graph has no MFA registration report for this tenant; MFA will be unknown", "source", c.Source, "needs", "Entra ID P1 or P2")
			return nil, false, nil
		}
		return nil, false, err
	}
	return out, true, nil
}

// adminRoles maps user id to the display names of the directory roles it
// holds directly. Roles held through a role-assignable group are not
// expanded here (that needs group permissions); the registration report's
// isAdmin still marks those users as admins.
func adminRoles(ctx context.Context, c *httpapi.Client, log *slog.Logger) (map[string][]string, error) {
	var roles []directoryRole
	err := httpapi.Pages(ctx, c, "directoryRoles?$select=id,displayName", GrantRoles, nextLink[directoryRole],
		func(p *page[directoryRole]) error {
			roles = append(roles, p.Value...)
			return nil
		})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range roles {
		if r.ID == "" {
			continue
		}
		err := httpapi.Pages(ctx, c, "directoryRoles/"+url.PathEscape(r.ID)+"/members?$select=id", GrantRoles, nextLink[member],
			func(p *page[member]) error {
				for _, m := range p.Value {
					switch m.Type {
					case "#microsoft.graph.user":
						if !slices.Contains(out[m.ID], r.DisplayName) {
							out[m.ID] = append(out[m.ID], r.DisplayName)
						}
					case "#microsoft.graph.group":
						log.Info("a directory role is held by a group; its members count as admins through the MFA registration report only",
							"source", c.Source, "role", r.DisplayName)
					}
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
	}
	for id := range out {
		slices.Sort(out[id])
	}
	return out, nil
}

// apiCode is the Graph error code inside err, if any.
func apiCode(err error) string {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// account joins one user with its registration and roles.
func account(cfg config.IdentitySource, u user, signIns bool, r registration, hasReg, regOK bool, roles []string) collectors.Account {
	extra := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			extra[k] = v
		}
	}
	set("id", u.ID)
	set("user_type", u.UserType)
	set("office_location", u.OfficeLocation)
	set("password_policies", u.PasswordPolicies)

	a := collectors.Account{
		System:      cfg.System,
		SourceType:  "entra",
		Username:    u.UserPrincipalName,
		Email:       u.Mail,
		Name:        u.DisplayName,
		Enabled:     u.AccountEnabled == nil || *u.AccountEnabled,
		MFA:         "unknown",
		MFAEnforced: "unknown", // conditional access and security defaults decide; not read here
		Role:        u.JobTitle,
		AdminRoles:  roles,
	}
	if u.AccountEnabled == nil {
		set("account_enabled", "not reported")
	}
	for _, p := range strings.Split(u.PasswordPolicies, ",") {
		if strings.EqualFold(strings.TrimSpace(p), "DisablePasswordExpiration") {
			a.PasswordNeverExpires = true
		}
	}
	a.Created = timestamp(u.CreatedDateTime, "created", extra)
	a.PasswordLastSet = timestamp(u.LastPasswordChangeDateTime, "password_last_set", extra)

	switch {
	case !signIns:
		extra["signin_activity"] = SignInUnavailable
	case u.SignInActivity == nil:
		a.LastLoginKnown = true // Graph keeps sign-ins since 2020: none means never
	default:
		a.LastLogin, a.LastLoginKnown = lastSignIn(*u.SignInActivity, extra)
	}

	switch {
	case !regOK:
		extra["mfa_registration"] = RegistrationUnavailable
	case hasReg:
		a.MFA = fmt.Sprint(r.IsMfaRegistered)
		a.MFAMethods = methods(r.MethodsRegistered)
		set("mfa_capable", fmt.Sprint(r.IsMfaCapable))
		set("methods_registered", strings.Join(r.MethodsRegistered, ","))
		if r.IsAdmin {
			a.IsAdmin = true
			if len(roles) == 0 {
				set("admin_via", "registration report (role held through a group or not listed)")
			}
		}
	default:
		extra["mfa_registration"] = "not in the registration report"
	}
	if len(roles) > 0 {
		a.IsAdmin = true
	}

	if loc := strings.TrimSpace(u.OfficeLocation); loc != "" {
		a.Locations = []string{loc}
	} else {
		a.Locations = slices.Clone(cfg.Locations)
	}
	a.Extra = extra
	return a
}

// lastSignIn picks the time the account was last really used: the last
// successful sign-in when Graph reports it (since December 2023), else the
// later of the last interactive and non-interactive attempts. ok is false
// when a timestamp does not parse.
func lastSignIn(s signInActivity, extra map[string]string) (time.Time, bool) {
	for k, v := range map[string]string{
		"last_signin_interactive":    s.LastSignInDateTime,
		"last_signin_noninteractive": s.LastNonInteractiveSignInDateTime,
		"last_signin_successful":     s.LastSuccessfulSignInDateTime,
	} {
		if v != "" {
			extra[k] = v
		}
	}
	succ, ok1 := httpapi.ParseTime(s.LastSuccessfulSignInDateTime)
	inter, ok2 := httpapi.ParseTime(s.LastSignInDateTime)
	non, ok3 := httpapi.ParseTime(s.LastNonInteractiveSignInDateTime)
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, false
	}
	if !succ.IsZero() {
		return succ, true
	}
	if non.After(inter) {
		return non, true
	}
	return inter, true
}

// timestamp parses v, noting an unparsable value in extra[key+"_raw"].
func timestamp(v, key string, extra map[string]string) time.Time {
	t, ok := httpapi.ParseTime(v)
	if !ok {
		extra[key+"_raw"] = v
	}
	return t
}

// methodNames maps Graph's methodsRegistered values to the names every
// source uses (collectors.AttrMFAMethods).
var methodNames = map[string]string{
	"microsoftauthenticatorpush":         "push",
	"microsoftauthenticatorpasswordless": "push",
	"softwareonetimepasscode":            "totp",
	"hardwareonetimepasscode":            "hardware-token",
	"mobilephone":                        "sms",
	"alternatemobilephone":               "sms",
	"officephone":                        "voice",
	"fido2":                              "fido2",
	"passkeydevicebound":                 "fido2",
	"passkeydeviceboundauthenticator":    "fido2",
	"passkeydeviceboundwindowshello":     "fido2",
	"windowshelloforbusiness":            "windows-hello",
	"macossecureenclavekey":              "platform-key",
	"email":                              "email",
	"securityquestion":                   "security-question",
	"temporaryaccesspass":                "temporary-access-pass",
}

// methods normalises Graph's method names, sorted and without duplicates;
// unknown ones pass through lower-cased.
func methods(in []string) []string {
	var out []string
	for _, m := range in {
		n, ok := methodNames[strings.ToLower(m)]
		if !ok {
			n = strings.ToLower(m)
		}
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
