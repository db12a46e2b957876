// Package evidence is vigil's tamper-evident log: every observation batch,
// finding event, acceptance and key change is an entry that commits to the
// previous entry's hash, and Ed25519 checkpoints sign the chain's head. It
// defines the entry format, links and signs entries for the store, writes
// self-contained export archives and verifies them offline; see
// docs/evidence.md.
//
// The package depends on nothing else in vigil, so the store can link
// entries inside its own transactions and an auditor's verifier needs only
// this package.
package evidence

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind names what an entry records.
type Kind string

// Entry kinds. The payload of each is compact JSON described in
// docs/evidence.md; only observations and key payloads mean anything to the
// verifier.
const (
	// KindObservations is one batch of observations added to a scan; the
	// subject is the scan id and the payload lists each observation's digest.
	KindObservations Kind = "observations"
	// KindScan is a scan's end: its locations, completeness and errors.
	KindScan Kind = "scan"
	// KindFindingEvent is a finding opened, seen, reopened or resolved by a
	// scan, or resolved or reopened by a person; the subject is the finding id.
	KindFindingEvent Kind = "finding-event"
	// KindAcceptance is a person accepting a finding's risk or marking it a
	// false positive, with their note.
	KindAcceptance Kind = "acceptance"
	// KindAttestation is a person attesting an administrative control
	// (training, BAA, restore drill); the subject is the attestation id.
	KindAttestation Kind = "attestation"
	// KindRisk is a risk-register decision (owner, treatment, due date,
	// acceptance); the subject is the risk id.
	KindRisk Kind = "risk"
	// KindKey introduces the public key that signs the checkpoints after it.
	// A log switches keys only through such an entry, so a verifier sees
	// every change of key in the chain itself.
	KindKey Kind = "key"
)

// CheckpointEvery is how many entries may pass without a signed checkpoint
// inside one append batch; every batch also ends with one.
const CheckpointEvery = 1000

// MaxObservationsPerEntry bounds an observations entry's payload (about
// 70 bytes per observation); a larger batch becomes several entries in the
// same transaction.
const MaxObservationsPerEntry = 50_000

// DefaultRetention is how long entries are kept: six years, the retention
// HIPAA requires for documentation (45 CFR 164.316(b)(2)). Nothing prunes
// the log yet, so today every entry is kept for ever.
const DefaultRetention = 6 * 365 * 24 * time.Hour

// TimeLayout is how entry and checkpoint times are written and hashed:
// RFC 3339 in UTC with exactly nine fractional digits.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime writes t in TimeLayout.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Digest is a SHA-256 sum: an entry's hash, its payload digest, an
// observation's digest.
type Digest [sha256.Size]byte

// String returns the digest in lower-case hex, as the database and the
// archive hold it.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the all-zero digest, the prev hash of the
// first entry of a log.
func (d Digest) IsZero() bool { return d == Digest{} }

// ParseDigest reads 64 hex digits.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("digest %q: want %d hex digits", truncate(s, 80), 2*len(d))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("digest %q: %w", truncate(s, 80), err)
	}
	return d, nil
}

// Record is what a writer appends: Link gives it its place in the chain.
type Record struct {
	Kind    Kind
	Subject string // the scan or finding id the entry is about
	// Payload is compact JSON; its SHA-256 is what the chain commits to, so
	// it must be stored and exported byte for byte.
	Payload []byte
}

// Entry is one link of the chain.
type Entry struct {
	Seq           int64  // 1, 2, 3, ... without gaps
	At            string // when it was appended, in TimeLayout; hashed as written
	Kind          Kind
	Subject       string
	Payload       []byte
	PayloadDigest Digest // SHA-256 of Payload
	Prev          Digest // Hash of entry Seq-1; zero for entry 1
	Hash          Digest // see ComputeHash
}

// entryDomain separates entry hashes from every other hash vigil computes.
const entryDomain = "vigil-evidence-entry-v1\x00"

// ComputeHash returns the hash e should carry: SHA-256 over
//
//	"vigil-evidence-entry-v1" 0x00
//	seq (8 bytes, big-endian)
//	len(at) (4 bytes, big-endian) at
//	len(kind) kind
//	len(subject) subject
//	payload digest (32 bytes)
//	prev hash (32 bytes)
//
// It uses e.PayloadDigest as stored; check it against Payload separately.
func (e *Entry) ComputeHash() Digest {
	var h entryHasher
	return h.sum(e)
}

// entryHasher computes entry hashes reusing one buffer, which matters when
// verifying millions of entries.
type entryHasher struct{ buf []byte }

func (h *entryHasher) sum(e *Entry) Digest {
	b := append(h.buf[:0], entryDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = appendString(b, e.At)
	b = appendString(b, string(e.Kind))
	b = appendString(b, e.Subject)
	b = append(b, e.PayloadDigest[:]...)
	b = append(b, e.Prev[:]...)
	h.buf = b
	return sha256.Sum256(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Head is the last entry of a log: where the next one links. The zero Head
// is an empty log.
type Head struct {
	Seq  int64
	Hash Digest
}

// Link turns records into the entries that follow head, all stamped at.
// Subjects are coerced to valid UTF-8 the way encoding/json writes them, so
// that an exported entry hashes the same after a JSON round trip.
func Link(head Head, at time.Time, recs []Record) []Entry {
	out := make([]Entry, len(recs))
	ts := FormatTime(at)
	var h entryHasher
	prev := head
	for i, r := range recs {
		e := &out[i]
		*e = Entry{Seq: prev.Seq + 1, At: ts, Kind: r.Kind, Subject: JSONSafe(r.Subject), Payload: r.Payload,
			PayloadDigest: sha256.Sum256(r.Payload), Prev: prev.Hash}
		e.Hash = h.sum(e)
		prev = Head{Seq: e.Seq, Hash: e.Hash}
	}
	return out
}

// JSONSafe returns s with every byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json does when it writes a string. Text
// that is hashed and then exported as JSON must be hashed in this form.
func JSONSafe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
