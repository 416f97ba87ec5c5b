package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/patronus-sdwan/patronus/api"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// openDatabase opens and migrates the inventory database and checks its cascade rules. Errors
// name the setting, so a bad URL or an unreachable server reads as a configuration problem.
func openDatabase(ctx context.Context, c config) (*storage.DB, error) {
	db, err := storage.Open(ctx, c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envName("database-url"), err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", envName("database-url"), err)
	}
	if err := db.CheckForeignKeys(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: refusing to start: %w", envName("database-url"), err)
	}
	return db, nil
}

// openHistory returns the history store the settings select: InfluxDB when PATRONUS_INFLUX_URL
// is set, else the policy_stats table of the inventory database.
func openHistory(c config, db *storage.DB) (storage.HistoryStore, error) {
	if c.InfluxURL == "" {
		return storage.NewSQLHistory(db), nil
	}
	h, err := storage.NewInfluxHistory(storage.InfluxConfig{URL: c.InfluxURL, Token: c.InfluxToken, Org: c.InfluxOrg, Bucket: c.InfluxBucket})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envName("influx-url"), err)
	}
	return h, nil
}

// serve runs the service until ctx is cancelled, then shuts down in order: HTTP server first
// (no new work), then the background loops (the flusher writes its last deltas), then the
// history store and the database.
func serve(ctx context.Context, c config, logw io.Writer) error {
	log := newLogger(c, logw)
	db, err := openDatabase(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	history, err := openHistory(c, db)
	if err != nil {
		return err
	}
	defer history.Close()
	var checks []api.Check
	if c.InfluxURL != "" {
		// An unreachable InfluxDB is not fatal: deltas wait in memory and /readyz says why.
		check := api.Check{Name: "influxdb", Probe: history.Ping}
		influx, _ := history.(*storage.InfluxHistory)
		if influx != nil {
			check.Detail = influx.ReadPath
		}
		checks = append(checks, check)
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := history.Ping(pingCtx); err != nil {
			log.Warn("InfluxDB not reachable at start-up; history is buffered until it is", "err", err)
		}
		if influx != nil {
			log.Info("history read path", "path", influx.Detect(pingCtx))
		}
		cancel()
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	coll := collector.New(collector.Config{FlowIdleTimeout: c.FlowIdleTimeout, MaxFlows: c.MaxFlows, Logger: log})
	registry.MustRegister(coll)
	flusher := collector.NewFlusher(coll, history, collector.FlushConfig{
		Instance: c.Instance, Interval: c.FlushInterval, MaxPending: c.HistoryBufferPoints, Logger: log,
	})
	registry.MustRegister(flusher)
	caches, err := cache.NewCaches(cache.CachesConfig{
		MetricsTTL: c.MetricsCacheTTL, RoutingTTL: c.RoutingCacheTTL, MaxEntries: c.CacheMaxEntries,
	})
	if err != nil {
		return err
	}
	defer caches.Close()
	registry.MustRegister(caches)

	broker := events.NewBroker(c.EventBuffer)
	srv, err := api.New(api.Config{
		DB:              db,
		Checks:          checks,
		AdminToken:      c.AdminToken,
		Version:         buildVersion(),
		Logger:          log,
		Registry:        registry,
		Collector:       coll,
		Pipeline:        flusher,
		History:         history,
		HistoryInterval: c.FlushInterval,
		Events:          broker,
		Caches:          caches,
	})
	if err != nil {
		return err
	}
	warmed, err := srv.WarmMetricsCache(ctx, int(c.CacheMaxEntries))
	if err != nil {
		return err
	}
	log.Info("metrics cache warmed", "paths", warmed)

	// Listen before serving so a busy port fails start-up at once.
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("%s: %w", envName("listen"), err)
	}
	httpServer := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var loops sync.WaitGroup
	loops.Go(func() { coll.Run(loopCtx) })
	loops.Go(func() { flusher.Run(loopCtx, c.ShutdownTimeout) })
	loops.Go(func() { caches.RunCleanup(loopCtx, cacheCleanupInterval(c)) })
	if sqlHistory, ok := history.(*storage.SQLHistory); ok {
		loops.Go(func() { sqlHistory.RunRetention(loopCtx, c.HistoryRetention, time.Hour) })
	}
	log.Info("patronus serving", "listen", ln.Addr().String(), "version", buildVersion(),
		"database", db.Dialect, "history", historyKind(c), "instance", c.Instance)

	var runErr error
	select {
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer cancel()
	// Shutdown waits for requests to finish and event streams never do on their own: closing
	// the broker ends them.
	broker.Close()
	if err := httpServer.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	// The flusher takes the last deltas and writes them under its own deadline.
	stopLoops()
	loops.Wait()
	log.Info("stopped")
	return runErr
}

// cacheCleanupInterval is how often expired cache entries are removed: a quarter of the
// shorter TTL, at least a second, so an expired entry holds memory for at most that long.
func cacheCleanupInterval(c config) time.Duration {
	return max(min(c.MetricsCacheTTL, c.RoutingCacheTTL)/4, time.Second)
}

func historyKind(c config) string {
	if c.InfluxURL != "" {
		return "influxdb"
	}
	return "sql"
}

// migrate applies the migrations and reports the schema version.
func migrate(ctx context.Context, c config, stdout, logw io.Writer) error {
	db, err := storage.Open(ctx, c.DatabaseURL)
	if err != nil {
		return fmt.Errorf("%s: %w", envName("database-url"), err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("%s: %w", envName("database-url"), err)
	}
	if err := db.CheckForeignKeys(ctx); err != nil {
		return err
	}
	v, err := db.MigrationVersion(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "database migrated to version %d (%s)\n", v, db.Dialect)
	return err
}

// createToken issues a token and prints its secret once.
func createToken(ctx context.Context, c config, name, role string, stdout, logw io.Writer) error {
	db, err := openDatabase(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	store := storage.NewStore(db)
	var secret string
	err = store.Tx(ctx, func(tx *storage.Store) error {
		tok, s, err := tx.Tokens().Create(ctx, name, role)
		if err != nil {
			return err
		}
		secret = s
		return tx.Audit().Record(ctx, &storage.AuditEntry{
			Actor: "cli", Action: "create", ResourceKind: "token", ResourceID: fmt.Sprint(tok.ID),
			Details: map[string]any{"name": name, "role": role},
		})
	})
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	_, err = fmt.Fprintln(stdout, secret)
	return err
}
