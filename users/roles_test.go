package users

import (
	"reflect"
	"testing"
)

func TestRoleMatrix(t *testing.T) {
	// Columns: view export accept-finding manage-users manage-attestations scan-now settings.
	want := map[Role]string{
		RoleOwner:           "VEAUMSC",
		RoleAdmin:           "VEAUMSC",
		RoleAnalyst:         "VEA--S-",
		RoleAuditor:         "VE-----",
		RoleLocationManager: "VE--M--",
	}
	for _, r := range Roles {
		got := ""
		for i, p := range Permissions {
			if r.Grants(p) {
				got += string("VEAUMSC"[i])
			} else {
				got += "-"
			}
		}
		if got != want[r] {
			t.Errorf("%s grants %s, want %s", r, got, want[r])
		}
	}
	if Role("superuser").Grants(PermView) || Role("").Valid() {
		t.Error("an unknown role grants something")
	}
	if !RoleOwner.RequiresMFA() || !RoleAdmin.RequiresMFA() || RoleAnalyst.RequiresMFA() || RoleAuditor.RequiresMFA() {
		t.Error("MFA is required for exactly owners and admins")
	}
}

func TestAllowedLocations(t *testing.T) {
	mgr := Principal{Tenant: "glow", Role: RoleLocationManager, Locations: []string{"austin", "dallas"}}
	analyst := Principal{Tenant: "glow", Role: RoleAnalyst}
	tests := []struct {
		p    Principal
		perm Permission
		loc  string
		want bool
	}{
		{mgr, PermView, "austin", true},
		{mgr, PermView, "houston", false},
		{mgr, PermView, "", false}, // organisation-wide findings (accounts) are not theirs
		{mgr, PermManageAttestations, "dallas", true},
		{mgr, PermAcceptFinding, "austin", false},
		{mgr, PermExport, "austin", true},
		{analyst, PermView, "houston", true},
		{analyst, PermView, "", true},
		{analyst, PermAcceptFinding, "houston", true},
		{analyst, PermSettings, "", false},
		{Principal{Role: RoleAuditor}, PermExport, "", true},
		{Principal{Role: RoleAuditor}, PermAcceptFinding, "austin", false},
	}
	for _, tt := range tests {
		if got := tt.p.Allowed(tt.perm, tt.loc); got != tt.want {
			t.Errorf("%s %v %s at %q = %v, want %v", tt.p.Role, tt.p.Locations, tt.perm, tt.loc, got, tt.want)
		}
	}
	owner, admin := Principal{Role: RoleOwner}, Principal{Role: RoleAdmin}
	if !owner.CanManage(RoleOwner) || admin.CanManage(RoleOwner) || !admin.CanManage(RoleAdmin) || analyst.CanManage(RoleAuditor) {
		t.Error("CanManage: owners manage all, admins all but owners, others none")
	}
}

func TestScopeWhere(t *testing.T) {
	tests := []struct {
		name  string
		s     Scope
		loc   string
		where string
		args  []any
	}{
		{"all locations", Principal{Tenant: "glow", Role: RoleAnalyst}.Scope(), "location",
			"tenant = $3", []any{"glow"}},
		{"manager", Principal{Tenant: "glow", Role: RoleLocationManager, Locations: []string{"austin", "dallas"}}.Scope(), "location",
			"tenant = $3 AND location IN ($4, $5)", []any{"glow", "austin", "dallas"}},
		{"table without locations", Principal{Tenant: "glow", Role: RoleLocationManager, Locations: []string{"austin"}}.Scope(), "",
			"tenant = $3", []any{"glow"}},
		{"manager without locations", Principal{Tenant: "glow", Role: RoleLocationManager}.Scope(), "location", "1 = 0", nil},
		{"no tenant fails closed", Scope{AllLocations: true}, "location", "1 = 0", nil},
		{"zero scope", Scope{}, "", "1 = 0", nil},
	}
	for _, tt := range tests {
		where, args := tt.s.Where("tenant", tt.loc, 3)
		if where != tt.where || !reflect.DeepEqual(args, tt.args) {
			t.Errorf("%s: Where = %q %v, want %q %v", tt.name, where, args, tt.where, tt.args)
		}
	}
	s := Principal{Tenant: "glow", Role: RoleLocationManager, Locations: []string{"austin"}}.Scope()
	if !s.AllowsLocation("austin") || s.AllowsLocation("dallas") || s.AllowsLocation("") {
		t.Error("AllowsLocation")
	}
	for _, bad := range []TenantID{"", "Glow", "glow spa", "-glow", "glow/../x", "glow'; --"} {
		if bad.Validate() == nil {
			t.Errorf("tenant %q validates", bad)
		}
	}
}

func TestThrottleDelay(t *testing.T) {
	p := DefaultAccountThrottle
	want := []string{"0s", "0s", "0s", "1s", "2s", "4s", "8s", "16s", "32s", "15m0s lock", "15m0s lock"}
	for i, w := range want {
		d, locked := p.delay(i + 1)
		got := d.String()
		if locked {
			got += " lock"
		}
		if got != w {
			t.Errorf("after failure %d: %s, want %s", i+1, got, w)
		}
	}
	if d, _ := DefaultIPThrottle.delay(99); d != DefaultIPThrottle.MaxDelay {
		t.Errorf("IP delay at 99 = %s, want the cap %s", d, DefaultIPThrottle.MaxDelay)
	}
}
