package evidence

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUnreadable wraps every reason VerifyArchive cannot judge a file at
// all: not a zip, no manifest, an unknown format.
var ErrUnreadable = errors.New("not a readable vigil evidence archive")

// TamperError says what in an archive does not verify. Verification stops
// at the first problem, so Seq is the first broken entry.
type TamperError struct {
	// Seq is the entry the problem is at or next to; 0 when it is about
	// the archive as a whole (the manifest, a file's digest).
	Seq int64
	// Where names the part: "entry 12", "checkpoint at entry 1000",
	// "observation 7 of scan s1 (entry 12)", "manifest", "entries.jsonl".
	Where  string
	Reason string
}

func (e *TamperError) Error() string { return e.Where + ": " + e.Reason }

func tampered(seq int64, where, format string, args ...any) *TamperError {
	return &TamperError{Seq: seq, Where: where, Reason: fmt.Sprintf(format, args...)}
}

func entryTampered(seq int64, format string, args ...any) *TamperError {
	return tampered(seq, fmt.Sprintf("entry %d", seq), format, args...)
}

// VerifyOptions tune VerifyArchive.
type VerifyOptions struct {
	// Key, when set, is the public key the archive must be signed with (an
	// auditor pins it from an earlier export or from the operator).
	Key ed25519.PublicKey
	// Fingerprint, when set, pins the key by its Fingerprint instead.
	Fingerprint string
}

// KeyChange is a key entry seen while verifying.
type KeyChange struct {
	Seq         int64
	Fingerprint string
}

// Summary is what a verified archive holds.
type Summary struct {
	Manifest     Manifest
	Entries      int64
	FirstSeq     int64
	LastSeq      int64
	FirstAt      string
	LastAt       string
	Checkpoints  int64
	Observations int64
	Key          ed25519.PublicKey // signed the manifest
	KeyChanges   []KeyChange
	// LastCheckpoint is the seq of the last signed checkpoint; entries after
	// it are vouched for only by the export's signature.
	LastCheckpoint int64
}

// String is the one-line summary `vigil evidence verify` prints.
func (s *Summary) String() string {
	var b strings.Builder
	if s.Entries == 0 {
		b.WriteString("verified: empty log")
	} else {
		fmt.Fprintf(&b, "verified: %d entries, seq %d-%d (%s to %s)", s.Entries, s.FirstSeq, s.LastSeq, s.FirstAt, s.LastAt)
	}
	fmt.Fprintf(&b, ", %d checkpoints, %d observations, key %s", s.Checkpoints, s.Observations, Fingerprint(s.Key))
	if s.FirstSeq > 1 {
		fmt.Fprintf(&b, "; starts at entry %d, anchored by the export signature", s.FirstSeq)
	}
	if n := len(s.KeyChanges); n > 1 {
		fmt.Fprintf(&b, "; the key changed %d time(s), last at entry %d", n-1, s.KeyChanges[n-1].Seq)
	}
	if s.Entries > 0 && s.LastCheckpoint < s.LastSeq {
		fmt.Fprintf(&b, "; %d entries after the last checkpoint are vouched for only by the export signature", s.LastSeq-max(s.LastCheckpoint, s.FirstSeq-1))
	}
	return b.String()
}

// maxLine bounds one line of an archive file. The largest legitimate line,
// an observations entry of MaxObservationsPerEntry digests, is under 4 MiB.
const maxLine = 16 << 20

// VerifyArchive checks an export offline: the manifest's signature, every
// entry's payload digest, hash and link to the one before, every
// checkpoint's signature and key, every exported observation against its
// digest, the entry count and head against the manifest (a truncated tail
// is caught), and the files against the manifest's digests. It returns a
// *TamperError naming the first thing that does not verify, an error
// wrapping ErrUnreadable when r is not an archive it can judge, or the
// summary. Memory does not grow with the number of entries.
func VerifyArchive(ctx context.Context, r io.ReaderAt, size int64, opts VerifyOptions) (*Summary, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		switch f.Name {
		case ManifestFile, SignatureFile, EntriesFile, CheckpointsFile, ObservationsFile:
		default:
			return nil, tampered(0, "archive", "unexpected file %q", truncate(f.Name, 80))
		}
		if files[f.Name] != nil {
			return nil, tampered(0, "archive", "holds %s twice", f.Name)
		}
		files[f.Name] = f
	}
	mb, err := readSmall(files, ManifestFile)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreadable, ManifestFile, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %q, this vigil reads %q", ErrUnreadable, truncate(m.Format, 80), Format)
	}
	pub, err := ParsePublicKey(m.PublicKey)
	if err != nil {
		return nil, tampered(0, "manifest", "%v", err)
	}
	if opts.Key != nil && !equalKeys(pub, opts.Key) {
		return nil, tampered(0, "manifest", "signed by key %s, not the pinned key %s", Fingerprint(pub), Fingerprint(opts.Key))
	}
	if opts.Fingerprint != "" && Fingerprint(pub) != opts.Fingerprint {
		return nil, tampered(0, "manifest", "signed by key %s, not the pinned key %s", Fingerprint(pub), opts.Fingerprint)
	}
	sb, err := readSmall(files, SignatureFile)
	if err != nil {
		return nil, err
	}
	sig, err := hex.DecodeString(strings.TrimSpace(string(sb)))
	if err != nil || !verifyManifest(pub, mb, sig) {
		return nil, tampered(0, "manifest", "signature does not verify with key %s (manifest or signature altered)", Fingerprint(pub))
	}

	anchor, err := ParseDigest(m.AnchorHash)
	if err != nil {
		return nil, tampered(0, "manifest", "anchor_hash: %v", err)
	}
	headHash, err := ParseDigest(m.HeadHash)
	if err != nil {
		return nil, tampered(0, "manifest", "head_hash: %v", err)
	}
	switch {
	case m.Entries == 0 && (m.FirstSeq != 0 || m.LastSeq != 0):
		return nil, tampered(0, "manifest", "no entries but seq %d-%d", m.FirstSeq, m.LastSeq)
	// Entries is compared with what the archive holds at the end: an honest
	// export of a database someone removed an entry from has a gap, and the
	// walk names the missing entry first.
	case m.Entries > 0 && (m.FirstSeq < 1 || m.LastSeq < m.FirstSeq):
		return nil, tampered(0, "manifest", "%d entries do not fit seq %d-%d", m.Entries, m.FirstSeq, m.LastSeq)
	case m.FirstSeq == 1 && !anchor.IsZero():
		return nil, tampered(0, "manifest", "starts at entry 1 but its anchor hash is not zero")
	}

	v := &verifier{ctx: ctx, m: &m, pub: pub, next: max(m.FirstSeq, 1), prev: anchor,
		sum: &Summary{Manifest: m, Key: pub}}
	if m.StartKey != "" {
		if v.key, err = ParsePublicKey(m.StartKey); err != nil {
			return nil, tampered(0, "manifest", "start_key: %v", err)
		}
	}
	open := func(name string) (*lineReader, error) {
		f := files[name]
		if f == nil {
			return nil, tampered(0, "archive", "%s is missing", name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnreadable, name, err)
		}
		return newLineReader(name, rc), nil
	}
	if v.entries, err = open(EntriesFile); err != nil {
		return nil, err
	}
	defer v.entries.Close()
	if v.checkpoints, err = open(CheckpointsFile); err != nil {
		return nil, err
	}
	defer v.checkpoints.Close()
	if v.observations, err = open(ObservationsFile); err != nil {
		return nil, err
	}
	defer v.observations.Close()

	if err := v.run(); err != nil {
		return nil, err
	}
	if err := v.finish(headHash); err != nil {
		return nil, err
	}
	return v.sum, nil
}

func readSmall(files map[string]*zip.File, name string) ([]byte, error) {
	f := files[name]
	if f == nil {
		return nil, fmt.Errorf("%w: no %s", ErrUnreadable, name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreadable, name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreadable, name, err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%w: %s is larger than 1 MiB", ErrUnreadable, name)
	}
	return b, nil
}

// lineReader reads one archive file line by line, hashing every byte.
type lineReader struct {
	name string
	rc   io.ReadCloser
	hr   *hashingReader
	sc   *bufio.Scanner
	line int
	// peeked holds a line read ahead, for the observations file.
	peeked []byte
	has    bool
}

func newLineReader(name string, rc io.ReadCloser) *lineReader {
	hr := &hashingReader{r: rc, h: sha256.New()}
	sc := bufio.NewScanner(hr)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine)
	return &lineReader{name: name, rc: rc, hr: hr, sc: sc}
}

// next returns the next line, nil at the end of the file. The slice is
// valid until the following call.
func (l *lineReader) next() ([]byte, error) {
	if l.has {
		l.has = false
		return l.peeked, nil
	}
	if !l.sc.Scan() {
		if err := l.sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return nil, tampered(0, l.name, "line %d is longer than %d MiB", l.line+1, maxLine>>20)
			}
			return nil, tampered(0, l.name, "line %d: %v", l.line+1, err)
		}
		return nil, nil
	}
	l.line++
	return l.sc.Bytes(), nil
}

func (l *lineReader) unread(b []byte) { l.peeked, l.has = b, true }

// digest drains the file and returns the SHA-256 of all of it.
func (l *lineReader) digest() (string, error) {
	if _, err := io.Copy(io.Discard, l.hr); err != nil {
		return "", tampered(0, l.name, "%v", err)
	}
	return hex.EncodeToString(l.hr.h.Sum(nil)), nil
}

func (l *lineReader) Close() error { return l.rc.Close() }

// verifier walks entries, checkpoints and observations in step.
type verifier struct {
	ctx context.Context
	m   *Manifest
	pub ed25519.PublicKey
	sum *Summary

	entries, checkpoints, observations *lineReader

	next int64             // the seq expected next
	prev Digest            // the hash the next entry must link to
	key  ed25519.PublicKey // the key in force: the last key entry's
	h    entryHasher
	e    Entry
	buf  []byte      // the payload of e, reused
	cp   *Checkpoint // read ahead
}

func (v *verifier) run() error {
	if err := v.readCheckpoint(); err != nil {
		return err
	}
	for {
		b, err := v.entries.next()
		if err != nil {
			return err
		}
		if b == nil {
			return nil
		}
		if v.sum.Entries&0xfff == 0 {
			if err := v.ctx.Err(); err != nil {
				return err
			}
		}
		if err := v.entry(b); err != nil {
			return err
		}
		for v.cp != nil && v.cp.Seq <= v.e.Seq {
			if err := v.checkpoint(); err != nil {
				return err
			}
			if err := v.readCheckpoint(); err != nil {
				return err
			}
		}
	}
}

// decode parses an entries.jsonl line into v.e. A field that parses as
// JSON but not as a digest is fieldErr, reported once the entry's place
// in the sequence is checked.
func (v *verifier) decode(b []byte) (fieldErr, err error) {
	var ok bool
	if v.buf, ok = parseEntryFast(b, &v.e, v.buf); ok {
		return nil, nil
	}
	var l entryLine
	if !bytes.HasPrefix(b, []byte("{")) {
		return nil, errors.New("not a JSON object")
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	e := &v.e
	*e = Entry{Seq: l.Seq, At: l.At, Kind: Kind(l.Kind), Subject: l.Subject, Payload: []byte(l.Payload)}
	if e.PayloadDigest, err = ParseDigest(l.PayloadDigest); err != nil {
		return fmt.Errorf("payload_digest: %w", err), nil
	}
	if e.Prev, err = ParseDigest(l.PrevHash); err != nil {
		return fmt.Errorf("prev_hash: %w", err), nil
	}
	if e.Hash, err = ParseDigest(l.Hash); err != nil {
		return fmt.Errorf("hash: %w", err), nil
	}
	return nil, nil
}

func (v *verifier) entry(b []byte) error {
	seq := v.next
	fieldErr, err := v.decode(b)
	if err != nil {
		return entryTampered(seq, "%s line %d does not parse: %v", EntriesFile, v.entries.line, err)
	}
	e := &v.e
	switch {
	case e.Seq > v.m.LastSeq:
		return entryTampered(e.Seq, "beyond the manifest's last entry %d (entries added after export)", v.m.LastSeq)
	case e.Seq != seq && seq == v.m.FirstSeq:
		return entryTampered(seq, "missing: the archive starts at entry %d", e.Seq)
	case e.Seq != seq:
		return entryTampered(seq, "missing at its place: entry %d follows entry %d (entries removed or reordered)", e.Seq, seq-1)
	case fieldErr != nil:
		return entryTampered(seq, "%v", fieldErr)
	}
	if sha256.Sum256(e.Payload) != e.PayloadDigest {
		return entryTampered(seq, "payload does not match its payload_digest (payload altered)")
	}
	if v.h.sum(e) != e.Hash {
		return entryTampered(seq, "hash does not match its contents (seq, time, kind, subject or payload digest altered)")
	}
	if e.Prev != v.prev {
		if seq == v.m.FirstSeq {
			return entryTampered(seq, "prev_hash is not the manifest's anchor hash")
		}
		return entryTampered(seq-1, "entry %d does not link to it: entry %d or %d was altered and rehashed, or an entry between them removed", seq, seq-1, seq)
	}
	switch e.Kind {
	case KindKey:
		pub, err := ParseKeyPayload(e.Payload)
		if err != nil {
			return entryTampered(seq, "%v", err)
		}
		v.key = pub
		v.sum.KeyChanges = append(v.sum.KeyChanges, KeyChange{Seq: seq, Fingerprint: Fingerprint(pub)})
	case KindObservations:
		if err := v.observationsOf(e); err != nil {
			return err
		}
	}
	if v.sum.Entries == 0 {
		v.sum.FirstSeq, v.sum.FirstAt = seq, e.At
	}
	v.sum.Entries++
	v.sum.LastSeq, v.sum.LastAt = seq, e.At
	v.prev, v.next = e.Hash, seq+1
	return nil
}

// observationsOf checks the exported observations of one observations
// entry against the digests it lists.
func (v *verifier) observationsOf(e *Entry) error {
	var p ObservationsPayload
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return entryTampered(e.Seq, "observations payload: %v", err)
	}
	if p.Count != len(p.Digests) || p.ScanID != e.Subject {
		return entryTampered(e.Seq, "observations payload lists %d digests for %d observations of scan %q (subject %q)", len(p.Digests), p.Count, p.ScanID, e.Subject)
	}
	var row ObservationRow
	for i, want := range p.Digests {
		seq := p.FirstSeq + int64(i)
		where := fmt.Sprintf("observation %d of scan %s (entry %d)", seq, truncate(p.ScanID, 80), e.Seq)
		b, err := v.observations.next()
		if err != nil {
			return err
		}
		if b == nil {
			return tampered(e.Seq, where, "missing from %s (it ends early)", ObservationsFile)
		}
		row = ObservationRow{}
		if err := json.Unmarshal(b, &row); err != nil {
			return tampered(e.Seq, where, "%s line %d does not parse: %v", ObservationsFile, v.observations.line, err)
		}
		if row.ScanID != p.ScanID || row.Seq != seq {
			return tampered(e.Seq, where, "missing: %s has observation %d of scan %s in its place (removed or reordered)", ObservationsFile, row.Seq, truncate(row.ScanID, 80))
		}
		if row.Digest().String() != want {
			return tampered(e.Seq, where, "does not match its digest in the entry (observation altered)")
		}
		v.sum.Observations++
	}
	return nil
}

func (v *verifier) readCheckpoint() error {
	b, err := v.checkpoints.next()
	if err != nil || b == nil {
		v.cp = nil
		return err
	}
	var l checkpointLine
	where := func(seq int64) string { return fmt.Sprintf("checkpoint at entry %d", seq) }
	if err := json.Unmarshal(b, &l); err != nil {
		return tampered(0, CheckpointsFile, "line %d does not parse: %v", v.checkpoints.line, err)
	}
	c := &Checkpoint{Seq: l.Seq, At: l.At}
	if c.Hash, err = ParseDigest(l.Hash); err != nil {
		return tampered(l.Seq, where(l.Seq), "hash: %v", err)
	}
	if c.PublicKey, err = ParsePublicKey(l.PublicKey); err != nil {
		return tampered(l.Seq, where(l.Seq), "%v", err)
	}
	if c.Signature, err = hex.DecodeString(l.Signature); err != nil {
		return tampered(l.Seq, where(l.Seq), "signature: %v", err)
	}
	if v.cp != nil && c.Seq < v.cp.Seq {
		return tampered(c.Seq, where(c.Seq), "out of order: follows the checkpoint at entry %d", v.cp.Seq)
	}
	v.cp = c
	return nil
}

// checkpoint checks v.cp against the entry just verified.
func (v *verifier) checkpoint() error {
	c, e := v.cp, &v.e
	where := fmt.Sprintf("checkpoint at entry %d", c.Seq)
	switch {
	case c.Seq != e.Seq:
		return tampered(c.Seq, where, "entry %d is not in the archive where the checkpoint needs it (removed or reordered)", c.Seq)
	case c.Hash != e.Hash:
		// The chain is whole up to here, so it was rewritten: an entry
		// since the last good checkpoint changed and every hash after it
		// was recomputed. Which one, only the signed hash could have told.
		from := max(v.sum.LastCheckpoint+1, v.m.FirstSeq)
		where := fmt.Sprintf("entries %d-%d", from, c.Seq)
		if from == c.Seq {
			where = fmt.Sprintf("entry %d", c.Seq)
		}
		return tampered(from, where, "the checkpoint at entry %d signs hash %s, but the chain hashes to %s there: an entry was altered and the chain rehashed after it",
			c.Seq, c.Hash, e.Hash)
	case v.key == nil:
		return tampered(c.Seq, where, "no key entry introduces the key %s it is signed with", Fingerprint(c.PublicKey))
	case !equalKeys(c.PublicKey, v.key):
		return tampered(c.Seq, where, "signed by key %s, but the log's key at that entry is %s (forged checkpoint)", Fingerprint(c.PublicKey), Fingerprint(v.key))
	case !c.Valid():
		return tampered(c.Seq, where, "signature does not verify with key %s (forged or altered checkpoint)", Fingerprint(c.PublicKey))
	}
	v.sum.Checkpoints++
	v.sum.LastCheckpoint = c.Seq
	return nil
}

// finish checks what can only be checked at the end: the count and head
// against the manifest, leftovers, the key, the file digests.
func (v *verifier) finish(head Digest) error {
	m := v.m
	if m.Entries > 0 && v.sum.LastSeq != m.LastSeq {
		return entryTampered(v.next, "missing: the archive ends at entry %d but its manifest lists entries up to %d (truncated)", v.next-1, m.LastSeq)
	}
	if m.Entries > 0 && v.prev != head {
		return entryTampered(m.LastSeq, "hash differs from the manifest's head hash")
	}
	if v.cp != nil {
		return tampered(v.cp.Seq, fmt.Sprintf("checkpoint at entry %d", v.cp.Seq), "its entry is not in the archive (removed, or the checkpoint added)")
	}
	if b, err := v.observations.next(); err != nil {
		return err
	} else if b != nil {
		return tampered(0, ObservationsFile, "line %d belongs to no observations entry (entry removed, or observation added)", v.observations.line)
	}
	if v.key != nil && !equalKeys(v.key, v.pub) {
		from := "the manifest's start_key"
		if n := len(v.sum.KeyChanges); n > 0 {
			from = fmt.Sprintf("the log's last key entry (%d)", v.sum.KeyChanges[n-1].Seq)
		}
		return tampered(0, "manifest", "signed by key %s, but %s names %s", Fingerprint(v.pub), from, Fingerprint(v.key))
	}
	if v.sum.Entries != m.Entries || v.sum.Checkpoints != m.Checkpoints || v.sum.Observations != m.Observations {
		return tampered(0, "manifest", "lists %d entries, %d checkpoints and %d observations, the archive holds %d, %d and %d",
			m.Entries, m.Checkpoints, m.Observations, v.sum.Entries, v.sum.Checkpoints, v.sum.Observations)
	}
	for _, l := range []*lineReader{v.entries, v.checkpoints, v.observations} {
		got, err := l.digest()
		if err != nil {
			return err
		}
		if want := m.Files[l.name]; got != want {
			return tampered(0, l.name, "its bytes differ from the manifest's digest (altered outside any entry's fields)")
		}
	}
	return nil
}
