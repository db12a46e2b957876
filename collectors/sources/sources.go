// Package sources builds the collectors a configuration names: one per
// identity source, the software inventory, and the telegraf inputs. It is
// the one place that knows every collector package.
package sources

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/csvidentity"
	"github.com/vigilhq/vigil/collectors/entra"
	"github.com/vigilhq/vigil/collectors/google"
	"github.com/vigilhq/vigil/collectors/ldapidentity"
	"github.com/vigilhq/vigil/collectors/okta"
	softwarecol "github.com/vigilhq/vigil/collectors/software"
	"github.com/vigilhq/vigil/collectors/telegrafin"
	"github.com/vigilhq/vigil/config"
)

// Parts of a scan --only can select.
const (
	PartIdentity = "identity"
	PartSoftware = "software"
	PartTelegraf = "telegraf"
)

// Source is a collector and the part of the scan it belongs to.
type Source struct {
	collectors.Collector
	Part string
	// Location is the telegraf input's location ("" for the others).
	Location string
	// OnAgent is set for a telegraf input of a location its site agents
	// scan (scanned_by: agent): the agents read it, not vigil serve.
	OnAgent bool
}

// FromConfig returns the configured sources, in configuration order. A
// source whose settings cannot work (an unknown type, a missing field) is
// an error naming its configuration field; no network is touched.
func FromConfig(cfg *config.Config) ([]Source, error) {
	var out []Source
	var errs []error
	for i, id := range cfg.Identity {
		c, err := identity(id)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity[%d] (%s): %w", i, id.System, err))
			continue
		}
		out = append(out, Source{Collector: c, Part: PartIdentity})
	}
	sw, tg, err := extra(cfg)
	errs = append(errs, err)
	for _, c := range sw {
		out = append(out, Source{Collector: c, Part: PartSoftware})
	}
	for i, c := range tg { // NewAll builds every input or none, in order
		in := cfg.Telegraf.Inputs[i]
		out = append(out, Source{Collector: c, Part: PartTelegraf, Location: in.Location, OnAgent: cfg.RunsOnAgent(in)})
	}
	return out, errors.Join(errs...)
}

// NoneOf explains why no source of part is left to read here: the
// configuration has none, or each is read by a site agent (all is the
// list before ServerSide); onAgent is true in the second case.
func NoneOf(all []Source, part string) (why string, onAgent bool) {
	if slices.ContainsFunc(all, func(s Source) bool { return s.Part == part && s.OnAgent }) {
		return fmt.Sprintf("every %s source belongs to a location its site agents scan (scanned_by: agent), and they read it", part), true
	}
	return fmt.Sprintf("the configuration has no %s source", part), false
}

// ServerSide drops the sources site agents read (OnAgent), keeping
// those of the given locations, which the caller scans itself.
func ServerSide(srcs []Source, keep ...string) []Source {
	return slices.DeleteFunc(slices.Clone(srcs), func(s Source) bool {
		return s.OnAgent && !slices.Contains(keep, s.Location)
	})
}

// Select keeps the sources of the given parts (all when parts is empty).
func Select(srcs []Source, parts ...string) []collectors.Collector {
	var out []collectors.Collector
	for _, s := range srcs {
		if len(parts) == 0 || slices.Contains(parts, s.Part) {
			out = append(out, s.Collector)
		}
	}
	return out
}

// Names lists the sources' names, for plans and logs.
func Names(srcs []Source) string {
	var n []string
	for _, s := range srcs {
		n = append(n, s.Name())
	}
	return strings.Join(n, ", ")
}

func identity(src config.IdentitySource) (collectors.Collector, error) {
	switch src.Type {
	case "csv":
		return csvidentity.Source{Config: src}, nil
	}
	return identityExtra(src)
}

// Services returns the matcher that looks up the versions of the services
// a network scan found in the offline OSV database, or nil and the reason
// when there is no database to look in.
func Services(cfg *config.Config) (*softwarecol.Scanner, string) {
	entries, err := os.ReadDir(cfg.OSVDB)
	if err != nil || len(entries) == 0 {
		return nil, fmt.Sprintf("no OSV database at %s: service versions are not checked for known vulnerabilities (see docs/software.md)", cfg.OSVDB)
	}
	return softwarecol.New(cfg), ""
}

// identityExtra builds the identity collectors other than CSV.
func identityExtra(src config.IdentitySource) (collectors.Collector, error) {
	switch src.Type {
	case "entra":
		return entra.New(src)
	case "google":
		return google.New(src)
	case "okta":
		return okta.New(src)
	case "ldap":
		return ldapidentity.New(src)
	}
	return nil, fmt.Errorf("identity source type %q is not available in this build", src.Type)
}

// extra builds the software and telegraf collectors.
func extra(cfg *config.Config) (software, telegraf []collectors.Collector, err error) {
	if len(cfg.Software) > 0 {
		software = append(software, softwarecol.New(cfg))
	}
	inputs, err := telegrafin.NewAll(cfg.Telegraf)
	for _, in := range inputs {
		telegraf = append(telegraf, in)
	}
	return software, telegraf, err
}
