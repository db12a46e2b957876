package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
)

// DefaultStateDir is where the agent keeps its key, credential, cached
// assignment and spool (the systemd unit's StateDirectory).
const DefaultStateDir = "/var/lib/vigil-agent"

// Files and directories in the state directory.
const (
	KeyFile        = "agent.key"       // PEM PKCS#8 Ed25519 private key, 0600
	CredentialFile = "credential.json" // who the agent is and which server it talks to
	AssignmentFile = "assignment.json" // the last Assignment the server gave
	StatusFile     = "status.json"     // health, for `vigil agent status`
	SpoolDir       = "spool"           // batches not yet acknowledged
	OpenScansDir   = "open-scans"      // scans begun and not yet finished
	RejectedDir    = "rejected"        // batches the server refused as malformed
	lockFile       = "lock"
)

// ErrNotEnrolled is returned by State.Credential before the first
// enrollment.
var ErrNotEnrolled = errors.New("this agent is not enrolled yet: run it once with --server URL --token TOKEN")

// Credential is what enrollment gave the agent, and the server it belongs
// to. It holds no secret: the private key is in KeyFile.
type Credential struct {
	Tenant       string `json:"tenant"`
	AgentID      string `json:"agent_id"`
	Location     string `json:"location"`
	Organization string `json:"organization,omitempty"`
	Server       string `json:"server"`
	// ServerFingerprint pins the server's certificate (daemon.Fingerprint
	// format); empty means the certificate is verified against CAFile or
	// the system roots.
	ServerFingerprint string    `json:"server_fingerprint,omitempty"`
	CAFile            string    `json:"ca_file,omitempty"`
	EnrolledAt        time.Time `json:"enrolled_at"`
}

// Status is the agent's health as last written by the running agent.
type Status struct {
	PID               int       `json:"pid"`
	UpdatedAt         time.Time `json:"updated_at"`
	Version           string    `json:"version"`
	QueueDepth        int       `json:"queue_depth"`
	QueueBytes        int64     `json:"queue_bytes"`
	QueueLimit        int64     `json:"queue_limit"`
	QueueFull         bool      `json:"queue_full,omitempty"`
	LastScanID        string    `json:"last_scan_id,omitempty"`
	LastScanAt        time.Time `json:"last_scan_at,omitzero"`
	LastScanComplete  bool      `json:"last_scan_complete,omitempty"`
	LastDeliveredAt   time.Time `json:"last_delivered_at,omitzero"`
	LastHeartbeatAt   time.Time `json:"last_heartbeat_at,omitzero"`
	AssignmentVersion string    `json:"assignment_version,omitempty"`
	LastError         string    `json:"last_error,omitempty"`
}

// State is the agent's state directory.
type State struct {
	Dir string
}

// OpenState creates dir (0700) if needed.
func OpenState(dir string) (*State, error) {
	if dir == "" {
		dir = DefaultStateDir
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	return &State{Dir: dir}, nil
}

func (s *State) path(name string) string { return filepath.Join(s.Dir, name) }

// Key loads the agent's private key, creating one on first use; created
// says whether it is new.
func (s *State) Key() (key ed25519.PrivateKey, created bool, err error) {
	key, err = s.loadKey()
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = s.NewKey()
	return key, err == nil, err
}

func (s *State) loadKey() (ed25519.PrivateKey, error) {
	path := s.path(KeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("agent key %s: not a PEM private key (remove it and enroll again with --re-enroll)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("agent key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("agent key %s: not an Ed25519 key", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("agent key %s: mode %v lets others read it: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return ek, nil
}

// NewKey makes a fresh key and replaces the stored one (enrollment and
// re-enrollment).
func (s *State) NewKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(s.path(KeyFile), data, 0o600, true); err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	return key, nil
}

// Credential returns the stored credential, or ErrNotEnrolled.
func (s *State) Credential() (*Credential, error) {
	var c Credential
	if err := s.readJSON(CredentialFile, &c); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotEnrolled
		}
		return nil, err
	}
	if c.Tenant == "" || c.AgentID == "" || c.Server == "" {
		return nil, fmt.Errorf("%s: incomplete credential (enroll again with --re-enroll)", s.path(CredentialFile))
	}
	return &c, nil
}

// SaveCredential stores c durably.
func (s *State) SaveCredential(c *Credential) error {
	return s.writeJSON(CredentialFile, c, 0o600, true)
}

// Assignment returns the cached assignment; fs.ErrNotExist when there is
// none yet.
func (s *State) Assignment() (*protocol.Assignment, error) {
	var a protocol.Assignment
	if err := s.readJSON(AssignmentFile, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SaveAssignment caches a durably, so a restart while the server is away
// scans on the last schedule.
func (s *State) SaveAssignment(a *protocol.Assignment) error {
	return s.writeJSON(AssignmentFile, a, 0o600, true)
}

// Status returns what the running (or last) agent wrote.
func (s *State) Status() (*Status, error) {
	var st Status
	if err := s.readJSON(StatusFile, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// SaveStatus writes st; it is informational, so it is not synced.
func (s *State) SaveStatus(st *Status) error {
	return s.writeJSON(StatusFile, st, 0o644, false)
}

func (s *State) readJSON(name string, v any) error {
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", s.path(name), err)
	}
	return nil
}

func (s *State) writeJSON(name string, v any, mode os.FileMode, sync bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path(name), append(b, '\n'), mode, sync)
}

// writeFileAtomic replaces path with data through a temporary file and a
// rename, so a crash leaves the old or the new content, never half.
func writeFileAtomic(path string, data []byte, mode os.FileMode, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if sync {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}
