package agentsrv

import (
	"bytes"
	"compress/gzip"
	"testing"

	"github.com/vigilhq/vigil/agent/protocol"
)

// DecodeBatch takes whatever an agent, or anyone with a stolen key, sends:
// it must never panic, and never accept a batch over the limits.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"id":"s:0","kind":"begin","scan":{"id":"s","locations":["downtown"]},"seq":0}`,
		`{"id":"s:1","kind":"observations","scan":{"id":"s"},"seq":1,"observations":[{"kind":"service","location":"downtown","host":"10.0.0.1","port":23,"attrs":{"service":"telnet"}}]}`,
		`{"id":"s:2","kind":"finish","scan":{"id":"s","complete":true,"vantages":{"downtown":["guest"]}}}`,
		`{"id":"","kind":"x"}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s), false)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(s))
		zw.Close()
		f.Add(buf.Bytes(), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, gz bool) {
		b, err := DecodeBatch(body, gz)
		if err != nil {
			return
		}
		if len(b.Observations) > protocol.MaxBatchObservations || b.ID == "" || b.Scan.ID == "" {
			t.Fatalf("accepted %+v", b)
		}
		if b.Kind != protocol.BatchObservations && len(b.Observations) > 0 {
			t.Fatalf("a %s batch with observations accepted", b.Kind)
		}
	})
}
