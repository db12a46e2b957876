package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/evidence"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/posture"
	"github.com/vigilhq/vigil/reports"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/store/postgres"
	"github.com/vigilhq/vigil/store/sqlite"
)

// config validates reports[].kind and .format against its own lists,
// since it cannot import package reports: they must stay the same.
func TestReportKindsMatchConfig(t *testing.T) {
	if !slices.Equal(config.ReportKinds, reports.Kinds()) {
		t.Errorf("config.ReportKinds = %v, reports.Kinds() = %v", config.ReportKinds, reports.Kinds())
	}
	if !slices.Equal(config.ReportFormats, reports.DocumentFormats()) {
		t.Errorf("config.ReportFormats = %v, reports.DocumentFormats() = %v", config.ReportFormats, reports.DocumentFormats())
	}
}

// reportStore is a store a report is made from that the test can write
// a scan to.
type reportStore interface {
	reports.Source
	BeginScan(ctx context.Context, sc observe.Scan) error
	FinishScan(ctx context.Context, sc observe.Scan, found []observe.Finding) ([]observe.Finding, []observe.Finding, error)
	Evidence() evidence.Source
	Close() error
}

// generated counts the "report generated" records per output and as-of.
type generated struct {
	slog.Handler
	mu   *sync.Mutex
	seen map[string]int
}

func (g generated) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "report generated" {
		var out, asOf, user string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "output":
				out = a.Value.String()
			case "as_of":
				asOf = a.Value.String()
			case "user":
				user = a.Value.String()
			}
			return true
		})
		g.mu.Lock()
		g.seen[filepath.Base(out)+"|"+asOf+"|"+user]++
		g.mu.Unlock()
	}
	return g.Handler.Handle(ctx, r)
}
func (g generated) Enabled(context.Context, slog.Level) bool { return true }
func (g generated) WithAttrs(as []slog.Attr) slog.Handler {
	return generated{g.Handler.WithAttrs(as), g.mu, g.seen}
}
func (g generated) snapshot() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := map[string]int{}
	for k, v := range g.seen {
		m[k] = v
	}
	return m
}

const reportConfig = `organization: Acme Med Spa
locations:
  - id: downtown
    name: Downtown
    state: CA
    segments: [{name: clinical, cidr: 10.10.2.0/24, role: clinical}]
`

// A scheduled report, due, is enqueued by the leader and written once
// per due time into reports_dir as ORG-KIND-DATE.EXT, atomically and
// 0640: the PDF is a PDF, the CSV parses, the copy is recorded as by
// "schedule", and a second insert of a done report is refused.
func TestScheduledReports(t *testing.T) {
	for name, opts := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			o := opts(t)
			var st reportStore
			var err error
			if o.Postgres != "" {
				st, err = postgres.Open(ctx, o.Postgres)
			} else {
				st, err = sqlite.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			cfg, err := config.Parse(filepath.Join(t.TempDir(), "vigil.yaml"), []byte(reportConfig))
			if err != nil {
				t.Fatal(err)
			}
			engine, err := rules.Load(rules.Options{})
			if err != nil {
				t.Fatal(err)
			}
			rdp, ok := engine.Rule("net.remote-access-exposed")
			if !ok {
				t.Fatal("no rule net.remote-access-exposed")
			}
			at := time.Now().Add(-time.Hour)
			sc := observe.Scan{ID: "scan-1", StartedAt: at, FinishedAt: at.Add(time.Minute), Version: "test",
				Locations: []string{"downtown"}, Complete: true}
			if err := st.BeginScan(ctx, sc); err != nil {
				t.Fatal(err)
			}
			found := []observe.Finding{{Rule: rdp.ID, Category: rdp.Category, Severity: rdp.Severity, Title: rdp.Title,
				Location: "downtown", Target: "10.10.2.5:3389", Controls: rdp.Controls, Remediation: rdp.Remediation}}
			if _, _, err := st.FinishScan(ctx, sc, found); err != nil {
				t.Fatal(err)
			}

			dir := filepath.Join(t.TempDir(), "reports") // created by the job
			gen := generated{slog.DiscardHandler, &sync.Mutex{}, map[string]int{}}
			o.Tenants, o.TimeZone, o.Logger = map[string]int{"acme-med-spa": 1}, time.UTC, slog.New(gen)
			q, err := Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			q.Serve("acme-med-spa", Tenant{Reports: func(context.Context) (ReportInput, error) {
				return ReportInput{Source: st, Dir: dir, Organization: cfg.Organization, Build: reports.BuildInput{Version: "test",
					Evidence: st.Evidence(), Posture: posture.Input{Config: cfg, Catalog: engine.Catalog(), Rules: engine.Rules()}}}, nil
			}})
			if err := q.ScheduleReports("acme-med-spa", []config.Report{
				{Kind: "ocr", Format: "pdf", Cron: "@every 1s"}, {Kind: "insurance", Format: "csv", Cron: "@every 1s"}}); err != nil {
				t.Fatal(err)
			}
			if err := q.Start(ctx); err != nil {
				t.Fatal(err)
			}
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					if err := q.Stop(ctx, 10*time.Second, 5*time.Second); err != nil {
						t.Error(err)
					}
				}
			}
			defer stop()
			waitFor(t, 90*time.Second, "two reports of each kind", func() bool {
				n := map[string]int{}
				for k := range gen.snapshot() {
					n[strings.SplitN(k, "-", 5)[3]]++ // acme-med-spa-KIND-...
				}
				return n["ocr"] >= 2 && n["insurance"] >= 2
			})
			stop()

			day := func(pattern string) string { // the due day, whichever it was
				m, _ := filepath.Glob(filepath.Join(dir, pattern))
				if len(m) == 0 {
					t.Fatalf("no %s in %s", pattern, dir)
				}
				return m[len(m)-1]
			}
			pdf := day("acme-med-spa-ocr-????-??-??.pdf")
			b, err := os.ReadFile(pdf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, []byte("%PDF-")) {
				t.Errorf("%s does not start with %%PDF-: %q", pdf, b[:min(len(b), 16)])
			}
			if !bytes.Contains(b, []byte("%%EOF")) {
				t.Errorf("%s is not a whole PDF (no %%%%EOF)", pdf)
			}
			csvPath := day("acme-med-spa-insurance-????-??-??.csv")
			f, err := os.Open(csvPath)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := csv.NewReader(f).ReadAll()
			f.Close()
			if err != nil || len(rows) < 2 {
				t.Errorf("%s: %d rows, %v; want a header and the questionnaire", csvPath, len(rows), err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				info, _ := e.Info()
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left behind in reports_dir: %s", e.Name())
				} else if info.Mode().Perm() != fs.FileMode(ReportFileMode) {
					t.Errorf("%s mode %v, want %v", e.Name(), info.Mode().Perm(), fs.FileMode(ReportFileMode))
				}
			}

			// Once per due time: one record of each, by "schedule", and
			// one job row per (tenant, kind, format, due).
			for k, n := range gen.snapshot() {
				if n != 1 || !strings.HasSuffix(k, "|schedule") {
					t.Errorf("report %s generated %d times, want once by schedule", k, n)
				}
			}
			res, err := q.client.JobList(ctx, river.NewJobListParams().Kinds(KindReport).First(10000))
			if err != nil {
				t.Fatal(err)
			}
			keys := map[string]int{}
			var done *ReportArgs
			for _, row := range res.Jobs {
				a, _ := decode[ReportArgs](row)
				keys[a.Report+"|"+a.Format+"|"+a.Due.Format(time.RFC3339Nano)]++
				if row.State == rivertype.JobStateCompleted && done == nil {
					done = &a
				}
				if row.State == rivertype.JobStateDiscarded || row.State == rivertype.JobStateCancelled {
					t.Errorf("report job %d %s: %v", row.ID, row.State, row.Errors)
				}
			}
			for k, n := range keys {
				if n != 1 {
					t.Errorf("due report %s has %d job rows, want 1", k, n)
				}
			}
			if done == nil {
				t.Fatal("no completed report job")
			}
			again, err := q.client.Insert(ctx, *done, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !again.UniqueSkippedAsDuplicate {
				t.Errorf("a completed report (%+v) was inserted again", *done)
			}
		})
	}
}
