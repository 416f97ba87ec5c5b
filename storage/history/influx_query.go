package history

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// Where InfluxHistory computes history windows (InfluxConfig.Windowing).
const (
	// InfluxWindowingAuto picks by server: InfluxWindowingInfluxQL on InfluxDB 1.x,
	// InfluxWindowingServer on 2.x (and while the version is not known yet).
	InfluxWindowingAuto = ""
	// InfluxWindowingInfluxQL windows on a 1.x server with InfluxQL (SUM and MAX with
	// GROUP BY time on the /query endpoint), which its storage engine answers from its
	// index and blocks without Flux's per-row costs.
	InfluxWindowingInfluxQL = "influxql"
	// InfluxWindowingServer windows on the server with Flux aggregateWindow (sum for packets
	// and bytes, max for active_flows per series), in the shape InfluxDB 2.x pushes down to
	// its storage engine.
	InfluxWindowingServer = "server"
	// InfluxWindowingClient reads the points (one pivoted row per point) and windows them
	// here. The Flux of InfluxDB 1.8 (v0.65) has no window pushdown and spends about 0.2 ms
	// per window and series: a day at 1 m windows takes it 0.5-1.5 s, against tens of
	// milliseconds to read the day's 8,640 points.
	InfluxWindowingClient = "client"
)

// serverGeneration is what InfluxHistory knows of the server's major version.
type serverGeneration int

const (
	generationUnknown serverGeneration = iota
	generationV1
	generationV2
)

// generation returns the server's major version, asking the server once: /ping answers on
// both generations with the version in its X-Influxdb-Version header ("1.8.10", "v2.7.1").
// A server built from source says "unknown" there; then /ready decides, which 2.x has and
// 1.x answers with 404. An unreachable server stays unknown and is asked again later.
func (h *InfluxHistory) generation(ctx context.Context) serverGeneration {
	h.genMu.Lock()
	defer h.genMu.Unlock()
	if h.gen != generationUnknown {
		return h.gen
	}
	status, header, err := h.get(ctx, "/ping")
	if err != nil || status >= 300 {
		return h.gen
	}
	if h.gen = generationOf(header.Get("X-Influxdb-Version")); h.gen != generationUnknown {
		return h.gen
	}
	switch status, _, err := h.get(ctx, "/ready"); {
	case err != nil:
	case status == http.StatusOK:
		h.gen = generationV2
	case status == http.StatusNotFound:
		h.gen = generationV1
	}
	return h.gen
}

// get sends a GET for path on the server and returns the answer's status and header.
func (h *InfluxHistory) get(ctx context.Context, path string) (int, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.baseURL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := h.influxQL.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// generationOf reads the major version from a version header; unknown when there is none.
func generationOf(version string) serverGeneration {
	switch v := strings.TrimPrefix(strings.TrimSpace(version), "v"); {
	case strings.HasPrefix(v, "1."):
		return generationV1
	case v != "" && v[0] >= '2' && v[0] <= '9':
		return generationV2
	}
	return generationUnknown
}

// Detect asks the server for its version, once (later calls answer from memory), and
// returns the read path queries take: see ReadPath.
func (h *InfluxHistory) Detect(ctx context.Context) string {
	h.generation(ctx)
	return h.ReadPath()
}

// ReadPath names the way history is read, in one word: "influxql" (InfluxDB 1.x),
// "flux-aggregatewindow" (2.x, or a forced server plan), "flux-points" (points windowed
// here), or "unknown" while the server's version has not been read.
func (h *InfluxHistory) ReadPath() string {
	h.genMu.Lock()
	gen := h.gen
	h.genMu.Unlock()
	if gen == generationUnknown && h.windowing == InfluxWindowingAuto {
		return "unknown"
	}
	switch h.plan(gen) {
	case InfluxWindowingInfluxQL:
		return "influxql"
	case InfluxWindowingClient:
		return "flux-points"
	default:
		return "flux-aggregatewindow"
	}
}

// plan returns the windowing a query takes against a server of generation gen.
func (h *InfluxHistory) plan(gen serverGeneration) string {
	if h.windowing != InfluxWindowingAuto {
		return h.windowing
	}
	if gen == generationV1 {
		return InfluxWindowingInfluxQL
	}
	return InfluxWindowingServer
}

// QueryPolicy returns one policy's windows over [from, to) with the semantics the package
// documents.
func (h *InfluxHistory) QueryPolicy(ctx context.Context, policyID int64, from, to time.Time, every time.Duration) ([]HistoryPoint, error) {
	return h.querySeries(ctx, PolicyTraffic, policyID, from, to, every)
}

// querySeries returns the windows of series id of ts over [from, to).
func (h *InfluxHistory) querySeries(ctx context.Context, ts TrafficSeries, id int64, from, to time.Time, every time.Duration) ([]HistoryPoint, error) {
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, err
	}
	set, err := h.windows(ctx, kindOf(ts), grid, from, to, []int64{id})
	if err != nil {
		return nil, fmt.Errorf("query history of %s %d: %w", ts.IDKey, id, err)
	}
	if points, ok := set.series[id]; ok {
		return points, nil
	}
	return grid.points(), nil
}

// QueryTop returns the windows of every policy with points in [from, to), or of the top
// policies by bytes, ordered as the package documents.
func (h *InfluxHistory) QueryTop(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]PolicySeries, error) {
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, err
	}
	if err := validateTop(top); err != nil {
		return nil, err
	}
	var ids []int64
	if top > 0 {
		totals, err := h.tieredTotals(ctx, from, to, every)
		if err != nil {
			return nil, fmt.Errorf("query top policies: %w", err)
		}
		ids = topPolicies(totals, top)
		if len(ids) == 0 {
			return []PolicySeries{}, nil
		}
	}
	set, err := h.windows(ctx, policyHistory, grid, from, to, ids)
	if err != nil {
		return nil, fmt.Errorf("query history of policies: %w", err)
	}
	return set.ordered(), nil
}

// windows reads the windows of the given policies (all for none) over [from, to), each
// segment of the tier plan on its own and merged.
func (h *InfluxHistory) windows(ctx context.Context, k historyKind, grid windowGrid, from, to time.Time, ids []int64) (*seriesSet, error) {
	_, segs, err := h.segments(ctx, k, from, to, grid.every)
	if err != nil {
		return nil, err
	}
	set := newSeriesSet(grid)
	for _, seg := range segs {
		if err := h.segmentWindows(ctx, k, set, seg, ids); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// segmentWindows adds the windows of one segment of a plan to set.
func (h *InfluxHistory) segmentWindows(ctx context.Context, k historyKind, set *seriesSet, seg segment, ids []int64) error {
	part := newSeriesSet(set.grid)
	var err error
	if seg.tier == TierRaw {
		err = h.readWindows(ctx, k.series(), part, seg.from, seg.to, ids)
	} else {
		err = h.readTierWindows(ctx, k, part, seg, ids, false)
	}
	if err != nil {
		return err
	}
	set.merge(part)
	return nil
}

// tieredTotals returns each policy's bytes over [from, to), from the coarsest tiers that hold
// them (rankEvery).
func (h *InfluxHistory) tieredTotals(ctx context.Context, from, to time.Time, every time.Duration) ([]policyTotal, error) {
	_, segs, err := h.segments(ctx, policyHistory, from, to, h.tiers.plan.rankEvery(every))
	if err != nil {
		return nil, err
	}
	sums := make(map[int64]int64)
	for _, seg := range segs {
		if seg.tier != TierRaw {
			part, err := h.tierTotals(ctx, policyHistory, seg)
			if err != nil {
				return nil, err
			}
			for id, b := range part {
				sums[id] += b
			}
			continue
		}
		part, err := h.totals(ctx, seg.from, seg.to)
		if err != nil {
			return nil, err
		}
		for _, t := range part {
			sums[t.policyID] += t.bytes
		}
	}
	totals := make([]policyTotal, 0, len(sums))
	for id, b := range sums {
		totals = append(totals, policyTotal{policyID: id, bytes: b})
	}
	return totals, nil
}

// QueryIntervals returns per-interval bytes as the package documents: InfluxQL on 1.x,
// Flux aggregateWindow over the policy's group otherwise.
func (h *InfluxHistory) QueryIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	return h.queryIntervals(ctx, PolicyTraffic, ids, from, to, interval)
}

// queryIntervals returns the per-interval bytes of the given series of ts (all for none).
func (h *InfluxHistory) queryIntervals(ctx context.Context, ts TrafficSeries, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	if err := validateIntervals(from, to, interval); err != nil {
		return nil, err
	}
	k := kindOf(ts)
	// Exact from the 1m tier and raw, or the 1h histograms for long ranges (intervalsEvery).
	_, segs, err := h.segments(ctx, k, from, to, h.tiers.plan.intervalsEvery(from, to, interval))
	if err != nil {
		return nil, fmt.Errorf("query history intervals: %w", err)
	}
	out := make(map[int64][]IntervalBytes)
	for _, seg := range segs {
		if err := h.segmentIntervals(ctx, k, seg, ids, interval, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// segmentIntervals adds the per-interval bytes of one segment of a plan to out.
func (h *InfluxHistory) segmentIntervals(ctx context.Context, k historyKind, seg segment, ids []int64, interval time.Duration, out map[int64][]IntervalBytes) error {
	if seg.tier == TierRaw {
		part, err := h.rawIntervals(ctx, k.series(), ids, seg.from, seg.to, interval)
		if err != nil {
			return err
		}
		for id, ivs := range part {
			out[id] = append(out[id], ivs...)
		}
		return nil
	}
	rows, err := h.tierRowsOf(ctx, k, seg.tier, seg.from, seg.to, ids, false, intervalFields(seg.tier))
	if err != nil {
		return fmt.Errorf("query history intervals: %w", err)
	}
	for id, ivs := range tierIntervals(seg.tier, rows) {
		out[id] = append(out[id], ivs...)
	}
	return nil
}

// QueryPolicyWithIntervals is QueryPolicy and QueryIntervals of one policy together (see
// withIntervals).
func (h *InfluxHistory) QueryPolicyWithIntervals(ctx context.Context, policyID int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	return h.seriesWithIntervals(ctx, PolicyTraffic, policyID, from, to, every, interval)
}

// QueryPathWithIntervals is QueryPath and QueryPathIntervals of one path together.
func (h *InfluxHistory) QueryPathWithIntervals(ctx context.Context, pathID int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	return h.seriesWithIntervals(ctx, PathTraffic, pathID, from, to, every, interval)
}

func (h *InfluxHistory) seriesWithIntervals(ctx context.Context, ts TrafficSeries, id int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	return seriesWithIntervals(ctx, h.withIntervals, ts, id, from, to, every, interval)
}

// QueryTopWithIntervals is QueryTop and the QueryIntervals of the series it returns together
// (see withIntervals).
func (h *InfluxHistory) QueryTopWithIntervals(ctx context.Context, from, to time.Time, every time.Duration, top int, interval time.Duration) ([]PolicySeries, map[int64][]IntervalBytes, error) {
	rank := func(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]int64, error) {
		totals, err := h.tieredTotals(ctx, from, to, every)
		return topPolicies(totals, top), err
	}
	return topWithIntervals(ctx, h.withIntervals, rank, from, to, every, top, interval)
}

// withIntervals reads the windows of grid and the per-interval bytes of the given series (all
// for none) over [from, to), as SQLHistory.withIntervals does.
func (h *InfluxHistory) withIntervals(ctx context.Context, k historyKind, grid windowGrid, from, to time.Time, ids []int64, interval time.Duration) (*seriesSet, map[int64][]IntervalBytes, error) {
	wsegs, isegs, err := planBoth(grid.every, h.tiers.plan.intervalsEvery(from, to, interval), func(every time.Duration) ([]segment, error) {
		_, segs, err := h.segments(ctx, k, from, to, every)
		return segs, err
	})
	if err != nil {
		return nil, nil, err
	}
	// All series (no ids): the server windows their rows (GROUP BY time), far fewer than the
	// rows themselves, so the two are read apart.
	return readWithIntervals(ctx, h, k, grid, wsegs, isegs, ids, interval, sameSegments(wsegs, isegs) && len(ids) > 0)
}

// ratedTierRows reads the rows of a tier segment with the fields of both windows and
// per-interval bytes.
func (h *InfluxHistory) ratedTierRows(ctx context.Context, k historyKind, seg segment, ids []int64) ([]rollupRow, error) {
	fields := append([]string{"packets", "bytes", "active_flows"}, intervalFields(seg.tier)...)
	return h.tierRowsOf(ctx, k, seg.tier, seg.from, seg.to, ids, false, fields)
}

// rawIntervals is queryIntervals over raw points.
func (h *InfluxHistory) rawIntervals(ctx context.Context, ts TrafficSeries, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	gen := h.generation(ctx)
	if h.plan(gen) == InfluxWindowingInfluxQL {
		out, err := h.influxQLIntervals(ctx, ts, ids, from, to, interval)
		if err != nil {
			return nil, fmt.Errorf("query history intervals: %w", err)
		}
		return out, nil
	}
	// Windows aligned to the epoch start at floor(from); aggregateWindow clips the first
	// to from, so its _start is mapped back with floorTime.
	flux := h.selectFlux(gen, ts, from, to, ids, ` and r._field == "bytes"`) + fmt.Sprintf(`
  |> group(columns: [%s])
  |> aggregateWindow(every: %s, fn: sum, timeSrc: "_start", createEmpty: false)`, fluxString(ts.IDKey), fluxDuration(interval))
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("query history intervals: %w", err)
	}
	defer res.Close()
	out := make(map[int64][]IntervalBytes)
	for res.Next() {
		rec := res.Record()
		id, err := recordSeriesID(ts, rec.ValueByKey(ts.IDKey))
		if err != nil {
			return nil, err
		}
		v, ok := rec.Value().(int64)
		if !ok {
			continue
		}
		out[id] = append(out[id], IntervalBytes{Time: floorTime(rec.Time(), interval), Bytes: v})
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("query history intervals: %w", err)
	}
	return out, nil
}

// QueryTotal returns all policies together as the package documents. The windows follow the
// segments for every; the intervals are planned as QueryIntervals plans them
// (intervalsEvery), whatever every is.
func (h *InfluxHistory) QueryTotal(ctx context.Context, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, nil, err
	}
	if interval != 0 {
		if err := validateIntervals(from, to, interval); err != nil {
			return nil, nil, err
		}
	}
	_, segs, err := h.segments(ctx, policyHistory, from, to, every)
	if err != nil {
		return nil, nil, fmt.Errorf("query history total: %w", err)
	}
	points := grid.points()
	for _, seg := range segs {
		if seg.tier != TierRaw {
			part := newSeriesSet(grid)
			if err := h.readTierWindows(ctx, policyHistory, part, seg, []int64{totalSeriesID}, true); err != nil {
				return nil, nil, fmt.Errorf("query history total: %w", err)
			}
			for i, p := range part.series[totalSeriesID] {
				points[i].Packets += p.Packets
				points[i].Bytes += p.Bytes
			}
			continue
		}
		p, err := h.rawTotal(ctx, grid, seg.from, seg.to)
		if err != nil {
			return nil, nil, err
		}
		for i := range p {
			points[i].Packets += p[i].Packets
			points[i].Bytes += p[i].Bytes
		}
	}
	if interval == 0 {
		return points, nil, nil
	}
	intervals, err := h.totalIntervals(ctx, from, to, interval)
	if err != nil {
		return nil, nil, err
	}
	return points, intervals, nil
}

// totalIntervals returns the per-interval bytes of all policies together (id 0 left out),
// from the tiers QueryIntervals reads over the same range (see intervalsEvery).
func (h *InfluxHistory) totalIntervals(ctx context.Context, from, to time.Time, interval time.Duration) ([]IntervalBytes, error) {
	_, segs, err := h.segments(ctx, policyHistory, from, to, h.tiers.plan.intervalsEvery(from, to, interval))
	if err != nil {
		return nil, fmt.Errorf("query history total: %w", err)
	}
	var intervals []IntervalBytes
	for _, seg := range segs {
		if seg.tier != TierRaw {
			rows, err := h.tierRowsOf(ctx, policyHistory, seg.tier, seg.from, seg.to, []int64{totalSeriesID}, true, intervalFields(seg.tier))
			if err != nil {
				return nil, fmt.Errorf("query history total: %w", err)
			}
			intervals = append(intervals, tierIntervals(seg.tier, rows)[totalSeriesID]...)
			continue
		}
		ivs, err := h.rawTotalIntervals(ctx, seg.from, seg.to, interval)
		if err != nil {
			return nil, err
		}
		intervals = append(intervals, ivs...)
	}
	return intervals, nil
}

// rawTotal is QueryTotal's windows over raw points.
func (h *InfluxHistory) rawTotal(ctx context.Context, grid windowGrid, from, to time.Time) ([]HistoryPoint, error) {
	gen := h.generation(ctx)
	if h.plan(gen) == InfluxWindowingInfluxQL {
		points, err := h.influxQLTotal(ctx, grid, from, to)
		if err != nil {
			return nil, fmt.Errorf("query history total: %w", err)
		}
		return points, nil
	}
	points := grid.points()
	flux := h.selectFlux(gen, PolicyTraffic, from, to, nil, ` and (r._field == "packets" or r._field == "bytes")`) + fmt.Sprintf(`
  |> group(columns: ["_field"])
  |> aggregateWindow(every: %s, fn: sum, timeSrc: "_start", createEmpty: false)`, fluxDuration(grid.every))
	err := h.eachFluxValue(ctx, flux, func(field string, at time.Time, v int64) {
		if i := grid.index(at); i >= 0 {
			if field == "packets" {
				points[i].Packets += v
			} else {
				points[i].Bytes += v
			}
		}
	})
	return points, err
}

// rawTotalIntervals is QueryTotal's intervals over raw points.
func (h *InfluxHistory) rawTotalIntervals(ctx context.Context, from, to time.Time, interval time.Duration) ([]IntervalBytes, error) {
	gen := h.generation(ctx)
	if h.plan(gen) == InfluxWindowingInfluxQL {
		intervals, err := h.influxQLTotalIntervals(ctx, from, to, interval)
		if err != nil {
			return nil, fmt.Errorf("query history total: %w", err)
		}
		return intervals, nil
	}
	var intervals []IntervalBytes
	flux := h.selectFlux(gen, PolicyTraffic, from, to, nil, ` and r._field == "bytes"`) + fmt.Sprintf(`
  |> group()
  |> aggregateWindow(every: %s, fn: sum, timeSrc: "_start", createEmpty: false)`, fluxDuration(interval))
	err := h.eachFluxValue(ctx, flux, func(_ string, at time.Time, v int64) {
		intervals = append(intervals, IntervalBytes{Time: floorTime(at, interval), Bytes: v})
	})
	return intervals, err
}

// eachFluxValue runs flux and calls fn with each row's field, time and integer value.
func (h *InfluxHistory) eachFluxValue(ctx context.Context, flux string, fn func(field string, at time.Time, v int64)) error {
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return fmt.Errorf("query history total: %w", err)
	}
	defer res.Close()
	for res.Next() {
		rec := res.Record()
		if v, ok := rec.Value().(int64); ok {
			fn(rec.Field(), rec.Time(), v)
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("query history total: %w", err)
	}
	return nil
}

// selectFlux is the start of every history query: the points of the given series of ts
// (all for none, id 0 left out) in [from, to). InfluxDB 1.8 also returns points at exactly stop
// from range(), and its window() then counts them in the first window, so unless the server
// is known to be 2.x an explicit _time < to follows (on 2.x it would only stop the pushdown).
func (h *InfluxHistory) selectFlux(gen serverGeneration, ts TrafficSeries, from, to time.Time, ids []int64, fields string) string {
	return h.selectFluxWhere(gen, ts.Measurement, from, to, idFilter(ts, ids)+fields)
}

// rawPointsFlux is the Flux query of every raw point of measurement in [from, to), of every
// series (the unclassified traffic's too), pivoted to one row per point: what rollups are
// built from.
func (h *InfluxHistory) rawPointsFlux(gen serverGeneration, measurement string, from, to time.Time) string {
	return h.selectFluxWhere(gen, measurement, from, to, "") + `
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`
}

// selectFluxWhere selects the points of measurement in [from, to) that meet cond (Flux
// conditions joined with "and", starting with it; empty for all).
func (h *InfluxHistory) selectFluxWhere(gen serverGeneration, measurement string, from, to time.Time, cond string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => r._measurement == %s%s)`,
		fluxString(h.bucket), fluxTime(from), fluxTime(to), fluxString(measurement), cond)
	if gen != generationV2 {
		fmt.Fprintf(&b, "\n  |> filter(fn: (r) => r._time < %s)", fluxTime(to))
	}
	return b.String()
}

// readWindows adds the windows of the given policies (all for none) to set, windowed on the
// server or here.
func (h *InfluxHistory) readWindows(ctx context.Context, ts TrafficSeries, set *seriesSet, from, to time.Time, ids []int64) error {
	gen := h.generation(ctx)
	switch h.plan(gen) {
	case InfluxWindowingInfluxQL:
		return h.readInfluxQLWindows(ctx, ts, set, from, to, ids)
	case InfluxWindowingClient:
		return h.readPoints(ctx, ts, set, h.pointsFlux(gen, ts, from, to, ids), to)
	default:
		return h.readAggregates(ctx, ts, set, h.windowsFlux(gen, ts, from, to, set.grid.every, ids))
	}
}

// windowsFlux builds the server-windowed query: per series (policy, instance, field), the
// sum of packets and bytes and the max of active_flows in each window, the window's start as
// time. Go then sums the instances of a window; it also maps the first window, whose start
// Flux clips to from, back to its aligned start.
func (h *InfluxHistory) windowsFlux(gen serverGeneration, ts TrafficSeries, from, to time.Time, every time.Duration, ids []int64) string {
	window := fluxDuration(every)
	return fmt.Sprintf(`counters = %s
  |> aggregateWindow(every: %s, fn: sum, timeSrc: "_start", createEmpty: false)
flows = %s
  |> aggregateWindow(every: %s, fn: max, timeSrc: "_start", createEmpty: false)
union(tables: [counters, flows])`,
		h.selectFlux(gen, ts, from, to, ids, ` and (r._field == "packets" or r._field == "bytes")`), window,
		h.selectFlux(gen, ts, from, to, ids, ` and r._field == "active_flows"`), window)
}

// readAggregates adds the rows of a windowsFlux query to set.
func (h *InfluxHistory) readAggregates(ctx context.Context, ts TrafficSeries, set *seriesSet, flux string) error {
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return err
	}
	defer res.Close()
	for res.Next() {
		rec := res.Record()
		id, err := recordSeriesID(ts, rec.ValueByKey(ts.IDKey))
		if err != nil {
			return err
		}
		v, ok := rec.Value().(int64)
		if !ok {
			continue // an empty window's null
		}
		switch rec.Field() {
		case "packets":
			set.add(id, rec.Time(), v, 0, 0)
		case "bytes":
			set.add(id, rec.Time(), 0, v, 0)
		case "active_flows":
			set.add(id, rec.Time(), 0, 0, v)
		}
	}
	return res.Err()
}

// pointsFlux builds the query for client windowing: every point, its three fields pivoted
// into one row.
func (h *InfluxHistory) pointsFlux(gen serverGeneration, ts TrafficSeries, from, to time.Time, ids []int64) string {
	return h.selectFlux(gen, ts, from, to, ids, "") + `
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")`
}

// readPoints windows the rows of a pointsFlux query into set: packets and bytes are added,
// active_flows is the max per policy, instance and window, added to set at the end.
func (h *InfluxHistory) readPoints(ctx context.Context, ts TrafficSeries, set *seriesSet, flux string, to time.Time) error {
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return err
	}
	defer res.Close()
	type flowKey struct {
		policyID int64
		instance string
		window   int
	}
	flows := make(map[flowKey]int64)
	for res.Next() {
		rec := res.Record()
		at := rec.Time()
		window := set.grid.index(at)
		if window < 0 || !at.Before(to) {
			continue
		}
		id, err := recordSeriesID(ts, rec.ValueByKey(ts.IDKey))
		if err != nil {
			return err
		}
		packets, _ := rec.ValueByKey("packets").(int64)
		bytes, _ := rec.ValueByKey("bytes").(int64)
		set.add(id, at, packets, bytes, 0)
		if f, ok := rec.ValueByKey("active_flows").(int64); ok {
			instance, _ := rec.ValueByKey("instance").(string)
			k := flowKey{id, instance, window}
			if cur, seen := flows[k]; !seen || f > cur {
				flows[k] = f
			}
		}
	}
	if err := res.Err(); err != nil {
		return err
	}
	for k, f := range flows {
		set.add(k.policyID, set.grid.start.Add(time.Duration(k.window)*set.grid.every), 0, 0, f)
	}
	return nil
}

// totals returns each policy's bytes over [from, to).
func (h *InfluxHistory) totals(ctx context.Context, from, to time.Time) ([]policyTotal, error) {
	gen := h.generation(ctx)
	if h.plan(gen) == InfluxWindowingInfluxQL {
		return h.influxQLTotals(ctx, from, to)
	}
	flux := h.selectFlux(gen, PolicyTraffic, from, to, nil, ` and r._field == "bytes"`) + `
  |> group(columns: ["policy_id"])
  |> sum()`
	res, err := h.query.Query(ctx, flux)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var totals []policyTotal
	for res.Next() {
		rec := res.Record()
		id, err := recordPolicyID(rec.ValueByKey("policy_id"))
		if err != nil {
			return nil, err
		}
		v, _ := rec.Value().(int64)
		totals = append(totals, policyTotal{policyID: id, bytes: v})
	}
	return totals, res.Err()
}

func recordPolicyID(v any) (int64, error) {
	return recordSeriesID(PolicyTraffic, v)
}

// recordSeriesID reads the id tag of a point of ts.
func recordSeriesID(ts TrafficSeries, v any) (int64, error) {
	s, _ := v.(string)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("history point with %s %v: %w", ts.IDKey, v, storage.ErrInvalid)
	}
	return id, nil
}

// idFilter is the Flux condition that keeps the given series of ts, or for none every
// series but id 0 (unclassified traffic, a series of its own). The ids are numbers formatted
// here and the key a constant, so neither can carry Flux.
func idFilter(ts TrafficSeries, ids []int64) string {
	if len(ids) == 0 {
		return fmt.Sprintf(` and r.%s != "0"`, ts.IDKey)
	}
	var b strings.Builder
	b.WriteString(" and (")
	for i, id := range ids {
		if i > 0 {
			b.WriteString(" or ")
		}
		fmt.Fprintf(&b, `r.%s == "%d"`, ts.IDKey, id)
	}
	b.WriteString(")")
	return b.String()
}

// fluxString quotes s as a Flux string literal. "$" is written as \x24: Flux reads "${" as
// the start of an interpolation, and the scanner of Flux 0.65 (InfluxDB 1.8) rejects the
// documented \$ escape.
func fluxString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '$':
			b.WriteString(`\x24`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// fluxTime formats t as a Flux time literal.
func fluxTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// fluxDuration formats d as a Flux duration literal in the largest unit that divides it.
func fluxDuration(d time.Duration) string {
	units := []struct {
		size time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}, {time.Microsecond, "us"}}
	for _, u := range units {
		if d%u.size == 0 {
			return strconv.FormatInt(int64(d/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
