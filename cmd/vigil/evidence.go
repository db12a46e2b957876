package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/store/dbmove"
)

func runEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "vigil evidence", `Usage: vigil evidence export|verify [flags]

  export  write the tamper-evident evidence log to a self-contained archive
  verify  check an archive offline and name the first broken entry

Run `+"`vigil evidence export --help`"+` or `+"`vigil evidence verify --help`"+` for flags and an example.
`, []verb{{"export", runEvidenceExport}, {"verify", runEvidenceVerify}}, args, stdout, stderr)
}

func runEvidenceExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("evidence export", "evidence export --config FILE [--db URL] --output FILE [--since DATE]\n\n"+
		"Writes the evidence log (entries, signed checkpoints, the observations they commit to, the\n"+
		"public key and a signed manifest) to a zip an auditor verifies offline with\n"+
		"`vigil evidence verify`, and verifies it before finishing. The store is opened read-only,\n"+
		"so a running `vigil serve` may keep writing. The key is <data_dir>/evidence.key.\n\n"+
		"Exit codes: 0 written and verified; 1 written, but the log does not verify (the reason names\n"+
		"the first broken entry); 2 could not export.",
		"vigil evidence export --config vigil.yaml --output evidence-2025.zip --since 2025-01-01", stderr)
	var (
		cfgPath = fs.String("config", "", "configuration file (required): its data_dir holds the database and the key")
		db      = fs.String("db", "", "store URL (default sqlite:///<data_dir>/vigil.db)")
		output  = fs.String("output", "", "the archive to write (required)")
		since   = fs.String("since", "", "export only entries logged on or after DATE (YYYY-MM-DD, UTC, or RFC 3339)")
	)
	if done, code := parseFlags(fs, args); done {
		return code
	}
	fail := failer(stderr, "vigil evidence export")
	switch {
	case *cfgPath == "":
		return fail("--config is required (see `vigil evidence export --help`)")
	case *output == "":
		return fail("--output is required (see `vigil evidence export --help`)")
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	}
	var from time.Time
	if *since != "" {
		var err error
		if from, err = parseDate(*since); err != nil {
			return fail("--since: %v", err)
		}
	}
	cfg := loadConfig(*cfgPath, "vigil evidence export", stderr)
	if cfg == nil {
		return exitError
	}
	dataDir := absDir(cfg.DataDir)
	key, err := evidence.LoadOrCreateKey(dataDir)
	if err != nil {
		return fail("%v", err)
	}
	st, err := dbmove.Open(ctx, storeURL(cfg, *db), true)
	if err != nil {
		return fail("%v", err)
	}
	defer st.Close()

	m, err := writeArchive(ctx, *output, st.Evidence(), key, evidence.ExportOptions{Since: from, VigilVersion: version, Organization: cfg.Organization})
	if err != nil {
		return fail("%v", err)
	}
	// Who took a copy of the evidence, and of what, is itself worth a record.
	recordCopy(stderr, "evidence exported",
		"output", absDir(*output), "database", st.Path(), "entries", m.Entries, "first_seq", m.FirstSeq, "last_seq", m.LastSeq,
		"head_hash", m.HeadHash, "since", m.Since, "key", m.KeyFingerprint)

	fmt.Fprintf(stdout, "wrote %s: %d entries", *output, m.Entries)
	if m.Entries > 0 {
		fmt.Fprintf(stdout, " (seq %d-%d)", m.FirstSeq, m.LastSeq)
	}
	fmt.Fprintf(stdout, ", %d checkpoints, %d observations\npublic key: %s\nfingerprint: %s\nverify with: vigil evidence verify %s --key %s\n",
		m.Checkpoints, m.Observations, m.PublicKey, m.KeyFingerprint, *output, m.PublicKey)

	// Check what was written, as the auditor will.
	f, err := os.Open(*output)
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("%v", err)
	}
	if _, err := evidence.VerifyArchive(ctx, f, fi.Size(), evidence.VerifyOptions{Key: key.Public()}); err != nil {
		var te *evidence.TamperError
		if errors.As(err, &te) {
			fmt.Fprintf(stderr, "vigil evidence export: the database's evidence log does not verify: %v\n", err)
			return exitFindings
		}
		return fail("verify %s: %v", *output, err)
	}
	return exitOK
}

// writeArchive exports through a temporary file renamed into place, so a
// failed export never leaves half an archive. The archive holds
// observations (account names, hosts), so it is private to the owner.
func writeArchive(ctx context.Context, path string, src evidence.Source, key *evidence.Key, opts evidence.ExportOptions) (*evidence.Manifest, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".vigil-evidence-*")
	if err != nil {
		return nil, fmt.Errorf("--output %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	m, err := evidence.Export(ctx, tmp, src, key, opts)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("--output %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("--output %s: %w", path, err)
	}
	return m, nil
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: use YYYY-MM-DD or RFC 3339 (2025-01-01T00:00:00Z)", s)
	}
	return t, nil
}

func runEvidenceVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("evidence verify", "evidence verify FILE [--key PUBKEY]\n\n"+
		"Checks an archive from `vigil evidence export` offline: the manifest's signature, every\n"+
		"entry's payload, hash and link, every checkpoint's signature, the observations against\n"+
		"their digests, and the count against the manifest. Pin the key with --key (as export\n"+
		"printed it, ed25519:<hex>, or its SHA256: fingerprint, or a file holding either).\n\n"+
		"Exit codes: 0 verified (a one-line summary on stdout); 1 altered, removed or reordered\n"+
		"(the first broken entry on stdout); 2 not a readable archive.",
		"vigil evidence verify evidence-2025.zip --key ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29", stderr)
	keyFlag := fs.String("key", "", "the public key or fingerprint the archive must be signed with")
	// Flags may follow FILE: vigil evidence verify FILE --key ...
	if done, code := parseFlags(fs, args); done {
		return code
	}
	rest := fs.Args()
	if len(rest) > 0 {
		if done, code := parseFlags(fs, rest[1:]); done {
			return code
		}
		rest = append([]string{rest[0]}, fs.Args()...)
	}
	fail := failer(stderr, "vigil evidence verify")
	if len(rest) != 1 {
		return fail("want exactly one archive (see `vigil evidence verify --help`)")
	}
	var opts evidence.VerifyOptions
	if *keyFlag != "" {
		pin := *keyFlag
		if b, err := os.ReadFile(pin); err == nil {
			pin = strings.TrimSpace(string(b))
		}
		if strings.HasPrefix(pin, "SHA256:") {
			opts.Fingerprint = pin
		} else {
			pub, err := evidence.ParsePublicKey(pin)
			if err != nil {
				return fail("--key: %v", err)
			}
			opts.Key = pub
		}
	}
	f, err := os.Open(rest[0])
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail("%v", err)
	}
	sum, err := evidence.VerifyArchive(ctx, f, fi.Size(), opts)
	var te *evidence.TamperError
	switch {
	case errors.As(err, &te):
		fmt.Fprintf(stdout, "NOT VERIFIED: %s: %v\n", rest[0], err)
		return exitFindings
	case err != nil:
		return fail("%s: %v", rest[0], err)
	}
	fmt.Fprintf(stdout, "%s: %s\n", rest[0], sum)
	return exitOK
}

// recordCopy logs, on stderr, that someone on this machine took a copy of
// the organisation's evidence or posture: who (the OS user), where (the
// host) and what (attrs). The store is open read-only then, so this line
// is the record; the dashboard audit-logs its downloads.
func recordCopy(stderr io.Writer, msg string, attrs ...any) {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	slog.New(slog.NewTextHandler(stderr, nil)).Info(msg, append(attrs, "user", who, "host", host)...)
}
