package daemon

import "strings"

// Tenant is one organisation a vigil serve serves: one configuration
// file, one store (its data_dir), one scheduler and one alerter. An MSP
// runs several side by side; none sees another's data.
type Tenant struct {
	// ID is TenantID of the organisation's name.
	ID string
	// Name is the configuration's organization.
	Name       string
	ConfigPath string
	Store      StoreProbe
	Scheduler  *Scheduler
	Alerter    *Alerter
}

// TenantID makes an organisation's name into a tenant id: lower-case
// ASCII letters and digits, every other run of characters one dash, no
// dash at either end ("Glow Aesthetics, LLC" is glow-aesthetics-llc). It
// is "" when the name has no letter or digit.
func TenantID(organization string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(organization) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}
