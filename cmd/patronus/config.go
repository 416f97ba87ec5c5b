package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/storage"
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
	ShutdownTimeout     time.Duration
	EventBuffer         int
	FeedPollInterval    time.Duration
	FeedNotify          bool
	FeedRetention       time.Duration
	LogFormat           string
	LogLevel            string
}

// registerFlags declares every setting on fs with its default and help.
func registerFlags(fs *flag.FlagSet, c *config) {
	host, _ := os.Hostname()
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address the HTTP API listens on")
	fs.StringVar(&c.DatabaseURL, "database-url", storage.DefaultDatabaseURL, "inventory database: a SQLite file path, or a postgres:// URL")
	fs.StringVar(&c.InfluxURL, "influx-url", "", "InfluxDB URL for traffic history; empty keeps history in the database (policy_stats)")
	fs.StringVar(&c.InfluxToken, "influx-token", "", "InfluxDB token (2.x), or user:password (1.8)")
	fs.StringVar(&c.InfluxOrg, "influx-org", "patronus", "InfluxDB organisation (ignored by 1.8)")
	fs.StringVar(&c.InfluxBucket, "influx-bucket", "patronus", "InfluxDB bucket (1.8: database/retention-policy)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "a bearer token accepted with the admin role (for scripts and docker-compose)")
	fs.StringVar(&c.Instance, "instance", host, "this replica's name, the instance tag of its history points")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 10*time.Second, "how often per-policy deltas are written to history")
	fs.DurationVar(&c.FlowIdleTimeout, "flow-idle-timeout", 5*time.Minute, "a flow with no traffic for this long expires")
	fs.IntVar(&c.MaxFlows, "max-flows", 1_000_000, "most flows tracked individually; past it traffic is still counted per policy")
	fs.DurationVar(&c.MetricsCacheTTL, "metrics-cache-ttl", 60*time.Second, "how long cached path metrics live")
	fs.DurationVar(&c.RoutingCacheTTL, "routing-cache-ttl", 30*time.Second, "how long cached routing decisions live")
	fs.Int64Var(&c.CacheMaxEntries, "cache-max-entries", 100_000, "most entries each cache holds")
	fs.IntVar(&c.HistoryBufferPoints, "history-buffer-points", 1_000_000, "most history points kept in memory while the history store is down")
	fs.DurationVar(&c.HistoryRetention, "history-retention", 30*24*time.Hour, "how long SQL history (policy_stats) is kept")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "deadline for draining requests and the final history flush")
	fs.IntVar(&c.EventBuffer, "event-buffer", events.DefaultBufferSize, "how many recent events GET /api/v1/events keeps for clients that reconnect with Last-Event-ID")
	fs.DurationVar(&c.FeedPollInterval, "feed-poll-interval", storage.DefaultFeedPollInterval, "how often each replica reads the change feed when no notification woke it")
	fs.BoolVar(&c.FeedNotify, "feed-notify", true, "on PostgreSQL, wake the change-feed tailer with LISTEN/NOTIFY (false: poll only)")
	fs.DurationVar(&c.FeedRetention, "feed-retention", storage.DefaultFeedRetention, "how long the change feed (and so the audit log) is kept")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
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
		bad("listen", "%q is not host:port", c.Listen)
	}
	if c.InfluxURL != "" {
		u, err := url.Parse(c.InfluxURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("influx-url", "%q is not an http(s) URL", c.InfluxURL)
		}
		if c.InfluxBucket == "" {
			bad("influx-bucket", "is required with %s", envName("influx-url"))
		}
	}
	positive := map[string]time.Duration{
		"flush-interval": c.FlushInterval, "flow-idle-timeout": c.FlowIdleTimeout,
		"metrics-cache-ttl": c.MetricsCacheTTL, "routing-cache-ttl": c.RoutingCacheTTL,
		"history-retention": c.HistoryRetention, "shutdown-timeout": c.ShutdownTimeout,
		"feed-poll-interval": c.FeedPollInterval, "feed-retention": c.FeedRetention,
	}
	for _, name := range []string{"flush-interval", "flow-idle-timeout", "metrics-cache-ttl", "routing-cache-ttl", "history-retention", "shutdown-timeout",
		"feed-poll-interval", "feed-retention"} {
		if positive[name] <= 0 {
			bad(name, "must be positive, got %s", positive[name])
		}
	}
	if c.MaxFlows <= 0 {
		bad("max-flows", "must be positive, got %d", c.MaxFlows)
	}
	if c.CacheMaxEntries <= 0 {
		bad("cache-max-entries", "must be positive, got %d", c.CacheMaxEntries)
	}
	if c.HistoryBufferPoints <= 0 {
		bad("history-buffer-points", "must be positive, got %d", c.HistoryBufferPoints)
	}
	if c.EventBuffer <= 0 {
		bad("event-buffer", "must be positive, got %d", c.EventBuffer)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "%q is not text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if strings.TrimSpace(c.Instance) == "" {
		bad("instance", "must not be empty")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("admin-token", "must be at least 16 characters")
	}
	return errors.Join(errs...)
}
