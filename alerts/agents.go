package alerts

import (
	"fmt"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// FromAgents returns a source-quiet alert for every enrolled, unrevoked
// site agent not heard from for longer than quietAfter at now: its site is
// no longer watched. The key carries the agent and when it was last heard
// from, so one silence alerts once, and the next silence (after the agent
// came back) alerts again.
func FromAgents(agents []store.Agent, now time.Time, quietAfter time.Duration, o Options) []Alert {
	var out []Alert
	for _, a := range agents {
		if !a.Quiet(now, quietAfter) {
			continue
		}
		host := a.Hostname
		if host == "" {
			host = "unnamed host"
		}
		silent := now.Sub(a.LastSeen).Round(time.Minute)
		out = append(out, Alert{
			Kind:     SourceQuiet,
			Key:      key(string(SourceQuiet), a.ID, stamp(a.LastSeen)),
			Severity: observe.High,
			Location: a.Location,
			Title:    fmt.Sprintf("Site agent at %s quiet for %s (%s)", a.Location, silent, host),
			Details: fmt.Sprintf("Agent %s (%s, version %s) at %s was last heard from at %s; nothing at this location is being scanned or delivered. "+
				"Check the sensor is powered and online and `systemctl status vigil-agent` on it; revoke it on the Agents page if it was retired.",
				a.ID, host, a.Version, a.Location, a.LastSeen.UTC().Format(time.RFC3339)),
			Target: a.ID,
			Links:  o.link("Agents", "/agents"),
			At:     now,
		})
	}
	return out
}
