package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/jobs"
	"github.com/vigilhq/vigil/store"
)

// openJobs opens the River queue every tenant's scans and alert cycles
// run on: in the first tenant's PostgreSQL database when --db names one
// (so replicas on that database share the work), else the SQLite file
// jobs.db in the first configuration's data_dir.
func openJobs(ctx context.Context, db string, cfgs []*config.Config, parallel map[string]int, opts jobs.Options, log *slog.Logger) (*jobs.Queue, error) {
	opts.Tenants, opts.Logger = parallel, log
	opts.SQLite = filepath.Join(absDir(cfgs[0].DataDir), jobs.FileName)
	if db != "" {
		driver, dsn, err := store.ParseURL(db)
		if err != nil {
			return nil, fmt.Errorf("--db: %w", err)
		}
		if driver == store.DriverPostgres {
			opts.Postgres = dsn
		}
	}
	return jobs.Open(ctx, opts)
}
