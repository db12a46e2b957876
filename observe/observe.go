// Package observe holds the facts vigil collects and the judgements rules make
// over them. It is the lowest package in the tree: scanners and collectors
// produce Observations, rules turn them into Findings, and the store, the
// dashboard and the reports read both.
package observe

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Kind names what an observation is about.
type Kind string

// Observation kinds. The scanner produces host through reach; collectors
// produce account (identity systems), package (software inventories) and
// metric (telegraf).
const (
	KindHost    Kind = "host"    // a host answered discovery
	KindService Kind = "service" // an open port and what runs there
	KindTLS     Kind = "tls"     // what a TLS handshake showed
	KindCheck   Kind = "check"   // a check (nuclei template, native probe) matched
	KindSSH     Kind = "ssh"     // what an SSH server said about itself (host key, login methods)
	KindReach   Kind = "reach"   // one probe of the segmentation test: host:port and its state, from a vantage
	KindAccount Kind = "account" // one account in an identity system
	KindPackage Kind = "package" // one software package (and its known vulnerabilities) in a lockfile, SBOM or image, or behind a service banner
	KindMetric  Kind = "metric"  // one telegraf metric: measurement, tags and fields
)

// Observation is one fact seen at one place and time: "10.1.2.5:3389 open,
// service ms-wbt-server, seen from front-desk at 02:00". Attrs holds the
// kind-specific facts; their keys are documented in docs/observations.md and
// are what rule expressions see as obs.<key>.
type Observation struct {
	Kind     Kind   `json:"kind"`
	Location string `json:"location"`
	// Segment and SegmentRole describe where the target address lives.
	Segment     string `json:"segment,omitempty"`
	SegmentRole string `json:"segment_role,omitempty"`
	// Vantage and VantageRole describe where the probe was sent from;
	// empty when the sensor is not inside any configured segment.
	Vantage     string `json:"vantage,omitempty"`
	VantageRole string `json:"vantage_role,omitempty"`
	// InternetFacing is true when Host is one of the location's public addresses.
	InternetFacing bool   `json:"internet_facing,omitempty"`
	Host           string `json:"host"`
	Port           int    `json:"port,omitempty"`
	Proto          string `json:"proto,omitempty"` // tcp | udp
	// Source names the check that produced the observation (nmap, tls, nuclei, ssh).
	Source string         `json:"source"`
	At     time.Time      `json:"at"`
	Attrs  map[string]any `json:"attrs,omitempty"`
}

// Target is the CONTRACT.md target of the observation: IP:PORT for a
// service, IP for a host, SYSTEM:USERNAME for an account,
// FILE:PACKAGE@VERSION for a software package.
func (o Observation) Target() string {
	switch o.Kind {
	case KindAccount:
		// SYSTEM:USERNAME
		sys, _ := o.Attrs["system"].(string)
		user, _ := o.Attrs["username"].(string)
		return sys + ":" + user
	case KindPackage:
		if o.Host != "" {
			break // a version behind a service banner: IP:PORT
		}
		// FILE:PACKAGE@VERSION
		file, _ := o.Attrs["file"].(string)
		pkg, _ := o.Attrs["package"].(string)
		ver, _ := o.Attrs["version"].(string)
		return file + ":" + pkg + "@" + ver
	}
	if o.Port == 0 {
		return o.Host
	}
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}

// Severity ranks a finding. The zero value is invalid.
type Severity string

// Severities, highest first.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
	Info     Severity = "info"
)

// Severities lists every severity, highest first.
var Severities = []Severity{Critical, High, Medium, Low, Info}

// Rank orders severities: critical is 5, info is 1, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 5
	case High:
		return 4
	case Medium:
		return 3
	case Low:
		return 2
	case Info:
		return 1
	}
	return 0
}

// Valid reports whether s is one of the five severities.
func (s Severity) Valid() bool { return s.Rank() > 0 }

// Category is one of the finding categories in PRODUCT.md. Names are part of
// the public contract.
type Category string

// Categories lists every valid finding category.
var Categories = []Category{
	"flat-network", "exposed-service", "plaintext-protocol", "weak-tls",
	"default-credentials", "missing-mfa", "stale-account", "shared-account",
	"vulnerable-software", "unknown-asset", "administrative",
}

// Valid reports whether c is a known category.
func (c Category) Valid() bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

// Status is the lifecycle state of a finding.
type Status string

// Finding statuses.
const (
	StatusOpen          Status = "open"
	StatusResolved      Status = "resolved"
	StatusAccepted      Status = "accepted"
	StatusFalsePositive Status = "false-positive"
)

// Finding is a judgement a rule made over observations. Its JSON shape is
// the one in CONTRACT.md.
type Finding struct {
	ID          string         `json:"id"`
	Rule        string         `json:"rule"`
	Category    Category       `json:"category"`
	Severity    Severity       `json:"severity"`
	Title       string         `json:"title"`
	Location    string         `json:"location"`
	Target      string         `json:"target"`
	Controls    []string       `json:"controls"`
	Evidence    map[string]any `json:"evidence"`
	Remediation string         `json:"remediation,omitempty"`
	FirstSeen   time.Time      `json:"first_seen"`
	LastSeen    time.Time      `json:"last_seen"`
	Status      Status         `json:"status"`
	// Vantage is the segment the finding was seen from ("" when where the
	// probes came from does not matter). Only a scan from that vantage
	// point can resolve it.
	Vantage string `json:"vantage,omitempty"`
	// Decision is the person's judgement behind an accepted or
	// false-positive status; nil otherwise.
	Decision *Decision `json:"decision,omitempty"`
}

// Decision is a person's judgement on a finding: accepted as a risk, or a
// false positive. It always names who, why and until when: on expiry the
// finding reopens, so nothing is accepted for ever by forgetting it.
type Decision struct {
	Status  Status    `json:"status"` // accepted or false-positive
	By      string    `json:"by"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	Expires time.Time `json:"expires"`
	// Risk is the risk-register entry the acceptance was made through,
	// if any.
	Risk string `json:"risk,omitempty"`
}

// StatusAt is the finding's status as of now: an acceptance or
// false-positive whose decision has expired counts as open again, even
// before the store has recorded the reopening.
func (f *Finding) StatusAt(now time.Time) Status {
	if (f.Status == StatusAccepted || f.Status == StatusFalsePositive) && f.Decision != nil &&
		!f.Decision.Expires.IsZero() && !now.Before(f.Decision.Expires) {
		return StatusOpen
	}
	return f.Status
}

// FindingID is the stable id of a finding: a hash of rule, location and
// target, so the same weakness keeps its id across scans and machines.
func FindingID(rule, location, target string) string {
	h := sha256.Sum256([]byte(rule + "\x00" + location + "\x00" + target))
	return hex.EncodeToString(h[:12])
}

// RuleMeta is what a rule says about itself: everything a report or a SARIF
// file needs to explain a finding without the rule's match expression.
type RuleMeta struct {
	ID          string   `json:"id" yaml:"id"`
	Category    Category `json:"category" yaml:"category"`
	Severity    Severity `json:"severity" yaml:"severity"`
	Title       string   `json:"title" yaml:"title"`
	Description string   `json:"description,omitempty" yaml:"description"`
	Remediation string   `json:"remediation,omitempty" yaml:"remediation"`
	Controls    []string `json:"controls" yaml:"controls"`
}

// Scan describes one run of the checks over one or more locations.
type Scan struct {
	ID         string    `json:"id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Version    string    `json:"version"`
	Locations  []string  `json:"locations"`
	// Complete is false when the scan was cancelled or a check failed; an
	// incomplete scan never resolves findings it did not see.
	Complete bool `json:"complete"`
	// Errors lists checks that could not run, one line each.
	Errors []string `json:"errors,omitempty"`
	// Vantages maps each location to the segments this scan probed from;
	// a complete scan resolves only findings seen from one of them (or
	// from nowhere in particular).
	Vantages map[string][]string `json:"vantages,omitempty"`
	// Categories, when set, are the only finding categories this scan
	// checked (vigil scan --only segmentation): it resolves nothing else.
	Categories []Category `json:"categories,omitempty"`
	// Sources are the identity and software sources this scan read in
	// full ("csv:emr", "ldap:ad", "osv-scanner"). Findings about accounts
	// and packages carry their source as Vantage and an empty Location; a
	// scan resolves them only when it read their source in full, whatever
	// happened to the network part.
	Sources []string `json:"sources,omitempty"`
	// SourceErrors are problems reading a source (a bad CSV row, an API
	// that refused): that source is then not in Sources.
	SourceErrors []string `json:"source_errors,omitempty"`
}

// CellStatus is the verdict on one (from, to) pair of a location's
// segments.
type CellStatus string

// Reachability verdicts. A pair nobody probed is NotAssessed, never
// compliant.
const (
	CellAllowed     CellStatus = "allowed"                  // reachable, and the policy allows it
	CellBlocked     CellStatus = "blocked-as-intended"      // probed; nothing outside the policy answered
	CellViolation   CellStatus = "reachable-against-policy" // something the policy does not allow answered
	CellNotAssessed CellStatus = "not-assessed"             // no vantage in the from segment this scan
)

// Reach is one service that answered across segments.
type Reach struct {
	Host    string `json:"host"`
	Port    int    `json:"port"`
	Proto   string `json:"proto"`
	Service string `json:"service,omitempty"`
	// Allowed is true when the policy allows this flow.
	Allowed bool `json:"allowed"`
}

// MatrixCell is the verdict for traffic from one segment to another, with
// the services that prove it.
type MatrixCell struct {
	From   string     `json:"from"`
	To     string     `json:"to"`
	Status CellStatus `json:"status"`
	// AllowedPorts are the ports the policy allows from From to To
	// (empty: none; ["*"]-like "any" is AllowsAny).
	AllowedPorts []int   `json:"allowed_ports,omitempty"`
	AllowsAny    bool    `json:"allows_any,omitempty"`
	Reached      []Reach `json:"reached,omitempty"`
	// Probes counts the segmentation test's host:port probes from From to
	// To (HostsProbed sampled hosts), by the state they found.
	Probes      int `json:"probes,omitempty"`
	HostsProbed int `json:"hosts_probed,omitempty"`
	Open        int `json:"open,omitempty"`
	Closed      int `json:"closed,omitempty"`
	Filtered    int `json:"filtered,omitempty"`
	// Inferred explains a verdict reached without a vantage point in From:
	// a shared broadcast domain or a multi-homed host joins the segments.
	Inferred []string `json:"inferred,omitempty"`
}

// Matrix is one location's segments × segments reachability, as the scan
// saw it from its vantage points.
type Matrix struct {
	Location string   `json:"location"`
	Segments []string `json:"segments"`
	// Vantages are the segments probed from in this scan.
	Vantages []string     `json:"vantages"`
	Cells    []MatrixCell `json:"cells"`
	// Remote are cells from this location's segments to other locations'
	// segments (To is LOCATION/SEGMENT): a site-to-site link without ACLs
	// shows here.
	Remote []MatrixCell `json:"remote,omitempty"`
}

// EvidenceString renders one evidence value for people: a string as it is,
// anything else as JSON. Reports and the dashboard show evidence the same way.
func EvidenceString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Attestation is a person's dated record that an administrative safeguard
// is in place ("the annual training happened on 2026-03-02, sign-in sheet
// attached"), as stored. It lives here so that the store can keep it
// without knowing the catalog that gives it meaning.
type Attestation struct {
	ID string `json:"id,omitempty"`
	// Kind is one of the catalog's attestation kinds.
	Kind string `json:"kind"`
	// Location is the location id it is about; "" for the whole
	// organisation (it counts at every location).
	Location string `json:"location,omitempty"`
	// At is when the thing attested was done.
	At time.Time `json:"at"`
	// ExpiresAt overrides the kind's valid_days when set.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	By        string    `json:"by,omitempty"`
	Note      string    `json:"note,omitempty"`
	// Owner is who is responsible for the safeguard (may differ from By,
	// who recorded it).
	Owner string `json:"owner,omitempty"`
	// Subject is what it is about, where the kind needs one: the person
	// trained, the vendor whose BAA it is.
	Subject string `json:"subject,omitempty"`
	// Result is the outcome where the kind has one: pass or fail for a
	// restore drill, signed or missing for a BAA.
	Result string `json:"result,omitempty"`
	// Document is the sha256 of the attached document ("" for none).
	Document   string    `json:"document,omitempty"`
	RecordedAt time.Time `json:"recorded_at,omitzero"`
}

// failingResults are results that record a failure (a restore drill that
// did not restore, a vendor without a BAA): evidence of a gap, not of a
// safeguard.
var failingResults = [...]string{"fail", "failed", "missing", "not-signed", "unsigned"}

// Counts reports whether the record may satisfy a control.
func (a Attestation) Counts() bool {
	for _, f := range failingResults {
		if strings.EqualFold(a.Result, f) {
			return false
		}
	}
	return true
}

// Treatment is how an organisation answers a risk (NIST SP 800-39 risk
// response): reduce it, accept it, or share it with another party.
type Treatment string

// Treatments. Names are part of the public contract.
const (
	TreatMitigate Treatment = "mitigate"
	TreatAccept   Treatment = "accept"
	TreatTransfer Treatment = "transfer"
)

// RiskTreatment is one entry in a risk's register history: who decided
// what about it, when. The latest entry for a risk is its current state;
// entries are never changed, only followed by newer ones.
type RiskTreatment struct {
	ID   string `json:"id,omitempty"`
	Risk string `json:"risk"`
	By   string `json:"by"`
	// Owner answers for the risk.
	Owner     string    `json:"owner,omitempty"`
	Treatment Treatment `json:"treatment,omitempty"`
	// Due is when mitigation is due; zero for the register's default.
	Due time.Time `json:"due,omitzero"`
	// Likelihood and Impact override the derived levels ("" keeps them).
	Likelihood string `json:"likelihood,omitempty"`
	Impact     string `json:"impact,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// Expires ends an acceptance; the risk and its findings reopen then.
	Expires    time.Time `json:"expires,omitzero"`
	RecordedAt time.Time `json:"recorded_at,omitzero"`
}
