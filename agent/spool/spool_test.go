package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func batch(i int) []byte {
	return []byte(fmt.Sprintf("batch-%04d:%s", i, bytes.Repeat([]byte{'x'}, i%50)))
}

func openT(t *testing.T, dir string, limit int64, opts ...Option) *Spool {
	t.Helper()
	s, err := Open(dir, limit, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// drain delivers everything, checking order from want on.
func drain(t *testing.T, s *Spool, want int) int {
	t.Helper()
	for {
		b, err := s.Peek()
		if errors.Is(err, ErrEmpty) {
			return want
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, batch(want)) {
			t.Fatalf("got %q, want %q", b, batch(want))
		}
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
		want++
	}
}

// Batches come out in order, each once, across reopens and segment
// rotations, and the space of delivered segments is given back.
func TestOrderAcrossReopens(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<20, WithSegmentSize(200))
	for i := range 40 {
		if err := s.Append(batch(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Deliver some, then "crash" (close without more) and reopen.
	for range 15 {
		if _, err := s.Peek(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openT(t, dir, 1<<20, WithSegmentSize(200))
	if st := s.Stats(); st.Pending != 25 {
		t.Fatalf("after reopen: %+v, want 25 pending", st)
	}
	for i := 40; i < 50; i++ {
		if err := s.Append(batch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if next := drain(t, s, 15); next != 50 {
		t.Fatalf("delivered up to %d, want 50", next)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Errorf("%d segments left after delivering everything, want 1 (the tail): %v", len(segs), segs)
	}
	s.Close()
	s = openT(t, dir, 1<<20, WithSegmentSize(200))
	if _, err := s.Peek(); !errors.Is(err, ErrEmpty) {
		t.Errorf("after delivering everything and reopening: %v, want empty", err)
	}
	if err := s.Append(batch(0)); err != nil {
		t.Fatal(err)
	}
	if drain(t, s, 0) != 1 {
		t.Error("a batch appended after a full drain was not delivered")
	}
}

// The limit holds: a full spool refuses, without writing, until delivered
// segments free space.
func TestLimit(t *testing.T) {
	s := openT(t, t.TempDir(), 300, WithSegmentSize(100))
	var n int
	for ; ; n++ {
		err := s.Append(batch(n))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 || s.Stats().Bytes > 300 {
		t.Fatalf("held %d batches, %+v", n, s.Stats())
	}
	if err := s.Append(batch(n)); !errors.Is(err, ErrFull) {
		t.Fatalf("second append when full: %v", err)
	}
	if drain(t, s, 0) != n {
		t.Fatal("a refused append left something behind")
	}
	if err := s.Append(batch(0)); err != nil {
		t.Errorf("after delivering everything: %v", err)
	}
	if err := s.Append(make([]byte, MaxRecord+1)); err == nil {
		t.Error("an oversized batch was accepted")
	}
}

// A record torn by a crash mid-write is cut off when the spool is opened;
// everything before it is kept.
func TestTornTail(t *testing.T) {
	for name, tear := range map[string]func(path string){
		"half a header": func(p string) { appendBytes(t, p, []byte{9, 0}) },
		"half a payload": func(p string) {
			appendBytes(t, p, []byte{20, 0, 0, 0, 1, 2, 3, 4, 'a', 'b'})
		},
		"bad checksum": func(p string) { appendBytes(t, p, []byte{2, 0, 0, 0, 1, 2, 3, 4, 'h', 'i'}) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, 1<<20)
			for i := range 3 {
				if err := s.Append(batch(i)); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			tear(segs[len(segs)-1])
			s = openT(t, dir, 1<<20)
			if st := s.Stats(); st.Pending != 3 {
				t.Fatalf("%+v, want the 3 whole batches", st)
			}
			if err := s.Append(batch(3)); err != nil {
				t.Fatal(err)
			}
			if drain(t, s, 0) != 4 {
				t.Error("batches lost around the torn record")
			}
		})
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(b)
}

// A producer and a consumer at once: every batch delivered once, in order.
func TestConcurrentProducerConsumer(t *testing.T) {
	s := openT(t, t.TempDir(), 1<<20, WithSegmentSize(512))
	const total = 500
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			for s.Append(batch(i)) != nil {
			}
		}
	}()
	next := 0
	for next < total {
		b, err := s.Peek()
		if errors.Is(err, ErrEmpty) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, batch(next)) {
			t.Fatalf("got %q, want %q", b, batch(next))
		}
		if err := s.Ack(); err != nil {
			t.Fatal(err)
		}
		next++
	}
	wg.Wait()
}

func TestCorruptHeadFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "head"), []byte("not a position"), 0o600)
	if _, err := Open(dir, 1<<20); err == nil {
		t.Error("a corrupt head file was accepted")
	}
}

func FuzzReadRecord(f *testing.F) {
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'})
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		var buf []byte
		n, err := readRecord(bytes.NewReader(b), &buf)
		if err == nil && (n != headerSize+len(buf) || n > len(b)) {
			t.Fatalf("size %d for a %d-byte payload from %d bytes", n, len(buf), len(b))
		}
	})
}
