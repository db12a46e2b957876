package software

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/collectors/software/internal/advisory"
)

// The offline database is one zip of OSV JSON records per ecosystem, the
// files osv.dev publishes at
// https://osv-vulnerabilities.storage.googleapis.com/<Ecosystem>/all.zip.
// vigil keeps them at <osv_db>/osv-scanner/<Ecosystem>/all.zip, the layout
// osv-scanner documents. osv-scanner v2.5.0 itself reads and downloads
// into <dir>/osv-scalibr/<Ecosystem>/all.zip, so that layout is accepted
// too (an osv-scanner cache can serve as osv_db).
const (
	layoutDir       = "osv-scanner"
	scalibrLayout   = "osv-scalibr"
	dbFile          = "all.zip"
	osvBucketPrefix = "https://osv-vulnerabilities.storage.googleapis.com/"
)

// Bounds on what vigil reads from a database or a records directory: a
// record is a few kilobytes (the largest on osv.dev are well under a
// megabyte), an ecosystem zip a few hundred megabytes.
const (
	maxRecordBytes  = 4 << 20
	maxZipBytes     = 4 << 30
	maxZipEntries   = 2_000_000
	maxRecordsMatch = 20_000 // records kept for one package
)

// ErrNoDatabase is returned when an ecosystem the inputs need has no zip
// in the offline database. The error message says how to get one.
var ErrNoDatabase = errors.New("no offline OSV database")

// dbPath returns the zip of ecosystem in dir, in vigil's layout or
// osv-scanner's own, and whether it exists.
func dbPath(dir, ecosystem string) (string, bool) {
	for _, layout := range []string{layoutDir, scalibrLayout} {
		p := filepath.Join(dir, layout, ecosystem, dbFile)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
			return p, true
		}
	}
	return filepath.Join(dir, layoutDir, ecosystem, dbFile), false
}

// dbEcosystems lists the ecosystems with a zip in dir, each with its path.
func dbEcosystems(dir string) map[string]string {
	out := map[string]string{}
	for _, layout := range []string{scalibrLayout, layoutDir} { // vigil's layout wins
		ents, err := os.ReadDir(filepath.Join(dir, layout))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if p, ok := dbPath(dir, e.Name()); ok && validEcosystemDir(e.Name()) {
				out[e.Name()] = p
			}
		}
	}
	return out
}

// missingDB is the error for ecosystems without a database, with the
// way to get them.
func missingDB(dir string, ecosystems []string) error {
	sort.Strings(ecosystems)
	var want, urls []string
	for _, e := range ecosystems {
		want = append(want, filepath.Join(dir, layoutDir, e, dbFile))
		urls = append(urls, osvBucketPrefix+e+"/"+dbFile)
	}
	return fmt.Errorf("%w for %s in %s (want %s): on a connected machine run scripts/refresh-osv-db.sh DIR %s (it downloads %s), then copy DIR to %s on this sensor; see docs/software.md",
		ErrNoDatabase, strings.Join(ecosystems, ", "), dir, strings.Join(want, ", "), strings.Join(ecosystems, " "), strings.Join(urls, " "), dir)
}

// validEcosystemDir rejects ecosystem names that are not a single path
// element: a record's ecosystem must never make BuildDB write elsewhere.
func validEcosystemDir(eco string) bool {
	return eco != "" && eco != "." && eco != ".." && !strings.ContainsAny(eco, `/\`+"\x00") && filepath.Base(eco) == eco
}

// BuildDB builds an offline database in dbDir from OSV JSON records
// under recordsDir (any depth, *.json, e.g. a mirror of osv.dev's
// per-ecosystem exports or the output of an internal advisory feed): one
// dbDir/osv-scanner/<Ecosystem>/all.zip per ecosystem the records affect,
// each replaced atomically. A record affecting several ecosystems goes into
// each of their zips, once per id. A file that is not an OSV record is an
// error naming it, and nothing is written.
func BuildDB(recordsDir, dbDir string) error {
	type entry struct{ id, path string }
	byEco := map[string]map[string]string{} // ecosystem → id → file
	err := filepath.WalkDir(recordsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		data, err := readBounded(p, maxRecordBytes)
		if err != nil {
			return err
		}
		r, err := advisory.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, a := range r.Affected {
			eco := advisory.BaseEcosystem(a.Package.Ecosystem)
			if eco == "" {
				continue // GIT-only entries have no ecosystem; vigil matches by version
			}
			if !validEcosystemDir(eco) {
				return fmt.Errorf("%s: ecosystem %q cannot be a directory name", p, a.Package.Ecosystem)
			}
			if byEco[eco] == nil {
				byEco[eco] = map[string]string{}
			}
			if _, dup := byEco[eco][r.ID]; !dup {
				byEco[eco][r.ID] = p
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build OSV database from %s: %w", recordsDir, err)
	}
	if len(byEco) == 0 {
		return fmt.Errorf("build OSV database from %s: no OSV records (*.json with affected packages) found", recordsDir)
	}
	ecos := make([]string, 0, len(byEco))
	for e := range byEco {
		ecos = append(ecos, e)
	}
	sort.Strings(ecos)
	for _, eco := range ecos {
		ids := make([]entry, 0, len(byEco[eco]))
		for id, p := range byEco[eco] {
			ids = append(ids, entry{id, p})
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i].id < ids[j].id })
		dir := filepath.Join(dbDir, layoutDir, eco)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("build OSV database: %w", err)
		}
		err := writeAtomic(filepath.Join(dir, dbFile), func(w io.Writer) error {
			zw := zip.NewWriter(w)
			for _, e := range ids {
				data, err := readBounded(e.path, maxRecordBytes)
				if err != nil {
					return err
				}
				f, err := zw.Create(e.id + ".json")
				if err != nil {
					return err
				}
				if _, err := f.Write(data); err != nil {
					return err
				}
			}
			return zw.Close()
		})
		if err != nil {
			return fmt.Errorf("build OSV database %s: %w", eco, err)
		}
	}
	return nil
}

// writeAtomic writes path through a temporary file in the same directory
// and renames it into place, so a sensor reading the database never sees
// half a zip.
func writeAtomic(path string, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".all-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes, not an OSV record", path, limit)
	}
	return data, nil
}

// loadRecords reads the records of one ecosystem zip that mention any of
// names (affected package names, as the ecosystem folds them), grouped by
// folded name. Entries are read one at a time and bounded; a record that
// does not decode is skipped, as osv-scanner does. Withdrawn records are
// dropped here.
func loadRecords(ctx context.Context, zipPath, ecosystem string, names []string) (map[string][]*advisory.Record, error) {
	st, err := os.Stat(zipPath)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxZipBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d vigil reads", zipPath, st.Size(), int64(maxZipBytes))
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", zipPath, err)
	}
	defer zr.Close()
	if len(zr.File) > maxZipEntries {
		return nil, fmt.Errorf("%s: %d entries, more than the %d vigil reads", zipPath, len(zr.File), maxZipEntries)
	}
	want := map[string]bool{}
	var needles [][]byte
	for _, n := range names {
		want[advisory.NormName(ecosystem, n)] = true
		// A cheap filter before decoding: the record must contain the
		// name as a JSON string (PyPI names are folded, so match loosely).
		needles = append(needles, []byte(`"`+n))
	}
	out := map[string][]*advisory.Record{}
	buf := new(bytes.Buffer)
	for i, f := range zr.File {
		if i%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !strings.HasSuffix(f.Name, ".json") || f.UncompressedSize64 > maxRecordBytes {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			continue
		}
		buf.Reset()
		_, err = io.Copy(buf, io.LimitReader(rc, maxRecordBytes+1))
		rc.Close()
		if err != nil || buf.Len() > maxRecordBytes {
			continue
		}
		data := buf.Bytes()
		if !containsAnyFold(data, needles, ecosystem == "PyPI") {
			continue
		}
		r, err := advisory.Parse(data)
		if err != nil || r.Withdrawn != "" {
			continue
		}
		seen := map[string]bool{}
		for _, a := range r.Affected {
			n := advisory.NormName(ecosystem, a.Package.Name)
			if advisory.BaseEcosystem(a.Package.Ecosystem) != ecosystem || !want[n] || seen[n] {
				continue
			}
			seen[n] = true
			if len(out[n]) < maxRecordsMatch {
				out[n] = append(out[n], r)
			}
		}
	}
	return out, nil
}

func containsAnyFold(data []byte, needles [][]byte, fold bool) bool {
	if fold {
		data = bytes.ToLower(data)
	}
	for _, n := range needles {
		if fold {
			n = bytes.ToLower(n)
		}
		if bytes.Contains(data, n) {
			return true
		}
	}
	return false
}
