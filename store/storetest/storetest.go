// Package storetest is the store test suite every backend runs: the
// finding lifecycle, decisions and the risk register, attestations and the
// evidence log, against a real database. store/sqlite and store/postgres
// call Run with a Harness that opens their databases, so both behave the
// same; what only one of them does (a lock file, PRAGMAs) is tested in its
// own package.
package storetest

import (
	"context"
	"database/sql"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

// Backend is a store as one backend opens it.
type Backend interface {
	store.Store
	store.AgentStore
	store.ScanSweeper
	AddAttestation(ctx context.Context, r observe.Attestation) (observe.Attestation, error)
	CorrectAttestation(ctx context.Context, supersedes string, r observe.Attestation) (observe.Attestation, error)
	Attestations(ctx context.Context) ([]observe.Attestation, error)
	Evidence() evidence.Source
	// SetBeforeCommit installs a hook run just before every write commits.
	SetBeforeCommit(func(context.Context) error)
	// SQL is the connection pool, for statements vigil itself never runs.
	SQL() *sql.DB
}

// Options say how to open a database.
type Options struct {
	Now      func() time.Time
	Key      *evidence.Key
	ReadOnly bool
}

// Option changes Options.
type Option func(*Options)

// WithClock sets the store's clock.
func WithClock(now func() time.Time) Option { return func(o *Options) { o.Now = now } }

// WithEvidenceKey sets the key that signs checkpoints.
func WithEvidenceKey(k *evidence.Key) Option { return func(o *Options) { o.Key = k } }

// ReadOnly opens for reading only.
func ReadOnly() Option { return func(o *Options) { o.ReadOnly = true } }

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Harness opens one backend's databases.
type Harness struct {
	// Dialect is SQLite or Postgres: the few statements the suite runs
	// behind vigil's back (to tamper, to check triggers) differ.
	Dialect string
	// New returns where a new, empty database lives (a file path, a URL).
	New func(t testing.TB) string
	// Open opens the database at loc.
	Open func(ctx context.Context, loc string, o Options) (Backend, error)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	for _, tc := range tests {
		name := runtime.FuncForPC(reflect.ValueOf(tc).Pointer()).Name()
		name = name[strings.LastIndex(name, ".")+1:]
		t.Run(strings.TrimPrefix(name, "test"), func(t *testing.T) { tc(t, &h) })
	}
}

var tests = []func(*testing.T, *Harness){
	testMigratesOnce, testOpenRefusesNewerSchema, testFindingLifecycleAcrossScans, testFinishScanOutOfOrder,
	testScanMisuseIsRefused, testFinishScanWithoutBeginAndWithoutIDs, testFindingsFilter, testObservationsRoundTrip,
	testAddObservationsIsAllOrNothing, testReadOnlyBesideWriter, testFailedFinishScanChangesNothing,
	testFinishScanKeepsWhatBeginScanRecorded, testResolveIsScopedToVantage, testResolveIsScopedToSource,
	testAcceptanceExpiryReopens, testRiskTreatments, testDecisionsNeedAWriter,
	testAttestationsRoundTrip, testAttestationsAreAppendOnly, testAttestationsInEvidenceLog,
	testEvidenceLogsEveryWrite, testEvidenceTablesAreAppendOnly, testEvidenceTamperedInDatabaseIsNamed,
	testEvidenceRollsBackWithTheWrite, testEvidenceWithoutKeyThenWithKey,
	testAgentEnrollment, testAgentHeartbeatAndRevocation, testAgentBatchesAreIdempotent, testAgentBatchesConcurrently,
	testAbandonedScansAreFinished, testAgentScanRequests,
}

// open opens the database at loc and closes it when the test ends.
func (h *Harness) open(t testing.TB, loc string, opts ...Option) Backend {
	t.Helper()
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	s, err := h.Open(context.Background(), loc, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", loc, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fresh opens a new, empty database.
func (h *Harness) fresh(t testing.TB, opts ...Option) Backend {
	t.Helper()
	return h.open(t, h.New(t), opts...)
}

// sql picks the statement for the harness's dialect.
func (h *Harness) sql(sqlite, postgres string) string {
	if h.Dialect == Postgres {
		return postgres
	}
	return sqlite
}

// base is the time of the first test scan; nanoseconds make sure they survive.
var base = time.Date(2025, 3, 1, 2, 0, 0, 123456789, time.UTC)

// At is the time of the test scans: hours after the first.
func At(hours int) time.Time { return base.Add(time.Duration(hours) * time.Hour) }

func at(hours int) time.Time { return At(hours) }

func finding(rule string, cat observe.Category, sev observe.Severity, loc, target string) observe.Finding {
	return observe.Finding{
		ID:       observe.FindingID(rule, loc, target),
		Rule:     rule,
		Category: cat,
		Severity: sev,
		Title:    rule + " on " + target,
		Location: loc,
		Target:   target,
		Controls: []string{"hipaa:164.312(a)(1)"},
		Evidence: map[string]any{"service": "x", "port": 3389},
	}
}

// The findings the lifecycle tests move through scans.
var (
	rdp    = finding("net.rdp-reachable-from-guest", "exposed-service", observe.High, "downtown", "10.10.2.5:3389")
	telnet = finding("net.telnet-open", "plaintext-protocol", observe.Medium, "downtown", "10.10.2.9:23")
	ftp    = finding("net.ftp-anonymous", "default-credentials", observe.Critical, "uptown", "10.20.1.4:21")
	tls10  = finding("tls.v1.0-accepted", "weak-tls", observe.Low, "downtown", "10.10.2.7:443")
)

func finishT(t *testing.T, s Backend, scan observe.Scan, fs ...observe.Finding) (current, resolved []observe.Finding) {
	t.Helper()
	ctx := context.Background()
	if err := s.BeginScan(ctx, scan); err != nil {
		t.Fatalf("BeginScan(%s): %v", scan.ID, err)
	}
	current, resolved, err := s.FinishScan(ctx, scan, fs)
	if err != nil {
		t.Fatalf("FinishScan(%s): %v", scan.ID, err)
	}
	return current, resolved
}

func byID(t *testing.T, s Backend) map[string]observe.Finding {
	t.Helper()
	all, err := s.Findings(context.Background(), store.FindingFilter{})
	if err != nil {
		t.Fatalf("Findings: %v", err)
	}
	m := make(map[string]observe.Finding, len(all))
	for _, f := range all {
		m[f.ID] = f
	}
	return m
}

// Helpers for a backend's own tests (its lock, its process handling).

// Finding returns a test finding with its id.
func Finding(rule string, cat observe.Category, sev observe.Severity, loc, target string) observe.Finding {
	return finding(rule, cat, sev, loc, target)
}

// RDP, Telnet and TLS10 are findings at location downtown.
var RDP, Telnet, TLS10 = rdp, telnet, tls10

// FinishT begins and finishes scan with findings fs, failing the test on error.
func FinishT(t *testing.T, s Backend, scan observe.Scan, fs ...observe.Finding) (current, resolved []observe.Finding) {
	t.Helper()
	return finishT(t, s, scan, fs...)
}

// ByID returns every stored finding by id.
func ByID(t *testing.T, s Backend) map[string]observe.Finding { t.Helper(); return byID(t, s) }

// IDs returns the findings' ids, sorted.
func IDs(fs []observe.Finding) []string { return ids(fs) }

// Populate writes two scans with observations, findings (one resolved, one
// accepted) and their evidence into s.
func Populate(t *testing.T, s Backend) { t.Helper(); populate(t, s) }

// VerifyExport exports s's evidence log signed with k and verifies the
// archive offline, as `vigil evidence verify` does.
func VerifyExport(t testing.TB, s Backend, k *evidence.Key) (*evidence.Summary, error) {
	t.Helper()
	return verifyT(exportT(t, s, k))
}
