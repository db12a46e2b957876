// Package config loads and validates vigil's YAML configuration: the
// organisation, its locations and segments, vantage points, flow policy,
// identity sources and schedules. It is the only package that knows the file
// format; every error it returns names the file, the line and the field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// Roles a segment may have.
var Roles = []string{"front-desk", "clinical", "servers", "guest", "iot", "management", "other"}

// MaxAddresses is the largest number of addresses a single segment may hold
// (a /16) unless scan.allow_large_ranges is set.
const MaxAddresses = 1 << 16

// Config is a loaded, validated configuration.
type Config struct {
	// Path is the file the configuration was read from.
	Path         string           `yaml:"-"`
	Organization string           `yaml:"organization"`
	DataDir      string           `yaml:"data_dir"`
	Locations    []Location       `yaml:"locations"`
	Identity     []IdentitySource `yaml:"identity"`
	Roster       string           `yaml:"roster"`
	Software     []SoftwareSource `yaml:"software"`
	// OSVDB is the directory of the offline OSV vulnerability database
	// (default DATA_DIR/osv); see docs/software.md for refreshing it.
	OSVDB     string           `yaml:"osv_db"`
	Accounts  AccountSettings  `yaml:"accounts"`
	Controls  ControlSettings  `yaml:"controls"`
	Telegraf  TelegrafSettings `yaml:"telegraf"`
	Schedules []Schedule       `yaml:"schedules"`
	Scan      ScanSettings     `yaml:"scan"`
	Rules     RuleSettings     `yaml:"rules"`
	// Alerts configure what vigil serve sends when something gets worse.
	Alerts AlertSettings `yaml:"alerts"`
	// Reports are the documents vigil serve writes on a schedule, into
	// ReportsDir (default DATA_DIR/reports).
	Reports    []Report `yaml:"reports"`
	ReportsDir string   `yaml:"reports_dir"`
}

// AccountSettings tune the identity rules.
type AccountSettings struct {
	// StaleDays: an enabled account with no sign-in for this many days is
	// stale (default 90).
	StaleDays int `yaml:"stale_days"`
	// NeverUsedDays: an enabled account that never signed in and was
	// created this many days ago or more is unused (default 30).
	NeverUsedDays int `yaml:"never_used_days"`
	// SharedNames are patterns (path.Match syntax, case-insensitive,
	// matched against the username's local part) of generic or shared
	// logins. They replace the default list when set.
	SharedNames []string `yaml:"shared_names"`
	// RemoteSystems are the identity systems whose accounts reach email or
	// remote access, where missing MFA ranks higher. Default: every
	// entra, google and okta source.
	RemoteSystems []string `yaml:"remote_systems"`
}

// ControlSettings tune how control status is computed.
type ControlSettings struct {
	// AddressableAsRequired treats every addressable HIPAA implementation
	// specification as required, as the 2025 proposed Security Rule would.
	AddressableAsRequired bool `yaml:"addressable_as_required"`
}

// TelegrafSettings configure telegraf inputs run by vigil and the endpoint
// that accepts metrics from telegraf agents.
type TelegrafSettings struct {
	// TokenEnv / TokenFile hold the bearer token telegraf agents present
	// to POST /api/v1/telegraf (InfluxDB line protocol).
	TokenEnv  string          `yaml:"token_env"`
	TokenFile string          `yaml:"token_file"`
	Inputs    []TelegrafInput `yaml:"inputs"`
}

// TelegrafInput is one telegraf input plugin vigil runs as a collector.
type TelegrafInput struct {
	// Plugin is the telegraf input name: x509_cert or net_response.
	Plugin string `yaml:"plugin"`
	// Location the measurements belong to ("" for organisation-wide).
	Location string `yaml:"location"`
	// Options are the plugin's own settings, as in telegraf.conf
	// (sources, address, protocol, timeout, ...).
	Options map[string]any `yaml:"options"`
}

// Location is one site of the organisation.
type Location struct {
	ID             string    `yaml:"id"`
	Name           string    `yaml:"name"`
	State          string    `yaml:"state"`
	InternetFacing []string  `yaml:"internet_facing"`
	Segments       []Segment `yaml:"segments"`
	Vantage        []Vantage `yaml:"vantage"`
	Policy         []Flow    `yaml:"policy"`
	// Ports is the TCP port selection: "top-N", or a list of ports and
	// ranges such as "22,80,443,3389" or "1-1024". Empty means the default.
	Ports string `yaml:"ports"`
	// ScannedBy says who scans the location's networks: "server" (the
	// default: vigil serve and vigil scan, from where they run) or "agent"
	// (its site agents, docs/agent.md). vigil serve never scans an agent's
	// location itself, and the telegraf inputs of that location run on its
	// agents too.
	ScannedBy string `yaml:"scanned_by"`

	// InternetAddrs holds the parsed InternetFacing addresses.
	InternetAddrs []netip.Addr `yaml:"-"`
}

// Who scans a location (Location.ScannedBy).
const (
	ScannedByServer = "server"
	ScannedByAgent  = "agent"
)

// ByAgent reports whether the location is scanned by its site agents
// rather than by vigil serve or vigil scan.
func (l *Location) ByAgent() bool { return l.ScannedBy == ScannedByAgent }

// RunsOnAgent reports whether a telegraf input is run by a site agent: its
// location is scanned by its agents.
func (c *Config) RunsOnAgent(in TelegrafInput) bool {
	l, ok := c.Location(in.Location)
	return ok && l.ByAgent()
}

// Segment is a named part of a location's network.
type Segment struct {
	Name  string   `yaml:"name"`
	CIDR  string   `yaml:"cidr"`
	CIDRs []string `yaml:"cidrs"`
	Role  string   `yaml:"role"`

	// Prefixes holds the parsed CIDR and CIDRs.
	Prefixes []netip.Prefix `yaml:"-"`
}

// Vantage is a place inside a segment the location's sensor probes from.
type Vantage struct {
	Segment   string `yaml:"segment"`
	Source    string `yaml:"source"`
	Interface string `yaml:"interface"`

	// SourceAddr is the parsed Source, if any.
	SourceAddr netip.Addr `yaml:"-"`
}

// Flow is one allowed flow between two segments of a location.
type Flow struct {
	From string `yaml:"from"`
	// To is a segment of the same location, or LOCATION/SEGMENT for a flow
	// to another location (over a site-to-site link).
	To    string `yaml:"to"`
	Ports []int  `yaml:"ports"`
}

// Remote splits a cross-location To ("uptown/servers") into location and
// segment; ok is false for a segment of the same location.
func (f Flow) Remote() (location, segment string, ok bool) {
	return strings.Cut(f.To, "/")
}

// IdentitySource is one place accounts come from. Secrets are only ever
// named through *_env or *_file fields, never written in the file.
type IdentitySource struct {
	Type             string `yaml:"type"`
	System           string `yaml:"system"`
	Path             string `yaml:"path"`
	URL              string `yaml:"url"`
	BaseDN           string `yaml:"base_dn"`
	BindDNEnv        string `yaml:"bind_dn_env"`
	BindDNFile       string `yaml:"bind_dn_file"`
	PasswordEnv      string `yaml:"password_env"`
	PasswordFile     string `yaml:"password_file"`
	AllowPlaintext   bool   `yaml:"allow_plaintext"`
	TenantID         string `yaml:"tenant_id"`
	ClientID         string `yaml:"client_id"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	Domain           string `yaml:"domain"`
	CustomerID       string `yaml:"customer_id"`
	CredentialsFile  string `yaml:"credentials_file"`
	AdminEmail       string `yaml:"admin_email"`
	OrgURL           string `yaml:"org_url"`
	TokenEnv         string `yaml:"token_env"`
	TokenFile        string `yaml:"token_file"`
	// Locations attributes the source's accounts to locations when the
	// system itself does not say (an EMR that only one clinic uses).
	Locations []string `yaml:"locations"`
	// UserFilter (ldap) narrows the user search; default
	// (|(objectClass=user)(objectClass=inetOrgPerson)) without computers.
	UserFilter string `yaml:"user_filter"`
	// AdminGroups (ldap) are the DNs or CNs of groups whose members are
	// administrators; default Domain Admins, Enterprise Admins,
	// Administrators, Schema Admins.
	AdminGroups []string `yaml:"admin_groups"`
	// CAFile is a PEM bundle trusted for the source's TLS (a private
	// directory CA).
	CAFile string `yaml:"ca_file"`
	// APIURL and TokenURL replace the cloud provider's endpoints (a
	// sovereign cloud, or a test server).
	APIURL   string `yaml:"api_url"`
	TokenURL string `yaml:"token_url"`
}

// IdentityTypes lists the accepted identity source types.
var IdentityTypes = []string{"csv", "entra", "google", "okta", "ldap"}

// SoftwareSource is an input for osv-scanner: a directory, SBOM or lockfile.
type SoftwareSource struct {
	Path string `yaml:"path"`
}

// Schedule runs scans of some locations on a cron schedule.
type Schedule struct {
	Cron      string   `yaml:"cron"`
	Locations []string `yaml:"locations"`
	// Jitter bounds how long after the schedule's time a location's scan
	// starts (vigil serve spreads the locations over it, and never over
	// more than 10% of the schedule's interval); at most MaxJitter. Nil
	// means the daemon's default; 0s starts every location on time.
	Jitter *Duration `yaml:"jitter"`
}

// MaxJitter is the largest schedules[].jitter accepted.
const MaxJitter = 6 * time.Hour

// ScanSettings tune the network checks. Every field has a safe default.
type ScanSettings struct {
	// Rate is the most packets (nmap) or requests (other checks) per second.
	Rate int `yaml:"rate"`
	// Timeout bounds a whole scan of one location.
	Timeout Duration `yaml:"timeout"`
	// HostTimeout bounds nmap's time on one host.
	HostTimeout Duration `yaml:"host_timeout"`
	// ProbeTimeout bounds one TLS handshake, template request or login probe.
	ProbeTimeout Duration `yaml:"probe_timeout"`
	// Concurrency bounds how many hosts the follow-up checks work on at once.
	Concurrency int `yaml:"concurrency"`
	// UDPPorts are probed with a UDP scan when vigil has raw-socket rights.
	UDPPorts string `yaml:"udp_ports"`
	// CAFiles are extra trusted CA certificates for certificate checks.
	CAFiles []string `yaml:"ca_files"`
	// Templates are extra nuclei template directories (e.g. nuclei-templates).
	Templates []string `yaml:"templates"`
	// AllowLargeRanges permits segments larger than a /16.
	AllowLargeRanges bool `yaml:"allow_large_ranges"`
	// ExpiryWarnDays is how close to expiry a certificate is reported.
	ExpiryWarnDays int `yaml:"expiry_warn_days"`
	// ReachBudget bounds the host:port probes the segmentation test sends
	// from one vantage point to one other segment.
	ReachBudget int `yaml:"reach_budget"`
	// CrossLocation is "probe" (default): each vantage point also probes
	// the segments of the other locations, to find flat WAN links; or
	// "skip".
	CrossLocation string `yaml:"cross_location"`
	// MaxParallel bounds how many scans vigil serve runs at once for this
	// organisation (default 2, at most MaxScanParallel).
	MaxParallel int `yaml:"max_parallel"`
}

// MaxScanParallel is the largest scan.max_parallel accepted.
const MaxScanParallel = 64

// CrossLocation settings.
const (
	CrossLocationProbe = "probe"
	CrossLocationSkip  = "skip"
)

// RuleSettings adds user rule directories to the embedded rule pack.
type RuleSettings struct {
	Dirs []string `yaml:"dirs"`
	// Disable lists rule ids that never produce findings.
	Disable []string `yaml:"disable"`
}

// Duration is a time.Duration written as "90s", "5m" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("invalid duration %q (use e.g. 30s, 5m, 1h)", n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as UnmarshalYAML reads it ("1h30m0s").
func (d Duration) MarshalYAML() (any, error) { return d.Duration.String(), nil }

// Defaults applied to unset scan settings.
const (
	DefaultRate           = 300
	DefaultTimeout        = 2 * time.Hour
	DefaultHostTimeout    = 5 * time.Minute
	DefaultProbeTimeout   = 5 * time.Second
	DefaultConcurrency    = 16
	DefaultUDPPorts       = "161"
	DefaultPorts          = "top-100"
	DefaultExpiryWarnDays = 30
	DefaultReachBudget    = 1024
	DefaultMaxParallel    = 2
	DefaultStaleDays      = 90
	DefaultNeverUsedDays  = 30
)

// DefaultSharedNames are usernames (local part, path.Match patterns) that
// name a role, a place or a device rather than a person.
var DefaultSharedNames = []string{
	"admin", "administrator", "frontdesk", "front-desk", "front.desk", "reception*",
	"checkin", "check-in", "desk*", "office*", "staff*", "shared*", "clinic*",
	"nurse*", "provider*", "manager*", "billing", "scheduling", "scheduler",
	"temp*", "guest*", "test*", "training*", "user", "user[0-9]*", "kiosk*",
	"info", "contact", "hello", "spa", "medspa", "laser*", "injector*", "ma[0-9]*",
}

// Error is one problem in a configuration file, with its position.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Errors is every problem found in one file. Its message has one line each.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// ErrInvalid is wrapped by every validation failure, for errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// Is lets errors.Is(err, ErrInvalid) match.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

// Load reads, parses and validates the configuration in path. Relative
// paths inside it (data_dir, CSV files, CA files) are resolved against the
// file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses and validates a configuration held in memory; name is used
// in errors and to resolve relative paths.
func Parse(name string, data []byte) (*Config, error) {
	v := &validator{file: name}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "file is empty: it needs at least organization and locations"}}
		}
		return nil, Errors{{File: name, Line: yamlErrLine(err), Msg: "not valid YAML: " + yamlErrMsg(err)}}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, Errors{{File: name, Line: doc.Line, Msg: "top level must be a mapping (organization:, locations:, ...)"}}
	}
	cfg := &Config{Path: name}
	v.decode(doc, reflect.ValueOf(cfg).Elem(), "")
	if len(v.errs) == 0 {
		v.allowLarge = cfg.Scan.AllowLargeRanges
		v.validate(cfg, doc)
	}
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	cfg.applyDefaults()
	cfg.resolvePaths()
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = "vigil-data"
	}
	for i := range c.Identity {
		// The label findings name the system by; the type will do when
		// there is one source of each type.
		if c.Identity[i].System == "" {
			c.Identity[i].System = c.Identity[i].Type
		}
	}
	if c.Accounts.StaleDays == 0 {
		c.Accounts.StaleDays = DefaultStaleDays
	}
	if c.Accounts.NeverUsedDays == 0 {
		c.Accounts.NeverUsedDays = DefaultNeverUsedDays
	}
	if c.Accounts.SharedNames == nil {
		c.Accounts.SharedNames = DefaultSharedNames
	}
	s := &c.Scan
	if s.Rate == 0 {
		s.Rate = DefaultRate
	}
	if s.Timeout.Duration == 0 {
		s.Timeout.Duration = DefaultTimeout
	}
	if s.HostTimeout.Duration == 0 {
		s.HostTimeout.Duration = DefaultHostTimeout
	}
	if s.ProbeTimeout.Duration == 0 {
		s.ProbeTimeout.Duration = DefaultProbeTimeout
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.UDPPorts == "" {
		s.UDPPorts = DefaultUDPPorts
	}
	if s.ExpiryWarnDays == 0 {
		s.ExpiryWarnDays = DefaultExpiryWarnDays
	}
	if s.ReachBudget == 0 {
		s.ReachBudget = DefaultReachBudget
	}
	if s.CrossLocation == "" {
		s.CrossLocation = CrossLocationProbe
	}
	if s.MaxParallel == 0 {
		s.MaxParallel = DefaultMaxParallel
	}
	for i := range c.Locations {
		if c.Locations[i].Ports == "" {
			c.Locations[i].Ports = DefaultPorts
		}
	}
	c.Alerts.applyDefaults()
}

func (c *Config) resolvePaths() {
	base := filepath.Dir(c.Path)
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Roster)
	if c.OSVDB == "" {
		c.OSVDB = filepath.Join(c.DataDir, "osv")
	}
	abs(&c.OSVDB)
	abs(&c.Telegraf.TokenFile)
	for i := range c.Identity {
		abs(&c.Identity[i].Path)
		abs(&c.Identity[i].PasswordFile)
		abs(&c.Identity[i].BindDNFile)
		abs(&c.Identity[i].ClientSecretFile)
		abs(&c.Identity[i].CredentialsFile)
		abs(&c.Identity[i].TokenFile)
		abs(&c.Identity[i].CAFile)
	}
	for i := range c.Software {
		abs(&c.Software[i].Path)
	}
	for i := range c.Scan.CAFiles {
		abs(&c.Scan.CAFiles[i])
	}
	for i := range c.Scan.Templates {
		abs(&c.Scan.Templates[i])
	}
	for i := range c.Rules.Dirs {
		abs(&c.Rules.Dirs[i])
	}
	c.Alerts.resolvePaths(abs)
	c.resolveReportsDir(base)
}

// Location returns the location with the given id.
func (c *Config) Location(id string) (*Location, bool) {
	for i := range c.Locations {
		if c.Locations[i].ID == id {
			return &c.Locations[i], true
		}
	}
	return nil, false
}

// Segment returns the segment with the given name.
func (l *Location) Segment(name string) (*Segment, bool) {
	for i := range l.Segments {
		if l.Segments[i].Name == name {
			return &l.Segments[i], true
		}
	}
	return nil, false
}

// SegmentOf returns the segment whose prefixes contain addr.
func (l *Location) SegmentOf(addr netip.Addr) (*Segment, bool) {
	var best *Segment
	bestBits := -1
	for i := range l.Segments {
		for _, p := range l.Segments[i].Prefixes {
			if p.Contains(addr) && p.Bits() > bestBits {
				best, bestBits = &l.Segments[i], p.Bits()
			}
		}
	}
	return best, best != nil
}

// IsInternetFacing reports whether addr is one of the location's public addresses.
func (l *Location) IsInternetFacing(addr netip.Addr) bool {
	for _, a := range l.InternetAddrs {
		if a == addr {
			return true
		}
	}
	return false
}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9-]+$`)
	statePattern = regexp.MustCompile(`^[A-Z]{2}$`)
)

func yamlErrMsg(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	if i := strings.Index(msg, ": "); i > 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return msg
}

var lineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// Parser for schedules: standard 5-field cron plus descriptors (@daily).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
