package software

import (
	"archive/zip"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/osv-scanner/v2/pkg/models"

	"github.com/vigilhq/vigil/collectors/software/internal/advisory"
)

// shim is the directory osv-scanner is pointed at: a private temporary
// <dir>/osv-scalibr/<Ecosystem> symlink per ecosystem zip found in the
// configured database. It bridges vigil's documented layout and the one
// this osv-scanner version reads (which has changed between releases),
// keeps osv-scanner from creating anything in the database directory
// (which may be read-only on a sensor), and lets vigil put an empty
// database in place of a missing one.
type shim struct {
	dir    string
	have   map[string]bool // ecosystems with a real database
	filled map[string]bool // ecosystems given an empty one
}

func newShim(db string) (*shim, error) {
	dir, err := os.MkdirTemp("", "vigil-osv-")
	if err != nil {
		return nil, err
	}
	s := &shim{dir: dir, have: map[string]bool{}, filled: map[string]bool{}}
	if err := os.Mkdir(filepath.Join(dir, scalibrLayout), 0o700); err != nil {
		s.close()
		return nil, err
	}
	for eco, zipPath := range dbEcosystems(db) {
		if err := os.Symlink(filepath.Dir(zipPath), filepath.Join(dir, scalibrLayout, eco)); err != nil {
			s.close()
			return nil, fmt.Errorf("offline OSV database %s: %w", db, err)
		}
		s.have[eco] = true
	}
	return s, nil
}

func (s *shim) close() { os.RemoveAll(s.dir) }

// missing lists the ecosystems of the scanned packages that have no
// database.
func (s *shim) missing(res models.VulnerabilityResults) []string {
	var out []string
	seen := map[string]bool{}
	for _, src := range res.Results {
		for _, p := range src.Packages {
			eco := advisory.BaseEcosystem(p.Package.Ecosystem)
			if eco == "" || s.have[eco] || seen[eco] {
				continue
			}
			seen[eco] = true
			out = append(out, eco)
		}
	}
	return out
}

// addEmpty puts an empty database in place of each missing one, so that
// osv-scanner goes on to match the other ecosystems. It reports whether
// it added any (and the scan must run again).
func (s *shim) addEmpty(ecos []string) (bool, error) {
	added := false
	for _, eco := range ecos {
		if s.filled[eco] || !validEcosystemDir(eco) {
			continue
		}
		dir := filepath.Join(s.dir, scalibrLayout, eco)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return added, err
		}
		f, err := os.Create(filepath.Join(dir, dbFile))
		if err != nil {
			return added, err
		}
		if err := zip.NewWriter(f).Close(); err != nil {
			f.Close()
			return added, err
		}
		if err := f.Close(); err != nil {
			return added, err
		}
		s.filled[eco] = true
		added = true
	}
	return added, nil
}
