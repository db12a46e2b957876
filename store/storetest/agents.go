package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// clock is a settable test clock.
type clock struct{ t atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(t.UnixNano()) }
func (c *clock) now() time.Time   { return time.Unix(0, c.t.Load()).UTC() }

func tokenT(t *testing.T, s Backend, hash, loc string, expires time.Time) {
	t.Helper()
	if err := s.CreateEnrollToken(context.Background(), store.EnrollToken{Hash: hash, Location: loc, CreatedBy: "it@msp", ExpiresAt: expires}); err != nil {
		t.Fatalf("CreateEnrollToken: %v", err)
	}
}

func enrollT(t *testing.T, s Backend, hash string) store.Agent {
	t.Helper()
	a, err := s.EnrollAgent(context.Background(), hash, store.Agent{Hostname: "sensor-1", PublicKey: bytes.Repeat([]byte{7}, 32), AgentHealth: store.AgentHealth{Version: "1.2.3"}})
	if err != nil {
		t.Fatalf("EnrollAgent: %v", err)
	}
	return a
}

// A token enrolls one agent, once, before it expires; the agent reads
// back with its key and the token's location.
func testAgentEnrollment(t *testing.T, h *Harness) {
	c := newClock(at(0))
	s := h.fresh(t, WithClock(c.now))
	ctx := context.Background()
	tokenT(t, s, "h1", "downtown", at(24))
	tokenT(t, s, "h2", "uptown", at(1))

	a := enrollT(t, s, "h1")
	if a.ID == "" || a.Location != "downtown" || a.EnrolledBy != "it@msp" || !a.EnrolledAt.Equal(at(0)) || a.Revoked() {
		t.Errorf("enrolled %+v", a)
	}
	got, err := s.Agent(ctx, a.ID)
	if err != nil || got.Hostname != "sensor-1" || !bytes.Equal(got.PublicKey, a.PublicKey) || got.Version != "1.2.3" || !got.LastSeen.Equal(at(0)) {
		t.Errorf("Agent(%s) = %+v, %v", a.ID, got, err)
	}
	if _, err := s.EnrollAgent(ctx, "h1", store.Agent{PublicKey: a.PublicKey}); !errors.Is(err, store.ErrTokenUsed) {
		t.Errorf("second use of a token: %v, want ErrTokenUsed", err)
	}
	if _, err := s.EnrollAgent(ctx, "nope", store.Agent{PublicKey: a.PublicKey}); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("unknown token: %v, want ErrTokenUnknown", err)
	}
	c.set(at(2))
	if _, err := s.EnrollAgent(ctx, "h2", store.Agent{PublicKey: a.PublicKey}); !errors.Is(err, store.ErrTokenExpired) {
		t.Errorf("expired token: %v, want ErrTokenExpired", err)
	}
	if _, err := s.Agent(ctx, "ag-missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown agent: %v", err)
	}
	toks, err := s.EnrollTokens(ctx)
	if err != nil || len(toks) != 2 {
		t.Fatalf("EnrollTokens = %+v, %v", toks, err)
	}
	for _, tk := range toks {
		used := tk.Hash == "h1"
		if used != (tk.AgentID == a.ID) || used == tk.UsedAt.IsZero() {
			t.Errorf("token %+v: used %v", tk, used)
		}
	}
	all, err := s.Agents(ctx)
	if err != nil || len(all) != 1 || all[0].ID != a.ID {
		t.Errorf("Agents = %+v, %v", all, err)
	}
}

// A heartbeat records health; a revoked agent writes nothing more.
func testAgentHeartbeatAndRevocation(t *testing.T, h *Harness) {
	c := newClock(at(0))
	s := h.fresh(t, WithClock(c.now))
	ctx := context.Background()
	tokenT(t, s, "h1", "downtown", at(24))
	a := enrollT(t, s, "h1")

	c.set(at(1))
	hb := store.AgentHealth{Version: "1.2.4", QueueDepth: 3, QueueBytes: 5 << 30, LastScanID: "s9", LastScanAt: at(1).Add(-time.Minute), AssignmentVersion: "abc"}
	if err := s.RecordHeartbeat(ctx, a.ID, hb); err != nil {
		t.Fatal(err)
	}
	got, err := s.Agent(ctx, a.ID)
	if err != nil || got.AgentHealth != hb || !got.LastSeen.Equal(at(1)) || got.Hostname != "sensor-1" {
		t.Errorf("after heartbeat: %+v, %v; want %+v seen at %s", got, err, hb, at(1))
	}
	// The sensor was renamed: its heartbeat says so.
	renamed := hb
	renamed.Host = "sensor-downtown-2"
	if err := s.RecordHeartbeat(ctx, a.ID, renamed); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Agent(ctx, a.ID); err != nil || got.Hostname != "sensor-downtown-2" || got.AgentHealth != hb {
		t.Errorf("after a heartbeat naming a new host: %+v, %v", got, err)
	}

	c.set(at(2))
	r, err := s.RevokeAgent(ctx, a.ID, "owner@clinic")
	if err != nil || !r.Revoked() || r.RevokedBy != "owner@clinic" || !r.RevokedAt.Equal(at(2)) {
		t.Fatalf("RevokeAgent = %+v, %v", r, err)
	}
	c.set(at(3))
	if again, err := s.RevokeAgent(ctx, a.ID, "someone else"); err != nil || !again.RevokedAt.Equal(at(2)) || again.RevokedBy != "owner@clinic" {
		t.Errorf("revoking again: %+v, %v; want unchanged", again, err)
	}
	if _, err := s.RevokeAgent(ctx, "ag-missing", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if err := s.RecordHeartbeat(ctx, a.ID, hb); !errors.Is(err, store.ErrAgentRevoked) {
		t.Errorf("heartbeat of a revoked agent: %v", err)
	}
	if _, err := s.BeginAgentScan(ctx, a.ID, "s1:0", observe.Scan{ID: "s1", Locations: []string{"downtown"}}); !errors.Is(err, store.ErrAgentRevoked) {
		t.Errorf("batch of a revoked agent: %v", err)
	}
	if scans, _ := s.Scans(ctx, 0); len(scans) != 0 {
		t.Errorf("a revoked agent's scan was stored: %+v", scans)
	}
}

// Every batch is applied once, whatever the retries; an agent writes only
// to scans it began.
func testAgentBatchesAreIdempotent(t *testing.T, h *Harness) {
	c := newClock(at(0))
	s := h.fresh(t, WithClock(c.now))
	ctx := context.Background()
	tokenT(t, s, "h1", "downtown", at(24))
	tokenT(t, s, "h2", "downtown", at(24))
	a, b := enrollT(t, s, "h1"), enrollT(t, s, "h2")

	scan := observe.Scan{ID: "as1", StartedAt: at(1), Version: "1.2.3", Locations: []string{"downtown"}}
	for i, want := range []bool{false, true} {
		if dup, err := s.BeginAgentScan(ctx, a.ID, "as1:0", scan); err != nil || dup != want {
			t.Fatalf("begin #%d: duplicate %v, %v; want %v", i+1, dup, err, want)
		}
	}
	// A begin retried under another id (an agent that lost its spool's
	// sequence) is recorded without touching the scan.
	if dup, err := s.BeginAgentScan(ctx, a.ID, "as1:0b", scan); err != nil || dup {
		t.Errorf("begin under a new id: %v, %v", dup, err)
	}
	obs := serviceObs(3)
	for i, want := range []bool{false, true, true} {
		if dup, err := s.AddAgentObservations(ctx, a.ID, "as1:1", "as1", obs); err != nil || dup != want {
			t.Fatalf("observations #%d: duplicate %v, %v; want %v", i+1, dup, err, want)
		}
	}
	if applied, err := s.AgentBatchApplied(ctx, a.ID, "as1:1"); err != nil || !applied {
		t.Errorf("AgentBatchApplied = %v, %v", applied, err)
	}
	if applied, _ := s.AgentBatchApplied(ctx, b.ID, "as1:1"); applied {
		t.Error("another agent's batch counted as applied")
	}
	// Another agent, the same location: not its scan.
	if _, err := s.AddAgentObservations(ctx, b.ID, "as1:2", "as1", obs); !errors.Is(err, store.ErrForeignScan) {
		t.Errorf("observations into another agent's scan: %v", err)
	}
	if _, err := s.BeginAgentScan(ctx, b.ID, "as1:0", scan); !errors.Is(err, store.ErrForeignScan) {
		t.Errorf("begin of another agent's scan: %v", err)
	}
	// The server's own scan is no agent's.
	if err := s.BeginScan(ctx, observe.Scan{ID: "server", StartedAt: at(1), Locations: []string{"downtown"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAgentObservations(ctx, a.ID, "server:1", "server", obs); !errors.Is(err, store.ErrForeignScan) {
		t.Errorf("observations into the server's scan: %v", err)
	}
	if _, err := s.AddAgentObservations(ctx, a.ID, "nope:1", "nope", obs); !errors.Is(err, store.ErrUnknownScan) {
		t.Errorf("observations into no scan: %v", err)
	}
	stored, err := s.Observations(ctx, "as1")
	if err != nil || len(stored) != len(obs) {
		t.Fatalf("stored %d observations, %v; want %d", len(stored), err, len(obs))
	}

	c.set(at(3))
	scan.FinishedAt, scan.Complete = at(2), true
	cur, _, dup, err := s.FinishAgentScan(ctx, a.ID, "as1:2", scan, []observe.Finding{rdp})
	if err != nil || dup || len(cur) != 1 || cur[0].Status != observe.StatusOpen {
		t.Fatalf("finish: %+v, dup %v, %v", cur, dup, err)
	}
	for _, id := range []string{"as1:2", "as1:3"} { // the same batch, and a finish of a finished scan
		if cur, _, dup, err := s.FinishAgentScan(ctx, a.ID, id, scan, []observe.Finding{rdp, telnet}); err != nil || !dup || cur != nil {
			t.Errorf("finish again as %s: %+v, dup %v, %v; want a duplicate", id, cur, dup, err)
		}
	}
	if f := byID(t, s); len(f) != 1 {
		t.Errorf("findings after repeated finishes: %d, want 1", len(f))
	}
	hist, err := s.FindingHistory(ctx, rdp.ID)
	if err != nil || len(hist) != 1 {
		t.Errorf("history %+v, %v; want one event", hist, err)
	}
	got, err := s.Agent(ctx, a.ID)
	if err != nil || !got.LastSeen.Equal(at(3)) {
		t.Errorf("last seen after a batch: %+v, %v; want %s", got.LastSeen, err, at(3))
	}
}

// Batches pushed at once by many agents (the store may commit several in
// one transaction) are each stored exactly once: a batch sent twice at
// the same time is one store and one duplicate, a batch refused (another
// agent's scan) changes nothing and takes no other batch down with it,
// and the evidence log verifies afterwards.
func testAgentBatchesConcurrently(t *testing.T, h *Harness) {
	key := evidenceKey(t, t.TempDir())
	s := h.fresh(t, WithEvidenceKey(key))
	ctx := context.Background()
	const agents, scans = 8, 3
	ids := make([]string, agents)
	for i := range ids {
		tokenT(t, s, fmt.Sprintf("h%d", i), "downtown", time.Now().Add(time.Hour))
		ids[i] = enrollT(t, s, fmt.Sprintf("h%d", i)).ID
	}
	var (
		wg    sync.WaitGroup
		dups  atomic.Int32
		mu    sync.Mutex
		fails []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fails = append(fails, fmt.Sprintf(format, args...))
	}
	for i, agent := range ids {
		wg.Go(func() {
			for n := range scans {
				id := fmt.Sprintf("a%d-s%d", i, n)
				scan := observe.Scan{ID: id, StartedAt: at(n), Locations: []string{"downtown"}}
				if _, err := s.BeginAgentScan(ctx, agent, id+":0", scan); err != nil {
					fail("begin %s: %v", id, err)
					return
				}
				// The same batch twice at once, and another agent's batch
				// for this scan, refused.
				var inner sync.WaitGroup
				for range 2 {
					inner.Go(func() {
						dup, err := s.AddAgentObservations(ctx, agent, id+":1", id, serviceObs(5))
						if err != nil {
							fail("observations %s: %v", id, err)
						} else if dup {
							dups.Add(1)
						}
					})
				}
				inner.Go(func() {
					other := ids[(i+1)%agents]
					if _, err := s.AddAgentObservations(ctx, other, id+":x", id, serviceObs(2)); !errors.Is(err, store.ErrForeignScan) {
						fail("another agent's observations for %s: %v, want ErrForeignScan", id, err)
					}
				})
				inner.Wait()
				scan.FinishedAt, scan.Complete = at(n).Add(time.Minute), true
				if _, _, dup, err := s.FinishAgentScan(ctx, agent, id+":2", scan, nil); err != nil || dup {
					fail("finish %s: duplicate %v, %v", id, dup, err)
				}
			}
		})
	}
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	if got := dups.Load(); got != agents*scans {
		t.Errorf("%d duplicates, want %d (one per batch sent twice)", got, agents*scans)
	}
	for i := range ids {
		for n := range scans {
			id := fmt.Sprintf("a%d-s%d", i, n)
			if obs, err := s.Observations(ctx, id); err != nil || len(obs) != 5 {
				t.Errorf("scan %s: %d observations, %v; want 5", id, len(obs), err)
			}
		}
	}
	if _, err := verifyT(exportT(t, s, key)); err != nil {
		t.Errorf("evidence log after concurrent batches: %v", err)
	}
}

// Scans nobody will finish are finished as incomplete: the server's own
// begun before the cut-off (their replica died), and a revoked agent's
// whatever their age. A recent server scan, an enrolled agent's (however
// old: it may be offline with the rest queued) and finished scans are
// left alone; an abandoned scan resolves nothing and keeps what it stored.
func testAbandonedScansAreFinished(t *testing.T, h *Harness) {
	c := newClock(at(0))
	s := h.fresh(t, WithClock(c.now))
	ctx := context.Background()
	tokenT(t, s, "h1", "downtown", at(24))
	tokenT(t, s, "h2", "uptown", at(24))
	keep, gone := enrollT(t, s, "h1"), enrollT(t, s, "h2")

	// A finding a complete scan saw, which no abandoned scan may resolve.
	done := observe.Scan{ID: "done", StartedAt: at(0), Locations: []string{"downtown"}}
	if err := s.BeginScan(ctx, done); err != nil {
		t.Fatal(err)
	}
	done.FinishedAt, done.Complete = at(0).Add(time.Minute), true
	if _, _, err := s.FinishScan(ctx, done, []observe.Finding{rdp}); err != nil {
		t.Fatal(err)
	}
	begin := func(id string, started int, agent string) {
		t.Helper()
		scan := observe.Scan{ID: id, StartedAt: at(started), Version: "1.2.3", Locations: []string{"downtown"}}
		if agent != "" {
			if _, err := s.BeginAgentScan(ctx, agent, id+":0", scan); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddAgentObservations(ctx, agent, id+":1", id, serviceObs(2)); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := s.BeginScan(ctx, scan); err != nil {
			t.Fatal(err)
		}
		if err := s.AddObservations(ctx, id, serviceObs(2)); err != nil {
			t.Fatal(err)
		}
	}
	begin("server-old", 1, "")
	begin("server-new", 20, "")
	begin("agent-old", 1, keep.ID)
	begin("revoked-new", 20, gone.ID)
	if _, err := s.RevokeAgent(ctx, gone.ID, "owner@clinic"); err != nil {
		t.Fatal(err)
	}

	c.set(at(21))
	got, err := s.AbandonScans(ctx, at(12), at(21), 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]store.AbandonedScan{}
	for _, a := range got {
		ids[a.ID] = a
	}
	if len(got) != 2 || ids["server-old"].Agent != "" || ids["revoked-new"].Agent != gone.ID {
		t.Fatalf("abandoned %+v; want server-old (the server's, begun before the cut-off) and revoked-new (agent %s's)", got, gone.ID)
	}
	if !strings.Contains(ids["revoked-new"].Reason, "was revoked") || !strings.Contains(ids["server-old"].Reason, "never finished") {
		t.Errorf("reasons: %q, %q", ids["revoked-new"].Reason, ids["server-old"].Reason)
	}
	scans, err := s.Scans(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scans {
		_, abandoned := ids[sc.ID]
		switch {
		case abandoned && (sc.FinishedAt.IsZero() || sc.Complete || len(sc.Errors) != 1 || !strings.HasPrefix(sc.Errors[0], "abandoned: ")):
			t.Errorf("abandoned scan %s: %+v; want finished, incomplete, with the reason", sc.ID, sc)
		case abandoned && (len(sc.Locations) != 1 || !sc.StartedAt.Equal(at(1)) && !sc.StartedAt.Equal(at(20))):
			t.Errorf("abandoned scan %s lost what its begin recorded: %+v", sc.ID, sc)
		case !abandoned && sc.ID != "done" && !sc.FinishedAt.IsZero():
			t.Errorf("scan %s finished by the sweep: %+v", sc.ID, sc)
		}
		if obs, err := s.Observations(ctx, sc.ID); err != nil || (sc.ID != "done" && len(obs) != 2) {
			t.Errorf("scan %s: %d observations after the sweep, %v; want 2", sc.ID, len(obs), err)
		}
	}
	if f := byID(t, s); len(f) != 1 || f[rdp.ID].Status != observe.StatusOpen {
		t.Errorf("findings after the sweep: %+v; want rdp still open", f)
	}
	// Again: nothing left to do.
	if again, err := s.AbandonScans(ctx, at(12), at(21), 0); err != nil || len(again) != 0 {
		t.Errorf("second sweep: %+v, %v", again, err)
	}
	// The enrolled agent still finishes its old scan.
	if _, _, dup, err := s.FinishAgentScan(ctx, keep.ID, "agent-old:2", observe.Scan{ID: "agent-old", FinishedAt: at(21), Complete: true}, nil); err != nil || dup {
		t.Errorf("the enrolled agent's finish after the sweep: dup %v, %v", dup, err)
	}
}

// A scan asked of a location goes to exactly one of its enrolled agents,
// the first to ask for it, even when they ask at once; a location with no
// agent records nothing, and a revoked agent neither counts nor takes.
func testAgentScanRequests(t *testing.T, h *Harness) {
	c := newClock(at(0))
	s := h.fresh(t, WithClock(c.now))
	ctx := context.Background()
	var down []store.Agent
	for i := range 4 {
		hash := fmt.Sprintf("d%d", i)
		tokenT(t, s, hash, "downtown", at(24))
		down = append(down, enrollT(t, s, hash))
	}
	tokenT(t, s, "u", "uptown", at(24))
	up := enrollT(t, s, "u")
	if _, err := s.RevokeAgent(ctx, down[3].ID, "owner@clinic"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RequestScan(ctx, "nowhere", "olivia"); err != nil || n != 0 {
		t.Errorf("RequestScan of a location without agents = %d, %v; want 0", n, err)
	}
	for round := range 3 {
		c.set(at(round + 1))
		if n, err := s.RequestScan(ctx, "downtown", "olivia"); err != nil || n != 3 {
			t.Fatalf("RequestScan = %d, %v; want 3 (the revoked agent does not count)", n, err)
		}
		if a, err := s.Agent(ctx, down[0].ID); err != nil || !a.ScanRequestedAt.Equal(at(round+1)) || a.ScanRequestedBy != "olivia" {
			t.Errorf("agent after the request: %+v, %v", a, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var takers []string
		for _, a := range append(down[:3:3], up) {
			wg.Go(func() {
				got, by, err := s.TakeScanRequest(ctx, a.ID)
				if err != nil {
					t.Errorf("TakeScanRequest(%s): %v", a.ID, err)
				}
				if got {
					mu.Lock()
					takers = append(takers, a.ID+" by "+by)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(takers) != 1 || !strings.HasSuffix(takers[0], " by olivia") || strings.HasPrefix(takers[0], up.ID) {
			t.Errorf("round %d: taken by %v; want exactly one downtown agent", round, takers)
		}
		for _, a := range down[:3] {
			if got, _, err := s.TakeScanRequest(ctx, a.ID); err != nil || got {
				t.Errorf("round %d: taken again by %s: %v, %v", round, a.ID, got, err)
			}
		}
	}
	if _, _, err := s.TakeScanRequest(ctx, down[3].ID); !errors.Is(err, store.ErrAgentRevoked) {
		t.Errorf("TakeScanRequest by a revoked agent: %v, want ErrAgentRevoked", err)
	}
}
