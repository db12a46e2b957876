package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/agent/spool"
	"github.com/vigilhq/vigil/observe"
)

// ErrQueueFull is returned by SpoolStore.BeginScan when the spool has no
// room for another scan. The policy is to keep what is queued, oldest
// first, and not start new scans until the server has taken some (once
// full, until the queue is down to half its limit): a site
// that cannot reach its server for weeks keeps its first scans rather
// than its last ones, and says so in every log line and heartbeat.
var ErrQueueFull = errors.New("agent queue full")

// SpoolStore is the scanrun.Store of an agent: instead of storing a scan
// it appends the scan's steps to the spool as protocol.Batch records
// (begin, observation chunks, finish), which the Sender delivers in
// order. It never returns findings: the server judges the scan.
type SpoolStore struct {
	sp     *spool.Spool
	log    *slog.Logger
	dir    string // OpenScansDir
	notify func()
	// OnFinish, when set, is told about every scan whose finish was
	// spooled.
	OnFinish func(scan observe.Scan)

	mu   sync.Mutex
	open map[string]*openScan
	full bool
}

// openScan is a scan begun and not yet finished: what is needed to finish
// it after a crash.
type openScan struct {
	Scan observe.Scan `json:"scan"`
	// Next is the Seq of the scan's next batch.
	Next int `json:"next"`
	// Dropped counts observations that did not fit in the spool.
	Dropped int `json:"dropped,omitempty"`
	// Finishing is set just before the finish is appended: a crash then
	// leaves it unknown whether the finish made it, and a second finish
	// could contradict the first, so recovery does not send another.
	Finishing bool `json:"finishing,omitempty"`
}

// NewSpoolStore returns a store appending to sp; notify is called after
// each append (to wake the sender). openDir keeps the state of the scans
// in progress, so that a scan cut short by a crash is finished, as
// incomplete, when the agent starts again (RecoverOpenScans).
func NewSpoolStore(sp *spool.Spool, openDir string, log *slog.Logger, notify func()) (*SpoolStore, error) {
	if err := os.MkdirAll(openDir, 0o700); err != nil {
		return nil, err
	}
	if notify == nil {
		notify = func() {}
	}
	return &SpoolStore{sp: sp, log: log, dir: openDir, notify: notify, open: map[string]*openScan{}}, nil
}

// headroom is the space a new scan needs free: its finish must always
// fit, and a scan should not start only to be cut short at once.
func headroom(limit int64) int64 { return max(min(limit/20, 16<<20), 64<<10) }

// BeginScan spools the scan's begin batch. It refuses a new scan with
// ErrQueueFull when the spool is (nearly) full.
func (s *SpoolStore) BeginScan(_ context.Context, scan observe.Scan) error {
	st := s.sp.Stats()
	// Once the queue has been full, new scans wait until the server has
	// taken it down to half, rather than each being cut short in turn.
	if st.Bytes+headroom(st.Limit) > st.Limit || (s.Full() && st.Bytes > st.Limit/2) {
		s.setFull(true)
		s.log.Error("AGENT QUEUE FULL: scan not started; nothing queued is dropped, new scans wait until the server takes some (check that the server is reachable, or raise --queue-limit)",
			"scan", scan.ID, "queued_batches", st.Pending, "queued_bytes", st.PendingBytes, "disk_bytes", st.Bytes, "queue_limit", st.Limit)
		return fmt.Errorf("%w: %d of %d bytes waiting for the server: scan not started", ErrQueueFull, st.Bytes, st.Limit)
	}
	s.setFull(false)
	o := &openScan{Scan: scan}
	s.mu.Lock()
	s.open[scan.ID] = o
	s.mu.Unlock()
	return s.append(o, protocol.BatchBegin, nil)
}

// AddObservations spools obs in chunks of at most
// protocol.MaxBatchObservations (smaller when their JSON would exceed
// protocol.MaxBatchBytes). Observations that do not fit in the spool are
// counted and the scan is finished as incomplete; older batches are kept.
func (s *SpoolStore) AddObservations(_ context.Context, scanID string, obs []observe.Observation) error {
	s.mu.Lock()
	o := s.open[scanID]
	s.mu.Unlock()
	if o == nil {
		return fmt.Errorf("agent store: observations for scan %s, which was not begun", scanID)
	}
	for len(obs) > 0 {
		n := min(len(obs), protocol.MaxBatchObservations)
		err := s.append(o, protocol.BatchObservations, obs[:n])
		if errors.Is(err, spool.ErrFull) {
			o.Dropped += len(obs)
			s.setFull(true)
			st := s.sp.Stats()
			s.log.Error("AGENT QUEUE FULL during a scan: the rest of its observations are not kept and the scan is recorded as incomplete; nothing queued earlier is dropped",
				"scan", scanID, "not_kept", len(obs), "queued_bytes", st.PendingBytes, "disk_bytes", st.Bytes, "queue_limit", st.Limit)
			return nil
		}
		if err != nil {
			return err
		}
		obs = obs[n:]
	}
	return nil
}

// FinishScan spools the finish batch. It returns no findings: the server
// evaluates the rules once it has the whole scan.
func (s *SpoolStore) FinishScan(_ context.Context, scan observe.Scan, _ []observe.Finding) (current, resolved []observe.Finding, err error) {
	s.mu.Lock()
	o := s.open[scan.ID]
	s.mu.Unlock()
	if o == nil {
		return nil, nil, fmt.Errorf("agent store: finish of scan %s, which was not begun", scan.ID)
	}
	if o.Dropped > 0 {
		scan.Complete = false
		scan.Errors = append(scan.Errors, fmt.Sprintf("agent queue full: %d observation(s) of this scan were not kept", o.Dropped))
	}
	o.Scan = scan
	if err := s.append(o, protocol.BatchFinish, nil); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	delete(s.open, scan.ID)
	s.mu.Unlock()
	_ = os.Remove(s.openPath(scan.ID))
	if s.OnFinish != nil {
		s.OnFinish(scan)
	}
	return nil, nil, nil
}

// append spools one batch of o. The next Seq is recorded (synced) before
// the batch is appended, so after a crash a recovered finish never reuses
// a Seq, and so an id, that was sent.
func (s *SpoolStore) append(o *openScan, kind string, obs []observe.Observation) error {
	seq := o.Next
	o.Next++
	o.Finishing = kind == protocol.BatchFinish
	if err := s.saveOpen(o); err != nil {
		return err
	}
	b := protocol.Batch{ID: protocol.BatchID(o.Scan.ID, seq), Kind: kind, Scan: o.Scan, Seq: seq, Observations: obs}
	payload, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("agent store: encode batch %s: %w", b.ID, err)
	}
	if len(payload) > protocol.MaxBatchBytes && len(obs) > 1 {
		// Observations with large evidence: split the chunk in two.
		o.Next--
		half := len(obs) / 2
		if err := s.append(o, kind, obs[:half]); err != nil {
			return err
		}
		return s.append(o, kind, obs[half:])
	}
	if err := s.sp.Append(payload); err != nil {
		return fmt.Errorf("agent store: batch %s: %w", b.ID, err)
	}
	s.notify()
	return nil
}

func (s *SpoolStore) openPath(scanID string) string {
	return filepath.Join(s.dir, strings.NewReplacer("/", "_", "\\", "_").Replace(scanID)+".json")
}

func (s *SpoolStore) saveOpen(o *openScan) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.openPath(o.Scan.ID), b, 0o600, true); err != nil {
		return fmt.Errorf("agent store: %w", err)
	}
	return nil
}

// RecoverOpenScans finishes, as incomplete, every scan a previous run
// began and never finished (the agent was killed or the machine lost
// power mid-scan): the server then knows the scan ended and that it
// resolves nothing. It returns how many it finished.
func (s *SpoolStore) RecoverOpenScans() (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return n, err
		}
		var o openScan
		if err := json.Unmarshal(b, &o); err != nil || o.Scan.ID == "" {
			s.log.Warn("unreadable record of an unfinished scan: removed", "file", path)
			_ = os.Remove(path)
			continue
		}
		if o.Finishing {
			s.log.Warn("scan was being finished when the agent stopped: its finish is in the queue or lost", "scan", o.Scan.ID)
			_ = os.Remove(path)
			continue
		}
		o.Scan.Complete = false
		if o.Scan.FinishedAt.IsZero() {
			o.Scan.FinishedAt = o.Scan.StartedAt
		}
		o.Scan.Errors = append(o.Scan.Errors, "agent stopped during the scan (killed, crashed or lost power): recorded as incomplete when it started again")
		s.mu.Lock()
		s.open[o.Scan.ID] = &o
		s.mu.Unlock()
		if _, _, err := s.FinishScan(context.Background(), o.Scan, nil); err != nil {
			return n, err
		}
		s.log.Warn("unfinished scan from before a restart recorded as incomplete", "scan", o.Scan.ID, "batches", o.Next)
		n++
	}
	return n, nil
}

// Full reports whether the last attempt to queue found the spool full.
func (s *SpoolStore) Full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

func (s *SpoolStore) setFull(v bool) {
	s.mu.Lock()
	s.full = v
	s.mu.Unlock()
}
