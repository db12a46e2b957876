package config

import (
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// ForAgent returns the configuration a site agent at location id runs, as a
// YAML document Parse accepts: the organisation, that one location (its
// flows to other locations left out, since they are not in the document),
// the schedules that scan it (narrowed to it) and the scan settings
// without the server's file paths and, when the location is scanned by
// its agents (scanned_by: agent), its telegraf inputs. Identity and
// software sources, the roster, rules, alerts and anything secret stay on
// the server: the agent scans its network and reads its location's
// telegraf inputs, and the server judges.
func ForAgent(cfg *Config, id string) ([]byte, error) {
	loc, ok := cfg.Location(id)
	if !ok {
		return nil, fmt.Errorf("location %q is not in the configuration", id)
	}
	l := agentLocation{ID: loc.ID, Name: loc.Name, State: loc.State, InternetFacing: loc.InternetFacing, Ports: loc.Ports, ScannedBy: loc.ScannedBy}
	for _, s := range loc.Segments {
		l.Segments = append(l.Segments, agentSegment{Name: s.Name, CIDR: s.CIDR, CIDRs: s.CIDRs, Role: s.Role})
	}
	for _, v := range loc.Vantage {
		l.Vantage = append(l.Vantage, agentVantage{Segment: v.Segment, Source: v.Source, Interface: v.Interface})
	}
	for _, f := range loc.Policy {
		if _, _, remote := f.Remote(); !remote {
			l.Policy = append(l.Policy, agentFlow(f))
		}
	}
	doc := agentDoc{Organization: cfg.Organization, Locations: []agentLocation{l}}
	// The location's telegraf inputs go to its agents when they scan it.
	// Options name secrets only by _env/_file, read on the agent's machine.
	for _, in := range cfg.Telegraf.Inputs {
		if in.Location == id && loc.ByAgent() {
			doc.Telegraf.Inputs = append(doc.Telegraf.Inputs, agentTelegrafInput{Plugin: in.Plugin, Location: in.Location, Options: in.Options})
		}
	}
	for _, s := range cfg.Schedules {
		if slices.Contains(s.Locations, id) || slices.Contains(s.Locations, "*") {
			doc.Schedules = append(doc.Schedules, agentSchedule{Cron: s.Cron, Locations: []string{id}, Jitter: s.Jitter})
		}
	}
	s := cfg.Scan
	doc.Scan = agentScan{Rate: s.Rate, Timeout: s.Timeout, HostTimeout: s.HostTimeout, ProbeTimeout: s.ProbeTimeout,
		Concurrency: s.Concurrency, UDPPorts: s.UDPPorts, AllowLargeRanges: s.AllowLargeRanges, ExpiryWarnDays: s.ExpiryWarnDays,
		ReachBudget: s.ReachBudget, CrossLocation: s.CrossLocation, MaxParallel: s.MaxParallel}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("configuration for location %q: %w", id, err)
	}
	return b, nil
}

// The agent's document is written from its own types, field by field, so
// that a field added to Config later reaches agents only when added here.
type agentDoc struct {
	Organization string          `yaml:"organization"`
	Locations    []agentLocation `yaml:"locations"`
	Schedules    []agentSchedule `yaml:"schedules,omitempty"`
	Scan         agentScan       `yaml:"scan"`
	Telegraf     agentTelegraf   `yaml:"telegraf,omitempty"`
}

type agentTelegraf struct {
	Inputs []agentTelegrafInput `yaml:"inputs,omitempty"`
}

type agentTelegrafInput struct {
	Plugin   string         `yaml:"plugin"`
	Location string         `yaml:"location"`
	Options  map[string]any `yaml:"options,omitempty"`
}

type agentLocation struct {
	ID             string         `yaml:"id"`
	Name           string         `yaml:"name,omitempty"`
	State          string         `yaml:"state,omitempty"`
	InternetFacing []string       `yaml:"internet_facing,omitempty"`
	Segments       []agentSegment `yaml:"segments"`
	Vantage        []agentVantage `yaml:"vantage,omitempty"`
	Policy         []agentFlow    `yaml:"policy,omitempty"`
	Ports          string         `yaml:"ports,omitempty"`
	ScannedBy      string         `yaml:"scanned_by,omitempty"`
}

type agentSegment struct {
	Name  string   `yaml:"name"`
	CIDR  string   `yaml:"cidr,omitempty"`
	CIDRs []string `yaml:"cidrs,omitempty"`
	Role  string   `yaml:"role"`
}

type agentVantage struct {
	Segment   string `yaml:"segment"`
	Source    string `yaml:"source,omitempty"`
	Interface string `yaml:"interface,omitempty"`
}

type agentFlow struct {
	From  string `yaml:"from"`
	To    string `yaml:"to"`
	Ports []int  `yaml:"ports,omitempty"`
}

type agentSchedule struct {
	Cron      string    `yaml:"cron"`
	Locations []string  `yaml:"locations"`
	Jitter    *Duration `yaml:"jitter,omitempty"`
}

type agentScan struct {
	Rate             int      `yaml:"rate,omitempty"`
	Timeout          Duration `yaml:"timeout,omitempty"`
	HostTimeout      Duration `yaml:"host_timeout,omitempty"`
	ProbeTimeout     Duration `yaml:"probe_timeout,omitempty"`
	Concurrency      int      `yaml:"concurrency,omitempty"`
	UDPPorts         string   `yaml:"udp_ports,omitempty"`
	AllowLargeRanges bool     `yaml:"allow_large_ranges,omitempty"`
	ExpiryWarnDays   int      `yaml:"expiry_warn_days,omitempty"`
	ReachBudget      int      `yaml:"reach_budget,omitempty"`
	CrossLocation    string   `yaml:"cross_location,omitempty"`
	MaxParallel      int      `yaml:"max_parallel,omitempty"`
}
