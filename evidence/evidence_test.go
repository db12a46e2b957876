package evidence

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestLinkChainsAndHashesEveryField(t *testing.T) {
	recs := []Record{findingRec("f1", "opened"), findingRec("f2", "opened")}
	es := Link(Head{}, t0, recs)
	if es[0].Seq != 1 || !es[0].Prev.IsZero() || es[1].Prev != es[0].Hash || es[1].Seq != 2 {
		t.Fatalf("not chained: %+v", es)
	}
	if es[0].At != "2025-03-01T02:00:00.123456789Z" {
		t.Errorf("At = %q", es[0].At)
	}
	base := es[0]
	for name, mut := range map[string]func(e *Entry){
		"seq":     func(e *Entry) { e.Seq++ },
		"at":      func(e *Entry) { e.At = "2025-03-01T02:00:00.123456780Z" },
		"kind":    func(e *Entry) { e.Kind = KindAcceptance },
		"subject": func(e *Entry) { e.Subject = "f9" },
		"digest":  func(e *Entry) { e.PayloadDigest[0] ^= 1 },
		"prev":    func(e *Entry) { e.Prev[31] ^= 1 },
		// Length prefixes: moving a byte from kind to subject changes the hash.
		"boundary": func(e *Entry) { e.Kind, e.Subject = "finding-even", "tf1" },
	} {
		e := base
		mut(&e)
		if e.ComputeHash() == base.Hash {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	if base.ComputeHash() != base.Hash {
		t.Error("ComputeHash differs from Link's hash")
	}
}

func TestExportVerifies(t *testing.T) {
	k := testKey(t, 1)
	m := sampleLog(t, k)
	b := export(t, m, k, ExportOptions{VigilVersion: "test", Organization: "Glow Aesthetics"})
	sum, err := verify(b, VerifyOptions{Key: k.Public()})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if sum.Entries != 10 || sum.FirstSeq != 1 || sum.LastSeq != 10 || sum.Checkpoints != 5 || sum.Observations != 9 ||
		sum.LastCheckpoint != 10 || len(sum.KeyChanges) != 1 {
		t.Errorf("summary = %+v", sum)
	}
	line := sum.String()
	for _, want := range []string{"10 entries", "seq 1-10", "5 checkpoints", "9 observations", k.Fingerprint()} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if sum.Manifest.Organization != "Glow Aesthetics" || sum.Manifest.VigilVersion != "test" {
		t.Errorf("manifest = %+v", sum.Manifest)
	}
	// Pinning by fingerprint works too.
	if _, err := verify(b, VerifyOptions{Fingerprint: k.Fingerprint()}); err != nil {
		t.Errorf("verify with the fingerprint pinned: %v", err)
	}
}

// Each case alters an export the way someone hiding something might, and
// the verifier must name the first entry that no longer verifies.
func TestTamperedArchiveNamesFirstBrokenEntry(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	m := sampleLog(t, k)
	good := export(t, m, k, ExportOptions{})
	cases := []struct {
		name    string
		tamper  func(t *testing.T, a *archive)
		pin     ed25519.PublicKey
		wantSeq int64
		want    string // in the error
	}{
		{"payload byte edited", func(t *testing.T, a *archive) {
			a.editEntry(t, 4, func(l *entryLine) { l.Payload = strings.Replace(l.Payload, "opened", "opEned", 1) })
		}, nil, 4, "entry 4: payload does not match its payload_digest"},
		{"payload and its digest edited", func(t *testing.T, a *archive) {
			a.editEntry(t, 4, func(l *entryLine) {
				l.Payload = strings.Replace(l.Payload, "opened", "opEned", 1)
				l.PayloadDigest = sha256Hex([]byte(l.Payload))
			})
		}, nil, 4, "entry 4: hash does not match its contents"},
		{"payload, digest and hash edited", func(t *testing.T, a *archive) {
			a.editEntry(t, 4, func(l *entryLine) {
				rewrite(t, l, func(e *Entry) { e.Payload = []byte(`{"finding_id":"f2","event":"resolved"}`) })
			})
		}, nil, 4, "entry 4: entry 5 does not link to it"},
		{"time edited and rehashed", func(t *testing.T, a *archive) {
			a.editEntry(t, 8, func(l *entryLine) { rewrite(t, l, func(e *Entry) { e.At = FormatTime(t0) }) })
		}, nil, 8, "entry 8: entry 9 does not link to it"},
		{"chain rewritten after an edit", func(t *testing.T, a *archive) { rehashFrom(t, a, 4, nil) },
			nil, 3, "entries 3-5: the checkpoint at entry 5 signs hash"},
		{"entry deleted", func(t *testing.T, a *archive) {
			ls := a.lines(EntriesFile)
			a.setLines(EntriesFile, append(ls[:5:5], ls[6:]...))
		}, nil, 6, "entry 6: missing at its place: entry 7 follows entry 5"},
		{"first entry deleted", func(t *testing.T, a *archive) {
			a.setLines(EntriesFile, a.lines(EntriesFile)[1:])
		}, nil, 1, "entry 1: missing: the archive starts at entry 2"},
		{"two entries swapped", func(t *testing.T, a *archive) {
			ls := a.lines(EntriesFile)
			ls[6], ls[7] = ls[7], ls[6]
			a.setLines(EntriesFile, ls)
		}, nil, 7, "entry 7: missing at its place: entry 8 follows entry 6"},
		{"two entries swapped and renumbered", func(t *testing.T, a *archive) {
			ls := a.lines(EntriesFile)
			ls[6], ls[7] = ls[7], ls[6]
			a.setLines(EntriesFile, ls)
			a.editEntry(t, 7, func(l *entryLine) { l.Seq = 7 })
			a.editEntry(t, 8, func(l *entryLine) { l.Seq = 8 })
		}, nil, 7, "entry 7: hash does not match its contents"},
		{"tail truncated", func(t *testing.T, a *archive) {
			a.setLines(EntriesFile, a.lines(EntriesFile)[:8])
			a.setLines(CheckpointsFile, a.lines(CheckpointsFile)[:3])
		}, nil, 9, "entry 9: missing: the archive ends at entry 8 but its manifest lists entries up to 10 (truncated)"},
		{"tail truncated, manifest edited", func(t *testing.T, a *archive) {
			a.setLines(EntriesFile, a.lines(EntriesFile)[:8])
			var mf Manifest
			json.Unmarshal(a.files[ManifestFile], &mf)
			mf.LastSeq, mf.Entries = 8, 8
			a.files[ManifestFile], _ = json.Marshal(mf)
		}, nil, 0, "manifest: signature does not verify"},
		{"entry appended after export", func(t *testing.T, a *archive) {
			var last entryLine
			ls := a.lines(EntriesFile)
			json.Unmarshal([]byte(ls[len(ls)-1]), &last)
			prev, _ := ParseDigest(last.Hash)
			e := Link(Head{Seq: last.Seq, Hash: prev}, t0, []Record{findingRec("f9", "opened")})[0]
			a.setLines(EntriesFile, append(ls, lineOf(&e)))
		}, nil, 11, "entry 11: beyond the manifest's last entry 10"},
		{"checkpoint forged with another key", func(t *testing.T, a *archive) {
			editCheckpoint(t, a, 1, func(l *checkpointLine) {
				h, _ := ParseDigest(l.Hash)
				c := other.Sign(l.Seq, h, t0)
				l.PublicKey, l.Signature = FormatPublicKey(c.PublicKey), hex.EncodeToString(c.Signature)
			})
		}, nil, 5, "checkpoint at entry 5: signed by key " + other.Fingerprint() + ", but the log's key at that entry is " + k.Fingerprint()},
		{"checkpoint signature altered", func(t *testing.T, a *archive) {
			editCheckpoint(t, a, 1, func(l *checkpointLine) { l.At = FormatTime(t0) })
		}, nil, 5, "checkpoint at entry 5: signature does not verify"},
		{"checkpoint removed", func(t *testing.T, a *archive) {
			ls := a.lines(CheckpointsFile)
			a.setLines(CheckpointsFile, append(ls[:1:1], ls[2:]...))
		}, nil, 0, "manifest: lists 10 entries, 5 checkpoints and 9 observations, the archive holds 10, 4 and 9"},
		{"observation altered", func(t *testing.T, a *archive) {
			ls := a.lines(ObservationsFile)
			ls[6] = strings.Replace(ls[6], "10.10.2.1", "10.10.2.99", 1) // s2 seq 1
			a.setLines(ObservationsFile, ls)
		}, nil, 6, "observation 1 of scan s2 (entry 6): does not match its digest"},
		{"observation removed", func(t *testing.T, a *archive) {
			ls := a.lines(ObservationsFile)
			a.setLines(ObservationsFile, append(ls[:2:2], ls[3:]...))
		}, nil, 2, "observation 2 of scan s1 (entry 2): missing"},
		{"observation added", func(t *testing.T, a *archive) {
			ls := a.lines(ObservationsFile)
			a.setLines(ObservationsFile, append(ls, ls[0]))
		}, nil, 0, "observations.jsonl: line 10 belongs to no observations entry"},
		{"bytes changed outside any field", func(t *testing.T, a *archive) {
			ls := a.lines(EntriesFile)
			ls[2] = strings.TrimSuffix(ls[2], "\n") + " \n"
			a.setLines(EntriesFile, ls)
		}, nil, 0, "entries.jsonl: its bytes differ from the manifest's digest"},
		{"unexpected file", func(t *testing.T, a *archive) {
			a.names = append(a.names, "notes.txt")
			a.files["notes.txt"] = []byte("hi")
		}, nil, 0, `archive: unexpected file "notes.txt"`},
		{"whole log re-signed with another key, key pinned", func(t *testing.T, a *archive) {
			rehashFrom(t, a, 1, other)
		}, k.Public(), 0, "manifest: signed by key " + other.Fingerprint() + ", not the pinned key " + k.Fingerprint()},
		{"manifest signed by another key than the log's", func(t *testing.T, a *archive) { a.resign(t, other, nil) },
			nil, 0, "manifest: signed by key " + other.Fingerprint() + ", but the log's last key entry (1) names " + k.Fingerprint()},
		{"manifest's start key differs from its key, no key entry in range", func(t *testing.T, a *archive) {
			a.setLines(EntriesFile, nil)
			a.setLines(CheckpointsFile, nil)
			a.setLines(ObservationsFile, nil)
			a.resign(t, other, func(m *Manifest) {
				m.StartKey, m.FirstSeq, m.LastSeq, m.Entries, m.Checkpoints, m.Observations = FormatPublicKey(k.Public()), 0, 0, 0, 0, 0
			})
		}, nil, 0, "manifest: signed by key " + other.Fingerprint() + ", but the manifest's start_key names " + k.Fingerprint()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := openArchive(t, good)
			tc.tamper(t, a)
			_, err := verify(a.bytes(t), VerifyOptions{Key: tc.pin})
			var te *TamperError
			if !errors.As(err, &te) {
				t.Fatalf("verify = %v, want a TamperError", err)
			}
			if te.Seq != tc.wantSeq || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("verify = %q (seq %d)\nwant seq %d and %q", err, te.Seq, tc.wantSeq, tc.want)
			}
		})
	}
}

// A forger holding another key can rewrite everything consistently; only a
// pinned key (tested above) tells. Without a pin the archive verifies under
// the forger's key, and the summary shows which key that is.
func TestResignedLogShowsTheForgersKey(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	a := openArchive(t, export(t, sampleLog(t, k), k, ExportOptions{}))
	rehashFrom(t, a, 1, other)
	sum, err := verify(a.bytes(t), VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !strings.Contains(sum.String(), other.Fingerprint()) {
		t.Errorf("summary %q does not show the key it verified with", sum)
	}
}

// rewrite applies f to the entry a line holds and recomputes its digest and
// hash, as someone editing the log without the key would.
func rewrite(t testing.TB, l *entryLine, f func(e *Entry)) {
	t.Helper()
	e := entryOf(t, l)
	f(&e)
	e.PayloadDigest = sha256.Sum256(e.Payload)
	e.Hash = e.ComputeHash()
	if err := json.Unmarshal([]byte(lineOf(&e)), l); err != nil {
		t.Fatal(err)
	}
}

func entryOf(t testing.TB, l *entryLine) Entry {
	t.Helper()
	e := Entry{Seq: l.Seq, At: l.At, Kind: Kind(l.Kind), Subject: l.Subject, Payload: []byte(l.Payload)}
	var err error
	if e.PayloadDigest, err = ParseDigest(l.PayloadDigest); err == nil {
		if e.Prev, err = ParseDigest(l.PrevHash); err == nil {
			e.Hash, err = ParseDigest(l.Hash)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func lineOf(e *Entry) string {
	b, _ := json.Marshal(entryLine{Seq: e.Seq, At: e.At, Kind: string(e.Kind), Subject: e.Subject, PayloadDigest: e.PayloadDigest.String(),
		PrevHash: e.Prev.String(), Hash: e.Hash.String(), Payload: string(e.Payload)})
	return string(b) + "\n"
}

// rehashFrom changes entry seq's payload (a key entry becomes signer's key
// when signer is set) and recomputes every hash after it; with signer it
// also re-signs every checkpoint and the manifest.
func rehashFrom(t testing.TB, a *archive, seq int64, signer *Key) {
	t.Helper()
	ls := a.lines(EntriesFile)
	var prev Digest
	hashes := map[int64]Digest{}
	for i, s := range ls {
		var l entryLine
		json.Unmarshal([]byte(s), &l)
		e := entryOf(t, &l)
		if e.Seq >= seq {
			switch {
			case e.Kind == KindKey && signer != nil:
				e.Payload = KeyRecord(signer.Public()).Payload
				e.Subject = signer.Fingerprint()
			case e.Seq == seq:
				e.Payload = []byte(strings.Replace(string(e.Payload), `"f`, `"g`, 1))
			}
			e.Prev = prev
			e.PayloadDigest = sha256.Sum256(e.Payload)
			e.Hash = e.ComputeHash()
		}
		prev, hashes[e.Seq] = e.Hash, e.Hash
		ls[i] = lineOf(&e)
	}
	a.setLines(EntriesFile, ls)
	if signer == nil {
		return
	}
	cls := a.lines(CheckpointsFile)
	for i, s := range cls {
		var l checkpointLine
		json.Unmarshal([]byte(s), &l)
		c := signer.Sign(l.Seq, hashes[l.Seq], t0)
		b, _ := json.Marshal(checkpointLine{Seq: c.Seq, Hash: c.Hash.String(), At: c.At, PublicKey: FormatPublicKey(c.PublicKey),
			Signature: hex.EncodeToString(c.Signature)})
		cls[i] = string(b) + "\n"
	}
	a.setLines(CheckpointsFile, cls)
	a.resign(t, signer, func(m *Manifest) { m.HeadHash = prev.String() })
}

func editCheckpoint(t testing.TB, a *archive, i int, f func(l *checkpointLine)) {
	t.Helper()
	ls := a.lines(CheckpointsFile)
	var l checkpointLine
	if err := json.Unmarshal([]byte(ls[i]), &l); err != nil {
		t.Fatal(err)
	}
	f(&l)
	b, _ := json.Marshal(l)
	ls[i] = string(b) + "\n"
	a.setLines(CheckpointsFile, ls)
}

func TestUnreadableArchives(t *testing.T) {
	k := testKey(t, 1)
	good := export(t, sampleLog(t, k), k, ExportOptions{})
	noManifest := openArchive(t, good)
	noManifest.names = noManifest.names[:3]
	badFormat := openArchive(t, good)
	badFormat.files[ManifestFile] = []byte(`{"format":"something-else/9"}`)
	for name, b := range map[string][]byte{
		"not a zip":      []byte("hello, auditor"),
		"empty":          nil,
		"half a zip":     good[:len(good)/2],
		"no manifest":    noManifest.bytes(t),
		"unknown format": badFormat.bytes(t),
	} {
		_, err := verify(b, VerifyOptions{})
		if !errors.Is(err, ErrUnreadable) {
			t.Errorf("%s: verify = %v, want ErrUnreadable", name, err)
		}
	}
}

func TestKeyRotationIsInTheChain(t *testing.T) {
	k1, k2 := testKey(t, 1), testKey(t, 2)
	m := sampleLog(t, k1)
	m.append(k2, t0.Add(3*time.Hour), findingRec("f1", "resolved"))
	if _, err := Export(t.Context(), &strings.Builder{}, m, k1, ExportOptions{}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("export with the old key = %v, want ErrKeyMismatch", err)
	}
	b := export(t, m, k2, ExportOptions{})
	sum, err := verify(b, VerifyOptions{Key: k2.Public()})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(sum.KeyChanges) != 2 || sum.KeyChanges[1].Seq != 11 || !strings.Contains(sum.String(), "the key changed 1 time(s), last at entry 11") {
		t.Errorf("summary %q, key changes %+v", sum, sum.KeyChanges)
	}
	// A checkpoint by the new key before the key entry that introduces it
	// is a forgery.
	a := openArchive(t, b)
	editCheckpoint(t, a, 4, func(l *checkpointLine) { // entry 10, still k1's
		h, _ := ParseDigest(l.Hash)
		c := k2.Sign(l.Seq, h, t0)
		l.PublicKey, l.Signature = FormatPublicKey(c.PublicKey), hex.EncodeToString(c.Signature)
	})
	if _, err := verify(a.bytes(t), VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "checkpoint at entry 10: signed by key "+k2.Fingerprint()) {
		t.Errorf("verify = %v", err)
	}
}

// A store without a key chains entries but signs nothing; the first write
// with a key introduces it and its checkpoint vouches for all before.
func TestUnsignedEntriesThenKey(t *testing.T) {
	k := testKey(t, 1)
	m := &memLog{}
	m.append(nil, t0, findingRec("f1", "opened"), findingRec("f2", "opened"))
	unsigned := export(t, m, k, ExportOptions{})
	sum, err := verify(unsigned, VerifyOptions{})
	if err != nil || sum.Checkpoints != 0 || !strings.Contains(sum.String(), "2 entries after the last checkpoint are vouched for only by the export signature") {
		t.Fatalf("unsigned log: %v, %v", sum, err)
	}
	m.append(k, t0.Add(time.Hour), findingRec("f1", "seen"))
	sum, err = verify(export(t, m, k, ExportOptions{}), VerifyOptions{})
	if err != nil || sum.Entries != 4 || sum.LastCheckpoint != 4 || m.entries[2].Kind != KindKey {
		t.Fatalf("after a signed write: %v, %v", sum, err)
	}
}

func TestExportSince(t *testing.T) {
	k := testKey(t, 1)
	m := sampleLog(t, k)
	b := export(t, m, k, ExportOptions{Since: t0.Add(time.Hour)})
	sum, err := verify(b, VerifyOptions{Key: k.Public()})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if sum.FirstSeq != 6 || sum.Entries != 5 || sum.Observations != 4 || sum.Checkpoints != 3 || sum.Manifest.StartKey == "" {
		t.Errorf("summary = %+v", sum)
	}
	if !strings.Contains(sum.String(), "starts at entry 6, anchored by the export signature") {
		t.Errorf("summary %q", sum)
	}
	// Nothing since: an empty, valid archive.
	sum, err = verify(export(t, m, k, ExportOptions{Since: t0.Add(48 * time.Hour)}), VerifyOptions{})
	if err != nil || sum.Entries != 0 || !strings.Contains(sum.String(), "empty log") {
		t.Errorf("empty range: %v, %v", sum, err)
	}
}

// Text that is not valid UTF-8 hashes as JSON will write it, so the digest
// of a stored row matches the digest of its exported copy.
func TestObservationDigestSurvivesJSON(t *testing.T) {
	attrs := `{"banner":"\xff"}`
	r := ObservationRow{ScanID: "s\xffx", Seq: 3, Kind: "service", Host: "10.0.0.1", Port: 23, Source: "nmap\xc3", ObservedAt: FormatTime(t0), Attrs: &attrs}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back ObservationRow
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Digest() != r.Digest() {
		t.Error("digest changed across a JSON round trip")
	}
	noAttrs := r
	noAttrs.Attrs = nil
	empty := ""
	emptyAttrs := r
	emptyAttrs.Attrs = &empty
	if noAttrs.Digest() == emptyAttrs.Digest() {
		t.Error("NULL attrs and empty attrs hash alike")
	}
}

func TestObservationRecordsSplitLargeBatches(t *testing.T) {
	rows := make([]ObservationRow, MaxObservationsPerEntry+3)
	for i := range rows {
		rows[i] = ObservationRow{ScanID: "s1", Seq: int64(10 + i)}
	}
	recs, err := ObservationRecords("s1", rows)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ObservationRecords = %d records, %v", len(recs), err)
	}
	var p ObservationsPayload
	json.Unmarshal(recs[1].Payload, &p)
	if p.FirstSeq != int64(10+MaxObservationsPerEntry) || p.Count != 3 || len(p.Digests) != 3 {
		t.Errorf("second payload = %+v", p)
	}
	rows[5].Seq = 99
	if _, err := ObservationRecords("s1", rows); err == nil {
		t.Error("a gap in seqs was accepted")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vigil-data")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil || !k2.Public().Equal(k1.Public()) {
		t.Fatalf("second load: %v, same key %v", err, err == nil && k2.Public().Equal(k1.Public()))
	}
	if s := fmt.Sprint(k1); strings.Contains(s, hex.EncodeToString(k1.priv.Seed())) || !strings.Contains(s, k1.Fingerprint()) {
		t.Errorf("String() = %q", s)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only the key", len(entries))
	}
	if runtime.GOOS != "windows" {
		os.Chmod(KeyPath(dir), 0o644)
		if _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("a world-readable key: %v", err)
		}
	}
	os.Chmod(KeyPath(dir), 0o600)
	os.WriteFile(KeyPath(dir), []byte("not a key"), 0o600)
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Error("a corrupt key file was accepted (or replaced)")
	}
}

func TestParsePublicKey(t *testing.T) {
	k := testKey(t, 1)
	for _, s := range []string{FormatPublicKey(k.Public()), strings.TrimPrefix(FormatPublicKey(k.Public()), "ed25519:"), " " + FormatPublicKey(k.Public()) + "\n"} {
		if pub, err := ParsePublicKey(s); err != nil || !pub.Equal(k.Public()) {
			t.Errorf("ParsePublicKey(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "ed25519:abc", "SHA256:xyz", FormatPublicKey(k.Public()) + "00"} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", s)
		}
	}
}
