// Package posture assembles what vigil knows at a moment from the store:
// findings, scans and attestations, the control status they add up to for
// every location and the organisation, and the risk register. The CLI, the
// dashboard and the reports all read this one snapshot, so they agree.
package posture

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/attest"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store"
)

// Reader is what a snapshot reads from the store.
type Reader interface {
	Findings(ctx context.Context, f store.FindingFilter) ([]observe.Finding, error)
	Scans(ctx context.Context, limit int) ([]observe.Scan, error)
	Attestations(ctx context.Context) ([]observe.Attestation, error)
	RiskTreatments(ctx context.Context) ([]observe.RiskTreatment, error)
}

// Input is what a snapshot needs besides the store.
type Input struct {
	Config  *config.Config
	Catalog *rules.Catalog
	// Rules are the loaded rules (rules.Engine.Rules()).
	Rules []*rules.Rule
	// People is the staff roster with hire dates, for new-hire training
	// deadlines; nil when no roster is configured.
	People []attest.Person
	// Warn is how long before an expiry or a deadline to remind (default
	// 30 days).
	Warn time.Duration
	Now  time.Time
}

// Snapshot is the organisation's posture at Now.
type Snapshot struct {
	Now     time.Time
	Config  *config.Config
	Catalog *rules.Catalog
	// Findings are every stored finding, with Status as of Now: an
	// acceptance or false positive whose decision expired is open.
	Findings     []observe.Finding
	Scans        []observe.Scan
	Attestations []observe.Attestation
	// Controls is the organisation's roll-up of every control that
	// applies somewhere, each with its per-location breakdown.
	Controls []controls.ControlStatus
	// Register is the risk register (risk.Register).
	Register []risk.Risk
	// Due are attestations expiring, expired or missing, and new hires'
	// training deadlines.
	Due []attest.Reminder
}

// Load reads the store and computes the snapshot.
func Load(ctx context.Context, rd Reader, in Input) (*Snapshot, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	if in.Warn == 0 {
		in.Warn = 30 * 24 * time.Hour
	}
	s := &Snapshot{Now: in.Now, Config: in.Config, Catalog: in.Catalog}
	var err error
	if s.Findings, err = rd.Findings(ctx, store.FindingFilter{}); err != nil {
		return nil, fmt.Errorf("posture: %w", err)
	}
	for i := range s.Findings {
		s.Findings[i].Status = s.Findings[i].StatusAt(in.Now)
	}
	if s.Scans, err = rd.Scans(ctx, 0); err != nil {
		return nil, fmt.Errorf("posture: %w", err)
	}
	if s.Attestations, err = rd.Attestations(ctx); err != nil {
		return nil, fmt.Errorf("posture: %w", err)
	}
	treatments, err := rd.RiskTreatments(ctx)
	if err != nil {
		return nil, fmt.Errorf("posture: %w", err)
	}

	kinds := attest.KindsFor(in.Catalog, in.Config.Locations)
	s.Due = attest.Due(s.Attestations, in.Catalog, kinds, in.Warn, in.Now)
	var overdue []controls.OverdueTraining
	if in.People != nil {
		hires := attest.NewHireDue(attest.NewHireCheck{People: in.People, Records: s.Attestations, Catalog: in.Catalog,
			Locations: in.Config.Locations, Since: attest.FirstRecorded(s.Attestations, in.Now), Warn: in.Warn, Now: in.Now})
		s.Due = append(s.Due, hires...)
		overdue = attest.OverdueTraining(hires)
	}
	s.Controls = controls.Organization(controls.Input{Catalog: in.Catalog, Rules: in.Rules, Findings: s.Findings, Scans: s.Scans,
		Attestations: attest.Source(s.Attestations, in.Catalog), OverdueTraining: overdue, Settings: in.Config.Controls, Now: in.Now},
		in.Config.Locations)
	var since time.Time
	for _, sc := range s.Scans {
		if since.IsZero() || sc.StartedAt.Before(since) {
			since = sc.StartedAt
		}
	}
	s.Register = risk.Register(risk.Input{Since: since, Config: in.Config, Findings: s.Findings, Controls: s.Controls, Catalog: in.Catalog,
		Treatments: treatments, Now: in.Now})
	return s, nil
}

// FindingsByID indexes the snapshot's findings.
func (s *Snapshot) FindingsByID() map[string]observe.Finding {
	m := make(map[string]observe.Finding, len(s.Findings))
	for _, f := range s.Findings {
		m[f.ID] = f
	}
	return m
}

// Control returns the organisation status of one control.
func (s *Snapshot) Control(id string) (*controls.ControlStatus, bool) {
	for i := range s.Controls {
		if s.Controls[i].Control.ID == id {
			return &s.Controls[i], true
		}
	}
	return nil, false
}

// ControlCounts counts controls by verdict, for the organisation (loc "")
// or one location.
func (s *Snapshot) ControlCounts(loc string) map[controls.Verdict]int {
	out := map[controls.Verdict]int{}
	for _, c := range s.Controls {
		if loc == "" {
			out[c.Status]++
			continue
		}
		for _, l := range c.ByLocation {
			if l.Location == loc {
				out[l.Status]++
			}
		}
	}
	return out
}
