package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/agent/spool"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/observe"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func obsN(scanID string, n int) []observe.Observation {
	out := make([]observe.Observation, n)
	for i := range out {
		out[i] = observe.Observation{Kind: observe.KindHost, Location: "a", Source: scanID, Host: fmt.Sprintf("127.0.%d.%d", i/250, i%250+1)}
	}
	return out
}

func openSpool(t *testing.T, dir string, limit int64) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(filepath.Join(dir, SpoolDir), limit)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func newStore(t *testing.T, dir string, sp *spool.Spool) *SpoolStore {
	t.Helper()
	s, err := NewSpoolStore(sp, filepath.Join(dir, OpenScansDir), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// peekAll reads the spool's batches in order, acknowledging each.
func peekAll(t *testing.T, sp *spool.Spool) []protocol.Batch {
	t.Helper()
	var out []protocol.Batch
	for {
		b, err := sp.Peek()
		if errors.Is(err, spool.ErrEmpty) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var pb protocol.Batch
		if err := json.Unmarshal(b, &pb); err != nil {
			t.Fatal(err)
		}
		out = append(out, pb)
		if err := sp.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// A scan becomes begin, observation chunks of at most
// MaxBatchObservations in the order they were added, and finish, with
// consecutive Seq and ids from BatchID.
func TestSpoolStoreBatches(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir, 1<<30)
	defer sp.Close()
	st := newStore(t, dir, sp)
	scan := observe.Scan{ID: "20260101T000000Z-aaaa", StartedAt: time.Now().UTC(), Locations: []string{"a"}}
	ctx := context.Background()
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	obs := obsN(scan.ID, 2*protocol.MaxBatchObservations+500)
	if err := st.AddObservations(ctx, scan.ID, obs[:protocol.MaxBatchObservations+1]); err != nil {
		t.Fatal(err)
	}
	if err := st.AddObservations(ctx, scan.ID, obs[protocol.MaxBatchObservations+1:]); err != nil {
		t.Fatal(err)
	}
	if err := st.AddObservations(ctx, scan.ID, nil); err != nil { // a location that saw nothing
		t.Fatal(err)
	}
	scan.FinishedAt, scan.Complete = time.Now().UTC(), true
	cur, res, err := st.FinishScan(ctx, scan, []observe.Finding{{Rule: "x"}})
	if err != nil || cur != nil || res != nil {
		t.Fatalf("FinishScan = %v, %v, %v; want no findings (the server judges)", cur, res, err)
	}
	got := peekAll(t, sp)
	wantKinds := []string{"begin", "observations", "observations", "observations", "observations", "finish"}
	wantSizes := []int{0, 2000, 1, 2000, 499, 0}
	if len(got) != len(wantKinds) {
		t.Fatalf("%d batches, want %d", len(got), len(wantKinds))
	}
	var seen []observe.Observation
	for i, b := range got {
		if b.Kind != wantKinds[i] || len(b.Observations) != wantSizes[i] || b.Seq != i || b.ID != protocol.BatchID(scan.ID, i) || b.Scan.ID != scan.ID {
			t.Errorf("batch %d: kind %s, %d observations, seq %d, id %s; want %s, %d, %d, %s", i, b.Kind, len(b.Observations), b.Seq, b.ID, wantKinds[i], wantSizes[i], i, protocol.BatchID(scan.ID, i))
		}
		seen = append(seen, b.Observations...)
	}
	for i := range obs {
		if seen[i].Host != obs[i].Host {
			t.Fatalf("observation %d is %s, want %s: order lost", i, seen[i].Host, obs[i].Host)
		}
	}
	if !got[5].Scan.Complete {
		t.Error("finish batch lost the scan's completeness")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, OpenScansDir)); len(ents) != 0 {
		t.Errorf("finished scan still recorded as open: %v", ents)
	}
}

// An agent killed mid-scan, started again, delivers what it had spooled
// and finishes the scan as incomplete with the next Seq; batches already
// acknowledged before the crash are not sent again.
func TestCrashRestartResumesFromSpool(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir, 1<<30)
	st := newStore(t, dir, sp)
	ctx := context.Background()
	scan := observe.Scan{ID: "20260101T000000Z-bbbb", StartedAt: time.Now().UTC(), Locations: []string{"a"}}
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	if err := st.AddObservations(ctx, scan.ID, obsN(scan.ID, 2500)); err != nil {
		t.Fatal(err)
	}
	// The begin was delivered before the crash.
	if _, err := sp.Peek(); err != nil {
		t.Fatal(err)
	}
	if err := sp.Ack(); err != nil {
		t.Fatal(err)
	}
	sp.Close() // the process dies here: no finish

	sp = openSpool(t, dir, 1<<30)
	defer sp.Close()
	st = newStore(t, dir, sp)
	n, err := st.RecoverOpenScans()
	if err != nil || n != 1 {
		t.Fatalf("RecoverOpenScans = %d, %v; want 1", n, err)
	}
	got := peekAll(t, sp)
	var desc []string
	for _, b := range got {
		desc = append(desc, fmt.Sprintf("%s#%d(%d)", b.Kind, b.Seq, len(b.Observations)))
	}
	if want := "observations#1(2000) observations#2(500) finish#3(0)"; strings.Join(desc, " ") != want {
		t.Fatalf("after restart the queue is %v, want %s", desc, want)
	}
	fin := got[2].Scan
	if fin.Complete || len(fin.Errors) == 0 || !strings.Contains(fin.Errors[0], "agent stopped during the scan") {
		t.Errorf("recovered finish = complete %v, errors %v; want incomplete with the reason", fin.Complete, fin.Errors)
	}
	// Nothing left to recover on the next start.
	if n, _ := newStore(t, dir, sp).RecoverOpenScans(); n != 0 {
		t.Errorf("second restart recovered %d scans again", n)
	}
}

// When the spool is full, a new scan is refused (ErrQueueFull) and what is
// queued stays; a scan that fills it midway is finished as incomplete.
func TestQueueFullKeepsOldest(t *testing.T) {
	dir := t.TempDir()
	const limit = 1 << 20 // headroom 64 KiB
	sp := openSpool(t, dir, limit)
	defer sp.Close()
	st := newStore(t, dir, sp)
	ctx := context.Background()
	scan := observe.Scan{ID: "s1", StartedAt: time.Now().UTC(), Locations: []string{"a"}}
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	// ~100 bytes per observation: 20000 do not fit in 1 MiB.
	if err := st.AddObservations(ctx, scan.ID, obsN(scan.ID, 20000)); err != nil {
		t.Fatalf("a full queue mid-scan must not fail the scan: %v", err)
	}
	scan.Complete = true
	if _, _, err := st.FinishScan(ctx, scan, nil); err != nil {
		t.Fatalf("finish did not fit in the headroom: %v", err)
	}
	if !st.Full() {
		t.Error("Full() = false after the queue filled")
	}
	err := st.BeginScan(ctx, observe.Scan{ID: "s2", StartedAt: time.Now().UTC()})
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("BeginScan on a full queue = %v, want ErrQueueFull", err)
	}
	got := peekAll(t, sp)
	if got[0].Kind != "begin" || got[0].Scan.ID != "s1" {
		t.Fatalf("oldest batch is %s of %s, want begin of s1", got[0].Kind, got[0].Scan.ID)
	}
	last := got[len(got)-1]
	if last.Kind != "finish" || last.Scan.Complete || !strings.Contains(strings.Join(last.Scan.Errors, ";"), "observation(s) of this scan were not kept") {
		t.Fatalf("last batch = %s complete=%v errors=%v; want an incomplete finish saying what was not kept", last.Kind, last.Scan.Complete, last.Scan.Errors)
	}
	for _, b := range got {
		if b.Scan.ID == "s2" {
			t.Fatal("a scan refused for a full queue left a batch")
		}
	}
}

func TestBackoffBounded(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	var prevMax time.Duration
	for i := range 200 {
		d := b.Next()
		if d > b.Max || d < b.Min/2 {
			t.Fatalf("attempt %d: delay %s outside [%s, %s]", i, d, b.Min/2, b.Max)
		}
		prevMax = max(prevMax, d)
	}
	if prevMax < b.Max/2 {
		t.Errorf("delays never grew past %s", prevMax)
	}
	b.Reset()
	if d := b.Next(); d > b.Min {
		t.Errorf("after Reset the delay is %s, want at most %s", d, b.Min)
	}
}

// batchServer is a minimal real server for the batch endpoint: it checks
// each request's signature, decompresses and decodes the batch, and keeps
// each id once. fail answers instead while it returns non-zero.
type batchServer struct {
	t    *testing.T
	pub  ed25519.PublicKey
	mu   sync.Mutex
	ids  []string
	seen map[string]bool
	dups int
	fail func(b protocol.Batch) (int, string)
}

func (s *batchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sig, err := protocol.ParseSigned(r, time.Now())
	if err == nil {
		err = sig.Verify(s.pub, r, body)
	}
	if err != nil {
		w.WriteHeader(401)
		_ = json.NewEncoder(w).Encode(protocol.Error{Error: err.Error()})
		return
	}
	if r.URL.Path != protocol.PathBatches || r.Header.Get("Content-Encoding") != "gzip" {
		w.WriteHeader(400)
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		w.WriteHeader(400)
		return
	}
	var b protocol.Batch
	if err := json.NewDecoder(zr).Decode(&b); err != nil {
		w.WriteHeader(400)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if code, msg := s.fail(b); code != 0 {
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(protocol.Error{Error: msg})
			return
		}
	}
	ack := protocol.BatchAck{ID: b.ID, Duplicate: s.seen[b.ID]}
	if !ack.Duplicate {
		s.seen[b.ID] = true
		s.ids = append(s.ids, b.ID)
	} else {
		s.dups++
	}
	_ = json.NewEncoder(w).Encode(ack)
}

func (s *batchServer) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func newBatchServer(t *testing.T) (*batchServer, *Client) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	bs := &batchServer{t: t, pub: pub, seen: map[string]bool{}}
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	hc, err := NewHTTPClient(Trust{})
	if err != nil {
		t.Fatal(err)
	}
	return bs, NewClient(u, hc, &Credential{Tenant: "t", AgentID: "ag1", Server: srv.URL}, key, "test")
}

func spoolScan(t *testing.T, st *SpoolStore, id string, n int) {
	t.Helper()
	ctx := context.Background()
	scan := observe.Scan{ID: id, StartedAt: time.Now().UTC(), Locations: []string{"a"}}
	if err := st.BeginScan(ctx, scan); err != nil {
		t.Fatal(err)
	}
	if err := st.AddObservations(ctx, id, obsN(id, n)); err != nil {
		t.Fatal(err)
	}
	scan.Complete = true
	if _, _, err := st.FinishScan(ctx, scan, nil); err != nil {
		t.Fatal(err)
	}
}

// The sender delivers in order, retries 5xx and network errors with
// backoff without losing or reordering anything, removes a batch only once
// acknowledged, and sets aside a batch the server rejects (403) so the
// queue goes on.
func TestSenderDeliversInOrderThroughFailures(t *testing.T) {
	bs, client := newBatchServer(t)
	attempts := 0
	bs.fail = func(b protocol.Batch) (int, string) {
		attempts++
		switch {
		case attempts <= 3:
			return 503, "the server took too long to store the batch: send it again"
		case b.Scan.ID == "foreign" && b.Kind == "begin":
			return 403, "scan foreign is not this agent's"
		}
		return 0, ""
	}
	dir := t.TempDir()
	sp := openSpool(t, dir, 1<<30)
	defer sp.Close()
	st := newStore(t, dir, sp)
	spoolScan(t, st, "s1", 2100)
	if err := st.BeginScan(context.Background(), observe.Scan{ID: "foreign"}); err != nil {
		t.Fatal(err)
	}
	spoolScan(t, st, "s2", 10)
	snd := NewSender(sp, client, filepath.Join(dir, RejectedDir), testLogger(t))
	snd.SetBackoff(5*time.Millisecond, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- snd.Run(ctx) }()
	for sp.Stats().Pending > 0 {
		if ctx.Err() != nil {
			t.Fatalf("queue not drained: %+v", sp.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := []string{"s1:0", "s1:1", "s1:2", "s1:3", "s2:0", "s2:1", "s2:2"}
	if got := bs.delivered(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, RejectedDir, "foreign_0.json")); err != nil {
		t.Errorf("rejected batch not kept: %v", err)
	}
}

// A batch acknowledged as a duplicate (the server stored it, the answer
// was lost) counts as delivered.
func TestSenderDuplicateAckIsDelivered(t *testing.T) {
	bs, client := newBatchServer(t)
	bs.seen["d:0"] = true
	dir := t.TempDir()
	sp := openSpool(t, dir, 1<<30)
	defer sp.Close()
	st := newStore(t, dir, sp)
	spoolScan(t, st, "d", 1)
	snd := NewSender(sp, client, filepath.Join(dir, RejectedDir), testLogger(t))
	if err := snd.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := sp.Stats(); st.Pending != 0 || st.PendingBytes != 0 || bs.dups != 1 {
		t.Fatalf("pending %d (%d bytes), duplicates %d; want 0, 0 and 1", st.Pending, st.PendingBytes, bs.dups)
	}
}

// A revoked agent (401 that is not about the clock) stops the sender with
// ErrRefused and keeps the batch; a 401 about the clock is retried.
func TestSenderStopsWhenRefused(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		refused bool
	}{
		{"agent ag1 was revoked: enroll a new one with a new token", true},
		{"unknown agent ag1: enroll it again with a new token", true},
		{"Vigil-Date 2020-01-01T00:00:00Z is more than 5m0s from the server's clock", false},
	} {
		t.Run(tc.msg[:12], func(t *testing.T) {
			bs, client := newBatchServer(t)
			bs.fail = func(protocol.Batch) (int, string) { return 401, tc.msg }
			dir := t.TempDir()
			sp := openSpool(t, dir, 1<<30)
			defer sp.Close()
			spoolScan(t, newStore(t, dir, sp), "r", 1)
			snd := NewSender(sp, client, filepath.Join(dir, RejectedDir), testLogger(t))
			snd.SetBackoff(time.Millisecond, 5*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := snd.Run(ctx)
			if got := errors.Is(err, ErrRefused); got != tc.refused {
				t.Fatalf("Run = %v; refused %v, want %v", err, got, tc.refused)
			}
			if sp.Stats().Pending != 3 {
				t.Errorf("pending %d, want all 3 batches kept", sp.Stats().Pending)
			}
		})
	}
}

// The client talks only to the server whose certificate it pinned (or a CA
// it was given signed); it names the presented fingerprint when it
// refuses.
func TestFingerprintPinning(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(protocol.Assignment{AgentID: "ag1", Version: "v1"})
	}))
	defer srv.Close()
	good := daemon.Fingerprint(srv.Certificate().Raw)
	other, _ := NormalizeFingerprint(strings.Repeat("ab", 32))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	u, _ := url.Parse(srv.URL)
	lower := strings.ToLower(strings.ReplaceAll(good, ":", ""))
	for _, tc := range []struct {
		name  string
		trust Trust
		want  string // "" for success, else part of the error
	}{
		{"pinned", Trust{Fingerprint: good}, ""},
		{"pinned lower-case without colons", Trust{Fingerprint: "sha256:" + lower}, ""},
		{"another certificate pinned", Trust{Fingerprint: other}, "is not the pinned"},
		{"system roots", Trust{}, "not trusted"},
		{"ca file", Trust{CAFile: caFile}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := NewHTTPClient(tc.trust)
			if err != nil {
				t.Fatal(err)
			}
			c := NewClient(u, hc, &Credential{Tenant: "t", AgentID: "ag1"}, key, "test")
			_, err = c.Assignment(context.Background())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), good):
				t.Errorf("refusal does not name the presented fingerprint %s: %v", good, err)
			}
		})
	}
	if _, err := NewHTTPClient(Trust{Fingerprint: "abc"}); err == nil {
		t.Error("a malformed fingerprint was accepted")
	}
}

func TestServerURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://vigil.example:8443", true},
		{"https://10.0.0.5", true},
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080/", true},
		{"http://localhost:8080", true},
		{"http://10.0.0.5:8080", false},
		{"http://192.0.2.1", false},
		{"ftp://127.0.0.1", false},
		{"vigil.example", false},
		{"https://user:pw@vigil.example", false},
	} {
		_, err := ServerURL(context.Background(), tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("ServerURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if !tc.ok && strings.HasPrefix(tc.url, "http://") && !errors.Is(err, ErrInsecureServer) {
			t.Errorf("ServerURL(%q) = %v, want ErrInsecureServer", tc.url, err)
		}
	}
}

func TestStateKeyAndCredential(t *testing.T) {
	st, err := OpenState(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Credential(); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("Credential before enrollment = %v", err)
	}
	k1, created, err := st.Key()
	if err != nil || !created {
		t.Fatalf("Key = %v, created %v", err, created)
	}
	fi, _ := os.Stat(filepath.Join(st.Dir, KeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	k2, created, err := st.Key()
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("second Key: created %v, same %v, %v", created, k1.Equal(k2), err)
	}
	if err := os.Chmod(filepath.Join(st.Dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Key(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others was used: %v", err)
	}
	unlock, err := st.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock(); !errors.Is(err, ErrRunning) {
		t.Errorf("second Lock = %v, want ErrRunning", err)
	}
	unlock()
}
