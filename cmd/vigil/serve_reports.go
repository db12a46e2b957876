package main

import (
	"context"
	"time"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/jobs"
)

// reportInput is what the tenant's scheduled reports are made from, read
// when each job runs so that a reloaded configuration (rules, roster,
// reports_dir) applies: the input vigil report builds.
func (t *serveTenant) reportInput(ctx context.Context) (jobs.ReportInput, error) {
	cfg, engine := t.live.get()
	src, in, err := reportInput(ctx, cfg, engine, t.store, time.Time{}, func(err error) {
		t.log.Warn("scheduled report: roster row skipped", "error", err)
	})
	if err != nil {
		return jobs.ReportInput{}, err
	}
	return jobs.ReportInput{Source: src, Build: in, Dir: cfg.ReportsDir, Organization: cfg.Organization}, nil
}

// scheduleReports makes the configuration's reports the tenant's River
// periodic jobs (enqueued by the elected leader only).
func (t *serveTenant) scheduleReports(queue *jobs.Queue, reps []config.Report) error {
	if err := queue.ScheduleReports(t.ID, reps); err != nil {
		return err
	}
	for _, r := range reps {
		t.log.Info("report scheduled", "kind", r.Kind, "format", r.Format, "cron", r.Cron)
	}
	return nil
}
