// Package spool is the site agent's outbox: a bounded, crash-safe FIFO of
// batches on disk. The agent appends what it scanned and removes a batch
// only once the server has acknowledged it, so while the server is away
// nothing is lost and, when it returns, everything arrives in order.
package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Record layout: a header of length (uint32, little endian) and CRC-32C of
// the payload (uint32), then the payload. A record cut short by a crash, or
// whose checksum fails, ends the segment: it and anything after it in that
// segment are discarded when the spool is opened.
const headerSize = 8

// MaxRecord bounds one batch.
const MaxRecord = 64 << 20

// DefaultSegmentSize is the size after which appends start a new segment
// file; whole segments are deleted once every record in them is
// acknowledged, which is when their space counts as free again.
const DefaultSegmentSize = 4 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrFull is returned by Append when the spool holds its limit: the agent
// counts what it could not keep and says so in its health report.
var ErrFull = errors.New("spool full")

// ErrEmpty is returned by Peek when nothing is waiting.
var ErrEmpty = errors.New("spool empty")

// Spool is a directory of segment files 000001.seg, 000002.seg, ... and a
// "head" file naming the first unacknowledged record. Safe for concurrent
// use.
type Spool struct {
	mu       sync.Mutex
	dir      string
	limit    int64
	segs     []uint64 // segment numbers, oldest first
	head     position // next record to deliver
	size     int64    // bytes on disk in segments (including acknowledged records of the head segment)
	pending  int      // records not yet acknowledged
	tail     *os.File
	tailSize int64
	segSize  int64
}

// Option changes how Open opens a spool.
type Option func(*Spool)

// WithSegmentSize sets the segment size (DefaultSegmentSize).
func WithSegmentSize(n int64) Option { return func(s *Spool) { s.segSize = max(n, 1) } }

type position struct {
	seg uint64
	off int64
}

// Open opens (creating) the spool in dir, bounded to limit bytes, and
// recovers from a crash: a torn record at the end of a segment is cut off.
func Open(dir string, limit int64, opts ...Option) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s := &Spool{dir: dir, limit: limit, segSize: DefaultSegmentSize}
	for _, o := range opts {
		o(s)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		s.segs = append(s.segs, n)
	}
	slices.Sort(s.segs)
	if err := s.loadHead(); err != nil {
		return nil, err
	}
	// Drop segments wholly before the head; recount what is pending.
	for len(s.segs) > 0 && s.segs[0] < s.head.seg {
		os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
	}
	for i, seg := range s.segs {
		valid, count, err := scanSegment(s.segPath(seg), s.offsetIn(seg))
		if err != nil {
			return nil, fmt.Errorf("spool %s: %w", dir, err)
		}
		fi, err := os.Stat(s.segPath(seg))
		if err != nil {
			return nil, fmt.Errorf("spool %s: %w", dir, err)
		}
		if fi.Size() > valid {
			// A torn or corrupt tail: keep what is whole.
			if err := os.Truncate(s.segPath(seg), valid); err != nil {
				return nil, fmt.Errorf("spool %s: truncate torn record: %w", dir, err)
			}
		}
		s.size += valid
		s.pending += count
		if i == len(s.segs)-1 {
			s.tailSize = valid
		}
	}
	switch {
	case len(s.segs) == 0:
		// Everything was delivered (or this is a new spool): start a new
		// segment after the last one, from its beginning.
		s.segs = []uint64{s.head.seg + 1}
		s.head = position{seg: s.segs[0]}
		if err := s.writeHead(); err != nil {
			return nil, fmt.Errorf("spool %s: %w", dir, err)
		}
	case s.head.seg < s.segs[0]:
		s.head = position{seg: s.segs[0]}
	}
	if s.tail, err = os.OpenFile(s.segPath(s.segs[len(s.segs)-1]), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	return s, nil
}

func (s *Spool) segPath(n uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%06d.seg", n)) }

func (s *Spool) offsetIn(seg uint64) int64 {
	if seg == s.head.seg {
		return s.head.off
	}
	return 0
}

// loadHead loads the head file ("SEG OFFSET"); missing means the start.
func (s *Spool) loadHead() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "head"))
	if errors.Is(err, os.ErrNotExist) {
		if len(s.segs) > 0 {
			s.head = position{seg: s.segs[0]}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool %s: %w", s.dir, err)
	}
	var p position
	if _, err := fmt.Sscanf(string(b), "%d %d", &p.seg, &p.off); err != nil || p.off < 0 {
		return fmt.Errorf("spool %s: head file %q is corrupt", s.dir, strings.TrimSpace(string(b)))
	}
	s.head = p
	return nil
}

// writeHead replaces the head file atomically (write, fsync, rename).
func (s *Spool) writeHead() error {
	tmp := filepath.Join(s.dir, "head.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d %d\n", s.head.seg, s.head.off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "head"))
}

// scanSegment reads whole, valid records from off and returns where the
// valid part ends and how many records it holds.
func scanSegment(path string, off int64) (valid int64, count int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, 0, err
	}
	r := bufio.NewReader(f)
	valid = off
	for {
		n, err := readRecord(r, nil)
		if err != nil {
			return valid, count, nil // EOF or a torn/corrupt record: stop here
		}
		valid += int64(n)
		count++
	}
}

// readRecord reads one record into buf (grown as needed) and returns its
// size on disk; any error means no whole, valid record is there.
func readRecord(r io.Reader, buf *[]byte) (int, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	sum := binary.LittleEndian.Uint32(h[4:])
	if n > MaxRecord {
		return 0, fmt.Errorf("record of %d bytes exceeds %d", n, MaxRecord)
	}
	var payload []byte
	if buf != nil {
		if cap(*buf) < int(n) {
			*buf = make([]byte, n)
		}
		payload = (*buf)[:n]
	} else {
		payload = make([]byte, n)
	}
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, err
	}
	if crc32.Checksum(payload, crcTable) != sum {
		return 0, errors.New("checksum mismatch")
	}
	if buf != nil {
		*buf = payload
	}
	return headerSize + int(n), nil
}

// Append writes payload at the tail and syncs it to disk before returning.
// It returns ErrFull, writing nothing, when the spool would exceed its
// limit.
func (s *Spool) Append(payload []byte) error {
	if len(payload) > MaxRecord {
		return fmt.Errorf("spool: batch of %d bytes exceeds %d", len(payload), MaxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	need := int64(headerSize + len(payload))
	if s.size+need > s.limit {
		return fmt.Errorf("%w: %d of %d bytes held, %d more needed", ErrFull, s.size, s.limit, need)
	}
	if s.tailSize >= s.segSize {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	rec := make([]byte, need)
	binary.LittleEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:8], crc32.Checksum(payload, crcTable))
	copy(rec[headerSize:], payload)
	if _, err := s.tail.Write(rec); err != nil {
		// Cut off whatever part was written so the segment stays whole.
		_ = s.tail.Truncate(s.tailSize)
		return fmt.Errorf("spool: %w", err)
	}
	if err := s.tail.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.tailSize += need
	s.size += need
	s.pending++
	return nil
}

func (s *Spool) rotate() error {
	next := s.segs[len(s.segs)-1] + 1
	f, err := os.OpenFile(s.segPath(next), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := s.tail.Close(); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.tail, s.tailSize = f, 0
	s.segs = append(s.segs, next)
	return syncDir(s.dir)
}

// Peek returns the oldest batch not yet acknowledged, without removing it.
func (s *Spool) Peek() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	if _, err := s.readHead(&buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Ack removes the oldest batch (the one Peek returned): the server has it.
func (s *Spool) Ack() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.readHead(nil)
	if err != nil {
		return err
	}
	s.head.off += int64(n)
	s.pending--
	if err := s.writeHead(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	// A head segment fully acknowledged, and not the tail, is deleted.
	if s.head.seg != s.segs[len(s.segs)-1] {
		if fi, err := os.Stat(s.segPath(s.head.seg)); err == nil && s.head.off >= fi.Size() {
			return s.advanceSegment()
		}
	}
	return nil
}

// readHead reads the record at the head, moving past used-up segments, and
// returns its size on disk.
func (s *Spool) readHead(buf *[]byte) (int, error) {
	for {
		if s.pending == 0 {
			return 0, ErrEmpty
		}
		f, err := os.Open(s.segPath(s.head.seg))
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		if _, err := f.Seek(s.head.off, io.SeekStart); err != nil {
			f.Close()
			return 0, fmt.Errorf("spool: %w", err)
		}
		n, err := readRecord(bufio.NewReader(f), buf)
		f.Close()
		if err == nil {
			return n, nil
		}
		if err := s.advanceSegment(); err != nil {
			return 0, err
		}
	}
}

// advanceSegment deletes the used-up head segment and moves to the next.
func (s *Spool) advanceSegment() error {
	if len(s.segs) < 2 {
		return fmt.Errorf("spool %s: %d records pending but none readable", s.dir, s.pending)
	}
	old := s.segs[0]
	fi, _ := os.Stat(s.segPath(old))
	s.segs = s.segs[1:]
	s.head = position{seg: s.segs[0]}
	if err := s.writeHead(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if fi != nil {
		s.size -= fi.Size()
	}
	if err := os.Remove(s.segPath(old)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Stats is the spool's health, for the agent's report to the server.
type Stats struct {
	Pending int `json:"pending"` // batches waiting for the server
	// PendingBytes is the size of those batches; Bytes also counts the
	// acknowledged ones still in the oldest segment file, which is what
	// Limit bounds.
	PendingBytes int64 `json:"pending_bytes"`
	Bytes        int64 `json:"bytes"` // on disk
	Limit        int64 `json:"limit"`
}

// Stats returns the current depth.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Pending: s.pending, PendingBytes: max(s.size-s.head.off, 0), Bytes: s.size, Limit: s.limit}
}

// Close closes the tail segment.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tail.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
