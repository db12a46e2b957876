package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/reports"
)

// KindReport is a scheduled report's job kind, as stored in River's table.
const KindReport = "vigil_report"

// reportQueue is where every tenant's scheduled reports wait; one at a
// time per replica, as a report reads the whole store.
const reportQueue = "reports"

// ReportTimeout bounds one report: the largest OCR pack takes seconds.
const ReportTimeout = 30 * time.Minute

// ReportFileMode is a scheduled report file's mode: reports name hosts
// and accounts, so the owner writes and its group (whoever collects the
// reports) reads.
const ReportFileMode = 0o640

// ReportArgs is one scheduled report of a tenant, due at Due. Tenant,
// kind, format and due time are its unique key, so replicas never
// generate one twice, whoever enqueues it.
type ReportArgs struct {
	Tenant string `json:"tenant" river:"unique"`
	// Report is the report's kind (ocr, insurance, diligence).
	Report string    `json:"report" river:"unique"`
	Format string    `json:"format" river:"unique"`
	Due    time.Time `json:"due" river:"unique"`
	Cron   string    `json:"cron,omitempty"`
}

// Kind implements river.JobArgs.
func (ReportArgs) Kind() string { return KindReport }

// InsertOpts implements river.JobArgsWithInsertOpts. River's default
// unique states include completed: a report done is not done again.
func (ReportArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: reportQueue, MaxAttempts: MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// ReportInput is what one of a tenant's scheduled reports is made from,
// read from the configuration in force when the job runs.
type ReportInput struct {
	// Source is the tenant's store.
	Source reports.Source
	// Build is the report's input but for the as-of and generation
	// times, which the job sets.
	Build reports.BuildInput
	// Dir is reports_dir; Organization is the organisation's name.
	Dir          string
	Organization string
}

// ReportFileName is a scheduled report's file name in reports_dir:
// ORGSLUG-KIND-YYYY-MM-DD.EXT, dated by its due day in tz.
func ReportFileName(tenant, kind, format string, due time.Time, tz *time.Location) string {
	return fmt.Sprintf("%s-%s-%s.%s", tenant, kind, due.In(tz).Format(time.DateOnly), format)
}

// ScheduleReports makes a tenant's reports (config reports:) River
// periodic jobs, replacing the ones it had: every replica adds them, and
// only the elected leader enqueues them. Each cron is read in
// Options.TimeZone.
func (q *Queue) ScheduleReports(tenant string, rs []config.Report) error {
	var jobs []*river.PeriodicJob
	for i, r := range rs {
		sched, err := reportCron.Parse(r.Cron)
		if err != nil {
			return fmt.Errorf("reports[%d].cron %q: %w", i, r.Cron, err)
		}
		if _, err := reports.GeneratorFor(r.Kind); err != nil {
			return fmt.Errorf("reports[%d]: %w", i, err)
		}
		if _, err := reports.DocumentWriterFor(r.Format); err != nil {
			return fmt.Errorf("reports[%d]: %w", i, err)
		}
		ds := &dueSchedule{sched: zoned{sched, q.tz()}}
		jobs = append(jobs, river.NewPeriodicJob(ds, func() (river.JobArgs, *river.InsertOpts) {
			return ReportArgs{Tenant: tenant, Report: r.Kind, Format: r.Format, Due: ds.due().UTC(), Cron: r.Cron}, nil
		}, nil))
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	bundle := q.client.PeriodicJobs()
	bundle.RemoveMany(q.reportPeriodic[tenant])
	q.reportPeriodic[tenant] = bundle.AddMany(jobs)
	return nil
}

// reportCron reads reports[].cron as config validates it.
var reportCron = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// zoned reads a cron schedule in a time zone.
type zoned struct {
	cron.Schedule
	tz *time.Location
}

func (z zoned) Next(t time.Time) time.Time { return z.Schedule.Next(t.In(z.tz)) }

func (q *Queue) tz() *time.Location {
	if q.opts.TimeZone != nil {
		return q.opts.TimeZone
	}
	return time.Local
}

// reportWorker makes a scheduled report: the tenant's posture as of the
// due time, rendered as vigil report renders it, written atomically into
// reports_dir, and recorded in the log as vigil report records a copy,
// by "schedule".
type reportWorker struct {
	river.WorkerDefaults[ReportArgs]
	q *Queue
}

// Timeout implements river.Worker.
func (w *reportWorker) Timeout(*river.Job[ReportArgs]) time.Duration { return ReportTimeout }

// Work implements river.Worker.
func (w *reportWorker) Work(ctx context.Context, job *river.Job[ReportArgs]) error {
	a := job.Args
	w.q.mu.Lock()
	t, ok := w.q.tenants[a.Tenant]
	w.q.mu.Unlock()
	if !ok || t.Reports == nil {
		return fmt.Errorf("report %s %s: %w %q", a.Report, a.Format, ErrUnknownTenant, a.Tenant)
	}
	in, err := t.Reports(ctx)
	if err != nil {
		return fmt.Errorf("report %s %s: %w", a.Report, a.Format, err)
	}
	in.Build.Posture.Now, in.Build.Generated = a.Due, time.Now()
	doc, err := reports.Make(ctx, in.Source, a.Report, in.Build)
	if errors.Is(err, reports.ErrUnknownKind) {
		return river.JobCancel(err) // trying again will not help
	}
	if err != nil {
		return fmt.Errorf("report %s %s: %w", a.Report, a.Format, err)
	}
	if err := os.MkdirAll(in.Dir, 0o750); err != nil {
		return fmt.Errorf("report %s %s: reports_dir: %w", a.Report, a.Format, err)
	}
	path := filepath.Join(in.Dir, ReportFileName(a.Tenant, a.Report, a.Format, a.Due, w.q.tz()))
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // the record names the file wherever the log is read
	}
	out, err := reports.WriteFile(path, a.Format, doc, ReportFileMode)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	w.q.log.Info("report generated", "tenant", a.Tenant, "kind", a.Report, "format", a.Format,
		"as_of", a.Due.UTC().Format(time.RFC3339), "output", path, "sha256", out.SHA256, "bytes", out.Bytes,
		"organization", in.Organization, "user", "schedule", "host", host, "job", job.ID)
	return nil
}
