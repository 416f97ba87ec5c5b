package api

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patronus-sdwan/patronus/collector"
)

// httpMetrics counts requests by route and status, and times them, except event streams,
// which last as long as the client stays.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patronus_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "patronus_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"method", "route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *httpMetrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(c.Writer.Status())).Inc()
		if route != eventsRoute {
			m.duration.WithLabelValues(c.Request.Method, route).Observe(time.Since(start).Seconds())
		}
	}
}

// registerPolicyMetrics exports the collector's per-policy packets, bytes and active flows
// (read at scrape time), when there is a collector.
func registerPolicyMetrics(reg prometheus.Registerer, c *collector.Collector) error {
	if c == nil {
		return nil
	}
	return reg.Register(c.PolicyMetrics())
}

// GetMetrics serves the Prometheus text format.
func (s *Server) GetMetrics(c *gin.Context) {
	promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: nil}).ServeHTTP(c.Writer, c.Request)
}
