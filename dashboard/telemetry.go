package dashboard

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/users"
)

// TelemetryRoutes are the telegraf endpoints the dashboard mounts
// (docs/telegraf.md). cmd/vigil builds them with the telemetry package;
// the dashboard only decides who may reach them. A nil handler is not
// mounted.
type TelemetryRoutes struct {
	// Ingest (one for the whole server) receives line protocol from telegraf agents at
	// POST /api/v1/telegraf, and at /api/v1/telegraf/api/v2/write, where
	// outputs.influxdb_v2 posts when its url is .../api/v1/telegraf. It
	// checks the telegraf token itself: agents hold that token, not the
	// dashboard's.
	Ingest http.Handler
	// Metrics serves the posture metrics at GET /metrics, behind the
	// dashboard's authentication (API token or session). It is used only
	// when the dashboard serves one tenant; with several, set
	// Tenant.Metrics on each so nobody reads another tenant's metrics.
	Metrics http.Handler
}

// ActionViewMetrics is the audit target of every read of /metrics (action
// users.ActionExport); the detail is the format asked for.
const ActionViewMetrics = "metrics"

// mountTelemetry registers the routes in t on r. /metrics takes a
// session or an API token of someone who may export organisation-wide
// (not a location manager), and answers 401, never the sign-in page, to a
// scraper without credentials.
func (s *server) mountTelemetry(r *gin.Engine, t TelemetryRoutes) {
	if t.Ingest != nil {
		h := gin.WrapH(t.Ingest)
		r.POST("/api/v1/telegraf", h)
		r.POST("/api/v1/telegraf/api/v2/write", h)
	}
	any := t.Metrics != nil
	for _, tn := range s.order {
		any = any || tn.Metrics != nil
	}
	if any {
		r.GET("/metrics", s.requireAuth, s.metrics(t.Metrics))
	}
}

// metrics serves the principal's tenant's metrics handler; the global one
// only when the dashboard serves a single tenant.
func (s *server) metrics(global http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := tenantOf(c).Metrics
		if h == nil && len(s.order) == 1 {
			h = global
		}
		if h == nil {
			s.notFound(c)
			return
		}
		if !principal(c).Allowed(users.PermExport, "") {
			s.forbidden(c, "your role does not allow organisation-wide metrics")
			return
		}
		format := c.Query("format")
		switch format {
		case "":
			format = "prometheus"
		case "prometheus", "influx":
		default:
			format = "unknown" // the handler refuses it; keep the audit log clean
		}
		if !s.audit(c, users.ActionExport, ActionViewMetrics, format) {
			return
		}
		h.ServeHTTP(c.Writer, c.Request)
	}
}
