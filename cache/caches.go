package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/storage"
)

// Names of the caches a Caches holds, as the API and /metrics call them.
const (
	NameMetrics = "metrics"
	NameRouting = "routing"
)

// Caches is the process's path-metrics and routing-decision caches, kept consistent with the
// database that fills them. It tells the API layer which cached data a write makes stale.
//
// A reader that missed fills the cache from the database, and a write may commit between its
// read and its fill: the fill would then store data older than the write. So every fill
// carries the generation it read before going to the database (MetricsGeneration,
// RoutingGeneration), and stores nothing if an invalidation or write has bumped it since.
// Metrics generations are striped by path id, so a write to one path spoils only the fills of
// the few paths sharing its stripe; routing decisions share one generation, since any metrics
// write can change any decision among the paths it touches.
type Caches struct {
	// Metrics holds the latest metrics of each path.
	Metrics *MetricsCache
	// Routing holds routing decisions by RoutingKey.
	Routing *RoutingCache

	stripes [pathStripes]pathStripe
	routing generation

	descHits, descMisses, descEvictions, descEntries, descRejected *prometheus.Desc
}

// pathStripes is how many stripes the per-path locks and generations are spread over.
const pathStripes = 64

// pathStripe orders the writers and fills of the paths whose id falls into it.
type pathStripe struct {
	// write serialises writers of these paths from their database write to their cache
	// update, so the cache ends with the value the database ends with.
	write sync.Mutex
	gen   generation
}

// generation counts the invalidations of some cached data. Invalidations hold mu exclusively;
// fills hold it shared while they compare and store.
type generation struct {
	mu sync.RWMutex
	n  uint64
}

func (g *generation) load() uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.n
}

// fill runs store if no invalidation happened since gen was read, and reports whether it did.
func (g *generation) fill(gen uint64, store func() bool) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.n == gen && store()
}

// invalidate bumps the generation and runs drop while no fill can store.
func (g *generation) invalidate(drop func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	drop()
}

// CachesConfig sizes the caches.
type CachesConfig struct {
	// MetricsTTL and RoutingTTL are how long entries live; DefaultMetricsTTL and
	// DefaultRoutingTTL when zero.
	MetricsTTL, RoutingTTL time.Duration
	// MaxEntries bounds each cache's entries.
	MaxEntries int64
	// Options are passed to both caches (WithClock in tests).
	Options []Option
}

// NewCaches builds both caches. Call Close when done.
func NewCaches(cfg CachesConfig) (*Caches, error) {
	if cfg.MetricsTTL == 0 {
		cfg.MetricsTTL = DefaultMetricsTTL
	}
	if cfg.RoutingTTL == 0 {
		cfg.RoutingTTL = DefaultRoutingTTL
	}
	metrics, err := NewMetricsCache(cfg.MetricsTTL, cfg.MaxEntries, cfg.Options...)
	if err != nil {
		return nil, fmt.Errorf("metrics cache: %w", err)
	}
	routing, err := NewRoutingCache(cfg.RoutingTTL, cfg.MaxEntries, cfg.Options...)
	if err != nil {
		metrics.Close()
		return nil, fmt.Errorf("routing cache: %w", err)
	}
	label := []string{"cache"}
	return &Caches{
		Metrics: metrics,
		Routing: routing,
		descHits: prometheus.NewDesc("patronus_cache_hits_total",
			"Cache lookups that returned a value.", label, nil),
		descMisses: prometheus.NewDesc("patronus_cache_misses_total",
			"Cache lookups that returned nothing.", label, nil),
		descEvictions: prometheus.NewDesc("patronus_cache_evictions_total",
			"Entries the cache dropped to stay within its bound.", label, nil),
		descEntries: prometheus.NewDesc("patronus_cache_entries",
			"Entries held, expired ones not yet cleaned up included.", label, nil),
		descRejected: prometheus.NewDesc("patronus_cache_rejected_sets_total",
			"Writes the cache's admission policy refused.", label, nil),
	}, nil
}

// Close stops both caches; afterwards every lookup misses.
func (c *Caches) Close() {
	c.Metrics.Close()
	c.Routing.Close()
}

func (c *Caches) stripe(pathID int64) *pathStripe {
	return &c.stripes[uint64(pathID)%pathStripes]
}

// MetricsGeneration is read by a reader that missed the metrics of pathID, before it reads
// the database; FillMetrics takes it back.
func (c *Caches) MetricsGeneration(pathID int64) uint64 {
	return c.stripe(pathID).gen.load()
}

// FillMetrics stores metrics read from the database after a miss, unless the path was written
// or invalidated since gen was read. It reports whether it stored them.
func (c *Caches) FillMetrics(gen uint64, m storage.PathMetrics) bool {
	return c.stripe(m.PathID).gen.fill(gen, func() bool { return c.Metrics.Set(m.PathID, m) })
}

// LockPathWrites serialises writers of the path's metrics: hold it from the database write to
// StoreMetrics, so concurrent writers leave the cache holding what the database holds.
func (c *Caches) LockPathWrites(pathID int64) (unlock func()) {
	s := c.stripe(pathID)
	s.write.Lock()
	return s.write.Unlock
}

// StoreMetrics is the cache half of a write-through: it stores metrics just written to the
// database, spoils fills in flight, and drops the routing decisions that chose among the path.
// It reports whether the metrics cache admitted the value (if not, the next read fills it).
func (c *Caches) StoreMetrics(m storage.PathMetrics) bool {
	var stored bool
	c.stripe(m.PathID).gen.invalidate(func() { stored = c.Metrics.Set(m.PathID, m) })
	c.routing.invalidate(func() { InvalidateRoutesUsing(c.Routing, []int64{m.PathID}) })
	return stored
}

// RoutingGeneration is read by a reader that missed a routing decision, before it reads the
// database; FillRouting takes it back.
func (c *Caches) RoutingGeneration() uint64 {
	return c.routing.load()
}

// FillRouting stores a decision computed from the database, unless a path changed since gen
// was read. It reports whether it stored it.
func (c *Caches) FillRouting(gen uint64, key string, d RoutingDecision) bool {
	return c.routing.fill(gen, func() bool { return c.Routing.Set(key, d) })
}

// InvalidatePaths drops the metrics of the paths and the routing decisions that chose among
// them: their metrics or status changed, or they are gone.
func (c *Caches) InvalidatePaths(pathIDs []int64) {
	for _, id := range pathIDs {
		c.stripe(id).gen.invalidate(func() { c.Metrics.Delete(id) })
	}
	c.routing.invalidate(func() { InvalidateRoutesUsing(c.Routing, pathIDs) })
}

// InvalidateRoutes drops every routing decision, for changes that can alter decisions
// among paths they do not name: a policy written, a path created.
func (c *Caches) InvalidateRoutes() {
	c.routing.invalidate(func() { c.Routing.DeleteFunc(func(string, RoutingDecision) bool { return true }) })
}

// Names lists the caches a Caches holds, in the order Stats reports them.
func Names() []string { return []string{NameMetrics, NameRouting} }

// NamedStats is the statistics of one cache.
type NamedStats struct {
	Name string
	Stats
}

// Stats returns the statistics of each cache.
func (c *Caches) Stats() []NamedStats {
	return []NamedStats{{NameMetrics, c.Metrics.Stats()}, {NameRouting, c.Routing.Stats()}}
}

// Clear empties the named cache and returns how many entries it removed; ok is false when no
// cache has that name.
func (c *Caches) Clear(name string) (cleared int, ok bool) {
	switch name {
	case NameMetrics:
		for i := range c.stripes {
			c.stripes[i].gen.mu.Lock()
			c.stripes[i].gen.n++
		}
		cleared = c.Metrics.Clear()
		for i := range c.stripes {
			c.stripes[i].gen.mu.Unlock()
		}
	case NameRouting:
		c.routing.invalidate(func() { cleared = c.Routing.Clear() })
	default:
		return 0, false
	}
	return cleared, true
}

// Warm stores metrics read from the database at start-up and returns how many the cache
// admitted.
func (c *Caches) Warm(ms []storage.PathMetrics) int {
	n := 0
	for _, m := range ms {
		if c.Metrics.Set(m.PathID, m) {
			n++
		}
	}
	return n
}

// RunCleanup removes expired entries of both caches every interval until ctx is done.
func (c *Caches) RunCleanup(ctx context.Context, interval time.Duration) {
	var wg sync.WaitGroup
	wg.Go(func() { c.Metrics.RunCleanup(ctx, interval) })
	wg.Go(func() { c.Routing.RunCleanup(ctx, interval) })
	wg.Wait()
}

// Describe implements prometheus.Collector.
func (c *Caches) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.descHits, c.descMisses, c.descEvictions, c.descEntries, c.descRejected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the counters and entry count of each cache.
func (c *Caches) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.Stats() {
		ch <- prometheus.MustNewConstMetric(c.descHits, prometheus.CounterValue, float64(s.Hits), s.Name)
		ch <- prometheus.MustNewConstMetric(c.descMisses, prometheus.CounterValue, float64(s.Misses), s.Name)
		ch <- prometheus.MustNewConstMetric(c.descEvictions, prometheus.CounterValue, float64(s.Evictions), s.Name)
		ch <- prometheus.MustNewConstMetric(c.descEntries, prometheus.GaugeValue, float64(s.Entries), s.Name)
		ch <- prometheus.MustNewConstMetric(c.descRejected, prometheus.CounterValue, float64(s.RejectedSets), s.Name)
	}
}
