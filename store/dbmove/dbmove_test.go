package dbmove

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/internal/pgtest"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/postgres"
	"github.com/vigilhq/vigil/store/sqlite"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A SQLite database moved to PostgreSQL and back loses nothing: the same
// findings and history, attestations and register, and an evidence log that
// verifies with the same head.
func TestMoveSQLiteToPostgresAndBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := evidence.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vigil.db")
	src, err := sqlite.Open(ctx, path, sqlite.WithEvidenceKey(key), sqlite.WithClock(func() time.Time { return storetest.At(48) }))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Populate(t, src)
	if _, err := src.AddAttestation(ctx, observe.Attestation{Kind: "workforce-training", At: storetest.At(0), By: "dr. lee"}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.AddRiskTreatment(ctx, observe.RiskTreatment{Risk: "r@downtown", By: "dr. lee", Owner: "it", Treatment: observe.TreatMitigate}, nil); err != nil {
		t.Fatal(err)
	}
	// A site agent, its burnt token and a batch it pushed.
	if err := src.CreateEnrollToken(ctx, store.EnrollToken{Hash: "tokenhash", Location: "downtown", CreatedBy: "it@msp", ExpiresAt: storetest.At(72)}); err != nil {
		t.Fatal(err)
	}
	ag, err := src.EnrollAgent(ctx, "tokenhash", store.Agent{Hostname: "sensor", PublicKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.RecordHeartbeat(ctx, ag.ID, store.AgentHealth{Version: "1", QueueDepth: 2, QueueBytes: 3 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.BeginAgentScan(ctx, ag.ID, "as:0", observe.Scan{ID: "as", StartedAt: storetest.At(50), Locations: []string{"downtown"}}); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, src)
	srcSum, err := storetest.VerifyExport(t, src, key)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()

	pgURL := pgtest.URL(t)
	var tables []string
	rep, err := Move(ctx, "sqlite://"+path, pgURL, func(table string, n int64) { tables = append(tables, table) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows["evidence_log"] == 0 || rep.Rows["observations"] != 5 || rep.Rows["attestations"] != 1 || len(tables) < 12 ||
		rep.Rows["agents"] != 1 || rep.Rows["agent_tokens"] != 1 || rep.Rows["agent_batches"] != 1 {
		t.Errorf("report = %+v, progress %v", rep, tables)
	}
	pg, err := postgres.Open(ctx, pgURL, postgres.WithEvidenceKey(key))
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, pg); !reflect.DeepEqual(got, want) {
		t.Errorf("after the move:\n%+v\nwant\n%+v", got, want)
	}
	sum, err := storetest.VerifyExport(t, pg, key)
	if err != nil || sum.Entries != srcSum.Entries || sum.Manifest.HeadHash != srcSum.Manifest.HeadHash {
		t.Fatalf("PostgreSQL export: %+v, %v; want %d entries to %s", sum, err, srcSum.Entries, srcSum.Manifest.HeadHash)
	}
	// The moved log keeps growing on the new backend, chained to the old.
	storetest.FinishT(t, pg, observe.Scan{ID: "s3", StartedAt: storetest.At(72), FinishedAt: storetest.At(72), Locations: []string{"downtown"}, Complete: true})
	if sum, err := storetest.VerifyExport(t, pg, key); err != nil || sum.Entries <= srcSum.Entries {
		t.Errorf("after a new scan on PostgreSQL: %+v, %v", sum, err)
	}
	pg.Close()

	// Into a database that already holds data: refused, nothing changed.
	if _, err := Move(ctx, "sqlite://"+path, pgURL, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("move into a non-empty database: %v", err)
	}
	// And back to a new SQLite file.
	back := filepath.Join(t.TempDir(), "back.db")
	if _, err := Move(ctx, pgURL, "sqlite://"+back, nil); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(ctx, back, sqlite.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if sum, err := storetest.VerifyExport(t, b, key); err != nil || sum.Entries <= srcSum.Entries {
		t.Errorf("moved back: %+v, %v", sum, err)
	}
}

type state struct {
	Findings     []observe.Finding
	History      map[string][]store.FindingEvent
	Attestations []observe.Attestation
	Treatments   []observe.RiskTreatment
	Scans        []observe.Scan
	Agents       []store.Agent
	Tokens       []store.EnrollToken
}

func snapshot(t *testing.T, s storetest.Backend) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	if st.Findings, err = s.Findings(ctx, store.FindingFilter{}); err != nil {
		t.Fatal(err)
	}
	st.History = map[string][]store.FindingEvent{}
	for _, f := range st.Findings {
		if st.History[f.ID], err = s.FindingHistory(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
	}
	if st.Attestations, err = s.Attestations(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Treatments, err = s.RiskTreatments(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Scans, err = s.Scans(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if st.Agents, err = s.Agents(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Tokens, err = s.EnrollTokens(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}
