package users

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// TenantID names the organisation a row belongs to. An MSP serves several
// organisations from one vigil; every user, session and audit event carries
// one, and every Store query takes one.
type TenantID string

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ErrBadTenant says a tenant id is empty or not a lower-case slug.
var ErrBadTenant = errors.New("tenant id must be 1-63 characters of a-z, 0-9 and '-'")

// Validate returns ErrBadTenant unless t is a lower-case slug.
func (t TenantID) Validate() error {
	if !tenantRE.MatchString(string(t)) {
		return fmt.Errorf("tenant %q: %w", string(t), ErrBadTenant)
	}
	return nil
}

// Role is what a user may do; see docs/dashboard-security.md for the table.
type Role string

// The roles.
const (
	RoleOwner           Role = "owner"            // everything, including managing owners
	RoleAdmin           Role = "admin"            // everything except managing owners
	RoleAnalyst         Role = "analyst"          // works findings and scans
	RoleAuditor         Role = "auditor"          // reads and exports, changes nothing
	RoleLocationManager Role = "location-manager" // reads and attests for their locations only
)

// Roles lists every role, most powerful first.
var Roles = []Role{RoleOwner, RoleAdmin, RoleAnalyst, RoleAuditor, RoleLocationManager}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// RequiresMFA reports whether the role must always use a second factor,
// whatever the MFA policy says: those who can manage users and settings.
func (r Role) RequiresMFA() bool { return r == RoleOwner || r == RoleAdmin }

// Permission is an action the dashboard guards.
type Permission string

// The permissions.
const (
	PermView               Permission = "view"
	PermExport             Permission = "export"
	PermAcceptFinding      Permission = "accept-finding"
	PermManageUsers        Permission = "manage-users"
	PermManageAttestations Permission = "manage-attestations"
	PermScanNow            Permission = "scan-now"
	PermSettings           Permission = "settings"
)

// Permissions lists every permission.
var Permissions = []Permission{PermView, PermExport, PermAcceptFinding, PermManageUsers, PermManageAttestations, PermScanNow, PermSettings}

// grants is the role matrix. It is read-only after init.
var grants = map[Role][]Permission{
	RoleOwner:           Permissions,
	RoleAdmin:           Permissions,
	RoleAnalyst:         {PermView, PermExport, PermAcceptFinding, PermScanNow},
	RoleAuditor:         {PermView, PermExport},
	RoleLocationManager: {PermView, PermExport, PermManageAttestations},
}

// Grants reports whether role r has permission p anywhere (before any
// location restriction).
func (r Role) Grants(p Permission) bool { return slices.Contains(grants[r], p) }

// Principal is an authenticated user as the dashboard sees them on a
// request: who, in which tenant, with which role and locations.
type Principal struct {
	Tenant    TenantID
	UserID    string
	Username  string
	Role      Role
	Locations []string // for RoleLocationManager only
	SessionID string   // the session's stored id, for the audit trail
}

// Allowed reports whether the principal may do p on something at location
// ("" for something organisation-wide). A location manager is allowed only
// at their own locations, never organisation-wide.
func (p Principal) Allowed(perm Permission, location string) bool {
	if !p.Role.Grants(perm) {
		return false
	}
	if p.Role != RoleLocationManager {
		return true
	}
	return location != "" && slices.Contains(p.Locations, location)
}

// CanManage reports whether the principal may create, change or disable a
// user with role target: owners manage everyone, admins everyone but owners.
func (p Principal) CanManage(target Role) bool {
	if !p.Allowed(PermManageUsers, "") {
		return false
	}
	return p.Role == RoleOwner || target != RoleOwner
}

// Scope returns the filter every store query for this principal should
// apply: its tenant and, for a location manager, its locations.
func (p Principal) Scope() Scope {
	s := Scope{Tenant: p.Tenant, AllLocations: p.Role != RoleLocationManager}
	if !s.AllLocations {
		s.Locations = slices.Clone(p.Locations)
	}
	return s
}

// Scope restricts a query to one tenant and, unless AllLocations, to some
// locations. The zero Scope matches nothing.
type Scope struct {
	Tenant       TenantID
	AllLocations bool
	Locations    []string
}

// AllowsLocation reports whether rows at location are in scope. An
// organisation-wide row (location "") is in scope only with AllLocations.
func (s Scope) AllowsLocation(location string) bool {
	return s.AllLocations || (location != "" && slices.Contains(s.Locations, location))
}

// Where returns an SQL condition and its arguments restricting tenantCol to
// the tenant and, when locCol is not "" and the scope is limited, locCol to
// the locations. Placeholders are numbered from $next, which modernc.org/
// sqlite and PostgreSQL both bind by position. A scope without a valid
// tenant yields a condition that matches nothing, so forgetting to set one
// fails closed.
func (s Scope) Where(tenantCol, locCol string, next int) (string, []any) {
	if s.Tenant.Validate() != nil {
		return "1 = 0", nil
	}
	var b strings.Builder
	args := []any{string(s.Tenant)}
	b.WriteString(tenantCol + " = $" + strconv.Itoa(next))
	if locCol != "" && !s.AllLocations {
		if len(s.Locations) == 0 {
			return "1 = 0", nil
		}
		b.WriteString(" AND " + locCol + " IN (")
		for i, l := range s.Locations {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(next+1+i))
			args = append(args, l)
		}
		b.WriteString(")")
	}
	return b.String(), args
}
