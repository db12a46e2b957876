package evidence

import (
	"bytes"
	"encoding/hex"
	"unicode/utf8"
)

// Verifying a million entries through encoding/json spends most of its
// time validating and reflecting. Export writes every line in one shape,
// so the verifier parses that shape by hand and gives anything else to
// encoding/json: the fast path accepts a subset of what encoding/json
// does and must yield the same values for it (FuzzEntryLineFastPath
// checks that).

// lineCursor walks one line.
type lineCursor struct {
	b []byte
	i int
}

func (c *lineCursor) lit(s string) bool {
	if len(c.b)-c.i >= len(s) && string(c.b[c.i:c.i+len(s)]) == s {
		c.i += len(s)
		return true
	}
	return false
}

// int reads a JSON integer that fits an int64: an optional minus, then 0
// or a digit 1-9 and more digits.
func (c *lineCursor) int() (int64, bool) {
	neg := c.i < len(c.b) && c.b[c.i] == '-'
	if neg {
		c.i++
	}
	start := c.i
	var n uint64
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c.b[c.i]-'0')
		c.i++
	}
	digits := c.i - start
	switch {
	case digits == 0, digits > 1 && c.b[start] == '0':
		return 0, false
	case neg && n > 1<<63, !neg && n > 1<<63-1:
		return 0, false
	case neg:
		return -int64(n), true
	}
	return int64(n), true
}

// str reads a JSON string whose only escapes are \" and \\ and whose bytes
// are valid UTF-8 with no control characters, appending its value to dst.
func (c *lineCursor) str(dst []byte) ([]byte, bool) {
	if !c.lit(`"`) {
		return dst, false
	}
	for {
		j := bytes.IndexAny(c.b[c.i:], "\"\\")
		if j < 0 {
			return dst, false
		}
		chunk := c.b[c.i : c.i+j]
		for _, ch := range chunk {
			if ch < 0x20 {
				return dst, false
			}
		}
		if !utf8.Valid(chunk) {
			return dst, false
		}
		dst = append(dst, chunk...)
		c.i += j
		if c.b[c.i] == '"' {
			c.i++
			return dst, true
		}
		if c.i+1 >= len(c.b) {
			return dst, false
		}
		switch e := c.b[c.i+1]; e {
		case '"', '\\':
			dst = append(dst, e)
			c.i += 2
		default:
			return dst, false
		}
	}
}

// digest reads a quoted string of exactly 64 hex digits.
func (c *lineCursor) digest(d *Digest) bool {
	if len(c.b)-c.i < 66 || c.b[c.i] != '"' || c.b[c.i+65] != '"' {
		return false
	}
	if _, err := hex.Decode(d[:], c.b[c.i+1:c.i+65]); err != nil {
		return false
	}
	c.i += 66
	return true
}

// parseEntryFast parses a line in the exact shape Export writes into e,
// unescaping the payload into buf (returned for reuse). ok is false when
// the line has any other shape.
func parseEntryFast(b []byte, e *Entry, buf []byte) (_ []byte, ok bool) {
	c := lineCursor{b: b}
	var s []byte
	if !c.lit(`{"seq":`) {
		return buf, false
	}
	if e.Seq, ok = c.int(); !ok || !c.lit(`,"at":`) {
		return buf, false
	}
	if s, ok = c.str(buf[:0]); !ok {
		return buf, false
	}
	e.At = string(s)
	if !c.lit(`,"kind":`) {
		return buf, false
	}
	if s, ok = c.str(s[:0]); !ok {
		return buf, false
	}
	e.Kind = internKind(s)
	if !c.lit(`,"subject":`) {
		return buf, false
	}
	if s, ok = c.str(s[:0]); !ok {
		return buf, false
	}
	e.Subject = string(s)
	if !c.lit(`,"payload_digest":`) || !c.digest(&e.PayloadDigest) ||
		!c.lit(`,"prev_hash":`) || !c.digest(&e.Prev) ||
		!c.lit(`,"hash":`) || !c.digest(&e.Hash) || !c.lit(`,"payload":`) {
		return s, false
	}
	if s, ok = c.str(s[:0]); !ok || !c.lit("}") || c.i != len(b) {
		return s, false
	}
	e.Payload = s
	return s, true
}

// internKind avoids allocating the handful of kinds a log holds.
func internKind(b []byte) Kind {
	for _, k := range []Kind{KindFindingEvent, KindObservations, KindScan, KindAcceptance, KindAttestation, KindRisk, KindKey} {
		if string(b) == string(k) {
			return k
		}
	}
	return Kind(b)
}
