package history

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/patronus-sdwan/patronus/storage"
)

// Retention policies of the rollup tiers on InfluxDB 1.x, in the database of the bucket.
const (
	InfluxRP1m = "rollup_1m"
	InfluxRP1h = "rollup_1h"
)

// influxTiers is the rollup side of an InfluxHistory.
type influxTiers struct {
	plan tierPlan
	// rps are the 1.x retention policies of the tiers.
	rps map[string]string
	// writers write to a tier's bucket, by bucket name (see tierBucket).
	mu      sync.Mutex
	writers map[string]api.WriteAPIBlocking
	ensured bool
}

// tierBucket returns the bucket of a tier (for writes and Flux) for the configured bucket:
// on 1.x "database/rollup_1m" beside "database/rp" or beside "database" (its default
// policy); on 2.x the bucket's name with "_1m" (a bucket per tier, which must exist with the
// tier's retention: this store creates the 1.x retention policies only).
func tierBucket(bucket, tier string, gen serverGeneration) string {
	db, _, ok := strings.Cut(bucket, "/")
	if ok || gen == generationV1 {
		return db + "/rollup_" + tier
	}
	return bucket + "_" + tier
}

// tierBucket is the bucket of tier on this store's server.
func (h *InfluxHistory) tierBucket(ctx context.Context, tier string) string {
	return tierBucket(h.bucket, tier, h.generation(ctx))
}

// tierWriter is the writer of tier's bucket on this store's server.
func (h *InfluxHistory) tierWriter(ctx context.Context, tier string) api.WriteAPIBlocking {
	bucket := h.tierBucket(ctx, tier)
	h.tiers.mu.Lock()
	defer h.tiers.mu.Unlock()
	w, ok := h.tiers.writers[bucket]
	if !ok {
		w = h.client.WriteAPIBlocking(h.org, bucket)
		h.tiers.writers[bucket] = w
	}
	return w
}

// Tier returns the tier a query over [from, to) at every reads (TierRaw, Tier1m or Tier1h).
func (h *InfluxHistory) Tier(ctx context.Context, from, to time.Time, every time.Duration) (string, error) {
	tier, _, err := h.segments(ctx, policyHistory, from, to, every)
	return tier, err
}

// PathTier is Tier for path history.
func (h *InfluxHistory) PathTier(ctx context.Context, from, to time.Time, every time.Duration) (string, error) {
	tier, _, err := h.segments(ctx, pathHistory, from, to, every)
	return tier, err
}

// segments plans a query over [from, to) at every across the tiers.
func (h *InfluxHistory) segments(ctx context.Context, k historyKind, from, to time.Time, every time.Duration) (string, []segment, error) {
	return h.tiers.plan.choose(from.UTC(), to.UTC(), every, func(tier string) (time.Time, error) {
		return h.rolledUntil(ctx, k, tier)
	})
}

// EnsureTiers creates the retention policies of the rollup tiers on InfluxDB 1.x when they
// are missing, and sets their durations to the configured retentions when they differ; the
// bucket's own policy (raw) is created with the raw retention when missing and left alone
// otherwise. On 2.x it does nothing: the tier buckets must be created beside the bucket.
func (h *InfluxHistory) EnsureTiers(ctx context.Context) error {
	if !h.tiers.plan.on || h.generation(ctx) == generationV2 {
		return nil
	}
	series, err := runInfluxQL[any](ctx, h.influxQL, "SHOW RETENTION POLICIES ON "+influxQLIdent(h.influxQL.database), "")
	if err != nil {
		return fmt.Errorf("influxdb tiers: %w", err)
	}
	have := make(map[string]string) // name -> duration
	for _, s := range series {
		for _, row := range s.Values {
			if len(row) >= 2 {
				name, _ := row[0].(string)
				dur, _ := row[1].(string)
				have[name] = dur
			}
		}
	}
	want := map[string]time.Duration{InfluxRP1m: h.tiers.plan.ret1m, InfluxRP1h: h.tiers.plan.ret1h}
	if _, ok := have[h.influxQL.rp]; h.influxQL.rp != "" && !ok {
		want[h.influxQL.rp] = h.tiers.plan.raw
	}
	for rp, d := range want {
		dur := influxQLDuration(d)
		statement := fmt.Sprintf("CREATE RETENTION POLICY %s ON %s DURATION %s REPLICATION 1", influxQLIdent(rp), influxQLIdent(h.influxQL.database), dur)
		if cur, ok := have[rp]; ok {
			if got, err := time.ParseDuration(cur); err == nil && got == d.Truncate(time.Hour) {
				continue
			}
			statement = fmt.Sprintf("ALTER RETENTION POLICY %s ON %s DURATION %s", influxQLIdent(rp), influxQLIdent(h.influxQL.database), dur)
		}
		if _, err := h.influxQL.run(ctx, statement); err != nil {
			return fmt.Errorf("influxdb tier %s: %w", rp, err)
		}
	}
	h.tiers.ensured = true
	return nil
}

// influxQLDuration is d as an InfluxQL duration literal in whole hours, at least 1 h (the
// shortest retention 1.x accepts); 0 is INF.
func influxQLDuration(d time.Duration) string {
	if d <= 0 {
		return "INF"
	}
	return strconv.FormatInt(max(int64(d/time.Hour), 1), 10) + "h"
}

// Rollup brings the rollup tiers of policy and path history up to date, as SQLHistory.Rollup
// does, from the raw points of every instance; the rows are points of the tiers' retention
// policies (buckets on 2.x), which the server prunes itself. Writing a point again with the same tags and time replaces
// it, so a rebuild never adds up.
func (h *InfluxHistory) Rollup(ctx context.Context) (minutes, hours time.Time, err error) {
	if !h.tiers.plan.on {
		return time.Time{}, time.Time{}, nil
	}
	return rollupKinds(ctx, h.tiers.plan, h)
}

// RollupJobName is the singleton job name of the InfluxDB rollup.
const RollupJobName = "history-rollup"

// RunRollups runs Rollup every interval until ctx ends, on one replica at a time (see
// RunSingleton, on the inventory database db). Failures are logged and retried at the next run.
func (h *InfluxHistory) RunRollups(ctx context.Context, db *storage.DB, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	storage.RunSingleton(ctx, db, storage.SingletonJob{Name: RollupJobName, Interval: interval, Logger: log, Run: func(ctx context.Context) error {
		_, _, err := h.Rollup(ctx)
		return err
	}})
}

// fluxPath says whether tier reads and rollups use Flux (2.x, or a forced Flux windowing).
func (h *InfluxHistory) fluxPath(ctx context.Context) bool {
	return h.plan(h.generation(ctx)) != InfluxWindowingInfluxQL
}

func (h *InfluxHistory) rolledUntil(ctx context.Context, k historyKind, tier string) (time.Time, error) {
	var last time.Time
	if h.fluxPath(ctx) {
		flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: 1970-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %s and r._field == "bytes" and r.%s == "%d")
  |> last()`, fluxString(h.tierBucket(ctx, tier)), fluxString(k.measurement), k.idTag, totalSeriesID)
		res, err := h.query.Query(ctx, flux)
		if err != nil {
			return time.Time{}, fmt.Errorf("history tier %s: %w", tier, err)
		}
		defer res.Close()
		for res.Next() {
			if t := res.Record().Time(); t.After(last) {
				last = t
			}
		}
		if err := res.Err(); err != nil {
			return time.Time{}, fmt.Errorf("history tier %s: %w", tier, err)
		}
	} else {
		series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT LAST("bytes") FROM %s WHERE %s = '%d'`,
			h.influxQL.fromRP(h.tiers.rps[tier], k.measurement), influxQLIdent(k.idTag), totalSeriesID))
		if err != nil {
			return time.Time{}, fmt.Errorf("history tier %s: %w", tier, err)
		}
		for _, s := range series {
			for _, row := range s.Values {
				if ns, err := row[0].Int64(); err == nil {
					last = time.Unix(0, ns).UTC()
				}
			}
		}
	}
	if last.IsZero() {
		return last, nil
	}
	return floorTime(last, tierResolution(tier)).Add(tierResolution(tier)), nil
}

func (h *InfluxHistory) firstSource(ctx context.Context, k historyKind, tier string, from, to time.Time) (time.Time, bool, error) {
	if h.fluxPath(ctx) {
		return from, true, nil // no cheap first() across series in Flux 0.65: every span is read
	}
	rp, field := h.influxQL.rp, "bytes"
	if tier == Tier1h {
		rp = h.tiers.rps[Tier1m]
	}
	series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT FIRST(%s) FROM %s WHERE %s`,
		influxQLIdent(field), h.influxQL.fromRP(rp, k.measurement), influxQLRange(from, to)))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("history rollup: %w", err)
	}
	for _, s := range series {
		for _, row := range s.Values {
			if ns, err := row[0].Int64(); err == nil {
				return time.Unix(0, ns).UTC(), true, nil
			}
		}
	}
	return time.Time{}, false, nil
}

func (h *InfluxHistory) rawGroups(ctx context.Context, k historyKind, from, to time.Time) ([]rawGroup, error) {
	ivSecs := int64(h.tiers.plan.interval / time.Second)
	if h.fluxPath(ctx) {
		return h.fluxRawGroups(ctx, k, from, to)
	}
	// The points themselves, tags as columns, grouped here: GROUP BY the series tags makes
	// InfluxDB 1.8 build an iterator per series, far slower for thousands of policies.
	series, err := runInfluxQL[any](ctx, h.influxQL, fmt.Sprintf(`SELECT %s, "instance", "packets", "bytes", "active_flows" FROM %s WHERE %s`,
		influxQLIdent(k.idTag), h.influxQL.from(k.measurement), influxQLRange(from, to)), h.influxQL.rp)
	if err != nil {
		return nil, err
	}
	type key struct {
		id       int64
		instance string
		at       int64
	}
	groups := make(map[key]*rawGroup)
	var order []key
	for _, s := range series {
		for _, row := range s.Values {
			if len(row) != 6 {
				return nil, fmt.Errorf("influxql answer row with %d columns, want 6", len(row))
			}
			ns, _ := asInt64(row[0])
			id, err := recordPolicyID(row[1])
			if err != nil {
				return nil, err
			}
			instance, _ := row[2].(string)
			at := floorTime(time.Unix(0, ns), time.Duration(ivSecs)*time.Second)
			kk := key{id, instance, at.Unix()}
			g, ok := groups[kk]
			if !ok {
				g = &rawGroup{id: id, instance: instance, interval: at}
				groups[kk] = g
				order = append(order, kk)
			}
			packets, _ := asInt64(row[3])
			bytes, _ := asInt64(row[4])
			flows, _ := asInt64(row[5])
			g.packets += packets
			g.bytes += bytes
			g.maxFlows = max(g.maxFlows, flows)
			g.count++
		}
	}
	out := make([]rawGroup, len(order))
	for i, kk := range order {
		out[i] = *groups[kk]
	}
	return out, nil
}

// fluxRawGroups reads the raw points of [from, to) through Flux and groups them here.
func (h *InfluxHistory) fluxRawGroups(ctx context.Context, k historyKind, from, to time.Time) ([]rawGroup, error) {
	gen := h.generation(ctx)
	res, err := h.query.Query(ctx, h.rawPointsFlux(gen, k.measurement, from, to))
	if err != nil {
		return nil, err
	}
	defer res.Close()
	type key struct {
		id       int64
		instance string
		at       int64
	}
	groups := make(map[key]*rawGroup)
	var order []key
	for res.Next() {
		rec := res.Record()
		if !rec.Time().Before(to) {
			continue
		}
		id, err := recordPolicyID(rec.ValueByKey(k.idTag))
		if err != nil {
			return nil, err
		}
		instance, _ := rec.ValueByKey("instance").(string)
		at := floorTime(rec.Time(), h.tiers.plan.interval)
		kk := key{id, instance, at.Unix()}
		g, ok := groups[kk]
		if !ok {
			g = &rawGroup{id: id, instance: instance, interval: at}
			groups[kk] = g
			order = append(order, kk)
		}
		packets, _ := rec.ValueByKey("packets").(int64)
		bytes, _ := rec.ValueByKey("bytes").(int64)
		flows, _ := rec.ValueByKey("active_flows").(int64)
		g.packets += packets
		g.bytes += bytes
		g.maxFlows = max(g.maxFlows, flows)
		g.count++
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	out := make([]rawGroup, len(order))
	for i, kk := range order {
		out[i] = *groups[kk]
	}
	return out, nil
}

// tierFields are the fields of a rollup point, in the order tierRows reads them.
var tierFields = []string{"packets", "bytes", "samples", "active_flows", "max_bytes", "last_at", "last_bytes", "rates"}

// intervalFields are the fields tierIntervals reads of a tier's rows.
func intervalFields(tier string) []string {
	if tier == Tier1m {
		return []string{"rates"}
	}
	return []string{"max_bytes", "last_at", "last_bytes", "rates"}
}

func (h *InfluxHistory) tierRows(ctx context.Context, k historyKind, tier string, from, to time.Time, ids []int64, withTotal bool) ([]rollupRow, error) {
	return h.tierRowsOf(ctx, k, tier, from, to, ids, withTotal, tierFields)
}

// tierRowsOf is tierRows reading only the given fields of tierFields (the others are left
// zero): on 1.8 each field costs the server and the answer's decoding about as much.
func (h *InfluxHistory) tierRowsOf(ctx context.Context, k historyKind, tier string, from, to time.Time, ids []int64, withTotal bool, fields []string) ([]rollupRow, error) {
	if h.fluxPath(ctx) {
		return h.fluxTierRows(ctx, k, tier, from, to, ids, withTotal)
	}
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = influxQLIdent(f)
	}
	where := influxQLWhere(k.series(), from, to, ids)
	switch {
	case len(ids) == 0 && withTotal: // every row: what the hourly rollup is built from
		where = influxQLRange(from, to)
	case len(ids) == 0:
		where += fmt.Sprintf(` AND %s != '%d'`, influxQLIdent(k.idTag), totalSeriesID)
	}
	series, err := runInfluxQL[any](ctx, h.influxQL, fmt.Sprintf(`SELECT %s FROM %s WHERE %s GROUP BY %s`,
		strings.Join(cols, ", "), h.influxQL.fromRP(h.tiers.rps[tier], k.measurement), where, influxQLIdent(k.idTag)), h.influxQL.rp)
	if err != nil {
		return nil, err
	}
	var out []rollupRow
	for _, s := range series {
		id, err := recordPolicyID(s.Tags[k.idTag])
		if err != nil {
			return nil, err
		}
		for _, row := range s.Values {
			if len(row) != len(fields)+1 {
				return nil, fmt.Errorf("influxql answer row with %d columns, want %d", len(row), len(fields)+1)
			}
			vals := make(map[string]any, len(fields))
			for i, f := range fields {
				vals[f] = row[i+1]
			}
			ns, _ := asInt64(row[0])
			r, err := rollupRowOf(id, time.Unix(0, ns).UTC(), vals)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// fluxTierRows reads rollup rows through Flux, one pivoted row per point.
func (h *InfluxHistory) fluxTierRows(ctx context.Context, k historyKind, tier string, from, to time.Time, ids []int64, withTotal bool) ([]rollupRow, error) {
	filter := idFilter(k.series(), ids)
	switch {
	case len(ids) == 0 && withTotal: // every row: what the hourly rollup is built from
		filter = ""
	case len(ids) == 0:
		filter += fmt.Sprintf(` and r.%s != "%d"`, k.idTag, totalSeriesID)
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %s%s)
  |> filter(fn: (r) => r._time < %s)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`,
		fluxString(h.tierBucket(ctx, tier)), fluxTime(from), fluxTime(to), fluxString(k.measurement), filter, fluxTime(to))
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []rollupRow
	for res.Next() {
		rec := res.Record()
		id, err := recordPolicyID(rec.ValueByKey(k.idTag))
		if err != nil {
			return nil, err
		}
		vals := make(map[string]any, len(tierFields))
		for _, f := range tierFields {
			vals[f] = rec.ValueByKey(f)
		}
		r, err := rollupRowOf(id, rec.Time().UTC(), vals)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	sortRows(out)
	return out, nil
}

// rollupRowOf builds a row from the fields of a rollup point.
func rollupRowOf(id int64, bucket time.Time, vals map[string]any) (rollupRow, error) {
	r := rollupRow{id: id, bucket: bucket}
	ints := map[string]*int64{"packets": &r.packets, "bytes": &r.bytes, "samples": &r.samples, "active_flows": &r.activeFlows,
		"max_bytes": &r.maxBytes, "last_bytes": &r.lastBytes}
	for f, dst := range ints {
		*dst, _ = asInt64(vals[f])
	}
	if at, _ := asInt64(vals["last_at"]); at != 0 {
		r.lastAt = time.Unix(at, 0).UTC()
	}
	rates, _ := vals["rates"].(string)
	var err error
	r.pairs, err = decodeRates(rates)
	return r, err
}

// asInt64 reads an integer value of a query answer: json.Number (InfluxQL) or int64 (Flux).
func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int64:
		return n, true
	}
	return 0, false
}

func (h *InfluxHistory) writeRollup(ctx context.Context, k historyKind, tier string, _, _ time.Time, rows []rollupRow) error {
	if !h.tiers.ensured {
		if err := h.EnsureTiers(ctx); err != nil {
			return err
		}
	}
	const chunk = 5000
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		points := make([]*write.Point, len(part))
		for i, r := range part {
			var lastAt int64
			if !r.lastAt.IsZero() {
				lastAt = r.lastAt.Unix()
			}
			points[i] = write.NewPointWithMeasurement(k.measurement).
				AddTag(k.idTag, strconv.FormatInt(r.id, 10)).
				AddField("packets", r.packets).AddField("bytes", r.bytes).AddField("samples", r.samples).
				AddField("active_flows", r.activeFlows).AddField("max_bytes", r.maxBytes).
				AddField("last_at", lastAt).AddField("last_bytes", r.lastBytes).
				AddField("rates", encodeRates(r.rates)).
				SetTime(r.bucket)
		}
		if err := h.tierWriter(ctx, tier).WritePoint(ctx, points...); err != nil {
			if strings.Contains(err.Error(), "points beyond retention policy dropped") {
				continue // the tier's retention already passed them: nothing to keep
			}
			return classifyInfluxError(fmt.Errorf("write %d rollup points of tier %s: %w", len(points), tier, err))
		}
	}
	return nil
}

// readTierWindows adds the windows of a tier segment to set.
func (h *InfluxHistory) readTierWindows(ctx context.Context, k historyKind, set *seriesSet, seg segment, ids []int64, withTotal bool) error {
	if h.fluxPath(ctx) {
		rows, err := h.tierRows(ctx, k, seg.tier, seg.from, seg.to, ids, withTotal)
		if err != nil {
			return err
		}
		addTierRows(set, rows)
		return nil
	}
	where := influxQLWhere(k.series(), seg.from, seg.to, ids)
	if len(ids) == 0 && !withTotal {
		where += fmt.Sprintf(` AND %s != '%d'`, influxQLIdent(k.idTag), totalSeriesID)
	}
	from := h.influxQL.fromRP(h.tiers.rps[seg.tier], k.measurement)
	if len(ids) > 0 {
		// A few series: their rows, windowed here. InfluxDB 1.8 spends far longer on GROUP BY
		// time than on sending the rows (a day of one policy at 1m: 22 ms against 8).
		series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT "packets", "bytes", "active_flows" FROM %s WHERE %s GROUP BY %s`,
			from, where, influxQLIdent(k.idTag)))
		if err != nil {
			return err
		}
		var rows []rollupRow
		err = eachTrafficRow(series, recordPolicyID, k.idTag, func(id int64, at time.Time, packets, bytes, flows int64) {
			rows = append(rows, rollupRow{id: id, bucket: at.UTC(), packets: packets, bytes: bytes, activeFlows: flows})
		})
		addTierRows(set, rows)
		return err
	}
	series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT SUM("packets"), SUM("bytes"), MAX("active_flows") FROM %s WHERE %s GROUP BY time(%ds), %s fill(none)`,
		from, where, int64(set.grid.every/time.Second), influxQLIdent(k.idTag)))
	if err != nil {
		return err
	}
	return eachTrafficRow(series, recordPolicyID, k.idTag, set.add)
}

// addTierRows adds rollup rows to set: packets and bytes summed per window, active flows the
// largest of the window's buckets.
func addTierRows(set *seriesSet, rows []rollupRow) {
	type key struct {
		id int64
		w  int
	}
	flows := make(map[key]int64)
	for _, r := range rows {
		set.add(r.id, r.bucket, r.packets, r.bytes, 0)
		if w := set.grid.index(r.bucket); w >= 0 {
			k := key{r.id, w}
			flows[k] = max(flows[k], r.activeFlows)
		}
	}
	for k, f := range flows {
		set.series[k.id][k.w].ActiveFlows = f
	}
}

// tierTotals returns each series' bytes over a tier segment.
func (h *InfluxHistory) tierTotals(ctx context.Context, k historyKind, seg segment) (map[int64]int64, error) {
	out := make(map[int64]int64)
	if h.fluxPath(ctx) {
		rows, err := h.tierRows(ctx, k, seg.tier, seg.from, seg.to, nil, false)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.id] += r.bytes
		}
		return out, nil
	}
	series, err := h.influxQL.run(ctx, fmt.Sprintf(`SELECT SUM("bytes") FROM %s WHERE %s AND %s != '%d' GROUP BY %s`,
		h.influxQL.fromRP(h.tiers.rps[seg.tier], k.measurement), influxQLWhere(k.series(), seg.from, seg.to, nil), influxQLIdent(k.idTag), totalSeriesID, influxQLIdent(k.idTag)))
	if err != nil {
		return nil, err
	}
	for _, s := range series {
		id, err := recordPolicyID(s.Tags[k.idTag])
		if err != nil {
			return nil, err
		}
		for _, row := range s.Values {
			if len(row) == 2 {
				out[id] += numberOrZero(row[1])
			}
		}
	}
	return out, nil
}
