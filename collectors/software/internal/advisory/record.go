// Package advisory reads OSV records (https://ossf.github.io/osv-schema/)
// and decides whether an installed version is affected by one, and what a
// service banner says about the package behind it. It knows nothing of
// osv-scanner or the database layout, so that its parsers can be fuzzed
// on their own.
package advisory

import (
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/google/osv-scalibr/semantic"
	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// Record is the part of an OSV record vigil reads.
type Record struct {
	ID               string         `json:"id"`
	Withdrawn        string         `json:"withdrawn"`
	Aliases          []string       `json:"aliases"`
	Upstream         []string       `json:"upstream"`
	Summary          string         `json:"summary"`
	Details          string         `json:"details"`
	Severity         []Severity     `json:"severity"`
	Affected         []Affected     `json:"affected"`
	DatabaseSpecific map[string]any `json:"database_specific"`
}

// Severity is one scored severity of a record: a CVSS vector or a
// distro's priority word.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one affected package of a record and its versions.
type Affected struct {
	Package           Package        `json:"package"`
	Ranges            []Range        `json:"ranges"`
	Versions          []string       `json:"versions"`
	Severity          []Severity     `json:"severity"`
	EcosystemSpecific map[string]any `json:"ecosystem_specific"`
	DatabaseSpecific  map[string]any `json:"database_specific"`
}

// Package names a package in an ecosystem ("Debian:12", "PyPI").
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
}

// Range is a list of introduced/fixed/last_affected events.
type Range struct {
	Type   string              `json:"type"`
	Events []map[string]string `json:"events"`
}

// ErrNoID is returned for JSON that is not an OSV record.
var ErrNoID = errors.New("not an OSV record: no id")

// Parse decodes one OSV JSON record.
func Parse(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	if r.ID == "" {
		return nil, ErrNoID
	}
	return &r, nil
}

// Ratings of a package observation's severity, highest first.
const (
	Critical = "critical"
	High     = "high"
	Medium   = "medium"
	Low      = "low"
	Unknown  = "unknown"
)

// Rank orders ratings: critical 4 ... low 1, unknown (and anything else) 0.
func Rank(rating string) int {
	switch rating {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// ratingOf maps the words advisories use (GitHub's MODERATE, Ubuntu's
// negligible, CVSS ratings) to vigil's.
func ratingOf(word string) string {
	switch strings.ToLower(strings.TrimSpace(word)) {
	case "critical":
		return Critical
	case "high", "important":
		return High
	case "medium", "moderate":
		return Medium
	case "low", "negligible":
		return Low
	}
	return Unknown
}

// cvssRating is the CVSS v3/v4 qualitative rating of a base score.
func cvssRating(score float64) string {
	switch {
	case score >= 9:
		return Critical
	case score >= 7:
		return High
	case score >= 4:
		return Medium
	case score > 0:
		return Low
	}
	return Unknown
}

// cvssScore is the base score of one severity entry; ok is false when it
// is not a CVSS vector vigil can score.
func cvssScore(s Severity) (score float64, ok bool) {
	switch s.Type {
	case "CVSS_V2":
		v, err := gocvss20.ParseVector(s.Score)
		if err != nil {
			return 0, false
		}
		return v.BaseScore(), true
	case "CVSS_V3":
		switch {
		case strings.HasPrefix(s.Score, "CVSS:3.0/"):
			v, err := gocvss30.ParseVector(s.Score)
			if err != nil {
				return 0, false
			}
			return v.BaseScore(), true
		case strings.HasPrefix(s.Score, "CVSS:3.1/"):
			v, err := gocvss31.ParseVector(s.Score)
			if err != nil {
				return 0, false
			}
			return v.BaseScore(), true
		}
	case "CVSS_V4":
		v, err := gocvss40.ParseVector(s.Score)
		if err != nil {
			return 0, false
		}
		return v.Score(), true
	}
	return 0, false
}

// Rate returns the record's highest rating and CVSS base score, from its
// CVSS vectors (record-wide and per affected package), Ubuntu's priority,
// and the database_specific.severity word GitHub and others publish. A
// record that says nothing is Unknown with score 0.
func (r *Record) Rate() (rating string, score float64) {
	rating = Unknown
	raise := func(s string) {
		if Rank(s) > Rank(rating) {
			rating = s
		}
	}
	sevs := slices.Clone(r.Severity)
	words := []any{r.DatabaseSpecific["severity"]}
	for _, a := range r.Affected {
		sevs = append(sevs, a.Severity...)
		words = append(words, a.DatabaseSpecific["severity"], a.EcosystemSpecific["severity"])
	}
	for _, s := range sevs {
		if sc, ok := cvssScore(s); ok {
			score = max(score, sc)
			raise(cvssRating(sc))
		} else if s.Type == "Ubuntu" {
			raise(ratingOf(s.Score))
		}
	}
	for _, w := range words {
		if s, ok := w.(string); ok {
			raise(ratingOf(s))
		}
	}
	return rating, score
}

// CVEs lists the CVE ids the record is, or is an alias or upstream of.
func (r *Record) CVEs() []string {
	var out []string
	for _, id := range slices.Concat([]string{r.ID}, r.Aliases, r.Upstream) {
		if strings.HasPrefix(id, "CVE-") && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Text is the record's one-line summary, or the first sentence of its
// details when it has none (Debian's records).
func (r *Record) Text() string {
	if s := strings.TrimSpace(r.Summary); s != "" {
		return s
	}
	d := strings.Join(strings.Fields(r.Details), " ")
	if i := strings.Index(d, ". "); i > 0 {
		d = d[:i+1]
	}
	if len(d) > 240 {
		d = strings.ToValidUTF8(d[:240], "") + "…"
	}
	return d
}

// NormName folds a package name the way its ecosystem does: PyPI names
// are case-insensitive and treat -, _ and . alike (PEP 503).
func NormName(ecosystem, name string) string {
	if BaseEcosystem(ecosystem) == "PyPI" {
		return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(name))
	}
	return name
}

// BaseEcosystem drops the release from an ecosystem: "Debian:12" → "Debian".
func BaseEcosystem(eco string) string {
	base, _, _ := strings.Cut(eco, ":")
	return base
}

// entries returns the record's affected entries for the package.
func (r *Record) entries(ecosystem, name string) []Affected {
	var out []Affected
	n := NormName(ecosystem, name)
	for _, a := range r.Affected {
		if a.Package.Ecosystem == ecosystem && NormName(ecosystem, a.Package.Name) == n {
			out = append(out, a)
		}
	}
	return out
}

// FixedVersions lists the versions that fix the record for the package.
func (r *Record) FixedVersions(ecosystem, name string) []string {
	var out []string
	for _, a := range r.entries(ecosystem, name) {
		for _, rg := range a.Ranges {
			for _, ev := range rg.Events {
				if f := ev["fixed"]; f != "" && !slices.Contains(out, f) {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

// Position says where an installed version stands relative to one event
// version of a range of the given type: -1 below it, 0 equal, +1 above
// it. ok is false when vigil cannot tell, and then nothing is claimed
// from that range.
type Position func(rangeType, event string) (cmp int, ok bool)

// AffectedBy reports whether the record says the package at the version
// pos describes is affected. Withdrawn records affect nothing. Only
// ECOSYSTEM and SEMVER ranges are read (GIT ranges name commits, not
// versions); a range with an event vigil cannot place is skipped, never
// guessed. Versions the record lists count when exact is one of them.
func (r *Record) AffectedBy(ecosystem, name, exact string, pos Position) bool {
	if r.Withdrawn != "" {
		return false
	}
	for _, a := range r.entries(ecosystem, name) {
		if exact != "" && slices.Contains(a.Versions, exact) {
			return true
		}
		for _, rg := range a.Ranges {
			if rg.Type != "ECOSYSTEM" && rg.Type != "SEMVER" {
				continue
			}
			if hit, ok := inRange(ecosystem, rg, pos); ok && hit {
				return true
			}
		}
	}
	return false
}

// inRange applies the OSV evaluation algorithm to one range: events in
// version order; introduced switches affected on at or above, fixed
// switches it off at or above, last_affected above.
func inRange(ecosystem string, rg Range, pos Position) (hit, ok bool) {
	type event struct {
		kind, ver string
		parsed    semantic.Version
	}
	var evs []event
	for _, e := range rg.Events {
		for _, kind := range []string{"introduced", "fixed", "last_affected"} {
			v, has := e[kind]
			if !has {
				continue
			}
			ev := event{kind: kind, ver: v}
			if !(kind == "introduced" && v == "0") {
				p, err := ParseVersion(rg.Type, ecosystem, v)
				if err != nil {
					return false, false
				}
				ev.parsed = p
			}
			evs = append(evs, ev)
		}
	}
	var sortErr bool
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if a.parsed == nil || b.parsed == nil {
			return a.parsed == nil && b.parsed != nil
		}
		c, err := a.parsed.Compare(b.parsed)
		if err != nil {
			sortErr = true
		}
		return c < 0
	})
	if sortErr {
		return false, false
	}
	affected := false
	for _, ev := range evs {
		if ev.parsed == nil {
			affected = true // introduced "0": from the first version
			continue
		}
		c, ok := pos(rg.Type, ev.ver)
		if !ok {
			return false, false
		}
		switch ev.kind {
		case "introduced":
			if c >= 0 {
				affected = true
			}
		case "fixed":
			if c >= 0 {
				affected = false
			}
		case "last_affected":
			if c > 0 {
				affected = false
			}
		}
	}
	return affected, true
}

// ParseVersion parses a version of a range: SEMVER ranges use Semantic
// Versioning whatever the ecosystem, ECOSYSTEM ranges the ecosystem's own
// ordering (dpkg's for Debian, PEP 440 for PyPI, ...).
func ParseVersion(rangeType, ecosystem, v string) (semantic.Version, error) {
	if rangeType == "SEMVER" {
		return semantic.ParseSemverVersion(strings.TrimPrefix(v, "v")), nil
	}
	return semantic.Parse(v, ecosystem)
}

// ExactPosition places a version known exactly (a lockfile entry, a
// Debian banner with its revision). A version the ecosystem cannot parse
// is placed nowhere.
func ExactPosition(ecosystem, installed string) Position {
	return func(rangeType, event string) (int, bool) {
		v, err := ParseVersion(rangeType, ecosystem, installed)
		if err != nil {
			return 0, false
		}
		if rangeType == "SEMVER" {
			event = strings.TrimPrefix(event, "v")
		}
		c, err := v.CompareStr(event)
		if err != nil {
			return 0, false
		}
		return c, true
	}
}

// SortVersions orders versions the ecosystem's way where it can parse
// them, and as strings otherwise.
func SortVersions(ecosystem string, vs []string) {
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if pa, err := ParseVersion("ECOSYSTEM", ecosystem, a); err == nil {
			if c, err := pa.CompareStr(b); err == nil {
				return c < 0
			}
		}
		return a < b
	})
}
