// Package collectors turns non-network sources (identity systems, CSV
// exports, software inventories, telegraf inputs) into observations for the
// rules to judge. Each source lives in a subpackage; this package holds what
// they share: the account observation and how secrets are read.
package collectors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// KindAccount is the observation kind for one account in an identity
// system. Its Host is empty; the facts are in Attrs (the Attr* keys below,
// documented in docs/observations.md). Location is empty: an account's
// locations are in Attrs[AttrLocations].
const KindAccount = observe.KindAccount

// Attribute keys of a KindAccount observation.
const (
	AttrSystem      = "system"                 // the source's label: emr, m365, ad, ...
	AttrSourceType  = "source_type"            // csv, ldap, entra, google, okta
	AttrUsername    = "username"               // the sign-in name as the system knows it
	AttrEmail       = "email"                  // lower-cased; "" when unknown
	AttrDisplayName = "display_name"           // the person's name as shown
	AttrEnabled     = "enabled"                // bool: the account can sign in
	AttrMFA         = "mfa"                    // "true" | "false" | "unknown": a second factor is registered
	AttrMFAEnforced = "mfa_enforced"           // "true" | "false" | "unknown": sign-in requires it
	AttrMFAMethods  = "mfa_methods"            // []string: registered methods (totp, push, sms, fido2, ...)
	AttrLastLogin   = "last_login"             // RFC 3339 UTC; "" = never signed in (or the system does not say, see last_login_known)
	AttrLastLoginOK = "last_login_known"       // bool: the system reports sign-ins at all
	AttrCreated     = "created"                // RFC 3339 UTC; "" when unknown
	AttrLocations   = "locations"              // []string: location ids the account is used at
	AttrRole        = "role"                   // job role or title, free text
	AttrIsAdmin     = "is_admin"               // bool: administrator of the system
	AttrAdminRoles  = "admin_roles"            // []string: the admin roles or groups that make it so
	AttrPwdNoExpiry = "password_never_expires" // bool
	AttrPwdLastSet  = "password_last_set"      // RFC 3339 UTC; "" when unknown
	AttrExtra       = "extra"                  // map[string]string: anything else the source said
)

// Account is one account as a source reports it. Collectors fill it and
// call Observation, so every source produces the same attributes.
type Account struct {
	System, SourceType    string
	Username, Email, Name string
	Enabled               bool
	MFA, MFAEnforced      string // "true", "false" or "unknown" ("" means unknown)
	MFAMethods            []string
	LastLogin             time.Time // zero: never, or unknown when LastLoginKnown is false
	LastLoginKnown        bool
	Created               time.Time
	Locations             []string
	Role                  string
	IsAdmin               bool
	AdminRoles            []string
	PasswordNeverExpires  bool
	PasswordLastSet       time.Time
	Extra                 map[string]string
}

// Observation returns the account as a KindAccount observation from source
// (e.g. "ldap:ad") stamped at.
func (a Account) Observation(source string, at time.Time) observe.Observation {
	tri := func(s string) string {
		switch s {
		case "true", "false":
			return s
		}
		return "unknown"
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	extra := a.Extra
	if extra == nil {
		extra = map[string]string{}
	}
	return observe.Observation{
		Kind:   KindAccount,
		Source: source,
		At:     at.UTC(),
		Attrs: map[string]any{
			AttrSystem:      a.System,
			AttrSourceType:  a.SourceType,
			AttrUsername:    a.Username,
			AttrEmail:       strings.ToLower(strings.TrimSpace(a.Email)),
			AttrDisplayName: a.Name,
			AttrEnabled:     a.Enabled,
			AttrMFA:         tri(a.MFA),
			AttrMFAEnforced: tri(a.MFAEnforced),
			AttrMFAMethods:  list(a.MFAMethods),
			AttrLastLogin:   ts(a.LastLogin),
			AttrLastLoginOK: a.LastLoginKnown,
			AttrCreated:     ts(a.Created),
			AttrLocations:   list(a.Locations),
			AttrRole:        a.Role,
			AttrIsAdmin:     a.IsAdmin,
			AttrAdminRoles:  list(a.AdminRoles),
			AttrPwdNoExpiry: a.PasswordNeverExpires,
			AttrPwdLastSet:  ts(a.PasswordLastSet),
			AttrExtra:       extra,
		},
	}
}

// Collector is one configured non-network source. Collect returns every
// observation the source yields now. A source that could not read
// everything returns an error: with what it could read when that is useful
// as evidence, but the caller must treat the source as incomplete (never
// judge "this account is gone" from a partial listing).
type Collector interface {
	// Name identifies the source in logs and scan errors, e.g. "csv:emr".
	Name() string
	Collect(ctx context.Context) ([]observe.Observation, error)
}

// secretWords mark a field or column name as holding a secret.
var secretWords = []string{"password", "passwd", "pwd_hash", "hash", "secret", "token", "apikey", "api_key", "private_key", "pin", "ssn", "credential"}

// SecretLike reports whether a field or column name (already lower-cased
// with _ separators) says it holds a secret, which vigil must never read
// into observations. password_never_expires and password_last_set are
// facts about a password, not the password.
func SecretLike(name string) bool {
	name = strings.ToLower(name)
	switch name {
	case AttrPwdNoExpiry, AttrPwdLastSet, "password_expires", "password_expired", "pwd_last_set":
		return false
	}
	for _, w := range secretWords {
		if name == w || strings.HasPrefix(name, w+"_") || strings.HasSuffix(name, "_"+w) || strings.Contains(name, "_"+w+"_") {
			return true
		}
	}
	return strings.Contains(name, "password") || strings.Contains(name, "secret")
}

// MaxSecretSize bounds a secret file: a token, password or key, not a
// database.
const MaxSecretSize = 64 << 10

// ErrNoSecret is returned when neither the variable nor the file is set.
var ErrNoSecret = errors.New("no secret configured")

// Secret reads a secret from the environment variable envName or, if that
// is empty, from the file fileName (trailing newlines trimmed). field names
// the configuration field for errors, e.g. "identity[1].password". The
// error never contains the secret.
func Secret(field, envName, fileName string) (string, error) {
	if envName != "" {
		v, ok := os.LookupEnv(envName)
		if !ok || v == "" {
			return "", fmt.Errorf("%s_env: environment variable %s is not set", field, envName)
		}
		return v, nil
	}
	if fileName != "" {
		st, err := os.Stat(fileName)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", field, err)
		}
		if st.Size() > MaxSecretSize {
			return "", fmt.Errorf("%s_file: %s is %d bytes, more than a secret (%d max)", field, fileName, st.Size(), MaxSecretSize)
		}
		b, err := os.ReadFile(fileName)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", field, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%s_file: %s is empty", field, fileName)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s: %w: set %s_env or %s_file", field, ErrNoSecret, field, field)
}
