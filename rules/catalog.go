package rules

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Frameworks a control can belong to.
const (
	FrameworkHIPAA     = "hipaa"
	FrameworkCPG       = "cpg"
	FrameworkInsurance = "insurance"
	FrameworkState     = "state"
)

// EvidencedBy says what can show a control is in place.
type EvidencedBy string

// How controls are evidenced. docs/controls.md explains each.
const (
	// ByRules: a complete, recent scan that ran the rules citing the
	// control found nothing open.
	ByRules EvidencedBy = "rules"
	// ByAttestation: a person recorded, and keeps current, one of the
	// control's attestation kinds. No scan can see it.
	ByAttestation EvidencedBy = "attestation"
	// ByBoth: rules and an attestation, each for its part.
	ByBoth EvidencedBy = "both"
	// BySpecifications: a HIPAA standard with no evidence of its own; its
	// implementation specifications are its evidence.
	BySpecifications EvidencedBy = "specifications"
)

// Rules reports whether scans evidence (part of) the control.
func (e EvidencedBy) Rules() bool { return e == ByRules || e == ByBoth }

// Attestation reports whether an attestation evidences (part of) the control.
func (e EvidencedBy) Attestation() bool { return e == ByAttestation || e == ByBoth }

// HIPAA requirement levels (Control.ROrA).
const (
	Required    = "R"
	Addressable = "A"
	Standard    = "S"
)

// Control is one entry of the control catalog: a HIPAA Security Rule
// citation, an HPH CPG goal, an insurance question or a state overlay.
type Control struct {
	ID        string `yaml:"id" json:"id"`
	Citation  string `yaml:"citation" json:"citation"`
	Framework string `yaml:"framework" json:"framework"`
	Title     string `yaml:"title" json:"title"`
	// ROrA is R (required), A (addressable) or S (a standard whose
	// specifications carry the distinction); empty outside HIPAA.
	ROrA string `yaml:"r_or_a" json:"r_or_a,omitempty"`
	// Standard is, for a HIPAA implementation specification, the id of
	// the standard it implements.
	Standard string `yaml:"standard" json:"standard,omitempty"`
	// Status is current (binding law), voluntary or contractual.
	Status       string      `yaml:"status" json:"status"`
	EvidencedBy  EvidencedBy `yaml:"evidenced_by" json:"evidenced_by"`
	Attestations []string    `yaml:"attestations" json:"attestations,omitempty"`
	// States lists the two-letter states a state overlay applies to.
	States []string `yaml:"states" json:"states,omitempty"`
	Note   string   `yaml:"note" json:"note,omitempty"`
	// NewHireTraining is, on a state overlay whose law sets one, the
	// deadline for training each new workforce member; nil where the
	// state's statute gives no number.
	NewHireTraining *TrainingDeadline `yaml:"new_hire_training" json:"new_hire_training,omitempty"`
}

// TrainingDeadline is a statutory per-person training deadline counted from
// the date of hire ("not later than the 90th day after the date the
// employee is hired").
type TrainingDeadline struct {
	// Kind is the attestation kind that documents the training; it is one
	// of the control's attestations, and a record of it names the people
	// trained in its subject.
	Kind string `yaml:"kind" json:"kind"`
	// WithinDays is the deadline in days after the date of hire.
	WithinDays int `yaml:"within_days" json:"within_days"`
	// Citation is the provision that sets the deadline; reminders quote it.
	Citation string `yaml:"citation" json:"citation"`
}

// Deadline is the date by which someone hired at hired must be trained.
func (d TrainingDeadline) Deadline(hired time.Time) time.Time {
	return hired.AddDate(0, 0, d.WithinDays)
}

// AppliesIn reports whether the control applies to a location in state (a
// two-letter code, any case; "" for a location without one). Only state
// overlays are limited.
func (k Control) AppliesIn(state string) bool {
	if len(k.States) == 0 {
		return true
	}
	return slices.Contains(k.States, strings.ToUpper(strings.TrimSpace(state)))
}

// AttestationKind is one kind of record a person makes that an
// administrative safeguard is in place.
type AttestationKind struct {
	Kind  string `yaml:"kind" json:"kind"`
	Title string `yaml:"title" json:"title"`
	// ValidDays is how long an attestation of this kind counts unless it
	// carries its own expiry: vigil's reminder interval, not a
	// regulatory period.
	ValidDays int `yaml:"valid_days" json:"valid_days"`
}

// Catalog is the embedded, versioned control catalog.
type Catalog struct {
	// Version names this edition of the catalog ("2026.11"); reports show
	// it with every control status.
	Version          string            `yaml:"version"`
	AttestationKinds []AttestationKind `yaml:"attestation_kinds"`
	Controls         []Control         `yaml:"controls"`
	byID             map[string]Control
	kinds            map[string]AttestationKind
	specs            map[string][]string
}

// LoadCatalog parses the embedded catalog and checks it.
func LoadCatalog() (*Catalog, error) {
	data, err := embedded.ReadFile("catalog/controls.yaml")
	if err != nil {
		return nil, err
	}
	return ParseCatalog(data)
}

var (
	versionPattern = regexp.MustCompile(`^[0-9]{4}\.[0-9]{1,2}(\.[0-9]+)?$`)
	kindPattern    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	statePattern   = regexp.MustCompile(`^[A-Z]{2}$`)
)

// ParseCatalog parses and checks a catalog document. Every problem is
// reported, each naming the control it is about.
func ParseCatalog(data []byte) (*Catalog, error) {
	var c Catalog
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("control catalog: %w", err)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("control catalog: "+format, args...))
	}
	if !versionPattern.MatchString(c.Version) {
		bad("version %q must look like YEAR.MONTH (e.g. \"2026.11\")", c.Version)
	}
	c.kinds = map[string]AttestationKind{}
	for _, a := range c.AttestationKinds {
		switch {
		case !kindPattern.MatchString(a.Kind):
			bad("attestation kind %q must be lower-case words joined by dashes", a.Kind)
		case a.Title == "":
			bad("attestation kind %q has no title", a.Kind)
		case a.ValidDays <= 0:
			bad("attestation kind %q: valid_days must be positive", a.Kind)
		}
		if _, dup := c.kinds[a.Kind]; dup {
			bad("duplicate attestation kind %q", a.Kind)
		}
		c.kinds[a.Kind] = a
	}
	c.byID = map[string]Control{}
	for i := range c.Controls {
		k := &c.Controls[i]
		if k.Status == "" && (k.Framework == FrameworkHIPAA || k.Framework == FrameworkState) {
			k.Status = "current" // binding law
		}
		if k.ID == "" || k.Title == "" {
			bad("entry without id or title: %+v", *k)
			continue
		}
		if _, dup := c.byID[k.ID]; dup {
			bad("duplicate id %q", k.ID)
		}
		c.byID[k.ID] = *k
	}
	used := map[string]bool{}
	c.specs = map[string][]string{}
	for _, k := range c.Controls {
		for _, msg := range c.check(k) {
			bad("%s: %s", k.ID, msg)
		}
		for _, a := range k.Attestations {
			used[a] = true
		}
		if k.Standard != "" {
			c.specs[k.Standard] = append(c.specs[k.Standard], k.ID)
		}
	}
	for _, k := range c.Controls {
		if k.EvidencedBy == BySpecifications && len(c.specs[k.ID]) == 0 {
			bad("%s: evidenced_by specifications, but no control names it as its standard", k.ID)
		}
	}
	for _, a := range c.AttestationKinds {
		if !used[a.Kind] {
			bad("attestation kind %q satisfies no control", a.Kind)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// check returns what is wrong with one control.
func (c *Catalog) check(k Control) []string {
	var out []string
	prefix, local, _ := strings.Cut(k.ID, ":")
	if prefix != k.Framework || local == "" {
		out = append(out, fmt.Sprintf("id must be %s:<id> for framework %q", k.Framework, k.Framework))
	}
	if k.Citation == "" {
		out = append(out, "citation is required")
	}
	if !slices.Contains([]string{"current", "voluntary", "contractual"}, k.Status) {
		out = append(out, fmt.Sprintf("status %q must be current, voluntary or contractual", k.Status))
	}
	switch k.Framework {
	case FrameworkHIPAA:
		if want := "45 CFR " + local; k.Citation != want {
			out = append(out, fmt.Sprintf("citation %q does not match the id (want %q)", k.Citation, want))
		}
		if !slices.Contains([]string{Required, Addressable, Standard}, k.ROrA) {
			out = append(out, fmt.Sprintf("r_or_a %q must be R, A or S", k.ROrA))
		}
		if k.Standard != "" {
			if s, ok := c.byID[k.Standard]; !ok || s.ROrA != Standard {
				out = append(out, fmt.Sprintf("standard %q is not a standard (r_or_a S) in the catalog", k.Standard))
			}
		}
		if k.ROrA == Standard && k.Standard != "" {
			out = append(out, "a standard names no standard of its own")
		}
	case FrameworkCPG, FrameworkInsurance, FrameworkState:
		if k.ROrA != "" || k.Standard != "" {
			out = append(out, "r_or_a and standard are for HIPAA controls only")
		}
	default:
		out = append(out, fmt.Sprintf("unknown framework %q (hipaa, cpg, insurance, state)", k.Framework))
	}
	if k.Framework == FrameworkState {
		if len(k.States) == 0 {
			out = append(out, "a state overlay lists the states it applies to (states: [CA])")
		}
		for _, s := range k.States {
			if !statePattern.MatchString(s) {
				out = append(out, fmt.Sprintf("state %q must be a two-letter code in capitals", s))
			}
		}
	} else if len(k.States) > 0 {
		out = append(out, "only state overlays list states")
	}
	switch k.EvidencedBy {
	case ByRules:
		if len(k.Attestations) > 0 {
			out = append(out, "evidenced_by rules lists no attestations (use both)")
		}
	case ByAttestation, ByBoth:
		if len(k.Attestations) == 0 {
			out = append(out, fmt.Sprintf("evidenced_by %s needs the attestation kinds that satisfy it", k.EvidencedBy))
		}
	case BySpecifications:
		if k.ROrA != Standard {
			out = append(out, "only a standard (r_or_a S) is evidenced by its specifications")
		}
		if len(k.Attestations) > 0 {
			out = append(out, "evidenced_by specifications lists no attestations")
		}
	default:
		out = append(out, fmt.Sprintf("evidenced_by %q must be rules, attestation, both or specifications", k.EvidencedBy))
	}
	for _, a := range k.Attestations {
		if _, ok := c.kinds[a]; !ok {
			out = append(out, fmt.Sprintf("attestation kind %q is not in attestation_kinds", a))
		}
	}
	if d := k.NewHireTraining; d != nil {
		// A per-person deadline is a state statute's: HIPAA says only
		// "periodic", and no attestation kind could carry it elsewhere.
		if k.Framework != FrameworkState {
			out = append(out, "new_hire_training is for state overlays only")
		}
		if d.WithinDays <= 0 {
			out = append(out, fmt.Sprintf("new_hire_training: within_days must be positive, not %d", d.WithinDays))
		}
		if strings.TrimSpace(d.Citation) == "" {
			out = append(out, "new_hire_training: citation is required (the provision that sets the deadline)")
		}
		if !slices.Contains(k.Attestations, d.Kind) {
			out = append(out, fmt.Sprintf("new_hire_training: kind %q must be one of the control's attestations %v", d.Kind, k.Attestations))
		}
	}
	return out
}

// Control returns the catalog entry for id.
func (c *Catalog) Control(id string) (Control, bool) {
	k, ok := c.byID[id]
	return k, ok
}

// IDs returns every control id, sorted.
func (c *Catalog) IDs() []string {
	out := make([]string, 0, len(c.byID))
	for id := range c.byID {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Specifications returns the ids of the implementation specifications of a
// HIPAA standard, in catalog order.
func (c *Catalog) Specifications(standard string) []string {
	return slices.Clone(c.specs[standard])
}

// TrainingDeadlines returns the controls carrying a new-hire training
// deadline, in catalog order.
func (c *Catalog) TrainingDeadlines() []Control {
	var out []Control
	for _, k := range c.Controls {
		if k.NewHireTraining != nil {
			out = append(out, k)
		}
	}
	return out
}

// AttestationKind returns the catalog's entry for an attestation kind.
func (c *Catalog) AttestationKind(kind string) (AttestationKind, bool) {
	a, ok := c.kinds[kind]
	return a, ok
}
