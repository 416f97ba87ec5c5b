package history

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/patronus-sdwan/patronus/storage"
)

// MeasurementPathMetrics is the InfluxDB measurement of path metrics.
const MeasurementPathMetrics = "path_metrics"

// DefaultInfluxTimeout bounds each InfluxDB request when InfluxConfig.Timeout is zero.
const DefaultInfluxTimeout = 10 * time.Second

// InfluxConfig says where the InfluxDB history lives. The same settings serve InfluxDB 2.x
// (Org, Bucket, Token) and 1.8+ through its /api/v2 endpoints (Bucket "database/retention-policy",
// Token "user:password", any non-empty Org).
type InfluxConfig struct {
	URL    string
	Token  string
	Org    string
	Bucket string
	// Timeout bounds each HTTP request; whole seconds, rounded up; 0 means DefaultInfluxTimeout.
	Timeout time.Duration
	// Windowing says how history windows are computed: InfluxWindowingAuto (the default),
	// InfluxWindowingInfluxQL (1.x only), InfluxWindowingServer or InfluxWindowingClient.
	// The results are the same.
	Windowing string
	// Tiers turns on the rollup tiers (TierConfig), nil for raw points only. The tiers live in
	// the retention policies InfluxRP1m and InfluxRP1h of the bucket's database on 1.x
	// (created by EnsureTiers), or in the buckets Bucket_1m and Bucket_1h on 2.x (to be
	// created with the tiers' retentions beside Bucket). Tiers.RawRetention should be the
	// duration of the bucket's own retention policy.
	Tiers *TierConfig
}

// InfluxHistory is the history store on InfluxDB: points of the policy_traffic measurement,
// read back with InfluxQL on 1.x and Flux on 2.x. It only uses the blocking write API: batching and retries belong to
// the caller, which gets every failure back as a *WriteError.
type InfluxHistory struct {
	client    influxdb2.Client
	org       string
	writer    api.WriteAPIBlocking
	query     api.QueryAPI
	bucket    string
	windowing string
	influxQL  *influxQL
	baseURL   string

	genMu sync.Mutex
	gen   serverGeneration

	tiers influxTiers
}

// NewInfluxHistory returns a history store on the InfluxDB cfg names. It does not contact the
// server; call Ping for that.
func NewInfluxHistory(cfg InfluxConfig) (*InfluxHistory, error) {
	if cfg.URL == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: influxdb history needs a url and a bucket", storage.ErrInvalid)
	}
	// InfluxDB 1.8 ignores the org but answers writes without one with 404 "database not found".
	if cfg.Org == "" {
		return nil, fmt.Errorf("%w: influxdb history needs an org (any name on 1.8)", storage.ErrInvalid)
	}
	switch cfg.Windowing {
	case InfluxWindowingAuto, InfluxWindowingInfluxQL, InfluxWindowingServer, InfluxWindowingClient:
	default:
		return nil, fmt.Errorf("%w: influxdb windowing %q is not %q, %q, %q or empty", storage.ErrInvalid, cfg.Windowing,
			InfluxWindowingInfluxQL, InfluxWindowingServer, InfluxWindowingClient)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultInfluxTimeout
	}
	seconds := uint((timeout + time.Second - 1) / time.Second)
	opts := influxdb2.DefaultOptions().
		SetUseGZip(true).
		SetPrecision(time.Nanosecond).
		SetHTTPRequestTimeout(seconds).
		SetApplicationName("patronus")
	plan, err := newTierPlan(cfg.Tiers)
	if err != nil {
		return nil, err
	}
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &InfluxHistory{
		tiers: influxTiers{plan: plan, rps: map[string]string{Tier1m: InfluxRP1m, Tier1h: InfluxRP1h},
			writers: map[string]api.WriteAPIBlocking{}},
		client:    client,
		org:       cfg.Org,
		writer:    client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		query:     client.QueryAPI(cfg.Org),
		bucket:    cfg.Bucket,
		windowing: cfg.Windowing,
		influxQL:  newInfluxQL(cfg, time.Duration(seconds)*time.Second),
		baseURL:   strings.TrimRight(cfg.URL, "/"),
	}, nil
}

// WriteDeltas writes one point per delta in one request: policy_traffic (tag policy_id) for
// a policy's delta, path_traffic (tag path_id, fields packets and bytes only) for a path's.
// Points with the same series, instance and time overwrite each other on the server, so a
// retried batch does not double count.
func (h *InfluxHistory) WriteDeltas(ctx context.Context, deltas []PolicyDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	if err := validateDeltas(deltas); err != nil {
		return err
	}
	points := make([]*write.Point, len(deltas))
	for i, d := range deltas {
		ts := seriesOf(d)
		p := write.NewPointWithMeasurement(ts.Measurement).
			AddTag("instance", d.Instance).
			AddTag(ts.IDKey, strconv.FormatInt(seriesID(d), 10))
		if ts == PolicyTraffic { // flows are tracked per policy; a path has no gauge of them
			p.AddTag("policy_name", TagValue(d.PolicyName)).AddField("active_flows", d.ActiveFlows)
		}
		points[i] = p.AddField("bytes", d.Bytes).AddField("packets", d.Packets).SetTime(d.Time)
	}
	if err := h.writer.WritePoint(ctx, points...); err != nil {
		return classifyInfluxError(fmt.Errorf("write %d history points: %w", len(points), err))
	}
	// Points into buckets already rolled up are rolled up again; a failure is retryable:
	// writing the points again replaces them.
	if err := rollupWritten(ctx, h.tiers.plan, h, deltas); err != nil {
		return AsWriteError(fmt.Errorf("write %d history points: %w", len(points), err))
	}
	return nil
}

// WritePathMetrics writes one path_metrics point (tags path_id and path_name) at
// m.MeasuredAt, or now when that is zero. Failures are classified as for WriteDeltas.
func (h *InfluxHistory) WritePathMetrics(ctx context.Context, m storage.PathMetrics, pathName string) error {
	at := m.MeasuredAt
	if at.IsZero() {
		at = time.Now()
	}
	p := write.NewPointWithMeasurement(MeasurementPathMetrics).
		AddTag("path_id", strconv.FormatInt(m.PathID, 10)).
		AddTag("path_name", TagValue(pathName)).
		AddField("latency_ms", m.LatencyMs).
		AddField("jitter_ms", m.JitterMs).
		AddField("packet_loss_pct", m.PacketLossPct).
		AddField("bandwidth_mbps", m.BandwidthMbps).
		AddField("mtu", int64(m.MTU)).
		AddField("score", int64(m.Score)).
		SetTime(at)
	if err := h.writer.WritePoint(ctx, p); err != nil {
		return classifyInfluxError(fmt.Errorf("write metrics of path %d: %w", m.PathID, err))
	}
	return nil
}

// TagValue returns a name as an InfluxDB tag value that reads back the same. The client
// escapes spaces, commas and equals signs, and quotes and any Unicode pass as they are; what
// line protocol cannot carry is changed: a control character becomes a space, and a
// backslash that ends the value or stands before a space, comma or equals sign (where the
// server would read it as an escape) becomes U+FF3C, the fullwidth backslash. An empty
// value leaves the tag out.
func TagValue(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || unicode.IsControl(r) }) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case unicode.IsControl(r):
			b.WriteByte(' ')
		case r == '\\' && (i+1 == len(s) || strings.ContainsRune(" ,=", rune(s[i+1])) || isControlAt(s, i+1)):
			b.WriteRune('\uFF3C')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isControlAt says whether a control character (which becomes a space) starts at s[i].
func isControlAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsControl(r)
}

// classifyInfluxError turns a write failure of the client into a *WriteError: no answer, 5xx
// and 429 are retryable, with the server's Retry-After; any other status is permanent. A
// failure without an HTTP answer of the client's (a deadline before sending, say) gets the
// shared default of AsWriteError.
func classifyInfluxError(err error) *WriteError {
	var herr *influxhttp.Error
	if !errors.As(err, &herr) {
		return AsWriteError(err)
	}
	werr := &WriteError{Status: herr.StatusCode, Err: err}
	switch {
	case herr.StatusCode == 0:
		werr.Retryable = true // no answer: refused, reset, timed out
	case herr.StatusCode == http.StatusTooManyRequests || herr.StatusCode >= 500:
		werr.Retryable = true
		werr.RetryAfter = retryAfter(herr.Header.Get("Retry-After"), time.Now())
		if werr.RetryAfter == 0 && herr.RetryAfter > 0 {
			werr.RetryAfter = time.Duration(herr.RetryAfter) * time.Second
		}
	}
	return werr
}

// retryAfter parses a Retry-After header, in seconds or as an HTTP date; 0 when absent or
// unparsable.
func retryAfter(header string, now time.Time) time.Duration {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(header, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(header); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// Ping checks that the server answers (/ping) and that the token may read the bucket: ping
// alone does not look at credentials, so a one-row query follows it. The first Ping that
// reaches the server also settles its version (see Detect).
func (h *InfluxHistory) Ping(ctx context.Context) error {
	if _, err := h.client.Ping(ctx); err != nil {
		return fmt.Errorf("ping influxdb: %w", err)
	}
	h.generation(ctx) // the first answer decides the read path
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: -1m)
  |> filter(fn: (r) => r._measurement == %s)
  |> limit(n: 1)`, fluxString(h.bucket), fluxString(MeasurementPolicyTraffic))
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("query influxdb bucket %s: %w", h.bucket, err)
	}
	defer res.Close()
	for res.Next() {
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("query influxdb bucket %s: %w", h.bucket, err)
	}
	return nil
}

// Close releases the client's idle connections.
func (h *InfluxHistory) Close() {
	h.client.Close()
}
