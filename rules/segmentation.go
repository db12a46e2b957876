package rules

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// SegmentPolicy is what segmentation judgement needs to know about one
// location: its segments and the flows its policy allows.
type SegmentPolicy struct {
	Location string
	Segments []string
	Roles    map[string]string
	Allow    []AllowedFlow
}

// AllowedFlow is one allowed flow; no Ports means any port.
type AllowedFlow struct {
	From, To string
	Ports    []int
}

// NativeSegmentation names the rule evaluated by Segmentation.
const NativeSegmentation = "segmentation"

// allows reports whether the policy lets from reach to on port.
func (p SegmentPolicy) allows(from, to string, port int) bool {
	for _, f := range p.Allow {
		if f.From == from && f.To == to && (len(f.Ports) == 0 || slices.Contains(f.Ports, port)) {
			return true
		}
	}
	return false
}

// Segmentation builds the reachability matrix of one location from the
// services its vantage points reached in other segments, and returns a
// flat-network finding (target FROM->TO) for every pair where something the
// policy does not allow answered. Pairs whose from segment had no vantage
// in this scan are not assessed.
func (e *Engine) Segmentation(p SegmentPolicy, obs []observe.Observation, now time.Time) (observe.Matrix, []observe.Finding) {
	m := observe.Matrix{Location: p.Location, Segments: slices.Clone(p.Segments), Vantages: []string{}}
	reached := map[[2]string][]observe.Reach{}
	vantages := map[string]bool{}
	for _, o := range obs {
		if o.Location != p.Location || o.Vantage == "" {
			continue
		}
		vantages[o.Vantage] = true
		if o.Kind != observe.KindService || o.Segment == "" || o.Segment == o.Vantage {
			continue
		}
		svc, _ := o.Attrs["service"].(string)
		key := [2]string{o.Vantage, o.Segment}
		reached[key] = append(reached[key], observe.Reach{Host: o.Host, Port: o.Port, Proto: o.Proto, Service: svc,
			Allowed: p.allows(o.Vantage, o.Segment, o.Port)})
	}
	for v := range vantages {
		m.Vantages = append(m.Vantages, v)
	}
	sort.Strings(m.Vantages)
	rule, hasRule := e.nativeRule(NativeSegmentation)
	var findings []observe.Finding
	for _, from := range p.Segments {
		for _, to := range p.Segments {
			if from == to {
				continue
			}
			cell := observe.MatrixCell{From: from, To: to}
			for _, f := range p.Allow {
				if f.From == from && f.To == to {
					if len(f.Ports) == 0 {
						cell.AllowsAny = true
					}
					cell.AllowedPorts = append(cell.AllowedPorts, f.Ports...)
				}
			}
			slices.Sort(cell.AllowedPorts)
			cell.AllowedPorts = slices.Compact(cell.AllowedPorts)
			rs := reached[[2]string{from, to}]
			sort.Slice(rs, func(i, j int) bool {
				if rs[i].Host != rs[j].Host {
					return rs[i].Host < rs[j].Host
				}
				return rs[i].Port < rs[j].Port
			})
			cell.Reached = rs
			var bad []string
			for _, r := range rs {
				if !r.Allowed {
					bad = append(bad, reachString(r))
				}
			}
			switch {
			case !vantages[from]:
				cell.Status = observe.CellNotAssessed
			case len(bad) > 0:
				cell.Status = observe.CellViolation
			case len(rs) > 0:
				cell.Status = observe.CellAllowed
			default:
				cell.Status = observe.CellBlocked
			}
			m.Cells = append(m.Cells, cell)
			if len(bad) == 0 || !hasRule {
				continue
			}
			target := from + "->" + to
			sev := rule.Severity
			if sensitive(p.Roles[to]) && untrusted(p.Roles[from]) && observe.Critical.Rank() > sev.Rank() {
				sev = observe.Critical
			}
			allowed := "none"
			if cell.AllowsAny {
				allowed = "any port"
			} else if len(cell.AllowedPorts) > 0 {
				allowed = fmt.Sprint(cell.AllowedPorts)
			}
			findings = append(findings, observe.Finding{
				ID: observe.FindingID(rule.ID, p.Location, target), Rule: rule.ID, Category: rule.Category,
				Severity: sev, Title: rule.Title, Location: p.Location, Target: target,
				Controls: slices.Clone(rule.Controls), Remediation: rule.Remediation,
				Evidence: map[string]any{
					"from": from, "to": to, "from_role": p.Roles[from], "to_role": p.Roles[to],
					"seen_from": from, "reachable_against_policy": bad, "policy_allows": allowed,
					"observed_at": now.UTC().Format(time.RFC3339), "sources": []string{"nmap"},
				},
				FirstSeen: now, LastSeen: now, Status: observe.StatusOpen,
			})
		}
	}
	return m, findings
}

func reachString(r observe.Reach) string {
	s := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	if r.Proto == "udp" {
		s += "/udp"
	}
	if r.Service != "" {
		s += " " + r.Service
	}
	return s
}

// sensitive roles hold ePHI or run the systems that do.
func sensitive(role string) bool {
	return role == "clinical" || role == "servers" || role == "management"
}

func untrusted(role string) bool { return role == "guest" || role == "iot" }

// nativeRule returns the loaded rule evaluated by the named Go evaluator.
func (e *Engine) nativeRule(name string) (*Rule, bool) {
	for _, r := range e.rules {
		if r.Native == name {
			return r, true
		}
	}
	return nil, false
}
