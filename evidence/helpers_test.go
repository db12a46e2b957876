package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 2, 0, 0, 123456789, time.UTC)

// memLog is a log in memory that appends the way the store does: a key
// entry when the signing key changes, then the records, then checkpoints.
type memLog struct {
	entries []Entry
	cps     []Checkpoint
	obs     map[string][]ObservationRow
	key     *Key // the key the chain names; nil before the first key entry
}

func (m *memLog) head() Head {
	if len(m.entries) == 0 {
		return Head{}
	}
	e := m.entries[len(m.entries)-1]
	return Head{Seq: e.Seq, Hash: e.Hash}
}

// append links recs at at, signing with k (nil: unsigned, as a store
// without a key writes).
func (m *memLog) append(k *Key, at time.Time, recs ...Record) {
	if k != nil && (m.key == nil || !equalKeys(m.key.Public(), k.Public())) {
		recs = append([]Record{KeyRecord(k.Public())}, recs...)
		m.key = k
	}
	es := Link(m.head(), at, recs)
	m.entries = append(m.entries, es...)
	if k != nil {
		m.cps = append(m.cps, k.CheckpointBatch(es, at)...)
	}
}

// addObservations stores n observations of scan and appends their entry.
func (m *memLog) addObservations(t testing.TB, k *Key, at time.Time, scan string, n int) {
	t.Helper()
	if m.obs == nil {
		m.obs = map[string][]ObservationRow{}
	}
	first := int64(len(m.obs[scan]))
	rows := make([]ObservationRow, n)
	for i := range rows {
		attrs := fmt.Sprintf(`{"service":"ms-wbt-server","n":%d}`, i)
		rows[i] = ObservationRow{ScanID: scan, Seq: first + int64(i), Kind: "service", Location: "downtown", Segment: "clinical",
			SegmentRole: "clinical", Vantage: "guest", VantageRole: "guest", Host: fmt.Sprintf("10.10.2.%d", i%250), Port: 3389,
			Proto: "tcp", Source: "nmap", ObservedAt: FormatTime(at), Attrs: &attrs}
		if i%3 == 0 {
			rows[i].Attrs = nil
		}
	}
	m.obs[scan] = append(m.obs[scan], rows...)
	recs, err := ObservationRecords(scan, rows)
	if err != nil {
		t.Fatal(err)
	}
	m.append(k, at, recs...)
}

func findingRec(id, event string) Record {
	b, _ := json.Marshal(map[string]string{"finding_id": id, "event": event, "rule": "net.rdp-reachable-from-guest"})
	return Record{Kind: KindFindingEvent, Subject: id, Payload: b}
}

func (m *memLog) EvidenceHead(context.Context) (int64, error) { return m.head().Seq, nil }

func (m *memLog) EvidenceFirstSince(_ context.Context, t time.Time) (int64, error) {
	for _, e := range m.entries {
		if e.At >= FormatTime(t) {
			return e.Seq, nil
		}
	}
	return 0, nil
}

func (m *memLog) EvidenceLastKey(_ context.Context, before int64) (*Entry, error) {
	for i := len(m.entries) - 1; i >= 0; i-- {
		if e := m.entries[i]; e.Kind == KindKey && e.Seq < before {
			return &e, nil
		}
	}
	return nil, nil
}

func (m *memLog) EvidenceEntries(_ context.Context, from, to int64, kind Kind, fn func(*Entry) error) error {
	for _, e := range m.entries {
		if e.Seq >= from && e.Seq <= to && (kind == "" || e.Kind == kind) {
			if err := fn(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memLog) EvidenceCheckpoints(_ context.Context, from, to int64, fn func(*Checkpoint) error) error {
	for _, c := range m.cps {
		if c.Seq >= from && c.Seq <= to {
			if err := fn(&c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memLog) EvidenceObservations(_ context.Context, scan string, first int64, count int, fn func(*ObservationRow) error) error {
	for _, r := range m.obs[scan] {
		if r.Seq >= first && r.Seq < first+int64(count) {
			if err := fn(&r); err != nil {
				return err
			}
		}
	}
	return nil
}

// sampleLog is a small log: two scans' worth of entries signed by k, with
// CheckpointEvery crossed nowhere (batches end with checkpoints).
//
//	1 key, 2 observations(s1, 5 rows), 3-5 finding events, 6 observations(s2, 4 rows), 7-9 finding events, 10 acceptance
func sampleLog(t testing.TB, k *Key) *memLog {
	m := &memLog{}
	m.addObservations(t, k, t0, "s1", 5)
	m.append(k, t0.Add(time.Minute), findingRec("f1", "opened"), findingRec("f2", "opened"), findingRec("f3", "opened"))
	m.addObservations(t, k, t0.Add(time.Hour), "s2", 4)
	m.append(k, t0.Add(time.Hour+time.Minute), findingRec("f1", "seen"), findingRec("f2", "seen"), findingRec("f3", "resolved"))
	acc, _ := json.Marshal(map[string]string{"finding_id": "f2", "event": "accepted", "note": "dr. lee: compensating control"})
	m.append(k, t0.Add(2*time.Hour), Record{Kind: KindAcceptance, Subject: "f2", Payload: acc})
	return m
}

func testKey(t testing.TB, seed byte) *Key {
	t.Helper()
	k, err := NewKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func export(t testing.TB, src Source, k *Key, opts ExportOptions) []byte {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0.Add(24 * time.Hour) }
	}
	var buf bytes.Buffer
	if _, err := Export(context.Background(), &buf, src, k, opts); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

func verify(b []byte, opts VerifyOptions) (*Summary, error) {
	return VerifyArchive(context.Background(), bytes.NewReader(b), int64(len(b)), opts)
}

// archive is an export opened for tampering: its files in order.
type archive struct {
	names []string
	files map[string][]byte
}

func openArchive(t testing.TB, b []byte) *archive {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	a := &archive{files: map[string][]byte{}}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		a.names = append(a.names, f.Name)
		a.files[f.Name] = data
	}
	return a
}

func (a *archive) bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range a.names {
		// Stored, not deflated: the fuzzer mutates the bytes it reads.
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(a.files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lines returns a file's lines, each with its newline.
func (a *archive) lines(name string) []string {
	ls := strings.SplitAfter(string(a.files[name]), "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

func (a *archive) setLines(name string, ls []string) {
	s := strings.Join(ls, "")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	a.files[name] = []byte(s)
}

// editEntry decodes entry seq (1-based line of a full export), lets f
// change it, and writes it back.
func (a *archive) editEntry(t testing.TB, seq int, f func(l *entryLine)) {
	t.Helper()
	ls := a.lines(EntriesFile)
	var l entryLine
	if err := json.Unmarshal([]byte(ls[seq-1]), &l); err != nil {
		t.Fatal(err)
	}
	f(&l)
	b, _ := json.Marshal(l)
	ls[seq-1] = string(b) + "\n"
	a.setLines(EntriesFile, ls)
}

// resign rewrites the manifest from the archive's files and signs it with k,
// as a forger holding k would.
func (a *archive) resign(t testing.TB, k *Key, edit func(m *Manifest)) {
	t.Helper()
	var m Manifest
	if err := json.Unmarshal(a.files[ManifestFile], &m); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{EntriesFile, CheckpointsFile, ObservationsFile} {
		m.Files[n] = sha256Hex(a.files[n])
	}
	m.PublicKey, m.KeyFingerprint = FormatPublicKey(k.Public()), k.Fingerprint()
	if edit != nil {
		edit(&m)
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	a.files[ManifestFile] = mb
	a.files[SignatureFile] = []byte(fmt.Sprintf("%x\n", k.signManifest(mb)))
}
