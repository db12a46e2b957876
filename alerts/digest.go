package alerts

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/vigilhq/vigil/observe"
)

// DefaultMaxItems is how many alerts a digest lists before "and N more".
const DefaultMaxItems = 20

// Format is what the human-readable channels (Slack, Teams, email) put
// around the alerts they list.
type Format struct {
	// Organization names the tenant in subjects ("" leaves it out).
	Organization string
	// MaxItems caps the alerts listed in one message (default 20); the
	// rest are counted as "and N more".
	MaxItems int
}

// digest is one message's worth of alerts: the ones listed and how many
// more there were.
type digest struct {
	Subject string
	Summary string
	Items   []Alert
	More    int
}

func (f Format) digest(as []Alert) digest {
	as = append([]Alert(nil), as...)
	sortAlerts(as)
	max := f.MaxItems
	if max <= 0 {
		max = DefaultMaxItems
	}
	d := digest{Items: as}
	if len(as) > max {
		d.Items, d.More = as[:max], len(as)-max
	}
	prefix := "vigil"
	if f.Organization != "" {
		prefix += " (" + oneLine(f.Organization) + ")"
	}
	if len(as) == 1 {
		d.Subject = prefix + ": " + as[0].headline()
		d.Summary = "vigil saw something change for the worse."
	} else {
		d.Subject = fmt.Sprintf("%s: %d alerts (%s)", prefix, len(as), bySeverity(as))
		d.Summary = fmt.Sprintf("vigil saw %d things change for the worse (%s).", len(as), bySeverity(as))
	}
	return d
}

// bySeverity counts alerts per severity: "2 critical, 5 high".
func bySeverity(as []Alert) string {
	n := map[observe.Severity]int{}
	for _, a := range as {
		n[a.Severity]++
	}
	var parts []string
	for _, s := range observe.Severities {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// headline is one line naming the alert: "[high] downtown: RDP exposed".
func (a Alert) headline() string {
	where := a.Location
	if where == "" {
		where = "organisation"
	}
	return oneLine(fmt.Sprintf("[%s] %s: %s", a.Severity, where, a.Title))
}

// moreLine is the line that ends a capped digest.
func moreLine(n int) string {
	if n == 1 {
		return "and 1 more alert."
	}
	return fmt.Sprintf("and %d more alerts.", n)
}

// oneLine makes text safe for a header or a single line: control
// characters (CR and LF above all, which would let a hostile service
// banner add email headers) become spaces, and runs of space collapse.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
