package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes of derived hash
}

// DefaultParams are RFC 9106 section 4's "second recommended option" for
// when 2 GiB per hash is too much: argon2id, t=3, p=4, m=64 MiB, a 128-bit
// salt and a 256-bit tag. They exceed the OWASP Password Storage Cheat
// Sheet minimums (m=19 MiB, t=2, p=1, or m=46 MiB, t=1, p=1) and take about
// 0.1 s on two cores (BenchmarkHash). Service bounds concurrent hashes so a
// burst of logins cannot exhaust memory.
var DefaultParams = Params{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}

// Bounds a stored hash must respect to be verified: an attacker who can
// write a hash must not be able to make one verification take a minute or
// allocate gigabytes.
const (
	maxMemory  = 1 << 20 // 1 GiB in KiB
	maxTime    = 32
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// ErrBadHash says a stored password hash is not a PHC argon2id string this
// package accepts.
var ErrBadHash = errors.New("malformed argon2id PHC hash")

var b64 = base64.RawStdEncoding

// PHC is a parsed argon2id hash in the Password Hashing Competition string
// format: $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>, salt and hash in
// unpadded standard base64.
type PHC struct {
	Params
	Salt []byte
	Key  []byte
}

// String formats the hash in PHC form.
func (h PHC) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.Memory, h.Time, h.Threads, b64.EncodeToString(h.Salt), b64.EncodeToString(h.Key))
}

// ParsePHC parses an argon2id PHC string, refusing other algorithms,
// versions other than 19 (0x13) and parameters outside sane bounds.
func ParsePHC(s string) (PHC, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return PHC{}, fmt.Errorf("%w: want 5 $-separated fields", ErrBadHash)
	}
	if parts[1] != "argon2id" {
		return PHC{}, fmt.Errorf("%w: algorithm %q, want argon2id", ErrBadHash, parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return PHC{}, fmt.Errorf("%w: version %q, want v=%d", ErrBadHash, parts[2], argon2.Version)
	}
	var h PHC
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return PHC{}, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		seen[k] = true
		// ParseUint accepts no sign and no spaces; leading zeros are
		// refused so that each hash has one spelling.
		if len(v) > 1 && v[0] == '0' {
			return PHC{}, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return PHC{}, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		switch k {
		case "m":
			h.Memory = uint32(n)
		case "t":
			h.Time = uint32(n)
		case "p":
			if n > 255 {
				return PHC{}, fmt.Errorf("%w: p=%d", ErrBadHash, n)
			}
			h.Threads = uint8(n)
		default:
			return PHC{}, fmt.Errorf("%w: unknown parameter %q", ErrBadHash, k)
		}
	}
	if len(seen) != 3 {
		return PHC{}, fmt.Errorf("%w: want m, t and p", ErrBadHash)
	}
	if h.Threads < 1 || h.Time < 1 || h.Time > maxTime || h.Memory < 8*uint32(h.Threads) || h.Memory > maxMemory {
		return PHC{}, fmt.Errorf("%w: m=%d,t=%d,p=%d out of bounds", ErrBadHash, h.Memory, h.Time, h.Threads)
	}
	var err error
	if h.Salt, err = b64.Strict().DecodeString(parts[4]); err != nil || len(h.Salt) < minSaltLen || len(h.Salt) > maxSaltLen {
		return PHC{}, fmt.Errorf("%w: salt", ErrBadHash)
	}
	if h.Key, err = b64.Strict().DecodeString(parts[5]); err != nil || len(h.Key) < minKeyLen || len(h.Key) > maxKeyLen {
		return PHC{}, fmt.Errorf("%w: hash", ErrBadHash)
	}
	h.SaltLen, h.KeyLen = uint32(len(h.Salt)), uint32(len(h.Key))
	return h, nil
}

// HashPassword derives an argon2id hash of pw with p and a fresh random
// salt, in PHC form.
func HashPassword(pw Password, p Params) (string, error) {
	if p.SaltLen < minSaltLen || p.KeyLen < minKeyLen || p.Time < 1 || p.Threads < 1 {
		return "", fmt.Errorf("argon2id parameters %+v below minimums", p)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw.Reveal()), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return PHC{Params: p, Salt: salt, Key: key}.String(), nil
}

// VerifyPassword reports whether pw matches the PHC hash, comparing in
// constant time, and whether the hash was made with parameters other than
// want so the caller should store a new hash made with them.
func VerifyPassword(phc string, pw Password, want Params) (ok, rehash bool, err error) {
	h, err := ParsePHC(phc)
	if err != nil {
		return false, false, err
	}
	key := argon2.IDKey([]byte(pw.Reveal()), h.Salt, h.Time, h.Memory, h.Threads, h.KeyLen)
	ok = subtle.ConstantTimeCompare(key, h.Key) == 1
	return ok, NeedsRehash(h, want), nil
}

// NeedsRehash reports whether h was made with parameters other than want.
func NeedsRehash(h PHC, want Params) bool {
	return h.Memory != want.Memory || h.Time != want.Time || h.Threads != want.Threads ||
		h.KeyLen != want.KeyLen || h.SaltLen < want.SaltLen
}
