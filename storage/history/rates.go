package history

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// MaxHistoryIntervals is the most flush intervals one QueryIntervals may span (about 116
// days of 10 s flushes): the per-interval rates behind peak_bps and the 95th percentile are
// read one row per interval with traffic, so this bounds the rows of one query.
const MaxHistoryIntervals = 1_000_000

// IntervalBytes is the traffic of one flush interval of one policy, summed over instances.
type IntervalBytes struct {
	// Time is the start of the interval, aligned to the Unix epoch.
	Time  time.Time
	Bytes int64
	// Count is how many intervals had these bytes: 0 for one interval at Time; above 0 for a
	// bin of the 1-hour tier's histogram, merged over the range's buckets, with no Time
	// (zero): it counts in percentiles but not in any window's peak (see TierConfig).
	Count int64
}

// IntervalCount returns how many epoch-aligned intervals overlap [from, to), the samples of
// the 95th percentile, or 0 when interval is not a whole number of seconds or the range is
// empty.
func IntervalCount(from, to time.Time, interval time.Duration) int64 {
	return HistoryWindowCount(from, to, interval)
}

// validateIntervals checks a QueryIntervals request.
func validateIntervals(from, to time.Time, interval time.Duration) error {
	n := IntervalCount(from, to, interval)
	switch {
	case n == 0:
		return fmt.Errorf("%w: history interval %s over %s..%s: need a whole number of seconds and from before to", storage.ErrInvalid,
			interval, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	case n > MaxHistoryIntervals:
		return fmt.Errorf("%w: history range %s..%s spans %d intervals of %s, more than %d", storage.ErrInvalid,
			from.Format(time.RFC3339), to.Format(time.RFC3339), n, interval, MaxHistoryIntervals)
	}
	return nil
}

// PointRates are the rates of one window, in bits or packets per second.
type PointRates struct {
	// PPS and BPS are the window's packets and bits divided by the seconds of the window
	// that lie inside the query range (the first and last windows may be clipped).
	PPS, BPS float64
	// PeakBPS is the highest rate of one flush interval starting in the window (bits of
	// the interval, summed over instances, divided by the interval); 0 without traffic.
	PeakBPS float64
}

// HistorySummary describes a whole query range.
type HistorySummary struct {
	TotalPackets, TotalBytes int64
	// AvgBPS is TotalBytes*8 divided by the seconds of the range.
	AvgBPS float64
	// MaxBPS is the highest per-interval rate; P95BPS the 95th percentile of the
	// per-interval rates, nearest rank over every interval of the range, those without
	// traffic as 0 (exact: every interval is a sample); LastBPS the rate of the latest
	// interval with traffic, 0 when there is none.
	MaxBPS, P95BPS, LastBPS float64
	// Intervals is the number of per-interval samples behind MaxBPS and P95BPS.
	Intervals int64
}

// HistoryRates computes per-window rates and the summary of one series over [from, to):
// points are its windows of every (as QueryPolicy returns them), intervals its per-interval
// bytes (as QueryIntervals returns them, any order), interval the flush interval. With no
// intervals (interval 0), PeakBPS, MaxBPS, P95BPS and LastBPS stay 0.
func HistoryRates(points []HistoryPoint, intervals []IntervalBytes, from, to time.Time, every, interval time.Duration) ([]PointRates, HistorySummary) {
	rates := make([]PointRates, len(points))
	var sum HistorySummary
	for i, p := range points {
		start, end := p.Time, p.Time.Add(every)
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if secs := end.Sub(start).Seconds(); secs > 0 {
			rates[i].PPS = float64(p.Packets) / secs
			rates[i].BPS = float64(p.Bytes) * 8 / secs
		}
		sum.TotalPackets += p.Packets
		sum.TotalBytes += p.Bytes
	}
	if secs := to.Sub(from).Seconds(); secs > 0 {
		sum.AvgBPS = float64(sum.TotalBytes) * 8 / secs
	}
	if interval <= 0 {
		return rates, sum
	}
	sum.Intervals = IntervalCount(from, to, interval)
	ivSecs := interval.Seconds()
	samples := make([]weightedRate, 0, len(intervals))
	var last time.Time
	for _, iv := range intervals {
		if iv.Bytes <= 0 {
			continue
		}
		rate := float64(iv.Bytes) * 8 / ivSecs
		samples = append(samples, weightedRate{rate, max(iv.Count, 1)})
		if iv.Time.IsZero() {
			continue // a histogram bin: no time, so neither the latest nor in a window
		}
		if iv.Time.After(last) || last.IsZero() {
			last, sum.LastBPS = iv.Time, rate
		}
		if len(points) > 0 {
			if w := int(floorTime(iv.Time, every).Sub(points[0].Time) / every); w >= 0 && w < len(points) && rate > rates[w].PeakBPS {
				rates[w].PeakBPS = rate
			}
		}
	}
	sum.MaxBPS, sum.P95BPS = maxAndP95(samples, sum.Intervals)
	return rates, sum
}

// weightedRate is a per-interval rate and how many intervals had it.
type weightedRate struct {
	rate  float64
	count int64
}

// maxAndP95 returns the largest sample and the 95th percentile by nearest rank over n
// samples, of which those not given are 0: the value at rank ceil(0.95*n) in ascending
// order.
func maxAndP95(nonzero []weightedRate, n int64) (maxRate, p95 float64) {
	if len(nonzero) == 0 || n <= 0 {
		return 0, 0
	}
	slices.SortFunc(nonzero, func(a, b weightedRate) int { return cmp.Compare(a.rate, b.rate) })
	maxRate = nonzero[len(nonzero)-1].rate
	rank := (95*n + 99) / 100 // ceil(0.95 n), 1-based
	var given int64
	for _, s := range nonzero {
		given += s.count
	}
	zeros := max(n-given, 0) // more samples than intervals cannot happen with aligned intervals
	if rank <= zeros {
		return maxRate, 0
	}
	seen := zeros
	for _, s := range nonzero {
		seen += s.count
		if seen >= rank {
			return maxRate, s.rate
		}
	}
	return maxRate, maxRate
}

// withIntervalsFunc is a store's read of the windows of grid and the per-interval bytes of
// the given series of kind k (all for none) over [from, to).
type withIntervalsFunc func(ctx context.Context, k historyKind, grid windowGrid, from, to time.Time, ids []int64, interval time.Duration) (*seriesSet, map[int64][]IntervalBytes, error)

// seriesWithIntervals is the QueryPolicyWithIntervals and QueryPathWithIntervals of every
// store: series id of ts, its windows (zeros without data) and its per-interval bytes.
func seriesWithIntervals(ctx context.Context, read withIntervalsFunc, ts TrafficSeries, id int64, from, to time.Time, every, interval time.Duration) ([]HistoryPoint, []IntervalBytes, error) {
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, nil, err
	}
	if err := validateIntervals(from, to, interval); err != nil {
		return nil, nil, err
	}
	set, intervals, err := read(ctx, kindOf(ts), grid, from.UTC(), to.UTC(), []int64{id}, interval)
	if err != nil {
		return nil, nil, fmt.Errorf("query history of %s %d: %w", ts.IDKey, id, err)
	}
	points, ok := set.series[id]
	if !ok {
		points = grid.points()
	}
	return points, intervals[id], nil
}

// topWithIntervals is the QueryTopWithIntervals of every store: the top policies by bytes
// (rank; all with top 0), ordered as QueryTop orders them, with their per-interval bytes.
func topWithIntervals(ctx context.Context, read withIntervalsFunc, rank func(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]int64, error),
	from, to time.Time, every time.Duration, top int, interval time.Duration) ([]PolicySeries, map[int64][]IntervalBytes, error) {
	grid, err := newWindowGrid(from, to, every)
	if err != nil {
		return nil, nil, err
	}
	if err := validateTop(top); err != nil {
		return nil, nil, err
	}
	if err := validateIntervals(from, to, interval); err != nil {
		return nil, nil, err
	}
	from, to = from.UTC(), to.UTC()
	var ids []int64
	if top > 0 {
		if ids, err = rank(ctx, from, to, every, top); err != nil {
			return nil, nil, fmt.Errorf("query top policies: %w", err)
		}
		if len(ids) == 0 {
			return []PolicySeries{}, map[int64][]IntervalBytes{}, nil
		}
	}
	set, intervals, err := read(ctx, policyHistory, grid, from, to, ids, interval)
	if err != nil {
		return nil, nil, fmt.Errorf("query history of policies: %w", err)
	}
	return set.ordered(), intervals, nil
}

// segmentReader is what readWithIntervals needs of a store: the windows and the per-interval
// bytes of one segment of a plan, and a tier segment's rows with the fields of both.
type segmentReader interface {
	segmentWindows(ctx context.Context, k historyKind, set *seriesSet, seg segment, ids []int64) error
	segmentIntervals(ctx context.Context, k historyKind, seg segment, ids []int64, interval time.Duration, out map[int64][]IntervalBytes) error
	ratedTierRows(ctx context.Context, k historyKind, seg segment, ids []int64) ([]rollupRow, error)
}

// readWithIntervals reads the windows of grid over the plan wsegs and the per-interval bytes
// over the plan isegs; with oneRead (the two plans the same), each tier segment's rows are
// read once for both.
func readWithIntervals(ctx context.Context, r segmentReader, k historyKind, grid windowGrid, wsegs, isegs []segment, ids []int64, interval time.Duration,
	oneRead bool) (*seriesSet, map[int64][]IntervalBytes, error) {
	set := newSeriesSet(grid)
	intervals := make(map[int64][]IntervalBytes)
	if !oneRead {
		for _, seg := range wsegs {
			if err := r.segmentWindows(ctx, k, set, seg, ids); err != nil {
				return nil, nil, err
			}
		}
		for _, seg := range isegs {
			if err := r.segmentIntervals(ctx, k, seg, ids, interval, intervals); err != nil {
				return nil, nil, err
			}
		}
		return set, intervals, nil
	}
	for _, seg := range wsegs {
		if seg.tier == TierRaw {
			if err := r.segmentWindows(ctx, k, set, seg, ids); err != nil {
				return nil, nil, err
			}
			if err := r.segmentIntervals(ctx, k, seg, ids, interval, intervals); err != nil {
				return nil, nil, err
			}
			continue
		}
		rows, err := r.ratedTierRows(ctx, k, seg, ids)
		if err != nil {
			return nil, nil, err
		}
		part := newSeriesSet(grid)
		addTierRows(part, rows)
		set.merge(part)
		for id, ivs := range tierIntervals(seg.tier, rows) {
			intervals[id] = append(intervals[id], ivs...)
		}
	}
	return set, intervals, nil
}
