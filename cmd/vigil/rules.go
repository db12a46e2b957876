package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/rules"
)

func runRules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("rules", "rules test|lint [DIR]",
		"vigil rules test ./my-rules   # load the embedded pack plus ./my-rules and run their tests", stderr)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return exitError
	}
	verb := fs.Arg(0)
	var dirs []string
	if fs.NArg() == 2 {
		dirs = []string{fs.Arg(1)}
	}
	e, err := rules.Load(rules.Options{Dirs: dirs})
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules %s: rules do not load:\n%v\n", verb, err)
		return exitFindings
	}
	switch verb {
	case "lint":
		fmt.Fprintf(stdout, "%d rules load and compile; every control they cite is in the catalog\n", len(e.Rules()))
		return exitOK
	case "test":
		results, err := e.RunEmbeddedTests()
		if err != nil {
			fmt.Fprintf(stderr, "vigil rules test: %v\n", err)
			return exitError
		}
		for _, d := range dirs {
			files, err := testFiles(d)
			if err != nil {
				fmt.Fprintf(stderr, "vigil rules test: %v\n", err)
				return exitError
			}
			for _, f := range files {
				r, err := e.RunTestFile(f)
				if err != nil {
					fmt.Fprintf(stderr, "vigil rules test: %v\n", err)
					return exitError
				}
				results = append(results, r...)
			}
		}
		failed := 0
		for _, r := range results {
			if len(r.Failures) == 0 {
				continue
			}
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %s\n", r.File, r.Name)
			for _, f := range r.Failures {
				fmt.Fprintf(stdout, "    %s\n", f)
			}
		}
		fmt.Fprintf(stdout, "%d passed, %d failed\n", len(results)-failed, failed)
		if failed > 0 {
			return exitFindings
		}
		return exitOK
	default:
		fmt.Fprintf(stderr, "vigil rules: unknown verb %q: use test or lint\n", verb)
		return exitError
	}
}

// testFiles lists the YAML files in dir that hold rule tests.
func testFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), "\ntests:") || strings.HasPrefix(string(data), "tests:") {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
