package main

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// data holds the demo clinic's identity exports and staff roster. Dates in
// them are written NOW-N (N days before the demo runs), so the demo shows
// the same findings whenever it runs.
//
//go:embed data/*.csv
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
	q := strconv.Quote
	return fmt.Sprintf(`identity:
  - {type: csv, system: emr, path: %s}
  - {type: csv, system: m365, path: %s}
roster: %s
accounts:
  remote_systems: [m365]
`, q(filepath.Join(dir, "emr-users.csv")), q(filepath.Join(dir, "m365-users.csv")), q(filepath.Join(dir, "staff.csv"))), nil
}
