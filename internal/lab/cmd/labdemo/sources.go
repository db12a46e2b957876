package main

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/collectors/software"
)

// data holds the demo clinic's identity exports and staff roster (dates in
// them are written NOW-N, N days before the demo runs, so the demo shows the
// same findings whenever it runs), its check-in kiosk's SBOM, and the OSV
// records the demo's offline vulnerability database is built from.
//
//go:embed data/*.csv data/sbom/*.json data/osv/*.json
var data embed.FS

var nowMinus = regexp.MustCompile(`NOW-(\d+)`)

// writeSources writes the demo's identity exports and roster into dir and
// returns the YAML that names them in the config.
func writeSources(dir string, now time.Time) (string, error) {
	files, err := data.ReadDir("data")
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if f.IsDir() {
			continue // sbom/ and osv/, below
		}
		b, err := data.ReadFile("data/" + f.Name())
		if err != nil {
			return "", err
		}
		b = nowMinus.ReplaceAllFunc(b, func(m []byte) []byte {
			n, _ := strconv.Atoi(string(nowMinus.FindSubmatch(m)[1]))
			return []byte(now.AddDate(0, 0, -n).UTC().Format(time.DateOnly))
		})
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o600); err != nil {
			return "", err
		}
	}
	// The software inventory and a vulnerability database built from the
	// embedded OSV records, as an MSP builds one from its mirror.
	for _, sub := range []string{"sbom", "osv"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", err
		}
		files, _ := data.ReadDir("data/" + sub)
		for _, f := range files {
			b, _ := data.ReadFile("data/" + sub + "/" + f.Name())
			if err := os.WriteFile(filepath.Join(dir, sub, f.Name()), b, 0o600); err != nil {
				return "", err
			}
		}
	}
	db := filepath.Join(dir, "osv-db")
	if err := software.BuildDB(filepath.Join(dir, "osv"), db); err != nil {
		return "", fmt.Errorf("building the demo's OSV database: %w", err)
	}
	q := strconv.Quote
	return fmt.Sprintf(`identity:
  - {type: csv, system: emr, path: %s}
  - {type: csv, system: m365, path: %s}
roster: %s
accounts:
  remote_systems: [m365]
software:
  - path: %s
osv_db: %s
`, q(filepath.Join(dir, "emr-users.csv")), q(filepath.Join(dir, "m365-users.csv")), q(filepath.Join(dir, "staff.csv")),
		q(filepath.Join(dir, "sbom")), q(db)), nil
}
