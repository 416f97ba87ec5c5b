package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/api"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// envPrefix is prepended to a flag's upper-cased name to make its environment variable:
// -flush-interval is PATRONUS_FLUSH_INTERVAL.
const envPrefix = "PATRONUS"

// config is every setting of the service. Each has a flag and a PATRONUS_* variable; a flag
// on the command line wins over the environment.
type config struct {
	Listen              string
	DatabaseURL         string
	InfluxURL           string
	InfluxToken         string
	InfluxOrg           string
	InfluxBucket        string
	AdminToken          string
	Instance            string
	FlushInterval       time.Duration
	FlowIdleTimeout     time.Duration
	MaxFlows            int
	MetricsCacheTTL     time.Duration
	RoutingCacheTTL     time.Duration
	CacheMaxEntries     int64
	HistoryBufferPoints int
	HistoryRetention    time.Duration
	HistoryRawRetention time.Duration
	History1mRetention  time.Duration
	History1hRetention  time.Duration
	ShutdownTimeout     time.Duration
	EventBuffer         int
	SpoolDir            string
	SpoolMaxBytes       int64
	SpoolSync           string
	SpoolSyncInterval   time.Duration
	FeedPollInterval    time.Duration
	FeedNotify          bool
	FeedRetention       time.Duration
	LogFormat           string
	LogLevel            string
	NetFlowListen       string
	SFlowListen         string
	HTTP                httpLimits
	Ingest              api.IngestLimits
	Auth                api.AuthLimits
	DatabaseTimeout     time.Duration
}

// httpLimits are the settings that keep slow or hostile clients from holding the server.
type httpLimits struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxConnections    int
}

// registerFlags declares every setting on fs with its default and help.
func registerFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address the HTTP API listens on")
	fs.StringVar(&c.DatabaseURL, "database-url", storage.DefaultDatabaseURL, "inventory database: a SQLite file path, or a postgres:// URL")
	fs.StringVar(&c.InfluxURL, "influx-url", "", "InfluxDB URL for traffic history; empty keeps history in the database (policy_stats)")
	fs.StringVar(&c.InfluxToken, "influx-token", "", "InfluxDB token (2.x), or user:password (1.8)")
	fs.StringVar(&c.InfluxOrg, "influx-org", "patronus", "InfluxDB organisation (ignored by 1.8)")
	fs.StringVar(&c.InfluxBucket, "influx-bucket", "patronus", "InfluxDB bucket (1.8: database, or database/retention-policy)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "a bearer token accepted with the admin role (for scripts and docker-compose)")
	fs.StringVar(&c.Instance, "instance", "", "this replica's name, unique among live replicas, the instance tag of its history points (default: hostname:listen-port)")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 10*time.Second, "how often per-policy deltas are written to history")
	fs.DurationVar(&c.FlowIdleTimeout, "flow-idle-timeout", 5*time.Minute, "a flow with no traffic for this long expires")
	fs.IntVar(&c.MaxFlows, "max-flows", 1_000_000, "most flows tracked individually; past it traffic is still counted per policy")
	fs.DurationVar(&c.MetricsCacheTTL, "metrics-cache-ttl", 60*time.Second, "how long cached path metrics live")
	fs.DurationVar(&c.RoutingCacheTTL, "routing-cache-ttl", 30*time.Second, "how long cached routing decisions live")
	fs.Int64Var(&c.CacheMaxEntries, "cache-max-entries", 100_000, "most entries each cache holds")
	fs.IntVar(&c.HistoryBufferPoints, "history-buffer-points", 1_000_000, "most history points kept in memory while the history store is down")
	fs.DurationVar(&c.HistoryRawRetention, "history-raw-retention", history.DefaultRawRetention, "how long raw history points (one per flush) are kept; on InfluxDB set it to the bucket's retention policy, which Patronus does not change")
	fs.DurationVar(&c.History1mRetention, "history-1m-retention", history.Default1mRetention, "how long the 1-minute history rollups are kept (InfluxDB: retention policy rollup_1m)")
	fs.DurationVar(&c.History1hRetention, "history-1h-retention", history.Default1hRetention, "how long the 1-hour history rollups are kept (InfluxDB: retention policy rollup_1h)")
	fs.DurationVar(&c.HistoryRetention, "history-retention", 0, "former name of history-raw-retention; when set it wins")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "deadline for draining requests and the final history flush")
	fs.IntVar(&c.EventBuffer, "event-buffer", events.DefaultBufferSize, "how many recent events GET /api/v1/events keeps for clients that reconnect with Last-Event-ID")
	fs.StringVar(&c.SpoolDir, "spool-dir", "", "directory of the on-disk spool of acknowledged traffic not yet in history; default beside the SQLite file (FILE-spool), or ./spool with PostgreSQL")
	byteSizeVar(fs, &c.SpoolMaxBytes, "spool-max-bytes", spool.DefaultMaxBytes, "most bytes the spool keeps while history is down (a number of bytes, or with a unit: 1GiB); past it the oldest are dropped and counted")
	fs.StringVar(&c.SpoolSync, "spool-sync", spool.SyncStrict, "strict: a batch is acknowledged after its fsync (shared by concurrent batches); relaxed: acknowledged before, fsynced every spool-sync-interval")
	fs.DurationVar(&c.SpoolSyncInterval, "spool-sync-interval", spool.DefaultSyncInterval, "how often the relaxed spool fsyncs")
	fs.DurationVar(&c.FeedPollInterval, "feed-poll-interval", storage.DefaultFeedPollInterval, "how often each replica reads the change feed when no notification woke it")
	fs.BoolVar(&c.FeedNotify, "feed-notify", true, "on PostgreSQL, wake the change-feed tailer with LISTEN/NOTIFY (false: poll only)")
	fs.DurationVar(&c.FeedRetention, "feed-retention", storage.DefaultFeedRetention, "how long the change feed (and so the audit log) is kept")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.HTTP.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "most time a client may take to send a request's headers")
	fs.DurationVar(&c.HTTP.ReadTimeout, "read-timeout", time.Minute, "most time a client may take to send a whole request, body included")
	fs.DurationVar(&c.HTTP.WriteTimeout, "write-timeout", time.Minute, "most time a response may take; event streams extend it for each write instead")
	fs.DurationVar(&c.HTTP.IdleTimeout, "idle-timeout", 2*time.Minute, "how long an idle keep-alive connection stays open")
	fs.IntVar(&c.HTTP.MaxConnections, "max-connections", 4096, "most client connections open at once; more wait in the listen queue")
	fs.IntVar(&c.Ingest.MaxRequests, "max-ingest-requests", api.DefaultMaxIngestRequests, "most traffic ingest requests served at once; past it 503 with Retry-After")
	fs.DurationVar(&c.DatabaseTimeout, "database-timeout", storage.DefaultTimeout, "deadline of each database statement (a transaction gets four times it); past it 503 with Retry-After")
	fs.IntVar(&c.Auth.FailuresPerMinute, "auth-failures-per-minute", api.DefaultAuthFailuresPerMinute, "failed authentications a client address may make per minute; past it 429 with Retry-After")
	fs.DurationVar(&c.Auth.TokenGrace, "token-grace", api.DefaultTokenGrace, "how long a verified token is still accepted while the database cannot be reached")
	byteSizeVar(fs, &c.Ingest.MaxBytes, "max-ingest-bytes", api.DefaultMaxIngestBytes, "most body bytes (decompressed) all ingest requests hold at once (a number of bytes, or with a unit: 32MiB); past it 503 with Retry-After")
	fs.StringVar(&c.NetFlowListen, "netflow-listen", "", "UDP address taking NetFlow v5/v9 and IPFIX from routers, e.g. 0.0.0.0:2055; empty is off")
	fs.StringVar(&c.SFlowListen, "sflow-listen", "", "UDP address taking sFlow v5 from routers, e.g. 0.0.0.0:6343; empty is off")
}

// rawRetention is how long raw history points are kept: history-raw-retention, or the former
// history-retention when that is set.
func (c config) rawRetention() time.Duration {
	if c.HistoryRetention > 0 {
		return c.HistoryRetention
	}
	return c.HistoryRawRetention
}

// historyTiers are the rollup tiers of the history store.
func (c config) historyTiers() history.TierConfig {
	return history.TierConfig{Interval: c.FlushInterval, RawRetention: c.rawRetention(),
		Retention1m: c.History1mRetention, Retention1h: c.History1hRetention}
}

// envName returns the environment variable of a flag.
func envName(flagName string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// validate rejects values no run could use; each error names the setting's variable.
func (c config) validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", envName(flagName), fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port; use e.g. 127.0.0.1:8080 or :8080", c.Listen)
	}
	for name, addr := range map[string]string{"netflow-listen": c.NetFlowListen, "sflow-listen": c.SFlowListen} {
		if _, _, err := net.SplitHostPort(addr); addr != "" && err != nil {
			bad(name, "%q is not host:port; use e.g. 0.0.0.0:2055", addr)
		}
	}
	if c.InfluxURL != "" {
		u, err := url.Parse(c.InfluxURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("influx-url", "%q is not an http(s) URL; use e.g. http://localhost:8086", c.InfluxURL)
		}
		if c.InfluxBucket == "" {
			bad("influx-bucket", "is required with %s", envName("influx-url"))
		}
	}
	positive := map[string]time.Duration{
		"flush-interval": c.FlushInterval, "flow-idle-timeout": c.FlowIdleTimeout,
		"metrics-cache-ttl": c.MetricsCacheTTL, "routing-cache-ttl": c.RoutingCacheTTL,
		"history-raw-retention": c.rawRetention(), "history-1m-retention": c.History1mRetention,
		"history-1h-retention": c.History1hRetention, "shutdown-timeout": c.ShutdownTimeout,
		"feed-poll-interval": c.FeedPollInterval, "feed-retention": c.FeedRetention,
	}
	if c.HistoryRetention < 0 {
		bad("history-retention", "must not be negative, got %s", c.HistoryRetention)
	}
	for _, name := range []string{"flush-interval", "flow-idle-timeout", "metrics-cache-ttl", "routing-cache-ttl", "history-raw-retention",
		"history-1m-retention", "history-1h-retention", "shutdown-timeout", "feed-poll-interval", "feed-retention"} {
		if positive[name] <= 0 {
			bad(name, "%q is not a positive duration; use e.g. 10s or 1m", positive[name].String())
		}
	}
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"read-header-timeout", c.HTTP.ReadHeaderTimeout}, {"read-timeout", c.HTTP.ReadTimeout},
		{"write-timeout", c.HTTP.WriteTimeout}, {"idle-timeout", c.HTTP.IdleTimeout}} {
		if s.d <= 0 {
			bad(s.name, "%q is not a positive duration; use e.g. 10s or 1m", s.d.String())
		}
	}
	if c.HTTP.MaxConnections <= 0 {
		bad("max-connections", "%d is not a positive whole number; use e.g. 1000", c.HTTP.MaxConnections)
	}
	if c.DatabaseTimeout <= 0 {
		bad("database-timeout", "%q is not a positive duration; use e.g. 5s", c.DatabaseTimeout.String())
	}
	if c.Auth.FailuresPerMinute <= 0 {
		bad("auth-failures-per-minute", "%d is not a positive whole number; use e.g. 1000", c.Auth.FailuresPerMinute)
	}
	if c.Auth.TokenGrace < 0 {
		bad("token-grace", "%q is negative; use 0 (off) or a duration like 15m", c.Auth.TokenGrace.String())
	}
	if c.Ingest.MaxRequests <= 0 {
		bad("max-ingest-requests", "%d is not a positive whole number; use e.g. 1000", c.Ingest.MaxRequests)
	}
	if c.Ingest.MaxBytes < 1<<20 {
		bad("max-ingest-bytes", "must be at least 1 MiB (1048576), got %d", c.Ingest.MaxBytes)
	}
	if c.MaxFlows <= 0 {
		bad("max-flows", "%d is not a positive whole number; use e.g. 1000", c.MaxFlows)
	}
	if c.CacheMaxEntries <= 0 {
		bad("cache-max-entries", "%d is not a positive whole number; use e.g. 1000", c.CacheMaxEntries)
	}
	if c.HistoryBufferPoints <= 0 {
		bad("history-buffer-points", "%d is not a positive whole number; use e.g. 1000", c.HistoryBufferPoints)
	}
	if c.EventBuffer <= 0 {
		bad("event-buffer", "%d is not a positive whole number; use e.g. 1000", c.EventBuffer)
	}
	if c.SpoolMaxBytes < 1<<20 {
		bad("spool-max-bytes", "must be at least 1048576 (1 MiB), got %d", c.SpoolMaxBytes)
	}
	if c.SpoolSync != spool.SyncStrict && c.SpoolSync != spool.SyncRelaxed {
		bad("spool-sync", "%q is not a sync mode; use %s or %s", c.SpoolSync, spool.SyncStrict, spool.SyncRelaxed)
	}
	if c.SpoolSyncInterval <= 0 {
		bad("spool-sync-interval", "%q is not a positive duration; use e.g. 100ms", c.SpoolSyncInterval.String())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "%q is not a log format; use text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not a log level; use debug, info, warn or error", c.LogLevel)
	}
	if c.Instance != "" && strings.TrimSpace(c.Instance) == "" {
		bad("instance", "must not be blank")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("admin-token", "must be at least 16 characters")
	}
	return errors.Join(errs...)
}

// authLimits are the API's auth limits; a token grace of 0 turns the grace off.
func (c config) authLimits() api.AuthLimits {
	l := c.Auth
	if l.TokenGrace == 0 {
		l.TokenGrace = -1
	}
	return l
}

// defaultInstance is the instance name when none is set: the hostname and the port the API
// listens on, unique per process on one host.
func defaultInstance(listenAddr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	_, port, err := net.SplitHostPort(listenAddr.String())
	if err != nil {
		return host
	}
	return net.JoinHostPort(host, port)
}

// spoolDir is the spool directory: the setting, else beside the SQLite file (FILE-spool),
// else ./spool (PostgreSQL, or an in-memory SQLite database).
func (c config) spoolDir() string {
	if c.SpoolDir != "" {
		return c.SpoolDir
	}
	if strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		// Replicas share the database but not their spools: one directory per instance name,
		// so replicas on one host (default names differ by port) never contend for one.
		if c.Instance == "" {
			return "spool"
		}
		return filepath.Join("spool", strings.Map(func(r rune) rune {
			if r == '.' || r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
				return r
			}
			return '_'
		}, c.Instance))
	}
	path := strings.TrimPrefix(strings.TrimPrefix(c.DatabaseURL, "sqlite:"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" || strings.Contains(path, ":memory:") || strings.Contains(c.DatabaseURL, "mode=memory") {
		return "spool"
	}
	return path + "-spool"
}
