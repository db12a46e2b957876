// Package protocol is the wire contract between a site agent (vigil agent)
// and the central server (vigil serve): the endpoints, the JSON bodies,
// the enrollment token's format and how every request after enrollment is
// signed with the agent's Ed25519 key. Both sides import it, so they
// cannot drift apart.
//
// The flow:
//
//  1. An administrator creates a one-time enrollment token for a location
//     in the dashboard (or with `vigil agent token create`).
//  2. The agent generates an Ed25519 key pair, keeps the private key in its
//     state directory (0600) and POSTs PathEnroll with the token and its
//     public key. The server checks the token (unused, unexpired), burns it,
//     records the agent with its public key and answers with the agent's
//     credential: the tenant and agent id it signs as.
//  3. Every later request carries HeaderAgent, HeaderDate and
//     HeaderSignature: an Ed25519 signature, by the enrolled key, over
//     SigningString. The server refuses an unknown or revoked agent, a bad
//     signature, or a date more than MaxClockSkew away from its clock.
//  4. The agent GETs PathAssignment for its location's configuration and
//     schedules, scans on them, and POSTs PathBatches: each Batch is one
//     step of a scan (begin, a chunk of observations, finish), gzip-
//     compressed, sent in order from its on-disk spool and removed only
//     once acknowledged. A batch the server already stored is acknowledged
//     again without being stored twice (Batch.ID is the idempotency key).
//  5. The agent POSTs PathHeartbeat every minute or so with its version
//     and queue depth; the server records when it last heard from it.
package protocol

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// Endpoints, relative to the server's base URL.
const (
	PathEnroll     = "/agent/v1/enroll"     // POST EnrollRequest → EnrollResponse (unsigned: the token authenticates)
	PathAssignment = "/agent/v1/assignment" // GET → Assignment
	PathBatches    = "/agent/v1/batches"    // POST Batch (Content-Encoding: gzip) → BatchAck
	PathHeartbeat  = "/agent/v1/heartbeat"  // POST Heartbeat → HeartbeatAck
)

// Request headers of a signed request.
const (
	HeaderAgent     = "Vigil-Agent"     // TENANT/AGENT_ID
	HeaderDate      = "Vigil-Date"      // RFC 3339 UTC, when the request was signed
	HeaderSignature = "Vigil-Signature" // base64 (std, padded) Ed25519 signature over SigningString
)

// MaxClockSkew is how far a signed request's date may be from the server's
// clock. A replay inside the window is harmless: batches are idempotent.
const MaxClockSkew = 5 * time.Minute

// MaxBatchObservations bounds the observations in one Batch, and
// MaxBatchBytes the decompressed size of one request body; the server
// refuses bigger ones with 413.
const (
	MaxBatchObservations = 2000
	MaxBatchBytes        = 32 << 20
)

// Error is the JSON body of every non-2xx answer. Code, when set, says
// what kind of refusal it is, so an agent acts on it without reading the
// message (an older server sends none).
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

// Error codes.
const (
	// The agent is refused (401): retrying cannot help, it stops.
	CodeRevoked      = "revoked"
	CodeUnknownAgent = "unknown-agent"
	CodeBadSignature = "bad-signature"
	// The request's date is too far from the server's clock (401): the
	// agent's clock can be fixed while it retries.
	CodeClock = "clock"
	// The batch cannot be taken as it is (409): sending it again would be
	// refused again, so the agent sets it aside.
	CodeScanNotBegun = "scan-not-begun"
	CodeScanFinished = "scan-finished"
)

// ErrClockSkew is wrapped by ParseSigned's error for a date too far from
// the server's clock.
var ErrClockSkew = errors.New("clock skew")

// EnrollRequest is what a new agent sends with its one-time token.
type EnrollRequest struct {
	Token     string `json:"token"`
	PublicKey []byte `json:"public_key"` // ed25519.PublicKey, 32 bytes (base64 in JSON)
	Hostname  string `json:"hostname"`
	Version   string `json:"version"`
}

// EnrollResponse is the agent's credential: it signs every later request
// as Tenant/AgentID with the key it enrolled.
type EnrollResponse struct {
	Tenant       string `json:"tenant"`
	AgentID      string `json:"agent_id"`
	Location     string `json:"location"`
	Organization string `json:"organization"`
}

// Assignment is what the agent runs: its location's slice of the
// organisation's configuration, as a vigil YAML configuration document
// that config.Parse accepts (the organisation, this one location, the
// schedules that scan it, the scan settings; no identity or alert
// settings and no secrets), and a version that changes whenever it does.
type Assignment struct {
	AgentID  string `json:"agent_id"`
	Location string `json:"location"`
	// Config is a YAML document for config.Parse.
	Config []byte `json:"config"`
	// Version is the hex SHA-256 of Config; HeartbeatAck echoes the
	// current one so the agent knows when to fetch again.
	Version string `json:"version"`
}

// Batch kinds: the steps of one scan, sent in this order.
const (
	BatchBegin        = "begin"        // Scan as begun (id, start, locations)
	BatchObservations = "observations" // up to MaxBatchObservations observations
	BatchFinish       = "finish"       // Scan as finished (complete, errors, vantages); the server evaluates the rules
)

// Batch is one step of a scan the agent ran. ID is unique per batch (the
// agent derives it from the scan id and Seq) and is the idempotency key:
// the server records it in the same transaction as what the batch
// carries, and acknowledges a repeat without storing it again.
type Batch struct {
	ID   string       `json:"id"`
	Kind string       `json:"kind"`
	Scan observe.Scan `json:"scan"`
	// Seq numbers the batches of one scan from 0 (the begin).
	Seq          int                   `json:"seq"`
	Observations []observe.Observation `json:"observations,omitempty"`
}

// AgentSourceName is the name an agent gives a source it reads for its
// location ("telegraf:x509_cert@downtown"): in a finished scan's Sources,
// and as the vantage of what the source reported. Qualified by the
// location, it never names one of the server's sources, so an agent's
// scan resolves only findings its own sources reported.
func AgentSourceName(source, location string) string { return source + "@" + location }

// AgentSourceOf splits an agent's source name into the source and the
// location; ok is false for a name that is not one.
func AgentSourceOf(name string) (source, location string, ok bool) {
	i := strings.LastIndexByte(name, '@')
	if i <= 0 || i == len(name)-1 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// BatchID is the id of batch seq of a scan.
func BatchID(scanID string, seq int) string { return fmt.Sprintf("%s:%d", scanID, seq) }

// BatchAck answers a Batch. Duplicate is true when the server already had
// it. For a finish batch, Findings counts what the rules made of the scan.
type BatchAck struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Findings  int    `json:"findings,omitempty"`
}

// Heartbeat is the agent's health, sent periodically.
type Heartbeat struct {
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	// QueueDepth and QueueBytes are what waits in the spool, unsent.
	QueueDepth int   `json:"queue_depth"`
	QueueBytes int64 `json:"queue_bytes"`
	// LastScanID and LastScanAt are the agent's latest scan (finished or
	// not yet delivered).
	LastScanID string    `json:"last_scan_id,omitempty"`
	LastScanAt time.Time `json:"last_scan_at,omitzero"`
	// AssignmentVersion is the Assignment.Version the agent runs.
	AssignmentVersion string `json:"assignment_version,omitempty"`
}

// HeartbeatAck tells the agent which assignment version is current.
type HeartbeatAck struct {
	AssignmentVersion string `json:"assignment_version"`
	// ScanNow asks the agent to scan its location now, besides its
	// schedule ("Scan now" on the dashboard), on behalf of RequestedBy.
	ScanNow     bool   `json:"scan_now,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

// Token is a parsed one-time enrollment token: "vge1.TENANT.SECRET". The
// server keeps only the SHA-256 of the secret.
type Token struct {
	Tenant string
	Secret string
}

const tokenPrefix = "vge1"

// NewToken returns a fresh token for tenant: 32 random bytes of secret.
func NewToken(tenant string) Token {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return Token{Tenant: tenant, Secret: base64.RawURLEncoding.EncodeToString(b)}
}

// String is the token as the administrator copies it.
func (t Token) String() string { return tokenPrefix + "." + t.Tenant + "." + t.Secret }

// Hash is the hex SHA-256 of the secret, which is what the server stores.
func (t Token) Hash() string {
	sum := sha256.Sum256([]byte(t.Secret))
	return hex.EncodeToString(sum[:])
}

// ErrBadToken is returned by ParseToken for anything that is not a token.
var ErrBadToken = errors.New("not a vigil enrollment token (want vge1.TENANT.SECRET)")

// ParseToken reads a token as printed by Token.String.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || parts[1] == "" || len(parts[2]) < 32 {
		return Token{}, ErrBadToken
	}
	return Token{Tenant: parts[1], Secret: parts[2]}, nil
}

// SigningString is what an agent signs for one request: a fixed prefix,
// the method, the request URI (path and query), the date header and the
// hex SHA-256 of the body exactly as sent (compressed, if it is).
func SigningString(method, requestURI, date string, body []byte) []byte {
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	b.WriteString("VIGIL-AGENT-V1\n")
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(requestURI)
	b.WriteByte('\n')
	b.WriteString(date)
	b.WriteByte('\n')
	b.WriteString(hex.EncodeToString(sum[:]))
	return b.Bytes()
}

// Sign sets the three signature headers on req for the agent
// tenant/agentID. body must be the exact bytes req sends.
func Sign(req *http.Request, tenant, agentID string, key ed25519.PrivateKey, body []byte, now time.Time) {
	date := now.UTC().Format(time.RFC3339)
	sig := ed25519.Sign(key, SigningString(req.Method, req.URL.RequestURI(), date, body))
	req.Header.Set(HeaderAgent, tenant+"/"+agentID)
	req.Header.Set(HeaderDate, date)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
}

// Signed is what a server learns from a signed request's headers before
// it looks the agent up.
type Signed struct {
	Tenant, AgentID string
	Date            time.Time
	Signature       []byte
	date            string
}

// ParseSigned reads the signature headers of r, checking their form and
// the date against now (MaxClockSkew). It does not verify the signature:
// call Verify with the agent's public key.
func ParseSigned(r *http.Request, now time.Time) (Signed, error) {
	who := r.Header.Get(HeaderAgent)
	tenant, id, ok := strings.Cut(who, "/")
	if !ok || tenant == "" || id == "" {
		return Signed{}, fmt.Errorf("missing or malformed %s header", HeaderAgent)
	}
	date := r.Header.Get(HeaderDate)
	at, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return Signed{}, fmt.Errorf("missing or malformed %s header", HeaderDate)
	}
	if d := now.Sub(at); d > MaxClockSkew || d < -MaxClockSkew {
		return Signed{}, fmt.Errorf("%w: %s %s is more than %s from the server's clock (%s): check the agent's time", ErrClockSkew, HeaderDate, date, MaxClockSkew, now.UTC().Format(time.RFC3339))
	}
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(HeaderSignature))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Signed{}, fmt.Errorf("missing or malformed %s header", HeaderSignature)
	}
	return Signed{Tenant: tenant, AgentID: id, Date: at, Signature: sig, date: date}, nil
}

// Verify checks the signature over r's method, URI and body with pub.
func (s Signed) Verify(pub ed25519.PublicKey, r *http.Request, body []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("agent has no valid public key")
	}
	if !ed25519.Verify(pub, SigningString(r.Method, r.URL.RequestURI(), s.date, body), s.Signature) {
		return errors.New("bad signature")
	}
	return nil
}
