// Package google collects the accounts of a Google Workspace domain through
// the Admin SDK Directory API as collectors.KindAccount observations. It
// signs in as a service account with domain-wide delegation, acting as an
// administrator (admin_email) with read-only access to users.
package google

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	googleoauth "golang.org/x/oauth2/google"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/httpapi"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// DefaultAPIURL is the Admin SDK's root; api_url replaces it (tests).
const DefaultAPIURL = "https://admin.googleapis.com"

// Scope is the only scope vigil asks for.
const Scope = "https://www.googleapis.com/auth/admin.directory.user.readonly"

// Grant is what errors tell the administrator to grant on a 403.
const Grant = "the service account's client ID domain-wide delegation for " + Scope +
	" (Admin console > Security > Access and data control > API controls > Manage domain-wide delegation)," +
	" and make admin_email an administrator allowed to read users"

// pageSize is the Directory API's largest page.
const pageSize = "500"

// Source is one configured Workspace domain as a collectors.Collector. The
// embedded httpapi.Options (HTTPClient, Now, MaxPages, MaxRetries, Logger)
// tune how it reaches the Directory API; their zero values are the
// defaults.
type Source struct {
	Config config.IdentitySource
	httpapi.Options
}

var _ collectors.Collector = (*Source)(nil)

// New checks src and returns its Source. It reads no key and makes no
// request.
func New(src config.IdentitySource) (*Source, error) {
	s := &Source{Config: src}
	if _, err := s.api(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name is "google:<system>", the Source of the observations.
func (s *Source) Name() string { return "google:" + s.Config.System }

// api validates the configuration and returns the API root.
func (s *Source) api() (*url.URL, error) {
	c := s.Config
	fail := func(format string, a ...any) (*url.URL, error) {
		return nil, fmt.Errorf("%s: %s", s.Name(), fmt.Sprintf(format, a...))
	}
	if c.Type != "" && c.Type != "google" {
		return fail("type is %q, not google", c.Type)
	}
	if c.System == "" {
		return nil, errors.New("google identity source: set system (the label findings show, e.g. workspace)")
	}
	if c.CredentialsFile == "" {
		return fail("set credentials_file (the service account's JSON key)")
	}
	if a, err := mail.ParseAddress(c.AdminEmail); err != nil || a.Address != c.AdminEmail {
		return fail("admin_email %q: set the address of a Workspace administrator the service account acts as", c.AdminEmail)
	}
	if strings.ContainsAny(c.Domain, "/?#&= ") || strings.ContainsAny(c.CustomerID, "/?#&= ") {
		return fail("domain and customer_id are plain names (example.com, C01abc234)")
	}
	if c.TokenURL != "" {
		if _, err := httpapi.HTTPS("token_url", c.TokenURL); err != nil {
			return fail("%v", err)
		}
	}
	raw := DefaultAPIURL
	if c.APIURL != "" {
		raw = c.APIURL
	}
	u, err := httpapi.HTTPS("api_url", raw)
	if err != nil {
		return fail("%v", err)
	}
	return u, nil
}

// Collect lists every user of the customer (or of domain, when set). Any
// failed page fails the collection with no observations.
func (s *Source) Collect(ctx context.Context) ([]observe.Observation, error) {
	api, err := s.api()
	if err != nil {
		return nil, err
	}
	at := s.Time()
	key, err := collectors.Secret("credentials", "", s.Config.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	jwtc, err := googleoauth.JWTConfigFromJSON([]byte(key), Scope)
	if err != nil {
		// oauth2 describes a bad key file without quoting the key.
		return nil, fmt.Errorf("%s: credentials_file %s: %v: download a JSON key for the service account (IAM & Admin > Service accounts > Keys)",
			s.Name(), s.Config.CredentialsFile, scrubKey(err.Error(), key))
	}
	jwtc.Subject = s.Config.AdminEmail
	if s.Config.TokenURL != "" {
		jwtc.TokenURL = s.Config.TokenURL
	}
	tokenURL, err := httpapi.HTTPS("token_uri", jwtc.TokenURL)
	if err != nil {
		return nil, fmt.Errorf("%s: credentials_file %s: %v", s.Name(), s.Config.CredentialsFile, err)
	}
	c, err := s.NewClient(s.Name(), s.Config.CAFile)
	if err != nil {
		return nil, err
	}
	ts := jwtc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, c.HTTP))
	c.Base = api
	c.Redact = keySecrets(string(jwtc.PrivateKey))
	c.Auth = httpapi.OAuth2(s.Name(), ts, tokenURL,
		"check that the key in credentials_file is still active, that its client ID has domain-wide delegation for "+Scope+
			", and that admin_email is an existing administrator", c.Redact)
	c.AuthHint = "the access token was refused: check admin_email and the service account's domain-wide delegation"

	q := url.Values{}
	switch {
	case s.Config.CustomerID != "":
		q.Set("customer", s.Config.CustomerID)
	case s.Config.Domain == "":
		q.Set("customer", "my_customer")
	}
	if s.Config.Domain != "" {
		q.Set("domain", s.Config.Domain)
	}
	q.Set("maxResults", pageSize)
	q.Set("projection", "full")
	const path = "admin/directory/v1/users"

	var obs []observe.Observation
	err = httpapi.Pages(ctx, c, path+"?"+q.Encode(), Grant,
		func(_ http.Header, p *usersPage) string {
			if p.NextPageToken == "" {
				return ""
			}
			q.Set("pageToken", p.NextPageToken)
			return path + "?" + q.Encode()
		},
		func(p *usersPage) error {
			for _, u := range p.Users {
				obs = append(obs, account(s.Config, u).Observation(s.Name(), at))
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return obs, nil
}

// usersPage is one page of users.list.
type usersPage struct {
	Users         []user `json:"users"`
	NextPageToken string `json:"nextPageToken"`
}

// user is the part of the Directory API's User resource vigil reads.
type user struct {
	ID           string `json:"id"`
	PrimaryEmail string `json:"primaryEmail"`
	Name         struct {
		FullName   string `json:"fullName"`
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
	} `json:"name"`
	Suspended                 bool   `json:"suspended"`
	SuspensionReason          string `json:"suspensionReason"`
	Archived                  bool   `json:"archived"`
	IsAdmin                   bool   `json:"isAdmin"`
	IsDelegatedAdmin          bool   `json:"isDelegatedAdmin"`
	IsEnrolledIn2Sv           bool   `json:"isEnrolledIn2Sv"`
	IsEnforcedIn2Sv           bool   `json:"isEnforcedIn2Sv"`
	ChangePasswordAtNextLogin bool   `json:"changePasswordAtNextLogin"`
	LastLoginTime             string `json:"lastLoginTime"`
	CreationTime              string `json:"creationTime"`
	OrgUnitPath               string `json:"orgUnitPath"`
	// Locations and Organizations are typed "any" in the API's discovery
	// document; they are decoded leniently so an odd value costs only
	// that field, not the page.
	Locations     json.RawMessage `json:"locations"`
	Organizations json.RawMessage `json:"organizations"`
}

type location struct {
	BuildingID string `json:"buildingId"`
	Area       string `json:"area"`
}

type organization struct {
	Title      string `json:"title"`
	Department string `json:"department"`
	Primary    bool   `json:"primary"`
}

// account turns one Directory user into an Account.
func account(cfg config.IdentitySource, u user) collectors.Account {
	extra := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			extra[k] = v
		}
	}
	set("id", u.ID)
	set("org_unit", u.OrgUnitPath)
	set("suspension_reason", u.SuspensionReason)
	if u.Archived {
		extra["archived"] = "true"
	}
	if u.ChangePasswordAtNextLogin {
		extra["change_password_at_next_login"] = "true"
	}
	name := u.Name.FullName
	if name == "" {
		name = strings.TrimSpace(u.Name.GivenName + " " + u.Name.FamilyName)
	}
	a := collectors.Account{
		System:      cfg.System,
		SourceType:  "google",
		Username:    u.PrimaryEmail,
		Email:       u.PrimaryEmail,
		Name:        name,
		Enabled:     !u.Suspended && !u.Archived,
		MFA:         fmt.Sprint(u.IsEnrolledIn2Sv),
		MFAEnforced: fmt.Sprint(u.IsEnforcedIn2Sv),
		IsAdmin:     u.IsAdmin || u.IsDelegatedAdmin,
	}
	if u.IsAdmin {
		a.AdminRoles = append(a.AdminRoles, "super admin")
	}
	if u.IsDelegatedAdmin {
		a.AdminRoles = append(a.AdminRoles, "delegated admin")
	}
	var ok bool
	// Google reports "1970-01-01T00:00:00.000Z" for never; ParseTime makes
	// that zero.
	if a.LastLogin, ok = httpapi.ParseTime(u.LastLoginTime); ok {
		a.LastLoginKnown = true
	} else {
		extra["last_login_raw"] = u.LastLoginTime
	}
	if a.Created, ok = httpapi.ParseTime(u.CreationTime); !ok {
		extra["created_raw"] = u.CreationTime
	}

	var orgs []organization
	if json.Unmarshal(u.Organizations, &orgs) == nil {
		for _, o := range orgs {
			if o.Primary || a.Role == "" {
				a.Role = o.Title
				set("department", o.Department)
			}
		}
	}
	var locs []location
	if json.Unmarshal(u.Locations, &locs) == nil {
		for _, l := range locs {
			if b := strings.TrimSpace(l.BuildingID); b != "" && !slices.Contains(a.Locations, b) {
				a.Locations = append(a.Locations, b)
			}
		}
	}
	if len(a.Locations) == 0 {
		a.Locations = slices.Clone(cfg.Locations)
	}
	a.Extra = extra
	return a
}

// keySecrets lists what must never leave vigil from a key file: the PEM
// private key and each of its base64 lines (a fragment is as bad as the
// whole).
func keySecrets(pem string) []httpapi.Secret {
	out := []httpapi.Secret{httpapi.NewSecret(pem)}
	for _, l := range strings.Split(pem, "\n") {
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			out = append(out, httpapi.NewSecret(l))
		}
	}
	return out
}

// scrubKey removes the private key's lines from s (defence in depth for
// errors from parsing the key file).
func scrubKey(s, keyFile string) string {
	var f struct {
		PrivateKey string `json:"private_key"`
	}
	if json.Unmarshal([]byte(keyFile), &f) != nil || f.PrivateKey == "" {
		return s
	}
	for _, sec := range keySecrets(f.PrivateKey) {
		if v := sec.Value(); v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}
