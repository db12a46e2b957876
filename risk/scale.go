// Package risk keeps the risk register: it derives risks from findings and
// unmet controls, rates each by likelihood and impact on the NIST SP 800-30
// Rev. 1 scales, and joins the decisions people recorded (owner, treatment,
// due date, acceptance). It also traces a risk or control down to the
// findings, observations and evidence-log entries behind it, and measures
// time to remediate; it reads the store and never scans.
package risk

import (
	"fmt"
	"strings"
)

// Level is a qualitative value on the five-step scales of NIST SP 800-30
// Rev. 1, Appendices G (likelihood, Table G-5), H (impact, Table H-3) and
// I (risk, Table I-2).
type Level int

// Levels, lowest first. The zero value is "not rated".
const (
	VeryLow Level = iota + 1
	Low
	Moderate
	High
	VeryHigh
)

// Levels lists the levels, lowest first.
var Levels = []Level{VeryLow, Low, Moderate, High, VeryHigh}

var levelNames = [...]string{"", "very-low", "low", "moderate", "high", "very-high"}

// String is the level's name as the JSON output and the CLI write it.
func (l Level) String() string {
	if l < VeryLow || l > VeryHigh {
		return ""
	}
	return levelNames[l]
}

// Label is the level as 800-30 writes it: "Very High".
func (l Level) Label() string {
	words := strings.Split(l.String(), "-")
	for i, w := range words {
		if w != "" {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

// Score is the semi-quantitative value 800-30 gives each level (0, 2, 5,
// 8, 10 in Tables G-5, H-3 and I-2), which reports use to sort and sum.
func (l Level) Score() int {
	return [...]int{0, 0, 2, 5, 8, 10}[max(0, min(int(l), 5))]
}

// MarshalText writes the level's name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level's name (see ParseLevel).
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel reads a level: "very-low", "low", "moderate", "high",
// "very-high" (case and separators free: "Very High", "very_high"), or the
// initials VL, L, M, H, VH.
func ParseLevel(s string) (Level, error) {
	norm := strings.ToLower(strings.NewReplacer(" ", "-", "_", "-").Replace(strings.TrimSpace(s)))
	switch norm {
	case "vl":
		return VeryLow, nil
	case "l":
		return Low, nil
	case "m", "medium":
		return Moderate, nil
	case "h":
		return High, nil
	case "vh":
		return VeryHigh, nil
	}
	for i, n := range levelNames {
		if n != "" && n == norm {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("unknown level %q (want very-low, low, moderate, high or very-high)", s)
}

// riskMatrix is NIST SP 800-30 Rev. 1 Table I-2, "Assessment scale - level
// of risk (combination of likelihood and impact)": rows are likelihood,
// columns impact, both from very low to very high.
var riskMatrix = [5][5]Level{
	VeryLow - 1:  {VeryLow, VeryLow, VeryLow, Low, Low},
	Low - 1:      {VeryLow, Low, Low, Low, Moderate},
	Moderate - 1: {VeryLow, Low, Moderate, Moderate, High},
	High - 1:     {VeryLow, Low, Moderate, High, VeryHigh},
	VeryHigh - 1: {VeryLow, Low, Moderate, High, VeryHigh},
}

// Combine is the level of risk for a likelihood and an impact (Table I-2).
// An unrated input gives an unrated risk.
func Combine(likelihood, impact Level) Level {
	if likelihood < VeryLow || likelihood > VeryHigh || impact < VeryLow || impact > VeryHigh {
		return 0
	}
	return riskMatrix[likelihood-1][impact-1]
}
