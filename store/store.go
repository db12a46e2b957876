// Package store keeps scans, observations and findings across runs and decides
// each finding's lifecycle (open, seen again, resolved, re-opened). It defines
// the API every backend offers; store/sqlite is the embedded default and a
// PostgreSQL backend will sit beside it behind the same interface.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// DefaultFileName is the name of the SQLite database under the configured
// data_dir when --db is not given.
const DefaultFileName = "vigil.db"

// ErrLocked is returned by a backend's Open when another vigil process holds
// the database open for writing. The wrapped message names the lock file and,
// when known, the other process's PID.
var ErrLocked = errors.New("database is in use by another vigil process")

// ErrScanFinished is returned when a scan that was already finished is
// begun, finished or given observations again.
var ErrScanFinished = errors.New("scan already finished")

// ErrUnknownScan is returned when observations are added to a scan that was
// never begun.
var ErrUnknownScan = errors.New("unknown scan: call BeginScan first")

// ErrNotFound is returned when a finding named by id does not exist.
var ErrNotFound = errors.New("not found")

// Store is what every backend provides. Consumers should declare the smaller
// interface they need where they use it; Store exists so that cmd/vigil can
// pick a backend from a --db URL and hand it around.
type Store interface {
	BeginScan(ctx context.Context, scan observe.Scan) error
	AddObservations(ctx context.Context, scanID string, obs []observe.Observation) error
	FinishScan(ctx context.Context, scan observe.Scan, findings []observe.Finding) (current, resolved []observe.Finding, err error)
	Findings(ctx context.Context, f FindingFilter) ([]observe.Finding, error)
	DecideFinding(ctx context.Context, findingID string, d observe.Decision) (observe.Finding, error)
	ExpireDecisions(ctx context.Context, now time.Time) ([]observe.Finding, error)
	Scans(ctx context.Context, limit int) ([]observe.Scan, error)
	Observations(ctx context.Context, scanID string) ([]observe.Observation, error)
	ScanObservations(ctx context.Context, scanID, location string) ([]observe.Observation, error)
	FindingHistory(ctx context.Context, findingID string) ([]FindingEvent, error)
	Events(ctx context.Context, f EventFilter) ([]FindingEvent, error)
	AddRiskTreatment(ctx context.Context, t observe.RiskTreatment, accept []string) (observe.RiskTreatment, error)
	RiskTreatments(ctx context.Context) ([]observe.RiskTreatment, error)
	RiskHistory(ctx context.Context, riskID string) ([]observe.RiskTreatment, error)
	EvidenceRefs(ctx context.Context, subjects []string) ([]EvidenceRef, error)
	AddAttestation(ctx context.Context, r observe.Attestation) (observe.Attestation, error)
	CorrectAttestation(ctx context.Context, supersedes string, r observe.Attestation) (observe.Attestation, error)
	Attestations(ctx context.Context) ([]observe.Attestation, error)
	Close() error
}

// ErrInvalidDecision is wrapped by DecideFinding and AddRiskTreatment when
// a decision lacks what it needs (who, why, until when).
var ErrInvalidDecision = errors.New("invalid decision")

// EventFilter selects finding events. A zero field does not filter.
type EventFilter struct {
	FindingIDs []string
	Events     []Event
	// Since keeps events at or after it.
	Since time.Time
	// Until keeps events at or before it (a report as of a date).
	Until time.Time
}

// EvidenceRef points at an evidence-log entry about a subject (a scan id
// for observation batches and scan entries, a finding id for its events, a
// risk id for treatments), so a report can name the entry a reader checks
// with `vigil evidence verify`.
type EvidenceRef struct {
	Seq     int64     `json:"seq"`
	Kind    string    `json:"kind"`
	Subject string    `json:"subject"`
	At      time.Time `json:"at"`
	Hash    string    `json:"hash"`
}

// FindingFilter selects findings. A zero field does not filter; fields
// combine with AND, values inside one slice with OR.
type FindingFilter struct {
	Locations  []string
	Statuses   []observe.Status
	Categories []observe.Category
	Rules      []string
	IDs        []string
	// MinSeverity keeps findings at or above this severity.
	MinSeverity observe.Severity
	// Limit caps the number of findings returned; 0 means no limit.
	Limit int
}

// Event is what happened to a finding, as recorded in its history.
type Event string

// Finding events. A scan writes exactly one of opened, seen, reopened or
// resolved per finding it touches; accepted and false-positive, and resolved
// or reopened without a scan, record a person's decision.
const (
	EventOpened        Event = "opened"   // first seen
	EventSeen          Event = "seen"     // seen again, status unchanged
	EventResolved      Event = "resolved" // a complete scan of its location no longer saw it
	EventReopened      Event = "reopened" // seen again after it was resolved
	EventAccepted      Event = "accepted"
	EventFalsePositive Event = "false-positive"
	// EventExpired: an acceptance or false-positive decision ran out and
	// the finding is open again.
	EventExpired Event = "decision-expired"
)

// FindingEvent is one entry in a finding's history.
type FindingEvent struct {
	FindingID string    `json:"finding_id"`
	ScanID    string    `json:"scan_id,omitempty"` // empty for a person's decision
	At        time.Time `json:"at"`
	Event     Event     `json:"event"`
	Note      string    `json:"note,omitempty"`
}

// Alert delivery states in the alert ledger.
const (
	AlertPending = "pending" // due to a channel, not yet delivered
	AlertSent    = "sent"    // delivered; never sent to that channel again
)

// PendingAlert is an alert a channel has not delivered yet, kept so that a
// channel that failed on every attempt gets it on a later cycle. The store
// does not read Alert: it is the JSON of an alerts.Alert, which lives above
// the store.
type PendingAlert struct {
	Channel string
	Key     string
	Alert   []byte
	// Created is when the alert first fell due to the channel.
	Created time.Time
	// Attempts counts the delivery cycles that failed; LastAttempt is the
	// last of them (zero before any).
	Attempts    int
	LastAttempt time.Time
}
