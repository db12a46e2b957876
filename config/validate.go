package config

import (
	"fmt"
	"net/netip"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var usStates = strings.Fields(`AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP`)

func (v *validator) validate(c *Config, _ *yaml.Node) {
	if strings.TrimSpace(c.Organization) == "" {
		v.fail("organization", "is required: the organisation's name, shown on every report")
	}
	if len(c.Locations) == 0 {
		v.fail("locations", "at least one location is required")
	}
	ids := map[string]int{}
	for i := range c.Locations {
		v.location(c, i, ids)
	}
	sourceNames := map[string]int{}
	for i, id := range c.Identity {
		v.identity(i, id)
		sys := id.System
		if sys == "" {
			sys = id.Type
		}
		if prev, dup := sourceNames[id.Type+":"+sys]; dup {
			v.fail(fmt.Sprintf("identity[%d].system", i), "%s source %q is also identity[%d]: give each a different system label", id.Type, sys, prev)
		}
		sourceNames[id.Type+":"+sys] = i
	}
	for i, s := range c.Schedules {
		p := fmt.Sprintf("schedules[%d]", i)
		if _, err := cronParser.Parse(s.Cron); err != nil {
			v.fail(p+".cron", "invalid cron expression %q: %v (use 5 fields, e.g. \"0 2 * * *\")", s.Cron, err)
		}
		if len(s.Locations) == 0 {
			v.fail(p+".locations", "list the location ids to scan, or [\"*\"] for all")
		}
		for j, l := range s.Locations {
			if _, ok := ids[l]; !ok && l != "*" {
				v.fail(fmt.Sprintf("%s.locations[%d]", p, j), "unknown location %q", l)
			}
		}
		if s.Jitter != nil && s.Jitter.Duration > MaxJitter {
			v.fail(p+".jitter", "%s is more than %s: a location's scan would start too long after its schedule (vigil also keeps it within 10%% of the schedule's interval)", s.Jitter.Duration, MaxJitter)
		}
	}
	v.accounts(&c.Accounts)
	v.telegraf(c, ids)
	v.scan(&c.Scan)
	v.alerts(&c.Alerts)
	v.reports(c)
	for i, d := range c.Rules.Dirs {
		v.mustExist(fmt.Sprintf("rules.dirs[%d]", i), d, true)
	}
}

func (v *validator) location(c *Config, i int, ids map[string]int) {
	l := &c.Locations[i]
	p := fmt.Sprintf("locations[%d]", i)
	switch {
	case l.ID == "":
		v.fail(p+".id", "is required ([a-z0-9-]+, unique)")
	case !idPattern.MatchString(l.ID):
		v.fail(p+".id", "%q must match [a-z0-9-]+ (lower-case letters, digits, dashes)", l.ID)
	default:
		if prev, dup := ids[l.ID]; dup {
			v.fail(p+".id", "duplicate location id %q (also locations[%d])", l.ID, prev)
		}
		ids[l.ID] = i
	}
	switch l.ScannedBy {
	case "", ScannedByServer, ScannedByAgent:
	default:
		v.fail(p+".scanned_by", "unknown value %q: use server (vigil serve scans it) or agent (its site agents do)", l.ScannedBy)
	}
	if l.State != "" && (!statePattern.MatchString(l.State) || !slices.Contains(usStates, l.State)) {
		v.fail(p+".state", "%q is not a two-letter US state code (e.g. CA, NY, TX, MA)", l.State)
	}
	for j, a := range l.InternetFacing {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			v.fail(fmt.Sprintf("%s.internet_facing[%d]", p, j), "%q is not an IP address", a)
			continue
		}
		if addr.Is6() && !addr.Is4In6() {
			v.fail(fmt.Sprintf("%s.internet_facing[%d]", p, j), "%s: IPv6 addresses are not supported yet", a)
			continue
		}
		l.InternetAddrs = append(l.InternetAddrs, addr)
	}
	if len(l.Segments) == 0 {
		v.fail(p+".segments", "at least one segment is required")
	}
	names := map[string]bool{}
	prefixes := map[netip.Prefix]string{}
	for j := range l.Segments {
		s := &l.Segments[j]
		sp := fmt.Sprintf("%s.segments[%d]", p, j)
		if s.Name == "" {
			v.fail(sp+".name", "is required")
		} else if names[s.Name] {
			v.fail(sp+".name", "duplicate segment name %q in location %q", s.Name, l.ID)
		}
		names[s.Name] = true
		if !slices.Contains(Roles, s.Role) {
			if s.Role == "" {
				v.fail(sp+".role", "is required: one of %s", strings.Join(Roles, ", "))
			} else {
				v.fail(sp+".role", "unknown role %q: use one of %s", s.Role, strings.Join(Roles, ", "))
			}
		}
		cidrs := s.CIDRs
		fields := make([]string, len(cidrs))
		for k := range cidrs {
			fields[k] = fmt.Sprintf("%s.cidrs[%d]", sp, k)
		}
		if s.CIDR != "" {
			cidrs = append([]string{s.CIDR}, cidrs...)
			fields = append([]string{sp + ".cidr"}, fields...)
		}
		if len(cidrs) == 0 {
			v.fail(sp, "segment %q needs cidr: or cidrs:", s.Name)
		}
		for k, c := range cidrs {
			pf, err := netip.ParsePrefix(c)
			if err != nil {
				v.fail(fields[k], "invalid CIDR %q: %v", c, cidrError(err))
				continue
			}
			pf = pf.Masked()
			if pf.Addr().Is6() {
				v.fail(fields[k], "%s: IPv6 segments are not supported yet; list the segment's IPv4 range", pf)
				continue
			}
			if n := addressCount(pf); n > MaxAddresses && !v.allowLarge {
				v.fail(fields[k], "%s holds %s addresses, more than a /16: split it, or set scan.allow_large_ranges: true if you really mean to scan it", pf, humanCount(pf))
			}
			if other, dup := prefixes[pf]; dup {
				v.fail(fields[k], "%s is already segment %q", pf, other)
			}
			prefixes[pf] = s.Name
			s.Prefixes = append(s.Prefixes, pf)
		}
	}
	for j := range l.Vantage {
		vt := &l.Vantage[j]
		vp := fmt.Sprintf("%s.vantage[%d]", p, j)
		seg, ok := l.Segment(vt.Segment)
		if !ok {
			v.fail(vp+".segment", "unknown segment %q in location %q", vt.Segment, l.ID)
		}
		if vt.Source == "" && vt.Interface == "" {
			v.fail(vp, "needs source: (an address inside the segment) or interface:")
		}
		if vt.Source != "" {
			a, err := netip.ParseAddr(vt.Source)
			if err != nil {
				v.fail(vp+".source", "%q is not an IP address", vt.Source)
				continue
			}
			vt.SourceAddr = a
			if ok && len(seg.Prefixes) > 0 && !slices.ContainsFunc(seg.Prefixes, func(p netip.Prefix) bool { return p.Contains(a) }) {
				v.fail(vp+".source", "%s is not inside segment %q", a, vt.Segment)
			}
		}
	}
	for j, f := range l.Policy {
		fp := fmt.Sprintf("%s.policy[%d]", p, j)
		if _, ok := l.Segment(f.From); !ok {
			v.fail(fp+".from", "unknown segment %q in location %q", f.From, l.ID)
		}
		if rl, rs, remote := f.Remote(); remote {
			switch other, ok := c.Location(rl); {
			case !ok:
				v.fail(fp+".to", "%q names unknown location %q (write LOCATION/SEGMENT for a flow to another location)", f.To, rl)
			case rl == l.ID:
				v.fail(fp+".to", "%q is this location: write the segment name alone", f.To)
			default:
				if _, ok := other.Segment(rs); !ok {
					v.fail(fp+".to", "unknown segment %q in location %q", rs, rl)
				}
			}
		} else if _, ok := l.Segment(f.To); !ok {
			v.fail(fp+".to", "unknown segment %q in location %q", f.To, l.ID)
		}
		for k, port := range f.Ports {
			if port < 1 || port > 65535 {
				v.fail(fmt.Sprintf("%s.ports[%d]", fp, k), "port %d out of range 1-65535", port)
			}
		}
	}
	if l.Ports != "" {
		if _, err := ParsePorts(l.Ports); err != nil {
			v.fail(p+".ports", "%v", err)
		}
	}
}

func (v *validator) identity(i int, id IdentitySource) {
	p := fmt.Sprintf("identity[%d]", i)
	if !slices.Contains(IdentityTypes, id.Type) {
		v.fail(p+".type", "unknown identity source type %q: use one of %s", id.Type, strings.Join(IdentityTypes, ", "))
		return
	}
	switch id.Type {
	case "csv":
		if id.Path == "" {
			v.fail(p+".path", "a csv identity source needs path: (the exported file)")
		}
	case "ldap":
		if id.URL == "" {
			v.fail(p+".url", "an ldap identity source needs url: (ldaps://host or ldap://host with StartTLS)")
		}
		if id.BindDNEnv == "" && id.BindDNFile == "" {
			v.fail(p, "an ldap identity source needs bind_dn_env or bind_dn_file (a read-only service account)")
		}
		if id.PasswordEnv == "" && id.PasswordFile == "" {
			v.fail(p, "an ldap identity source needs password_env or password_file")
		}
	case "entra":
		if id.TenantID == "" || id.ClientID == "" {
			v.fail(p, "an entra identity source needs tenant_id and client_id")
		}
		if id.ClientSecretEnv == "" && id.ClientSecretFile == "" {
			v.fail(p, "an entra identity source needs client_secret_env or client_secret_file")
		}
	case "google":
		if id.CredentialsFile == "" {
			v.fail(p+".credentials_file", "a google identity source needs credentials_file (service-account key)")
		}
		if id.AdminEmail == "" {
			v.fail(p+".admin_email", "a google identity source needs admin_email: the Workspace admin the service account acts as (domain-wide delegation)")
		}
	case "okta":
		if id.OrgURL == "" {
			v.fail(p+".org_url", "an okta identity source needs org_url")
		}
		if id.TokenEnv == "" && id.TokenFile == "" {
			v.fail(p, "an okta identity source needs token_env or token_file")
		}
	}
}

func (v *validator) accounts(a *AccountSettings) {
	if a.StaleDays < 0 || a.StaleDays > 3650 {
		v.fail("accounts.stale_days", "%d is out of range 1-3650", a.StaleDays)
	}
	if a.NeverUsedDays < 0 || a.NeverUsedDays > 3650 {
		v.fail("accounts.never_used_days", "%d is out of range 1-3650", a.NeverUsedDays)
	}
	for i, p := range a.SharedNames {
		if _, err := path.Match(strings.ToLower(p), ""); err != nil || strings.TrimSpace(p) == "" {
			v.fail(fmt.Sprintf("accounts.shared_names[%d]", i), "%q is not a valid pattern (use * ? and [a-z] as in shell globs)", p)
		}
	}
}

// TelegrafPlugins are the telegraf inputs vigil can run.
var TelegrafPlugins = []string{"x509_cert", "net_response"}

func (v *validator) telegraf(c *Config, ids map[string]int) {
	for i, in := range c.Telegraf.Inputs {
		p := fmt.Sprintf("telegraf.inputs[%d]", i)
		if !slices.Contains(TelegrafPlugins, in.Plugin) {
			v.fail(p+".plugin", "unknown telegraf input %q: use one of %s", in.Plugin, strings.Join(TelegrafPlugins, ", "))
		}
		if _, ok := ids[in.Location]; in.Location != "" && !ok {
			v.fail(p+".location", "unknown location %q", in.Location)
		}
	}
}

func (v *validator) scan(s *ScanSettings) {
	if s.Rate < 0 || s.Rate > 100000 {
		v.fail("scan.rate", "%d is out of range 1-100000 (packets or requests per second)", s.Rate)
	}
	if s.Concurrency < 0 || s.Concurrency > 1024 {
		v.fail("scan.concurrency", "%d is out of range 1-1024", s.Concurrency)
	}
	if s.UDPPorts != "" && s.UDPPorts != "none" {
		if ps, err := ParsePorts(s.UDPPorts); err != nil {
			v.fail("scan.udp_ports", "%v", err)
		} else if ps.Top > 0 {
			v.fail("scan.udp_ports", "list UDP ports explicitly (e.g. \"161,623\"), or none")
		}
	}
	if s.ExpiryWarnDays < 0 {
		v.fail("scan.expiry_warn_days", "must not be negative")
	}
	if s.ReachBudget < 0 || s.ReachBudget > 65536 {
		v.fail("scan.reach_budget", "%d is out of range 1-65536 (host:port probes per pair of segments)", s.ReachBudget)
	}
	if s.MaxParallel < 0 || s.MaxParallel > MaxScanParallel {
		v.fail("scan.max_parallel", "%d is out of range 1-%d (scans vigil serve runs at once)", s.MaxParallel, MaxScanParallel)
	}
	if s.CrossLocation != "" && s.CrossLocation != CrossLocationProbe && s.CrossLocation != CrossLocationSkip {
		v.fail("scan.cross_location", "unknown value %q: use probe or skip", s.CrossLocation)
	}
	for i, f := range s.CAFiles {
		v.mustExist(fmt.Sprintf("scan.ca_files[%d]", i), f, false)
	}
	for i, d := range s.Templates {
		v.mustExist(fmt.Sprintf("scan.templates[%d]", i), d, true)
	}
}

// mustExist checks a path named in the config, relative to the config file.
func (v *validator) mustExist(field, path string, dir bool) {
	full := path
	if !strings.HasPrefix(full, "/") {
		full = joinDir(v.file, path)
	}
	st, err := os.Stat(full)
	switch {
	case err != nil:
		v.fail(field, "%s: %v", path, unwrapPathErr(err))
	case dir && !st.IsDir():
		v.fail(field, "%s is not a directory", path)
	case !dir && st.IsDir():
		v.fail(field, "%s is a directory, expected a file", path)
	}
}

func cidrError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg + " (write it as address/prefix, e.g. 10.10.1.0/24)"
}

func addressCount(p netip.Prefix) float64 {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	n := 1.0
	for i := 0; i < bits-p.Bits(); i++ {
		n *= 2
	}
	return n
}

func humanCount(p netip.Prefix) string {
	n := addressCount(p)
	if n < 1e9 {
		return strconv.FormatFloat(n, 'f', 0, 64)
	}
	return fmt.Sprintf("2^%d", map[bool]int{true: 128, false: 32}[p.Addr().Is6()]-p.Bits())
}
