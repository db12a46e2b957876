package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// KeyFileName is the signing key's file under the data directory.
const KeyFileName = "evidence.key"

// Key is the Ed25519 key that signs checkpoints and export manifests. Its
// String and LogValue show only the public fingerprint.
type Key struct {
	priv ed25519.PrivateKey
}

// NewKey generates a key from rand (crypto/rand when nil).
func NewKey(r io.Reader) (*Key, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("generate evidence key: %w", err)
	}
	return &Key{priv: priv}, nil
}

// Public returns the public half.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// Fingerprint returns Fingerprint(k.Public()).
func (k *Key) Fingerprint() string { return Fingerprint(k.Public()) }

// String shows the fingerprint, never the private key.
func (k *Key) String() string { return "evidence key " + k.Fingerprint() }

// LogValue keeps the private key out of structured logs.
func (k *Key) LogValue() slog.Value { return slog.StringValue(k.Fingerprint()) }

// KeyPath returns where LoadOrCreateKey keeps the key of dataDir.
func KeyPath(dataDir string) string { return filepath.Join(dataDir, KeyFileName) }

// LoadOrCreateKey reads dataDir/evidence.key, creating it (mode 0600, and
// the directory 0700) with a new key if it does not exist. A key file that
// others may read is refused: whoever reads it can sign checkpoints.
func LoadOrCreateKey(dataDir string) (*Key, error) {
	path := KeyPath(dataDir)
	k, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("evidence key %s: create directory: %w", path, err)
	}
	k, err = NewKey(nil)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// Write a temporary file and link it into place: the key appears whole
	// or not at all, and of two processes creating it at once the second
	// link fails and that process reads the first one's key.
	tmp, err := os.CreateTemp(dataDir, ".evidence-key-*")
	if err != nil {
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		if _, err = tmp.Write(data); err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	return k, nil
}

func loadKey(path string) (*Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("evidence key %s is readable by others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("evidence key %s: not a PEM PRIVATE KEY", path)
	}
	pk, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("evidence key %s: %w", path, err)
	}
	priv, ok := pk.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("evidence key %s: a %T, want an Ed25519 key", path, pk)
	}
	return &Key{priv: priv}, nil
}

// FormatPublicKey writes pub as "ed25519:" and 64 hex digits, the form
// exports carry and `vigil evidence verify --key` takes.
func FormatPublicKey(pub ed25519.PublicKey) string { return "ed25519:" + hex.EncodeToString(pub) }

// ParsePublicKey reads FormatPublicKey's output (the "ed25519:" prefix is
// optional).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	h := strings.TrimPrefix(strings.TrimSpace(s), "ed25519:")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want ed25519: and %d hex digits", truncate(s, 80), 2*ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Fingerprint names a public key for people: "SHA256:" and the unpadded
// base64 of its SHA-256, as ssh-keygen -l prints keys.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Checkpoint is a signature over the chain's head at entry Seq: since each
// entry commits to the one before, it vouches for every entry up to Seq.
type Checkpoint struct {
	Seq       int64
	Hash      Digest // the hash of entry Seq
	At        string // when it was signed, in TimeLayout
	PublicKey ed25519.PublicKey
	Signature []byte
}

const checkpointDomain = "vigil-evidence-checkpoint-v1\x00"

// checkpointMessage is what a checkpoint signs: the domain string, seq (8
// bytes big-endian), the entry hash, and the length-prefixed time.
func checkpointMessage(seq int64, hash Digest, at string) []byte {
	b := make([]byte, 0, len(checkpointDomain)+8+len(hash)+4+len(at))
	b = append(b, checkpointDomain...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = append(b, hash[:]...)
	return appendString(b, at)
}

// Sign returns a checkpoint of the entry with seq and hash, made at at.
func (k *Key) Sign(seq int64, hash Digest, at time.Time) Checkpoint {
	ts := FormatTime(at)
	return Checkpoint{Seq: seq, Hash: hash, At: ts, PublicKey: k.Public(),
		Signature: ed25519.Sign(k.priv, checkpointMessage(seq, hash, ts))}
}

// Valid reports whether the signature verifies with the checkpoint's own
// public key. Whether that key is the right one is the verifier's question.
func (c *Checkpoint) Valid() bool {
	return len(c.PublicKey) == ed25519.PublicKeySize &&
		ed25519.Verify(c.PublicKey, checkpointMessage(c.Seq, c.Hash, c.At), c.Signature)
}

// CheckpointBatch signs the entries of one append batch that need a
// checkpoint: every CheckpointEvery-th seq and the batch's last entry.
func (k *Key) CheckpointBatch(entries []Entry, at time.Time) []Checkpoint {
	var out []Checkpoint
	for i := range entries {
		e := &entries[i]
		if e.Seq%CheckpointEvery == 0 || i == len(entries)-1 {
			out = append(out, k.Sign(e.Seq, e.Hash, at))
		}
	}
	return out
}

const manifestDomain = "vigil-evidence-manifest-v1\x00"

// signManifest signs the exact bytes of an archive's manifest.json.
func (k *Key) signManifest(manifest []byte) []byte {
	return ed25519.Sign(k.priv, append([]byte(manifestDomain), manifest...))
}

func verifyManifest(pub ed25519.PublicKey, manifest, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, append([]byte(manifestDomain), manifest...), sig)
}

// equalKeys reports whether a and b are the same public key.
func equalKeys(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) }
