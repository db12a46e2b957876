package evidence

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// FuzzVerifyArchive feeds the archive reader arbitrary bytes, seeded with a
// real export and pieces of it: it must return an error or a summary, never
// panic or hang.
func FuzzVerifyArchive(f *testing.F) {
	k := testKey(f, 1)
	good := export(f, sampleLog(f, k), k, ExportOptions{})
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PK\x03\x04"))
	// Stored (uncompressed) copies let the fuzzer reach the line parsers.
	a := openArchive(f, good)
	f.Add(a.bytes(f))
	a.files[EntriesFile] = bytes.Replace(a.files[EntriesFile], []byte(`"seq":3`), []byte(`"seq":-3`), 1)
	f.Add(a.bytes(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, err := verify(b, VerifyOptions{})
		if err == nil && sum == nil {
			t.Fatal("no summary and no error")
		}
	})
}

// FuzzEntryLineFastPath checks that the hand-written entry parser agrees
// with encoding/json on every line it accepts.
func FuzzEntryLineFastPath(f *testing.F) {
	k := testKey(f, 1)
	for _, l := range openArchive(f, export(f, sampleLog(f, k), k, ExportOptions{})).lines(EntriesFile) {
		f.Add([]byte(l[:len(l)-1]))
	}
	f.Add([]byte(`{"seq":-0,"at":"\\","kind":"k","subject":"\"","payload_digest":"` + Digest{}.String() + `","prev_hash":"` + Digest{}.String() + `","hash":"` + Digest{}.String() + `","payload":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if _, ok := parseEntryFast(b, &e, nil); !ok {
			return
		}
		var l entryLine
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, b)
		}
		want := entryOf(t, &l)
		if e.Seq != want.Seq || e.At != want.At || e.Kind != want.Kind || e.Subject != want.Subject ||
			!bytes.Equal(e.Payload, want.Payload) || e.PayloadDigest != want.PayloadDigest || e.Prev != want.Prev || e.Hash != want.Hash {
			t.Fatalf("fast path read %+v, encoding/json %+v from %q", e, want, b)
		}
	})
}

// FuzzVerifyFiles fuzzes the manifest and the data files of an archive,
// signing whatever manifest it gets with the key the log names. That
// reaches what zip checksums and the signature keep FuzzVerifyArchive's
// mutations away from.
func FuzzVerifyFiles(f *testing.F) {
	k := testKey(f, 1)
	good := openArchive(f, export(f, sampleLog(f, k), k, ExportOptions{}))
	f.Add(good.files[ManifestFile], good.files[EntriesFile], good.files[CheckpointsFile], good.files[ObservationsFile])
	f.Add(good.files[ManifestFile], []byte("{}\n"), []byte("\n"), []byte(`{"scan_id":1}`))
	f.Add([]byte(`{"format":"vigil-evidence-export/1","public_key":"`+FormatPublicKey(k.Public())+`","start_key":"ed25519:00","entries":-1}`),
		[]byte{}, []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, manifest, entries, checkpoints, observations []byte) {
		a := &archive{names: good.names, files: map[string][]byte{ManifestFile: manifest,
			SignatureFile: []byte(hex.EncodeToString(k.signManifest(manifest))), EntriesFile: entries,
			CheckpointsFile: checkpoints, ObservationsFile: observations}}
		sum, err := verify(a.bytes(t), VerifyOptions{})
		if err == nil && sum == nil {
			t.Fatal("no summary and no error")
		}
	})
}
