package dashboard

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// TelemetryRoutes are the telegraf endpoints the dashboard mounts
// (docs/telegraf.md). cmd/vigil builds them with the telemetry package;
// the dashboard only decides who may reach them. A nil handler is not
// mounted.
type TelemetryRoutes struct {
	// Ingest receives line protocol from telegraf agents at
	// POST /api/v1/telegraf, and at /api/v1/telegraf/api/v2/write, where
	// outputs.influxdb_v2 posts when its url is .../api/v1/telegraf. It
	// checks the telegraf token itself: agents hold that token, not the
	// dashboard's.
	Ingest http.Handler
	// Metrics serves the posture metrics at GET /metrics, behind the
	// dashboard's authentication (bearer token or session).
	Metrics http.Handler
}

// ActionViewMetrics is audited for every read of /metrics; the target is
// the format asked for.
const ActionViewMetrics = "view.metrics"

// mountTelemetry registers the routes in t on r.
func (s *server) mountTelemetry(r *gin.Engine, t TelemetryRoutes) {
	if t.Ingest != nil {
		h := gin.WrapH(t.Ingest)
		r.POST("/api/v1/telegraf", h)
		r.POST("/api/v1/telegraf/api/v2/write", h)
	}
	if t.Metrics != nil {
		r.GET("/metrics", s.requireScraperAuth, s.requireAuth, s.metrics(t.Metrics))
	}
}

// requireScraperAuth answers 401 to a request with no credentials at all,
// where requireAuth would send a browser to the login page: a Prometheus
// scrape follows the redirect and reports the login form as a parse error
// instead of an authentication failure.
func (s *server) requireScraperAuth(c *gin.Context) {
	if c.GetHeader("Authorization") == "" {
		if v, err := c.Cookie(sessionCookie); err != nil || !s.auth.checkSession(v) {
			s.unauthorized(c)
			return
		}
	}
	c.Next()
}

func (s *server) metrics(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		format := c.Query("format")
		switch format {
		case "":
			format = "prometheus"
		case "prometheus", "influx":
		default:
			format = "unknown" // the handler refuses it; keep the audit log clean
		}
		s.audit(c.Request.Context(), actor(c), ActionViewMetrics, format)
		h.ServeHTTP(c.Writer, c.Request)
	}
}
