// Package api serves Patronus' REST API over gin. openapi.yaml is the contract: the routes, the
// parameter types and the server interface are generated from it (package apigen), requests
// are validated against it, and the role each route needs is read from its x-required-role.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// Config holds what the API serves from.
type Config struct {
	// DB is the inventory database.
	DB *storage.DB
	// Checks are probed by /readyz beside the database.
	Checks []Check
	// AdminToken, when not empty, is accepted as an admin bearer token.
	AdminToken string
	// Version is reported by the service.
	Version string
	// Logger receives request and error logs.
	Logger *slog.Logger
	// Registry is what GET /metrics exposes; the API registers its own metrics in it. A new
	// registry is made when nil.
	Registry *prometheus.Registry
	// Collector holds the live traffic counters; policy writes recompile its classifier.
	Collector *collector.Collector
	// Spool, when set, receives every ingest batch's per-policy deltas before the batch is
	// acknowledged: a 200 means they are on disk. nil acknowledges once the batch is counted
	// in memory.
	Spool TrafficSpool
	// Publish receives every change event (site.deleted, policy.updated, ...) the feed tailer
	// applies instead of Events (tests record them); nil publishes to Events with the
	// change's seq as id.
	Publish func(eventType string, data any)
	// History answers history queries; nil disables the history routes.
	History HistoryReader
	// HistoryInterval is the flush interval of the history points, the sample of peak_bps
	// and the summary's percentiles; 0 (or not whole seconds) leaves those out.
	HistoryInterval time.Duration
	// Pipeline reports the state of the history flush; nil when nothing is flushed.
	Pipeline interface {
		Stats() collector.PipelineStats
	}
	// Invalidator drops cached metrics and routing decisions of removed or changed paths; nil
	// when nothing is cached.
	Invalidator PathInvalidator
	// Now is the clock relative history ranges (from=-1h, to=now) are resolved against;
	// time.Now when nil.
	Now func() time.Time
	// Events is the broker behind GET /api/v1/events; when Publish is nil, events are
	// published to it. nil makes a broker of the default size that nothing closes: pass one
	// and close it before shutting the HTTP server down, so open streams end.
	Events *events.Broker
	// Auth limits failed authentications and sets how long verified tokens outlive a
	// database outage; zero values take the defaults.
	Auth AuthLimits
	// DatabaseReady says whether the database is connected and migrated; nil means it is.
	// Until it is, /readyz fails its database check and routes other than traffic ingest
	// answer 503, while ingest works for the admin token; the caller calls ReloadPolicies
	// once it is.
	DatabaseReady func() bool
	// Ingest bounds the ingest requests and body bytes held at once; zero values take the
	// defaults.
	Ingest IngestLimits
	// FeedPollInterval is how often the change-feed tailer reads the feed when nothing woke it;
	// storage.DefaultFeedPollInterval when 0.
	FeedPollInterval time.Duration
	// FeedNoNotify turns the PostgreSQL LISTEN of the tailer off: other replicas' changes then
	// arrive by the poll only.
	FeedNoNotify bool
	// Caches holds the path-metrics and routing-decision caches the metrics, routing and cache
	// routes read and clear; nil serves those routes from the database alone. When Invalidator
	// is nil it is set to Caches.
	Caches *cache.Caches
	// Exporters lists the flow exporters of the UDP listeners; nil lists none.
	Exporters ExporterLister
	// Instance is this replica's name. With it, on PostgreSQL, live counters are cluster-wide:
	// RunLiveSnapshots writes this replica's, and the stats routes add the other replicas'.
	Instance string
	// LiveInterval is how often RunLiveSnapshots writes (the flush interval); a replica not
	// heard from for three intervals is left out of cluster totals. 10 s when 0.
	LiveInterval time.Duration
}

// PathInvalidator is told which paths changed or disappeared, so caches can drop what they
// hold about them.
type PathInvalidator interface {
	InvalidatePaths(pathIDs []int64)
}

// Server is the HTTP API; it implements apigen.ServerInterface.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *storage.Store
	router   *gin.Engine
	contract *contract
	auth     *authenticator
	registry *prometheus.Registry
	checks   []Check
	docs     gin.HandlerFunc
	live     liveState

	feedMu   sync.Mutex // guards starting and stopping the tailer
	tailer   *storage.Tailer
	stopFeed context.CancelFunc
	feedDone chan struct{}

	recheckMu   sync.Mutex
	lastRecheck time.Time
}

var _ apigen.ServerInterface = (*Server)(nil)

// New builds the API server and its routes. It fails only if openapi.yaml is broken.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Invalidator == nil && cfg.Caches != nil {
		cfg.Invalidator = cfg.Caches
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Events == nil {
		cfg.Events = events.NewBroker(events.DefaultBufferSize)
	}
	ct, err := loadContract()
	if err != nil {
		return nil, err
	}
	store := storage.NewStore(cfg.DB)
	guard, err := newAuthGuard(cfg.Auth, cfg.Logger, cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    store,
		contract: ct,
		auth:     newAuthenticator(store, cfg.AdminToken, guard, cfg.Logger),
		registry: cfg.Registry,
		checks:   append([]Check{{Name: "database", Probe: databaseProbe(cfg)}}, cfg.Checks...),
		docs:     DocsHandler("/openapi.yaml"),
	}
	httpMetrics, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	if err := registerEventMetrics(cfg.Registry, cfg.Events); err != nil {
		return nil, err
	}
	if err := registerPolicyMetrics(cfg.Registry, cfg.Collector); err != nil {
		return nil, err
	}
	ingest, err := newIngestLimiter(cfg.Ingest, cfg.Registry)
	if err != nil {
		return nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// No proxy is trusted for X-Forwarded-For unless configured.
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, fmt.Errorf("gin: %w", err)
	}
	r.HandleMethodNotAllowed = true
	r.Use(
		requestIDMiddleware(cfg.Logger),
		accessLogMiddleware(), // outside the recovery, so a request that panicked is logged too
		recoveryMiddleware(),
		httpMetrics.middleware(),
		databaseGate(cfg.DatabaseReady, ct.roleOf),
		bodyLimitMiddleware(),
		s.auth.middleware(ct.roleOf),
		ingest.middleware(),
		ct.validationMiddleware(),
	)
	r.NoRoute(func(c *gin.Context) {
		writeError(c, newError(storage.ErrNotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		writeProblem(c, Problem{Type: problemTypeBase + "method-not-allowed", Title: "Method not allowed",
			Status: http.StatusMethodNotAllowed, Detail: fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path),
			Instance: problemInstance(c), RequestID: requestID(c)})
	})
	apigen.RegisterHandlersWithOptions(r, s, apigen.GinServerOptions{ErrorHandler: parameterError})
	s.router = r
	// With the database not there yet, the caller calls StartFeed once it is.
	if cfg.DatabaseReady == nil || cfg.DatabaseReady() {
		if err := s.StartFeed(); err != nil {
			return nil, fmt.Errorf("start tailing the change feed: %w", err)
		}
	}
	s.auth.uses.start() // Close stops it
	return s, nil
}

// parameterError answers a parameter the generated wrapper could not parse. Validation against
// the spec runs first and names the field; this is the backstop.
func parameterError(c *gin.Context, err error, status int) {
	writeError(c, newError(errBadRequest, "%v", err))
}

// invalidatePaths tells the caches that these paths changed or are gone.
func (s *Server) invalidatePaths(ids []int64) {
	if s.cfg.Invalidator != nil && len(ids) > 0 {
		s.cfg.Invalidator.InvalidatePaths(ids)
	}
}

// ReloadPolicies recompiles the collector's classifier from the stored policies. The API calls
// it after every policy write; start-up calls it once.
func (s *Server) ReloadPolicies(ctx context.Context) error {
	if s.cfg.Collector == nil {
		return nil
	}
	policies, err := s.store.Policies().All(ctx)
	if err != nil {
		return err
	}
	if err := s.cfg.Collector.SetPolicies(collectorPolicies(policies)); err != nil {
		return err
	}
	return s.ReloadPaths(ctx)
}

// collectorPolicies are the stored policies as the collector classifies with them.
func collectorPolicies(policies []storage.Policy) []collector.Policy {
	out := make([]collector.Policy, len(policies))
	for i, p := range policies {
		out[i] = collector.Policy{ID: p.ID, Name: p.Name, Priority: p.Priority, Enabled: p.Enabled, Protocol: p.Protocol,
			SrcCIDR: p.SrcCIDR, DstCIDR: p.DstCIDR, SrcPorts: collectorPorts(p.SrcPorts), DstPorts: collectorPorts(p.DstPorts)}
	}
	return out
}

func collectorPorts(ranges []storage.PortRange) []collector.PortRange {
	if ranges == nil {
		return nil
	}
	out := make([]collector.PortRange, len(ranges))
	for i, r := range ranges {
		out[i] = collector.PortRange{From: r.From, To: r.To}
	}
	return out
}

// ReloadPaths loads the path ids into the collector, which checks reports' path_id
// against them.
func (s *Server) ReloadPaths(ctx context.Context) error {
	if s.cfg.Collector == nil {
		return nil
	}
	ids, err := s.store.Paths().IDs(ctx)
	if err != nil {
		return err
	}
	return s.cfg.Collector.SetPaths(ids)
}

// Handler returns the server's HTTP handler. gin answers a trailing-slash redirect before any
// middleware runs, so the request id is assigned here, in front of gin: every response carries
// X-Request-ID, redirects included.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !validRequestID(r.Header.Get(headerRequestID)) {
			r.Header.Set(headerRequestID, newRequestID())
		}
		w.Header().Set(headerRequestID, r.Header.Get(headerRequestID))
		s.router.ServeHTTP(w, r)
	})
}
