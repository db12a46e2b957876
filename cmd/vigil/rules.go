package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/vigilhq/vigil/rules"
)

func runRules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("rules", "rules test|lint [--config FILE] [--strict] [DIR]",
		"vigil rules lint --config vigil.yaml ./my-rules   # the embedded pack, the config's rules.dirs and disable list, and ./my-rules", stderr)
	cfgPath := fs.String("config", "", "also load the rules.dirs and drop the rules.disable of the configuration `FILE`, as vigil scan does")
	strict := fs.Bool("strict", false, "lint: fail on warnings too")
	// The verb may come before the flags (vigil rules lint --strict) or
	// after them (vigil rules --strict lint).
	var verb string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	if done, code := parseFlags(fs, args); done {
		return code
	}
	rest := fs.Args()
	if verb == "" && len(rest) > 0 {
		verb, rest = rest[0], rest[1:]
	}
	if verb == "" || len(rest) > 1 {
		fs.Usage()
		return exitError
	}
	opts := rules.Options{Dirs: rest}
	if *cfgPath != "" {
		cfg := loadConfig(*cfgPath, "vigil rules "+verb, stderr)
		if cfg == nil {
			return exitError
		}
		opts.Dirs = append(slices.Clone(cfg.Rules.Dirs), rest...)
		opts.Disable = cfg.Rules.Disable
	}
	dirs := opts.Dirs // their rule tests run too
	e, err := rules.Load(opts)
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules %s: rules do not load:\n%v\n", verb, err)
		return exitFindings
	}
	switch verb {
	case "lint":
		fmt.Fprintf(stdout, "%d rules load and compile; every control they cite is in the catalog (version %s)\n",
			len(e.Rules()), e.Catalog().Version)
		errs, warns := 0, 0
		for _, i := range e.Lint() {
			fmt.Fprintln(stdout, i)
			if i.Level == rules.LintError {
				errs++
			} else {
				warns++
			}
		}
		if errs+warns > 0 {
			fmt.Fprintf(stdout, "%d error(s), %d warning(s)\n", errs, warns)
		}
		if errs > 0 || (*strict && warns > 0) {
			return exitFindings
		}
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
