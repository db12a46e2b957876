package lab

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing lab
// environment (not root, daemons not installed) from a skip into a test
// failure. .ci/run sets it, so CI can never pass by silently skipping.
const RequireEnv = "VIGIL_LAB_REQUIRED"

// StartT starts a lab for a test and closes it in t.Cleanup. It skips the
// test, saying why, when the process is not root or a daemon is missing,
// unless VIGIL_LAB_REQUIRED=1, in which case it fails it.
func StartT(t testing.TB) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("lab required (%s=1) but unavailable: %v", RequireEnv, err)
		}
		t.Skipf("skipping network-namespace lab test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := Start(ctx, Options{Progress: &testWriter{t: t}})
	if err != nil {
		t.Fatalf("starting lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing lab: %v", err)
		}
	})
	return l
}

// LogWriter returns a writer for Options.Progress that sends the lab's
// progress to the test log, one t.Log per line.
func LogWriter(t testing.TB) io.Writer { return &testWriter{t: t} }

// testWriter sends lab progress to the test log, one t.Log per line.
type testWriter struct {
	t   testing.TB
	buf []byte
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
