package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/risk"
	"github.com/vigilhq/vigil/store"
)

// Source is what the report documents read from the store.
type Source interface {
	posture.HistoryReader
	EvidenceRefs(ctx context.Context, subjects []string) ([]store.EvidenceRef, error)
}

// CheckpointSource is the part of the evidence log the evidence appendix
// reads (sqlite.Store.Evidence()).
type CheckpointSource interface {
	EvidenceHead(ctx context.Context) (int64, error)
	EvidenceFirstSince(ctx context.Context, t time.Time) (int64, error)
	EvidenceCheckpoints(ctx context.Context, from, to int64, fn func(c *evidence.Checkpoint) error) error
}

// BuildInput says what to gather a report's facts from.
type BuildInput struct {
	// Posture is the snapshot input; Posture.Now is the as-of moment
	// (zero: now).
	Posture posture.Input
	// Evidence is the evidence log, for the appendix's checkpoint; nil
	// leaves the appendix without one.
	Evidence CheckpointSource
	// Previous is the state of an earlier OCR pack to compare with
	// (ReadPackState); nil compares with the store as of a month earlier.
	Previous *PackState
	// Generated is when the document is made (zero: now); Version is
	// vigil's version.
	Generated time.Time
	Version   string
}

// Facts are everything the generators read, as of one moment.
type Facts struct {
	Snapshot  *posture.Snapshot
	AsOf      time.Time
	Generated time.Time
	Version   string
	// Events are every finding event up to AsOf, oldest first.
	Events []store.FindingEvent
	// RiskHistory are the register decisions recorded by AsOf, per risk.
	RiskHistory map[string][]observe.RiskTreatment
	// Evidence are the evidence-log entries about each finding, risk,
	// scan and attestation, appended by AsOf, by subject.
	Evidence map[string][]store.EvidenceRef
	// Checkpoint is the latest signed checkpoint at AsOf; nil when the
	// log has none (or was not given).
	Checkpoint *CheckpointRef
	// Previous is the state the OCR pack compares with.
	Previous *PackState
}

// CheckpointRef is a signed checkpoint as the evidence appendix cites it.
type CheckpointRef struct {
	Seq            int64     `json:"seq"`
	Hash           string    `json:"hash"`
	SignedAt       time.Time `json:"signed_at"`
	KeyFingerprint string    `json:"key_fingerprint"`
	PublicKey      string    `json:"public_key"`
	// Head is the log's last entry at the as-of moment.
	Head int64 `json:"head"`
}

// Build gathers the facts of a report as of in.Posture.Now: the posture
// snapshot (posture.LoadAsOf), finding events, register history, evidence
// references and the latest checkpoint, each cut at that moment, and the
// state to compare with.
func Build(ctx context.Context, src Source, in BuildInput) (*Facts, error) {
	if in.Posture.Now.IsZero() {
		in.Posture.Now = time.Now()
	}
	if in.Generated.IsZero() {
		in.Generated = time.Now()
	}
	asOf := in.Posture.Now
	snap, err := posture.LoadAsOf(ctx, src, in.Posture)
	if err != nil {
		return nil, err
	}
	f := &Facts{Snapshot: snap, AsOf: asOf, Generated: in.Generated, Version: in.Version, Previous: in.Previous,
		RiskHistory: map[string][]observe.RiskTreatment{}, Evidence: map[string][]store.EvidenceRef{}}
	if f.Events, err = src.Events(ctx, store.EventFilter{Until: asOf}); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var subjects []string
	for _, r := range snap.Register {
		subjects = append(subjects, r.ID)
		if r.Decision == nil {
			continue
		}
		hist, err := src.RiskHistory(ctx, r.ID)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		f.RiskHistory[r.ID] = slices.DeleteFunc(hist, func(t observe.RiskTreatment) bool { return t.RecordedAt.After(asOf) })
	}
	for _, x := range snap.Findings {
		subjects = append(subjects, x.ID)
	}
	for _, s := range snap.Scans {
		subjects = append(subjects, s.ID)
	}
	for _, a := range snap.Attestations {
		subjects = append(subjects, a.ID)
	}
	refs, err := src.EvidenceRefs(ctx, subjects)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for _, r := range refs {
		if !r.At.After(asOf) {
			f.Evidence[r.Subject] = append(f.Evidence[r.Subject], r)
		}
	}
	if in.Evidence != nil {
		if f.Checkpoint, err = latestCheckpoint(ctx, in.Evidence, asOf); err != nil {
			return nil, fmt.Errorf("report: evidence log: %w", err)
		}
	}
	if f.Previous == nil {
		prevIn := in.Posture
		prevIn.Now = asOf.AddDate(0, -1, 0)
		prev, err := posture.LoadAsOf(ctx, src, prevIn)
		if err != nil {
			return nil, err
		}
		st := StateOf(prev)
		f.Previous = &st
	}
	return f, nil
}

// latestCheckpoint finds the last checkpoint signed at or before asOf.
func latestCheckpoint(ctx context.Context, src CheckpointSource, asOf time.Time) (*CheckpointRef, error) {
	head, err := src.EvidenceHead(ctx)
	if err != nil || head == 0 {
		return nil, err
	}
	after, err := src.EvidenceFirstSince(ctx, asOf.Add(time.Nanosecond))
	if err != nil {
		return nil, err
	}
	if after > 0 {
		head = after - 1
	}
	if head == 0 {
		return nil, nil
	}
	var out *CheckpointRef
	err = src.EvidenceCheckpoints(ctx, 1, head, func(c *evidence.Checkpoint) error {
		at, err := time.Parse(evidence.TimeLayout, c.At)
		if err != nil || at.After(asOf) {
			return nil
		}
		out = &CheckpointRef{Seq: c.Seq, Hash: c.Hash.String(), SignedAt: at, KeyFingerprint: evidence.Fingerprint(c.PublicKey),
			PublicKey: evidence.FormatPublicKey(c.PublicKey)}
		return nil
	})
	if out != nil {
		out.Head = head
	}
	return out, err
}

// PackState is what an OCR pack records so that the next one can say what
// changed: each risk's status and level, each control's status.
type PackState struct {
	AsOf     time.Time            `json:"as_of"`
	Risks    map[string]RiskState `json:"risks"`
	Controls map[string]string    `json:"controls"`
	// OpenFindings counts findings open at AsOf.
	OpenFindings int `json:"open_findings"`
}

// RiskState is a risk as a pack recorded it.
type RiskState struct {
	Title  string      `json:"title"`
	Status risk.Status `json:"status"`
	Level  risk.Level  `json:"level"`
	Owner  string      `json:"owner,omitempty"`
}

// StateOf is the state of a snapshot, as a pack records it.
func StateOf(s *posture.Snapshot) PackState {
	st := PackState{AsOf: s.Now, Risks: map[string]RiskState{}, Controls: map[string]string{}}
	for _, r := range s.Register {
		st.Risks[r.ID] = RiskState{Title: r.Title, Status: r.Status, Level: r.Level, Owner: r.Owner}
	}
	for _, c := range s.Controls {
		st.Controls[c.Control.ID] = string(c.Status)
	}
	for _, f := range s.Findings {
		if f.Status == observe.StatusOpen {
			st.OpenFindings++
		}
	}
	return st
}

// ReadPackState reads the state of a previous OCR pack from its JSON
// (`vigil report --kind ocr --format json`).
func ReadPackState(r io.Reader) (*PackState, error) {
	var doc struct {
		Kind string `json:"kind"`
		Data struct {
			State *PackState `json:"state"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("previous pack: %w", err)
	}
	if doc.Kind != "ocr" || doc.Data.State == nil {
		return nil, fmt.Errorf("previous pack: not the JSON of an OCR pack (vigil report --kind ocr --format json)")
	}
	return doc.Data.State, nil
}

// controlStatus returns the organisation status of a control.
func (f *Facts) controlStatus(id string) (*controls.ControlStatus, bool) {
	return f.Snapshot.Control(id)
}

// locationName is a location's display name ("Downtown Clinic (downtown)").
func (f *Facts) locationName(id string) string {
	if id == "" || id == risk.OrgScope {
		return "organisation-wide"
	}
	if l, ok := f.Snapshot.Config.Location(id); ok && l.Name != "" {
		return l.Name
	}
	return id
}
