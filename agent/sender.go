package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/agent/spool"
)

// Backoff is a bounded exponential backoff with jitter: each delay is
// drawn from [d/2, d] where d doubles from Min up to Max.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay, never more than Max.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.n++
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts again from Min.
func (b *Backoff) Reset() { b.n = 0 }

// Failures is how many delays were taken since the last Reset.
func (b *Backoff) Failures() int { return b.n }

// batchPoster is what the sender needs from the client.
type batchPoster interface {
	PostBatch(ctx context.Context, gz []byte) (*protocol.BatchAck, error)
}

// Sender delivers the spool to the server in order: the oldest batch is
// sent until the server acknowledges it (a duplicate acknowledgement
// counts), then removed. Network errors and 5xx are retried with a
// bounded backoff; a refusal of the agent (revoked, unknown) ends Run
// with an error wrapping ErrRefused.
type Sender struct {
	sp       *spool.Spool
	client   batchPoster
	log      *slog.Logger
	wake     chan struct{}
	backoff  Backoff
	rejected string // RejectedDir
	// OnDelivered, when set, is told about every acknowledged batch.
	OnDelivered func(b *protocol.Batch, ack *protocol.BatchAck)
	// OnError, when set, is told about every failed attempt.
	OnError func(err error)
}

// Default backoff bounds of the sender.
const (
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = time.Minute
)

// NewSender returns a sender of sp through client; rejectedDir receives
// batches the server refuses as malformed, so that one bad batch cannot
// block the queue and is still kept for inspection.
func NewSender(sp *spool.Spool, client batchPoster, rejectedDir string, log *slog.Logger) *Sender {
	return &Sender{sp: sp, client: client, log: log, wake: make(chan struct{}, 1), rejected: rejectedDir,
		backoff: Backoff{Min: DefaultBackoffMin, Max: DefaultBackoffMax}}
}

// SetBackoff changes the retry bounds (tests).
func (s *Sender) SetBackoff(minDelay, maxDelay time.Duration) {
	s.backoff = Backoff{Min: minDelay, Max: maxDelay}
}

// Wake tells the sender something was appended.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends until ctx is done (nil) or the server refuses the agent.
func (s *Sender) Run(ctx context.Context) error {
	for {
		err := s.Drain(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRefused):
			return err
		case err != nil:
			d := s.backoff.Next()
			if f := s.backoff.Failures(); f == 1 || f%10 == 0 {
				st := s.sp.Stats()
				s.log.Warn("server unreachable: batches stay queued and scans go on; retrying", "error", err,
					"attempts", f, "retry_in", d.Round(time.Millisecond), "queued_batches", st.Pending, "queued_bytes", st.PendingBytes)
			}
			if s.OnError != nil {
				s.OnError(err)
			}
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		// Empty: wait for an append; look again now and then anyway.
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-time.After(30 * time.Second):
		}
	}
}

// Drain sends batches until the spool is empty (nil) or one fails.
func (s *Sender) Drain(ctx context.Context) error {
	for ctx.Err() == nil {
		payload, err := s.sp.Peek()
		if errors.Is(err, spool.ErrEmpty) {
			return nil
		}
		if err != nil {
			return err
		}
		var b protocol.Batch
		if err := json.Unmarshal(payload, &b); err != nil {
			// The spool's checksums make this a bug, not a torn write;
			// keep the bytes and move on.
			s.reject(fmt.Sprintf("unreadable-%d", time.Now().UnixNano()), payload, err)
			if err := s.sp.Ack(); err != nil {
				return err
			}
			continue
		}
		gz, err := gzipBytes(payload)
		if err != nil {
			return err
		}
		ack, err := s.client.PostBatch(ctx, gz)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if rejected(err) {
				s.reject(b.ID, payload, err)
				if err := s.sp.Ack(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("batch %s: %w", b.ID, err)
		}
		if err := s.sp.Ack(); err != nil {
			return err
		}
		if s.backoff.Failures() > 0 {
			s.log.Info("server reachable again: delivering the queue", "after_attempts", s.backoff.Failures(), "queued_batches", s.sp.Stats().Pending)
			s.backoff.Reset()
		}
		if b.Kind == protocol.BatchFinish {
			s.log.Info("scan delivered", "scan", b.Scan.ID, "batches", b.Seq+1, "complete", b.Scan.Complete,
				"findings", ack.Findings, "duplicate", ack.Duplicate, "queued_batches", s.sp.Stats().Pending)
		} else {
			s.log.Debug("batch delivered", "batch", b.ID, "kind", b.Kind, "observations", len(b.Observations), "duplicate", ack.Duplicate)
		}
		if s.OnDelivered != nil {
			s.OnDelivered(&b, ack)
		}
	}
	return ctx.Err()
}

// reject keeps a batch the server will never take in RejectedDir.
func (s *Sender) reject(id string, payload []byte, why error) {
	name := strings.NewReplacer("/", "_", ":", "_").Replace(id) + ".json"
	path := filepath.Join(s.rejected, name)
	if err := os.MkdirAll(s.rejected, 0o700); err == nil {
		err = writeFileAtomic(path, payload, 0o600, true)
		if err != nil {
			path = "(not kept: " + err.Error() + ")"
		}
	}
	s.log.Error("server rejected a batch as malformed: it is set aside so the rest of the queue can be delivered", "batch", id, "kept_in", path, "error", why)
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
