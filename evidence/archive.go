package evidence

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Archive file names. An export is a zip holding exactly these.
const (
	ManifestFile     = "manifest.json"
	SignatureFile    = "manifest.sig"
	EntriesFile      = "entries.jsonl"
	CheckpointsFile  = "checkpoints.jsonl"
	ObservationsFile = "observations.jsonl"
)

// Format is the manifest's format string; a verifier refuses others.
const Format = "vigil-evidence-export/1"

// Manifest describes an export. It is signed, as the exact bytes of
// manifest.json, by the key in PublicKey; the signature is manifest.sig.
type Manifest struct {
	Format       string `json:"format"`
	ExportedAt   string `json:"exported_at"`
	VigilVersion string `json:"vigil_version,omitempty"`
	Organization string `json:"organization,omitempty"`
	// Since is the --since the export was asked for, if any.
	Since string `json:"since,omitempty"`
	// PublicKey signed this manifest; it is the log's current key.
	PublicKey      string `json:"public_key"`
	KeyFingerprint string `json:"key_fingerprint"`
	// StartKey is the key in force before FirstSeq, when a key entry
	// before the exported range introduced it.
	StartKey string `json:"start_key,omitempty"`
	// FirstSeq..LastSeq are the entries exported; Entries is their number
	// (0, with FirstSeq and LastSeq 0, for an empty log).
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	Entries  int64 `json:"entries"`
	// AnchorHash is the prev_hash of entry FirstSeq: all zeros when the
	// export starts at entry 1.
	AnchorHash   string `json:"anchor_hash"`
	HeadHash     string `json:"head_hash"`
	Checkpoints  int64  `json:"checkpoints"`
	Observations int64  `json:"observations"`
	// Files maps each data file to the SHA-256 of its bytes.
	Files map[string]string `json:"files"`
}

// entryLine is one line of entries.jsonl.
type entryLine struct {
	Seq           int64  `json:"seq"`
	At            string `json:"at"`
	Kind          string `json:"kind"`
	Subject       string `json:"subject"`
	PayloadDigest string `json:"payload_digest"`
	PrevHash      string `json:"prev_hash"`
	Hash          string `json:"hash"`
	// Payload is the payload's exact bytes as a JSON string, so that any
	// JSON reader recovers the bytes the digest covers.
	Payload string `json:"payload"`
}

// checkpointLine is one line of checkpoints.jsonl.
type checkpointLine struct {
	Seq       int64  `json:"seq"`
	Hash      string `json:"hash"`
	At        string `json:"at"`
	PublicKey string `json:"public_key"`
	Signature string `json:"signature"` // hex
}

// Source is what Export reads: the store's evidence tables.
type Source interface {
	// EvidenceHead returns the seq of the log's last entry, 0 when empty.
	EvidenceHead(ctx context.Context) (int64, error)
	// EvidenceFirstSince returns the seq of the first entry appended at or
	// after t, 0 when there is none.
	EvidenceFirstSince(ctx context.Context, t time.Time) (int64, error)
	// EvidenceLastKey returns the last key entry before seq, nil if none.
	EvidenceLastKey(ctx context.Context, before int64) (*Entry, error)
	// EvidenceEntries calls fn for entries from..to in seq order, only
	// those of kind when kind is not empty. fn must not keep e.
	EvidenceEntries(ctx context.Context, from, to int64, kind Kind, fn func(e *Entry) error) error
	// EvidenceCheckpoints calls fn for the checkpoints of entries from..to
	// in seq order.
	EvidenceCheckpoints(ctx context.Context, from, to int64, fn func(c *Checkpoint) error) error
	// EvidenceObservations calls fn for the stored observations of scanID
	// with seq in [firstSeq, firstSeq+count), in seq order.
	EvidenceObservations(ctx context.Context, scanID string, firstSeq int64, count int, fn func(r *ObservationRow) error) error
}

// ErrKeyMismatch is returned by Export when the key given is not the one
// that signs the log's checkpoints.
var ErrKeyMismatch = errors.New("the evidence key is not the log's key")

// ExportOptions say what to export and what to record about it.
type ExportOptions struct {
	// Since, when set, exports only entries appended at or after it; the
	// first of them is anchored by the signed manifest.
	Since        time.Time
	VigilVersion string
	Organization string
	Now          func() time.Time
}

// Export writes the log in src, from opts.Since to its current head, as a
// zip archive to w, signed with key, and returns the manifest it wrote. The
// key must be the log's current key (the last key entry's); a log with no
// key entry yet (written by a store without a key) is exported under key.
// Export does not judge the log: `VerifyArchive` on the result does.
func Export(ctx context.Context, w io.Writer, src Source, key *Key, opts ExportOptions) (*Manifest, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	head, err := src.EvidenceHead(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := src.EvidenceLastKey(ctx, head+1)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		pub, err := ParseKeyPayload(cur.Payload)
		if err != nil {
			return nil, fmt.Errorf("key entry %d: %w", cur.Seq, err)
		}
		if !equalKeys(pub, key.Public()) {
			return nil, fmt.Errorf("%w: the log's checkpoints are signed by %s (key entry %d), the key given is %s: export with the data directory that owns this database",
				ErrKeyMismatch, Fingerprint(pub), cur.Seq, key.Fingerprint())
		}
	}
	from := int64(1)
	m := &Manifest{Format: Format, ExportedAt: FormatTime(opts.Now()), VigilVersion: opts.VigilVersion,
		Organization: opts.Organization, PublicKey: FormatPublicKey(key.Public()), KeyFingerprint: key.Fingerprint(),
		AnchorHash: Digest{}.String(), HeadHash: Digest{}.String(), Files: map[string]string{}}
	if !opts.Since.IsZero() {
		m.Since = FormatTime(opts.Since)
		if from, err = src.EvidenceFirstSince(ctx, opts.Since); err != nil {
			return nil, err
		}
		if from == 0 {
			from = head + 1 // nothing since: an empty range
		}
	}
	if from > 1 && from <= head {
		k, err := src.EvidenceLastKey(ctx, from)
		if err != nil {
			return nil, err
		}
		if k != nil {
			pub, err := ParseKeyPayload(k.Payload)
			if err != nil {
				return nil, fmt.Errorf("key entry %d: %w", k.Seq, err)
			}
			m.StartKey = FormatPublicKey(pub)
		}
	}

	zw := zip.NewWriter(w)
	mod := opts.Now()
	// 1. Entries.
	err = writeFile(zw, EntriesFile, mod, m, func(bw *bufio.Writer) error {
		if from > head {
			return nil
		}
		return src.EvidenceEntries(ctx, from, head, "", func(e *Entry) error {
			if m.Entries == 0 {
				m.FirstSeq, m.AnchorHash = e.Seq, e.Prev.String()
			}
			m.Entries++
			m.LastSeq, m.HeadHash = e.Seq, e.Hash.String()
			return writeLine(bw, entryLine{Seq: e.Seq, At: e.At, Kind: string(e.Kind), Subject: e.Subject,
				PayloadDigest: e.PayloadDigest.String(), PrevHash: e.Prev.String(), Hash: e.Hash.String(), Payload: string(e.Payload)})
		})
	})
	if err != nil {
		return nil, err
	}
	// 2. Checkpoints.
	err = writeFile(zw, CheckpointsFile, mod, m, func(bw *bufio.Writer) error {
		if m.Entries == 0 {
			return nil
		}
		return src.EvidenceCheckpoints(ctx, m.FirstSeq, m.LastSeq, func(c *Checkpoint) error {
			m.Checkpoints++
			return writeLine(bw, checkpointLine{Seq: c.Seq, Hash: c.Hash.String(), At: c.At,
				PublicKey: FormatPublicKey(c.PublicKey), Signature: hex.EncodeToString(c.Signature)})
		})
	})
	if err != nil {
		return nil, err
	}
	// 3. The observations the observations entries commit to, in entry
	// order: a second pass, since a zip is written one file at a time.
	err = writeFile(zw, ObservationsFile, mod, m, func(bw *bufio.Writer) error {
		if m.Entries == 0 {
			return nil
		}
		return src.EvidenceEntries(ctx, m.FirstSeq, m.LastSeq, KindObservations, func(e *Entry) error {
			var p ObservationsPayload
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				// Leave it to the verifier to name; there is nothing to fetch.
				return nil
			}
			return src.EvidenceObservations(ctx, p.ScanID, p.FirstSeq, p.Count, func(r *ObservationRow) error {
				m.Observations++
				return writeLine(bw, r)
			})
		})
	})
	if err != nil {
		return nil, err
	}
	// 4. The manifest and its signature.
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	mb = append(mb, '\n')
	for _, f := range []struct {
		name string
		data []byte
	}{{ManifestFile, mb}, {SignatureFile, []byte(hex.EncodeToString(key.signManifest(mb)) + "\n")}} {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: mod})
		if err != nil {
			return nil, err
		}
		if _, err := fw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// writeFile adds name to the zip, writing it through fill and recording
// its SHA-256 in the manifest.
func writeFile(zw *zip.Writer, name string, mod time.Time, m *Manifest, fill func(*bufio.Writer) error) error {
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod})
	if err != nil {
		return err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(fw, h), 1<<16)
	if err := fill(bw); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	m.Files[name] = hex.EncodeToString(h.Sum(nil))
	return nil
}

func writeLine(bw *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	bw.Write(b)
	return bw.WriteByte('\n')
}

// hashingReader hashes what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}
