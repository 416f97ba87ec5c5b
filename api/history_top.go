package api

import (
	"context"
	"sort"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// statsSeries is one series of the all-policies history: a policy's, or other's.
type statsSeries struct {
	policyID int64
	other    bool
	// noIntervalRates is set on the other series when its per-interval rates cannot be told
	// (see rated): its peak_bps and the summary's per-interval figures are then absent.
	noIntervalRates bool
	ratedSeries
}

// withPeak says whether the series answers peak_bps and the summary's per-interval figures,
// iv being the flush interval (0 for none).
func (ss statsSeries) withPeak(iv time.Duration) bool { return iv > 0 && !ss.noIntervalRates }

// statsQuery is one all-policies history request, resolved and checked.
type statsQuery struct {
	history HistoryReader
	r       historyRange
	iv      time.Duration // flush interval of peaks and percentiles, 0 for none
	top     int
	rank    apigen.GetStatsHistoryParamsRank
	other   bool
}

// run answers the top policies by q.rank (or every policy, by bytes), then other.
func (q statsQuery) run(ctx context.Context) ([]statsSeries, error) {
	if q.rank == apigen.GetStatsHistoryParamsRankBytes {
		if q.iv == 0 {
			series, err := q.history.QueryTop(ctx, q.r.from, q.r.to, q.r.every, q.top)
			if err != nil {
				return nil, err
			}
			return q.rated(ctx, series, nil)
		}
		series, intervals, err := q.history.QueryTopWithIntervals(ctx, q.r.from, q.r.to, q.r.every, q.top, q.iv)
		if err != nil {
			return nil, err
		}
		return q.rated(ctx, series, intervals)
	}
	ids, err := q.rankByRate(ctx)
	if err != nil {
		return nil, err
	}
	series, err := q.policies(ctx, ids)
	if err != nil {
		return nil, err
	}
	return q.rated(ctx, series, nil)
}

// rankByRate returns the q.top policies with the highest p95_bps or max_bps over the range,
// ties by policy id: every policy's per-interval rates are read.
func (q statsQuery) rankByRate(ctx context.Context) ([]int64, error) {
	all, err := q.history.QueryIntervals(ctx, nil, q.r.from, q.r.to, q.iv)
	if err != nil {
		return nil, err
	}
	type ranked struct {
		id   int64
		rate float64
	}
	order := make([]ranked, 0, len(all))
	for id, intervals := range all {
		_, sum := history.HistoryRates(nil, intervals, q.r.from, q.r.to, q.r.every, q.iv)
		v := sum.P95BPS
		if q.rank == apigen.GetStatsHistoryParamsRankMax {
			v = sum.MaxBPS
		}
		order = append(order, ranked{id, v})
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].rate != order[j].rate {
			return order[i].rate > order[j].rate
		}
		return order[i].id < order[j].id
	})
	ids := make([]int64, 0, q.top)
	for _, o := range order[:min(q.top, len(order))] {
		ids = append(ids, o.id)
	}
	return ids, nil
}

// policies reads the windows of the given policies, in that order.
func (q statsQuery) policies(ctx context.Context, ids []int64) ([]history.PolicySeries, error) {
	out := make([]history.PolicySeries, 0, len(ids))
	for _, id := range ids {
		points, err := q.history.QueryPolicy(ctx, id, q.r.from, q.r.to, q.r.every)
		if err != nil {
			return nil, err
		}
		out = append(out, history.PolicySeries{PolicyID: id, Points: points})
	}
	return out, nil
}

// runFor answers the same series as like (the same policies, and other if like has it)
// over q.r: the previous period of compare=previous.
func (q statsQuery) runFor(ctx context.Context, like []statsSeries) ([]statsSeries, error) {
	var ids []int64
	q.other = false
	for _, s := range like {
		if s.other {
			q.other = true
			continue
		}
		ids = append(ids, s.policyID)
	}
	series, err := q.policies(ctx, ids)
	if err != nil {
		return nil, err
	}
	return q.rated(ctx, series, nil)
}

// rated adds each series' rates and summary (from intervals, the series' per-interval bytes,
// read here when nil), and the other series when asked for: the
// total of all policies minus the listed ones, per window and per interval, so that the
// series stack to the total. Per-interval bytes can be subtracted only when each is one
// interval at its own start: once any of them is a bin of the 1-hour tier's histogram
// (Count above 0, merged over the range with no time) or the listed
// policies have more in an interval than the total (intervals that do not line up), other's
// per-interval rates are not known and are left out, its totals and window rates stay.
func (q statsQuery) rated(ctx context.Context, series []history.PolicySeries, intervals map[int64][]history.IntervalBytes) ([]statsSeries, error) {
	if intervals == nil && q.iv > 0 && len(series) > 0 {
		ids := make([]int64, len(series))
		for i, ps := range series {
			ids[i] = ps.PolicyID
		}
		var err error
		if intervals, err = q.history.QueryIntervals(ctx, ids, q.r.from, q.r.to, q.iv); err != nil {
			return nil, err
		}
	}
	out := make([]statsSeries, 0, len(series)+1)
	for _, ps := range series {
		out = append(out, statsSeries{policyID: ps.PolicyID, ratedSeries: rateSeries(q.r, q.iv, ps.Points, intervals[ps.PolicyID])})
	}
	if !q.other {
		return out, nil
	}
	total, totalIntervals, err := q.history.QueryTotal(ctx, q.r.from, q.r.to, q.r.every, q.iv)
	if err != nil {
		return nil, err
	}
	for _, ps := range series {
		for i, p := range ps.Points {
			if i < len(total) {
				total[i].Packets -= p.Packets
				total[i].Bytes -= p.Bytes
			}
		}
	}
	otherIntervals, exact := subtractIntervals(totalIntervals, intervals)
	if !exact {
		return append(out, statsSeries{other: true, noIntervalRates: true, ratedSeries: rateSeries(q.r, 0, total, nil)}), nil
	}
	return append(out, statsSeries{other: true, ratedSeries: rateSeries(q.r, q.iv, total, otherIntervals)}), nil
}

// subtractIntervals returns the per-interval bytes of total minus those of the listed
// series, matched by interval start, and whether that difference is exact: false when any
// interval is a histogram bin (Count above 0) or a difference is negative.
func subtractIntervals(total []history.IntervalBytes, listed map[int64][]history.IntervalBytes) ([]history.IntervalBytes, bool) {
	rest := make(map[int64]int64, len(total)) // bytes by interval start, in ns
	for _, iv := range total {
		if iv.Count > 0 {
			return nil, false
		}
		rest[iv.Time.UnixNano()] += iv.Bytes
	}
	for _, ivs := range listed {
		for _, iv := range ivs {
			if iv.Count > 0 {
				return nil, false
			}
			rest[iv.Time.UnixNano()] -= iv.Bytes
		}
	}
	out := make([]history.IntervalBytes, 0, len(rest))
	for at, b := range rest {
		if b < 0 {
			return nil, false
		}
		if b > 0 {
			out = append(out, history.IntervalBytes{Time: time.Unix(0, at).UTC(), Bytes: b})
		}
	}
	return out, true
}
