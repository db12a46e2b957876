package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// StoreProbe is the read the readiness check makes to see the store
// answer.
type StoreProbe interface {
	Scans(ctx context.Context, limit int) ([]observe.Scan, error)
}

// HTTPOptions configures Handler.
type HTTPOptions struct {
	// Scheduler and Store are probed by /readyz for a single
	// organisation; Tenants, when set, replaces them: every tenant's
	// scheduler and store must answer.
	Scheduler *Scheduler
	Store     StoreProbe
	Tenants   []Tenant
	// Dashboard serves every other path (pages, API, /metrics behind its
	// authentication).
	Dashboard http.Handler
	// ProbeTimeout bounds the store read of /readyz; zero means 2 seconds.
	ProbeTimeout time.Duration
}

// Handler serves /healthz and /readyz without authentication, and hands
// every other request to the dashboard.
//
//   - /healthz answers 200 while the process can answer at all.
//   - /readyz answers 200 when the store answers a read and the scheduler
//     is running a loaded configuration, 503 with the reasons otherwise
//     (also while shutting down, so a load balancer stops sending traffic).
//
// Neither says anything about findings, locations or configuration.
func Handler(o HTTPOptions) http.Handler {
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 2 * time.Second
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		probeHeaders(w)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		probeHeaders(w)
		var problems []string
		check := func(prefix string, sched *Scheduler, st StoreProbe) {
			if err := sched.Ready(); err != nil {
				problems = append(problems, prefix+err.Error())
			}
			ctx, cancel := context.WithTimeout(r.Context(), o.ProbeTimeout)
			defer cancel()
			if _, err := st.Scans(ctx, 1); err != nil {
				// The reason may name a path; it stays in the log.
				problems = append(problems, prefix+"store not answering")
			}
		}
		if len(o.Tenants) == 0 {
			check("", o.Scheduler, o.Store)
		}
		for _, t := range o.Tenants {
			prefix := ""
			if len(o.Tenants) > 1 {
				prefix = "tenant " + t.ID + ": "
			}
			check(prefix, t.Scheduler, t.Store)
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", strings.Join(problems, "; "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/", o.Dashboard)
	return mux
}

func probeHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}
