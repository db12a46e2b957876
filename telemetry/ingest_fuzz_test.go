package telemetry

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/influxdata/telegraf/plugins/parsers/influx"
)

// FuzzIngest posts arbitrary bodies, plain or gzipped. The handler must
// never panic, must store nothing unless it answers 204, and on 204 must
// store exactly the metrics the body holds.
//
//	go test ./telemetry -run '^$' -fuzz FuzzIngest -fuzztime 60s
func FuzzIngest(f *testing.F) {
	f.Add([]byte("cpu,host=fd-pc,location=downtown usage_idle=97.5 1740839390000000000\n"), false, "")
	f.Add([]byte("x509_cert,source=tcp://127.0.0.1:443,common_name=a expiry=864000i,enddate=1741703390i 1740839390\n"), true, "s")
	f.Add([]byte("net_response,server=10.0.0.1,port=3389,result=success response_time=0.1,result_code=0u\n# comment\n\n"), false, "ms")
	f.Add([]byte("cpu usage_idle=\ncpu usage_idle=1\n"), false, "")
	f.Add([]byte("m,t=a\\ b f=\"str\\\"ing\",b=true,i=-9223372036854775808i,u=18446744073709551615u 0\n"), true, "us")
	f.Add([]byte("m f=1e999\n"), false, "")
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00}, false, "")

	const maxBody = 64 << 10
	f.Fuzz(func(t *testing.T, body []byte, zip bool, precision string) {
		sink := &memSink{}
		h := IngestHandler(StaticToken(goodToken), sink, IngestOptions{
			MaxBodyBytes: maxBody,
			Locations:    []string{"downtown"},
			Now:          func() time.Time { return testNow },
		})
		payload := body
		if zip {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(body)
			w.Close()
			payload = buf.Bytes()
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/telegraf?precision="+urlEscape(precision), bytes.NewReader(payload))
		req.Header.Set("Authorization", "Token "+goodToken)
		if zip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		stored := sink.stored()
		if rec.Code != http.StatusNoContent {
			if stored != 0 {
				t.Fatalf("status %d but %d observations stored", rec.Code, stored)
			}
			if rec.Code >= 500 {
				t.Fatalf("status %d for a client's body: %s", rec.Code, rec.Body)
			}
			return
		}
		if len(sink.calls) > 1 {
			t.Fatalf("one request stored in %d batches", len(sink.calls))
		}
		p := &influx.Parser{}
		if err := p.Init(); err != nil {
			t.Fatal(err)
		}
		p.SetTimePrecision(precisions[precision])
		ms, err := p.Parse(body)
		if err != nil {
			t.Fatalf("204 for a body the parser refuses: %v", err)
		}
		if stored != len(ms) {
			t.Fatalf("stored %d observations for %d metrics", stored, len(ms))
		}
		// Without quoted strings (which may hold newlines) every line that
		// is not blank or a comment is one metric: a parser that repeats
		// or drops a metric shows here.
		if !bytes.ContainsAny(body, "\"\r") {
			lines := 0
			for _, l := range bytes.Split(body, []byte("\n")) {
				l = bytes.TrimLeft(l, " \t\v\f") // the parser's whitespace
				if len(l) > 0 && l[0] != '#' {
					lines++
				}
			}
			if stored != lines {
				t.Fatalf("stored %d observations for %d lines", stored, lines)
			}
		}
	})
}

func urlEscape(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// BenchmarkIngest measures lines per second through the handler: 1000-line
// batches (telegraf's default metric_batch_size) of the agent metrics, to
// a sink that keeps nothing and to the SQLite store.
//
//	go test ./telemetry -run '^$' -bench Ingest -benchtime 3s
func BenchmarkIngest(b *testing.B) {
	const lines = 1000
	ms := agentMetrics()
	var plain []byte
	for i := range lines {
		plain = append(plain, lineProtocol(b, ms[i%len(ms):i%len(ms)+1])...)
	}
	zipped := gz(b, plain)
	for _, bc := range []struct {
		name string
		body []byte
		gzip bool
		sink Sink
	}{
		{"plain/discard", plain, false, &memSink{}},
		{"gzip/discard", zipped, true, &memSink{}},
		{"gzip/sqlite", zipped, true, StoreSink{Store: openStore(b)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := IngestHandler(StaticToken(goodToken), bc.sink, IngestOptions{Locations: []string{"downtown"}})
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			start, n := time.Now(), 0
			for b.Loop() {
				n++
				if ms, ok := bc.sink.(*memSink); ok {
					ms.mu.Lock()
					ms.calls = ms.calls[:0]
					ms.mu.Unlock()
				}
				req := httptest.NewRequest(http.MethodPost, "/api/v1/telegraf", bytes.NewReader(bc.body))
				req.Header.Set("Authorization", "Token "+goodToken)
				if bc.gzip {
					req.Header.Set("Content-Encoding", "gzip")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(n*lines)/time.Since(start).Seconds(), "lines/s")
		})
	}
}
