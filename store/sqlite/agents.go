package sqlite

import (
	"context"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

var _ store.AgentStore = (*Store)(nil)

// CreateEnrollToken stores a one-time enrollment token (its hash).
func (s *Store) CreateEnrollToken(ctx context.Context, t store.EnrollToken) error {
	return s.core.CreateEnrollToken(ctx, t)
}

// EnrollTokens lists the enrollment tokens, newest first.
func (s *Store) EnrollTokens(ctx context.Context) ([]store.EnrollToken, error) {
	return s.core.EnrollTokens(ctx)
}

// EnrollAgent burns the token and records the agent in one transaction.
func (s *Store) EnrollAgent(ctx context.Context, tokenHash string, a store.Agent) (store.Agent, error) {
	return s.core.EnrollAgent(ctx, tokenHash, a)
}

// Agent returns one agent; an unknown id is store.ErrNotFound.
func (s *Store) Agent(ctx context.Context, id string) (store.Agent, error) {
	return s.core.Agent(ctx, id)
}

// Agents lists every agent by location.
func (s *Store) Agents(ctx context.Context) ([]store.Agent, error) { return s.core.Agents(ctx) }

// RevokeAgent revokes an agent for good.
func (s *Store) RevokeAgent(ctx context.Context, id, by string) (store.Agent, error) {
	return s.core.RevokeAgent(ctx, id, by)
}

// RecordHeartbeat notes that the agent was heard from with h.
func (s *Store) RecordHeartbeat(ctx context.Context, id string, h store.AgentHealth) error {
	return s.core.RecordHeartbeat(ctx, id, h)
}

// AgentBatchApplied reports whether the agent's batch was applied.
func (s *Store) AgentBatchApplied(ctx context.Context, agentID, batchID string) (bool, error) {
	return s.core.AgentBatchApplied(ctx, agentID, batchID)
}

// BeginAgentScan begins the agent's scan unless it exists already.
func (s *Store) BeginAgentScan(ctx context.Context, agentID, batchID string, scan observe.Scan) (bool, error) {
	return s.core.BeginAgentScan(ctx, agentID, batchID, scan)
}

// AddAgentObservations adds observations to the agent's scan and records
// the batch in the same transaction.
func (s *Store) AddAgentObservations(ctx context.Context, agentID, batchID, scanID string, obs []observe.Observation) (bool, error) {
	return s.core.AddAgentObservations(ctx, agentID, batchID, scanID, obs)
}

// FinishAgentScan finishes the agent's scan and records the batch in the
// same transaction.
func (s *Store) FinishAgentScan(ctx context.Context, agentID, batchID string, scan observe.Scan, findings []observe.Finding) ([]observe.Finding, []observe.Finding, bool, error) {
	return s.core.FinishAgentScan(ctx, agentID, batchID, scan, findings)
}

// AbandonScans finishes the scans nobody will finish as incomplete.
func (s *Store) AbandonScans(ctx context.Context, before, now time.Time, limit int) ([]store.AbandonedScan, error) {
	return s.core.AbandonScans(ctx, before, now, limit)
}

// RequestScan asks the location's enrolled agents for a scan now.
func (s *Store) RequestScan(ctx context.Context, location, by string) (int, error) {
	return s.core.RequestScan(ctx, location, by)
}

// TakeScanRequest takes a requested scan of the agent's location.
func (s *Store) TakeScanRequest(ctx context.Context, id string) (bool, string, error) {
	return s.core.TakeScanRequest(ctx, id)
}
