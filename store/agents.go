package store

import (
	"context"
	"errors"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// Enrollment refusals: EnrollAgent wraps one of these, so the server can
// tell the agent why (and the administrator what to do: make a new token).
var (
	ErrTokenUnknown = errors.New("enrollment token unknown")
	ErrTokenUsed    = errors.New("enrollment token already used")
	ErrTokenExpired = errors.New("enrollment token expired")
)

// ErrAgentRevoked is returned when a revoked agent tries to write.
var ErrAgentRevoked = errors.New("agent revoked")

// ErrForeignScan is returned when an agent writes to a scan it did not
// begin (the server's own, or another agent's).
var ErrForeignScan = errors.New("scan belongs to someone else")

// EnrollToken is a one-time enrollment token as the store keeps it: the
// SHA-256 of its secret, never the secret.
type EnrollToken struct {
	Hash      string    `json:"hash"`
	Location  string    `json:"location"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// UsedAt and AgentID are set once an agent enrolled with it.
	UsedAt  time.Time `json:"used_at,omitzero"`
	AgentID string    `json:"agent_id,omitempty"`
}

// Agent is an enrolled site agent and what it last said about itself.
type Agent struct {
	ID        string `json:"id"`
	Location  string `json:"location"`
	Hostname  string `json:"hostname"`
	PublicKey []byte `json:"public_key"` // ed25519.PublicKey
	// EnrolledBy is who created the token it enrolled with.
	EnrolledBy string    `json:"enrolled_by,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	RevokedBy  string    `json:"revoked_by,omitempty"`
	// LastSeen is the last heartbeat or batch.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// ScanRequestedAt is when a scan of its location was asked of it
	// (RequestScan) and not yet taken by an agent of the location.
	ScanRequestedAt time.Time `json:"scan_requested_at,omitzero"`
	ScanRequestedBy string    `json:"scan_requested_by,omitempty"`
	AgentHealth
}

// Revoked reports whether the agent was revoked.
func (a Agent) Revoked() bool { return !a.RevokedAt.IsZero() }

// Quiet reports whether an unrevoked agent has not been heard from for
// longer than after, at now: its site may be down or cut off.
func (a Agent) Quiet(now time.Time, after time.Duration) bool {
	return !a.Revoked() && after > 0 && now.Sub(a.LastSeen) > after
}

// Agent states, as the dashboard and `vigil agent list` show them.
const (
	AgentOK      = "ok"
	AgentQuiet   = "quiet"
	AgentRevoked = "revoked"
)

// Status is AgentRevoked, AgentQuiet or AgentOK.
func (a Agent) Status(now time.Time, quietAfter time.Duration) string {
	switch {
	case a.Revoked():
		return AgentRevoked
	case a.Quiet(now, quietAfter):
		return AgentQuiet
	}
	return AgentOK
}

// AgentHealth is what an agent's heartbeat reports.
type AgentHealth struct {
	Version           string    `json:"version,omitempty"`
	QueueDepth        int       `json:"queue_depth"`
	QueueBytes        int64     `json:"queue_bytes"`
	LastScanID        string    `json:"last_scan_id,omitempty"`
	LastScanAt        time.Time `json:"last_scan_at,omitzero"`
	AssignmentVersion string    `json:"assignment_version,omitempty"`
	// Host, when set in a heartbeat, replaces Agent.Hostname (the
	// sensor was renamed or moved); it is not read back.
	Host string `json:"-"`
}

// AgentStore keeps site agents, their enrollment tokens and the batches
// they pushed. Both backends implement it. The batch methods are
// idempotent by (agent, batch id): a batch already applied reports
// duplicate and stores nothing.
type AgentStore interface {
	// CreateEnrollToken stores a token (its hash) for a location.
	CreateEnrollToken(ctx context.Context, t EnrollToken) error
	// EnrollTokens lists the tokens, newest first.
	EnrollTokens(ctx context.Context) ([]EnrollToken, error)
	// EnrollAgent burns the token with this hash and records the agent in
	// one transaction; a used, expired or unknown token wraps
	// ErrTokenUsed, ErrTokenExpired or ErrTokenUnknown. The agent gets a
	// new id and the token's location.
	EnrollAgent(ctx context.Context, tokenHash string, a Agent) (Agent, error)
	// Agent returns one agent; an unknown id is ErrNotFound.
	Agent(ctx context.Context, id string) (Agent, error)
	// Agents lists every agent, revoked ones too, by location.
	Agents(ctx context.Context) ([]Agent, error)
	// RevokeAgent revokes an agent for good (again: no change).
	RevokeAgent(ctx context.Context, id, by string) (Agent, error)
	// RecordHeartbeat notes that the agent was heard from with h.
	RecordHeartbeat(ctx context.Context, id string, h AgentHealth) error
	// RequestScan asks the location's enrolled agents for a scan now and
	// returns how many there are (0: nobody to ask, nothing recorded).
	RequestScan(ctx context.Context, location, by string) (int, error)
	// TakeScanRequest reports whether a scan of the agent's location is
	// requested, and takes the request: one agent of the location, the
	// first to ask, gets it. A revoked agent is ErrAgentRevoked.
	TakeScanRequest(ctx context.Context, id string) (requested bool, by string, err error)
	// AgentBatchApplied reports whether the agent's batch was applied.
	AgentBatchApplied(ctx context.Context, agentID, batchID string) (bool, error)
	// BeginAgentScan begins the agent's scan unless it exists already
	// (then only the batch is recorded); a scan someone else began is
	// ErrForeignScan.
	BeginAgentScan(ctx context.Context, agentID, batchID string, scan observe.Scan) (duplicate bool, err error)
	// AddAgentObservations adds observations to the agent's running scan
	// and records the batch in the same transaction.
	AddAgentObservations(ctx context.Context, agentID, batchID, scanID string, obs []observe.Observation) (duplicate bool, err error)
	// FinishAgentScan finishes the agent's scan as FinishScan does and
	// records the batch in the same transaction; a scan already finished
	// is a duplicate.
	FinishAgentScan(ctx context.Context, agentID, batchID string, scan observe.Scan, findings []observe.Finding) (current, resolved []observe.Finding, duplicate bool, err error)
}

// AbandonedScan is a scan the server finished as incomplete because
// nobody else would (AbandonScans).
type AbandonedScan struct {
	ID        string
	StartedAt time.Time
	// Agent is the revoked agent that began it ("" for the server's own).
	Agent string
	// Reason is the error recorded on the scan.
	Reason string
}

// ScanSweeper finishes abandoned scans; both backends implement it.
type ScanSweeper interface {
	// AbandonScans finishes as incomplete, oldest first and at most limit,
	// the unfinished scans vigil serve began before `before` and those
	// begun by an agent since revoked; an enrolled agent's are left alone.
	AbandonScans(ctx context.Context, before, now time.Time, limit int) ([]AbandonedScan, error)
}
