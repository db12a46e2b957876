package reports

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Make builds the facts of in (Build) and the kind's document from them:
// the one path from the store to a document that vigil report and vigil
// serve's scheduled reports share.
func Make(ctx context.Context, src Source, kind string, in BuildInput) (*Document, error) {
	gen, err := GeneratorFor(kind)
	if err != nil {
		return nil, err
	}
	facts, err := Build(ctx, src, in)
	if err != nil {
		return nil, err
	}
	return gen.Generate(facts)
}

// Written is what WriteFile wrote.
type Written struct {
	SHA256 string // hex
	Bytes  int64
}

// WriteFile writes doc in format to path through a temporary file in the
// same directory, synced and renamed into place with mode perm, so a
// failure never leaves half a report and a reader never sees one.
// Reports name hosts and accounts: keep perm private (0600, or 0640 for
// a group that collects them).
func WriteFile(path, format string, doc *Document, perm os.FileMode) (Written, error) {
	w, err := DocumentWriterFor(format)
	if err != nil {
		return Written{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vigil-report-*")
	if err != nil {
		return Written{}, fmt.Errorf("report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, h)}
	err = w.WriteDocument(cw, doc)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return Written{}, fmt.Errorf("report %s: %w", path, err)
	}
	return Written{SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: cw.n}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
