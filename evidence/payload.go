package evidence

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// ObservationRow is one stored observation exactly as the database holds
// it: the columns of the observations table, times and attrs as their
// stored text. Its Digest is what an observations entry commits to.
type ObservationRow struct {
	ScanID         string  `json:"scan_id"`
	Seq            int64   `json:"seq"`
	Kind           string  `json:"kind"`
	Location       string  `json:"location"`
	Segment        string  `json:"segment"`
	SegmentRole    string  `json:"segment_role"`
	Vantage        string  `json:"vantage"`
	VantageRole    string  `json:"vantage_role"`
	InternetFacing bool    `json:"internet_facing"`
	Host           string  `json:"host"`
	Port           int64   `json:"port"`
	Proto          string  `json:"proto"`
	Source         string  `json:"source"`
	ObservedAt     string  `json:"observed_at"`
	Attrs          *string `json:"attrs"` // JSON text; nil when the column is NULL
}

const observationDomain = "vigil-evidence-observation-v1\x00"

// Digest is SHA-256 over "vigil-evidence-observation-v1" 0x00 and then the
// columns in the order of the struct: text as a 4-byte big-endian length
// and the bytes (coerced to valid UTF-8 as JSON writes them), seq and port
// as 8 bytes big-endian, internet_facing as one byte 0 or 1, attrs as one
// byte 0 (NULL) or 1 followed by the text.
func (r *ObservationRow) Digest() Digest {
	b := make([]byte, 0, 256)
	b = append(b, observationDomain...)
	b = appendString(b, JSONSafe(r.ScanID))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Seq))
	for _, s := range []string{r.Kind, r.Location, r.Segment, r.SegmentRole, r.Vantage, r.VantageRole} {
		b = appendString(b, JSONSafe(s))
	}
	b = appendBool(b, r.InternetFacing)
	b = appendString(b, JSONSafe(r.Host))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Port))
	for _, s := range []string{r.Proto, r.Source, r.ObservedAt} {
		b = appendString(b, JSONSafe(s))
	}
	b = appendBool(b, r.Attrs != nil)
	if r.Attrs != nil {
		b = appendString(b, JSONSafe(*r.Attrs))
	}
	return sha256.Sum256(b)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// ObservationsPayload is the payload of an observations entry: the digests
// of observations FirstSeq .. FirstSeq+Count-1 of one scan, in order.
type ObservationsPayload struct {
	ScanID   string   `json:"scan_id"`
	FirstSeq int64    `json:"first_seq"`
	Count    int      `json:"count"`
	Digests  []string `json:"digests"`
}

// ObservationRecords returns the records for a batch of observations of one
// scan with consecutive seqs, one per MaxObservationsPerEntry.
func ObservationRecords(scanID string, rows []ObservationRow) ([]Record, error) {
	var out []Record
	for start := 0; start < len(rows); start += MaxObservationsPerEntry {
		end := min(start+MaxObservationsPerEntry, len(rows))
		p := ObservationsPayload{ScanID: JSONSafe(scanID), FirstSeq: rows[start].Seq, Count: end - start,
			Digests: make([]string, 0, end-start)}
		for i := start; i < end; i++ {
			r := &rows[i]
			if r.ScanID != scanID || r.Seq != p.FirstSeq+int64(i-start) {
				return nil, fmt.Errorf("observation %d is scan %q seq %d, want scan %q seq %d", i, r.ScanID, r.Seq, scanID, p.FirstSeq+int64(i-start))
			}
			p.Digests = append(p.Digests, r.Digest().String())
		}
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		out = append(out, Record{Kind: KindObservations, Subject: scanID, Payload: b})
	}
	return out, nil
}

// KeyPayload is the payload of a key entry.
type KeyPayload struct {
	PublicKey   string `json:"public_key"`  // "ed25519:" and 64 hex digits
	Fingerprint string `json:"fingerprint"` // Fingerprint(public key), for people
}

// KeyRecord returns the entry that introduces pub as the key of the
// checkpoints that follow it.
func KeyRecord(pub ed25519.PublicKey) Record {
	b, _ := json.Marshal(KeyPayload{PublicKey: FormatPublicKey(pub), Fingerprint: Fingerprint(pub)}) // cannot fail: two strings
	return Record{Kind: KindKey, Subject: Fingerprint(pub), Payload: b}
}

// ParseKeyPayload reads a key entry's payload.
func ParseKeyPayload(b []byte) (ed25519.PublicKey, error) {
	var p KeyPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("key payload: %w", err)
	}
	return ParsePublicKey(p.PublicKey)
}
