package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/patronus-sdwan/patronus/api"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/collector/flowexport"
	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
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

// historyStore is what serve needs of the history store: the flusher writes to it, the API
// reads from it, /readyz pings it, and it is closed on the way out.
type historyStore interface {
	collector.HistoryWriter
	api.HistoryReader
	Ping(ctx context.Context) error
	Close()
}

// openHistory returns the history store the settings select: InfluxDB when PATRONUS_INFLUX_URL
// is set, else the policy_stats table of the inventory database.
func openHistory(c config, db *storage.DB) (historyStore, error) {
	tiers := c.historyTiers()
	if c.InfluxURL == "" {
		h, err := history.NewSQLHistoryTiers(db, tiers)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envName("history-raw-retention"), err)
		}
		return h, nil
	}
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: c.InfluxURL, Token: c.InfluxToken, Org: c.InfluxOrg, Bucket: c.InfluxBucket, Tiers: &tiers})
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
	// Listen first so a busy port fails start-up at once; the default instance name needs the
	// port too.
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("%s: %w", envName("listen"), err)
	}
	defer ln.Close()
	if c.Instance == "" {
		c.Instance = defaultInstance(ln.Addr())
	}
	// The database may be down at start-up: serve comes up all the same, says 503 on /readyz
	// and ingests for the admin token, and connects in the background.
	db, err := storage.OpenWith(ctx, c.DatabaseURL, storage.Options{Timeout: c.DatabaseTimeout, Lazy: true})
	if err != nil {
		return fmt.Errorf("%s: %w", envName("database-url"), err)
	}
	defer db.Close()
	instance := &instanceClaim{db: db, name: c.Instance}
	defer instance.release()
	var dbReady atomic.Bool
	switch err := prepareDatabase(ctx, db); {
	case err == nil:
		// A name another live replica holds stops start-up at once.
		if err := instance.claim(ctx); err != nil {
			return err
		}
		dbReady.Store(true)
	case errors.Is(err, storage.ErrUnavailable):
		log.Warn("database unreachable at start-up; serving without it and retrying in the background", "err", err)
	default:
		return err
	}
	hist, err := openHistory(c, db)
	if err != nil {
		return err
	}
	defer hist.Close()
	var checks []api.Check
	if c.InfluxURL != "" {
		// An unreachable InfluxDB is not fatal: deltas wait in memory and /readyz says why.
		check := api.Check{Name: "influxdb", Probe: hist.Ping}
		influx, _ := hist.(*history.InfluxHistory)
		if influx != nil {
			check.Detail = influx.ReadPath
		}
		checks = append(checks, check)
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := hist.Ping(pingCtx); err != nil {
			log.Warn("InfluxDB not reachable at start-up; history is buffered until it is", "err", err)
		}
		if influx != nil {
			log.Info("history read path", "path", influx.Detect(pingCtx))
			if err := influx.EnsureTiers(pingCtx); err != nil {
				log.Warn("InfluxDB rollup retention policies not set up yet; the rollup job tries again", "err", err)
			}
		}
		cancel()
	}
	if c.FlushInterval%time.Second != 0 || time.Minute%c.FlushInterval != 0 {
		log.Warn("history rollups off: the flush interval must be whole seconds that divide a minute; raw points only",
			"flush_interval", c.FlushInterval.String())
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	coll := collector.New(collector.Config{FlowIdleTimeout: c.FlowIdleTimeout, MaxFlows: c.MaxFlows, Logger: log})
	registry.MustRegister(coll)
	// Acknowledged traffic waits in the spool until history confirms it; what a previous run
	// left there is replayed by the first flush. Live counters start from zero.
	sp, err := spool.Open(spool.Config{Dir: c.spoolDir(), MaxBytes: c.SpoolMaxBytes, Sync: c.SpoolSync,
		SyncInterval: c.SpoolSyncInterval, Logger: log})
	if err != nil {
		return fmt.Errorf("%s: %w", envName("spool-dir"), err)
	}
	defer sp.Close()
	registry.MustRegister(spoolMetrics{sp})
	flusher := collector.NewFlusher(coll, hist, collector.FlushConfig{
		Instance: c.Instance, Interval: c.FlushInterval, MaxPending: c.HistoryBufferPoints, Logger: log, Spool: sp,
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

	flows, exporters, err := openFlowListeners(c, spooledRecorder{coll: coll, spool: sp}, registry, log)
	if err != nil {
		return err
	}

	broker := events.NewBroker(c.EventBuffer)
	srv, err := api.New(api.Config{
		Exporters:       exporters,
		DB:              db,
		Checks:          checks,
		AdminToken:      c.AdminToken,
		Version:         buildVersion(),
		Logger:          log,
		Registry:        registry,
		Collector:       coll,
		Spool:           sp,
		Pipeline:        flusher,
		History:         hist,
		HistoryInterval: c.FlushInterval,
		Events:          broker,
		Caches:          caches,
		Ingest:          c.Ingest,
		Auth:            c.authLimits(),
		Instance:        c.Instance, LiveInterval: c.FlushInterval,

		DatabaseReady:    dbReady.Load,
		FeedPollInterval: c.FeedPollInterval,
		FeedNoNotify:     !c.FeedNotify,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	// fatal carries what must stop a running server: the instance name taken by another
	// replica while this one waited for the database.
	fatal := make(chan error, 1)
	// What needs the database once it is there: the instance name, the policies and the
	// metrics cache.
	connected := func(ctx context.Context) error {
		if !instance.held() {
			if err := instance.claim(ctx); err != nil {
				var taken errInstanceTaken
				if errors.As(err, &taken) {
					fatal <- err
					return nil
				}
				return err
			}
		}
		// The feed tailer loads the policies as it starts.
		if err := srv.StartFeed(); err != nil {
			return err
		}
		warmed, err := srv.WarmMetricsCache(ctx, int(c.CacheMaxEntries))
		if err != nil {
			return err
		}
		log.Info("metrics cache warmed", "paths", warmed)
		return nil
	}
	if dbReady.Load() {
		if err := connected(ctx); err != nil {
			return err
		}
	}

	httpServer := newHTTPServer(c.HTTP, srv.Handler())
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(limitListener(ln, c.HTTP)) }()

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var loops sync.WaitGroup
	loops.Go(func() { coll.Run(loopCtx) })
	loops.Go(func() { flusher.Run(loopCtx, c.ShutdownTimeout) })
	loops.Go(func() { caches.RunCleanup(loopCtx, cacheCleanupInterval(c)) })
	if flows != nil {
		loops.Go(func() { flows.Run(loopCtx) })
	}
	loops.Go(func() {
		changes := storage.NewStore(db).Changes()
		storage.RunSingleton(loopCtx, db, storage.SingletonJob{
			Name: "feed-pruning", Interval: time.Hour, Logger: log,
			Run: func(ctx context.Context) error {
				n, err := changes.Prune(ctx, time.Now().Add(-c.FeedRetention))
				if n > 0 {
					log.Info("change feed pruned", "changes", n, "retention", c.FeedRetention.String())
				}
				return err
			},
		})
	})
	if !dbReady.Load() {
		loops.Go(func() { waitForDatabase(loopCtx, db, log, &dbReady, connected) })
	}
	// Rollups (and on SQL, retention) run on one replica at a time, every minute, so the
	// tiers trail raw by about a minute (queries read that part from raw).
	if sqlHistory, ok := hist.(*history.SQLHistory); ok {
		loops.Go(func() { sqlHistory.RunRetention(loopCtx, c.rawRetention(), time.Minute, log) })
	}
	if influx, ok := hist.(*history.InfluxHistory); ok {
		loops.Go(func() { influx.RunRollups(loopCtx, db, time.Minute, log) })
	}
	loops.Go(func() { instance.keep(loopCtx, log) })
	loops.Go(func() { srv.RunLiveSnapshots(loopCtx) })
	log.Info("patronus serving", "listen", ln.Addr().String(), "version", buildVersion(),
		"database", db.Dialect, "history", historyKind(c), "instance", c.Instance, "spool", c.spoolDir(), "spool_sync", c.SpoolSync)

	var runErr error
	select {
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-fatal:
		runErr = err
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

// openFlowListeners opens the NetFlow/IPFIX and sFlow sockets when configured, so that a busy
// port fails start-up; both nil when neither is.
func openFlowListeners(c config, rec flowexport.Recorder, registry *prometheus.Registry, log *slog.Logger) (*flowexport.Listeners, api.ExporterLister, error) {
	if c.NetFlowListen == "" && c.SFlowListen == "" {
		return nil, nil, nil
	}
	dec := flowexport.NewDecoder(rec, flowexport.DecoderConfig{})
	registry.MustRegister(dec)
	l, err := flowexport.Listen(dec, flowexport.ListenConfig{NetFlowAddr: c.NetFlowListen, SFlowAddr: c.SFlowListen, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("%s/%s: %w", envName("netflow-listen"), envName("sflow-listen"), err)
	}
	return l, dec, nil
}

// spooledRecorder records flow-export batches as REST batches are: their per-policy deltas
// go to the spool first, since history is flushed from it. Nobody waits on an answer to a
// datagram, so the append does not wait for its fsync either.
type spooledRecorder struct {
	coll  *collector.Collector
	spool *spool.Spool
}

func (r spooledRecorder) RecordBatch(reports []collector.Report) (collector.BatchResult, error) {
	return r.coll.RecordBatchDurably(reports, r.spool.AppendAsync)
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
