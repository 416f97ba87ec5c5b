package history

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// History tiers: the resolution a query was answered from (the stores' Tier).
const (
	// TierRaw is the points as flushed, one per series, instance and flush.
	TierRaw = "raw"
	// Tier1m is the 1-minute rollup: per series and minute, summed over instances.
	Tier1m = "1m"
	// Tier1h is the 1-hour rollup: per series and hour, summed over instances.
	Tier1h = "1h"
)

// Default retentions of the history tiers.
const (
	DefaultRawRetention = 7 * 24 * time.Hour
	Default1mRetention  = 30 * 24 * time.Hour
	Default1hRetention  = 400 * 24 * time.Hour
	// DefaultRollupSettle is how long after a bucket ends it is rolled up when TierConfig.Settle
	// is 0: every replica's flush of the bucket's last interval has been written by then.
	DefaultRollupSettle = time.Minute
)

// TierConfig turns on the rollup tiers of a history store. Rollups (Tier1m, Tier1h) are
// computed from the raw points by Rollup, run periodically (RunRollups, or the SQL retention
// job) and after a write of points into buckets already rolled up (a spool replay), so they
// hold the points of every instance. A rollup row of a series and bucket keeps:
//   - packets and bytes: the sums over the bucket, all instances;
//   - samples: the number of raw points (flushes of any instance) in the bucket;
//   - active_flows: each instance's largest active_flows in the bucket, summed over the
//     instances (as a raw window computes it); a window of several buckets answers the
//     largest of its buckets, which is the raw figure with one instance and can be lower
//     with several that peak in different buckets;
//   - max_bytes, last_at, last_bytes: the largest bytes of one flush interval (epoch-aligned,
//     summed over instances, as QueryIntervals defines it), the start of the bucket's last
//     interval with traffic and its bytes; exact, so peak_bps, max_bps and last_bps are;
//   - rates: the bytes of every interval with traffic. Exact on Tier1m (offset and bytes of
//     each interval); on Tier1h a histogram with logarithmic bins (RateBinGrowth), so a 95th
//     percentile read from it is within RateRelativeError of the exact one.
//
// Tiers need a flush interval of whole seconds that divides a minute; with any other the
// store keeps raw points only.
type TierConfig struct {
	// Interval is the flush interval (PATRONUS_FLUSH_INTERVAL), the unit of per-interval rates.
	Interval time.Duration
	// RawRetention, Retention1m and Retention1h are how long each tier is kept
	// (0: the defaults). On InfluxDB the raw retention is the bucket's own retention policy.
	RawRetention, Retention1m, Retention1h time.Duration
	// Settle is how long after its end a bucket is rolled up; 0 means DefaultRollupSettle.
	Settle time.Duration
	// Now is the clock; time.Now when nil. Tests move it across days.
	Now func() time.Time
}

// tierPlan is a validated TierConfig; the zero value (off) keeps raw points only.
type tierPlan struct {
	on                        bool
	interval                  time.Duration
	raw, ret1m, ret1h, settle time.Duration
	now                       func() time.Time
}

func newTierPlan(c *TierConfig) (tierPlan, error) {
	if c == nil {
		return tierPlan{}, nil
	}
	p := tierPlan{on: true, interval: c.Interval, raw: c.RawRetention, ret1m: c.Retention1m, ret1h: c.Retention1h, settle: c.Settle, now: c.Now}
	if p.interval < time.Second || p.interval%time.Second != 0 || time.Minute%p.interval != 0 {
		return tierPlan{}, nil // rollups need intervals that nest in minutes
	}
	if p.raw == 0 {
		p.raw = DefaultRawRetention
	}
	if p.ret1m == 0 {
		p.ret1m = Default1mRetention
	}
	if p.ret1h == 0 {
		p.ret1h = Default1hRetention
	}
	if p.settle == 0 {
		p.settle = DefaultRollupSettle
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.raw < 0 || p.ret1m < 0 || p.ret1h < 0 || p.settle < 0 {
		return tierPlan{}, fmt.Errorf("%w: history retentions must not be negative", storage.ErrInvalid)
	}
	return p, nil
}

// tierResolution is the bucket width of a rollup tier.
func tierResolution(tier string) time.Duration {
	switch tier {
	case Tier1m:
		return time.Minute
	case Tier1h:
		return time.Hour
	}
	return 0
}

func (p tierPlan) retention(tier string) time.Duration {
	switch tier {
	case Tier1m:
		return p.ret1m
	case Tier1h:
		return p.ret1h
	}
	return p.raw
}

// segment is a part of a query range read from one tier. Rollup rows count when their
// bucket starts in [from, to).
type segment struct {
	tier     string
	from, to time.Time
}

// choose splits [from, to) at every into the segments to read, and names the tier of the
// answer: the coarsest tier among the segments. The coarsest rollup tier whose buckets divide
// every, that still holds from, and has rolled up some of the range (rolledUntil: the end of
// its last bucket with traffic, zero for none) serves the whole buckets; the edges that cut
// one of its buckets, and what it has not rolled up yet, are read from the next finer tier
// that divides every (the 1-minute rollup under the hourly one, then raw), while that tier
// still holds them; once no finer tier holds an edge, a bucket that starts in the range
// counts whole. Without tiers everything is raw.
func (p tierPlan) choose(from, to time.Time, every time.Duration, rolledUntil func(tier string) (time.Time, error)) (string, []segment, error) {
	raw := []segment{{TierRaw, from, to}}
	if !p.on {
		return TierRaw, raw, nil
	}
	now := p.now()
	holds := func(tier string, t time.Time) bool { return !t.Before(now.Add(-p.retention(tier))) }
	var tiers []string // coarsest first; raw is below them all
	for _, t := range []string{Tier1h, Tier1m} {
		if every%tierResolution(t) == 0 {
			tiers = append(tiers, t)
		}
	}
	served := holds(TierRaw, from)
	for _, t := range tiers {
		served = served || holds(t, from)
	}
	if !served {
		// Raw has aged out and no tier that divides every holds from: the finest tier that
		// does, its buckets counting whole.
		for _, t := range []string{Tier1m, Tier1h} {
			if holds(t, from) {
				return t, []segment{{t, from, to}}, nil
			}
		}
		return TierRaw, raw, nil
	}
	if len(tiers) == 0 {
		return TierRaw, raw, nil
	}
	segs, err := p.split(from, to, tiers, holds, rolledUntil)
	if err != nil {
		return "", nil, err
	}
	for _, t := range []string{Tier1h, Tier1m} {
		if slices.ContainsFunc(segs, func(seg segment) bool { return seg.tier == t }) {
			return t, segs, nil
		}
	}
	return TierRaw, segs, nil
}

// split is choose over [from, to) with tiers (coarsest first) below which raw lies.
func (p tierPlan) split(from, to time.Time, tiers []string, holds func(string, time.Time) bool, rolledUntil func(string) (time.Time, error)) ([]segment, error) {
	if !from.Before(to) {
		return nil, nil
	}
	if len(tiers) == 0 {
		return []segment{{TierRaw, from, to}}, nil
	}
	tier, finer := tiers[0], tiers[1:]
	finerHolds := func(t time.Time) bool {
		if holds(TierRaw, t) {
			return true
		}
		for _, f := range finer {
			if holds(f, t) {
				return true
			}
		}
		return false
	}
	if !holds(tier, from) {
		return p.split(from, to, finer, holds, rolledUntil)
	}
	res := tierResolution(tier)
	until, err := rolledUntil(tier)
	if err != nil {
		return nil, err
	}
	tierFrom := from
	if finerHolds(from) {
		tierFrom = ceilTime(from, res)
	}
	end := to
	if until.Before(end) {
		end = until
	}
	tierTo := floorTime(end, res)
	if !finerHolds(tierTo) {
		tierTo = end
	}
	if !tierFrom.Before(tierTo) {
		if finerHolds(from) {
			return p.split(from, to, finer, holds, rolledUntil)
		}
		return []segment{{tier, from, to}}, nil
	}
	head, err := p.split(from, tierFrom, finer, holds, rolledUntil)
	if err != nil {
		return nil, err
	}
	tail, err := p.split(tierTo, to, finer, holds, rolledUntil)
	if err != nil {
		return nil, err
	}
	segs := append(head, segment{tier, tierFrom, tierTo})
	return append(segs, tail...), nil
}

// planBoth returns the plans of the windows (at every) and of the per-interval bytes (at
// intervalsEvery) of one read, planning once when the two widths are the same.
func planBoth(every, intervalsEvery time.Duration, plan func(every time.Duration) ([]segment, error)) (windows, intervals []segment, err error) {
	if windows, err = plan(every); err != nil || intervalsEvery == every {
		return windows, windows, err
	}
	intervals, err = plan(intervalsEvery)
	return windows, intervals, err
}

// sameSegments says whether two plans read the same tiers over the same ranges.
func sameSegments(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].tier != b[i].tier || !a[i].from.Equal(b[i].from) || !a[i].to.Equal(b[i].to) {
			return false
		}
	}
	return true
}

// exactIntervalsSpan is the longest range whose per-interval bytes are read from the 1m
// tier once raw has aged out (exact percentiles, 2,880 rows per series); longer ranges read
// the 1h tier's histograms (within RateRelativeError), so that a month stays fast.
const exactIntervalsSpan = 48 * time.Hour

// intervalsEvery is the window width per-interval reads are planned at: one minute, so that
// the 1m tier (which keeps every interval's bytes exactly) serves whole minutes and raw only
// the edges and what is not rolled up yet, while raw or the 1m tier holds from; one hour (the
// 1h tier's histograms) for ranges longer than exactIntervalsSpan that raw no longer holds.
// Without tiers, the interval itself (raw).
func (p tierPlan) intervalsEvery(from, to time.Time, interval time.Duration) time.Duration {
	switch {
	case !p.on:
		return interval
	case from.Before(p.now().Add(-p.raw)) && to.Sub(from) > exactIntervalsSpan:
		return time.Hour
	}
	return time.Minute
}

// rankEvery is the window width the totals that rank the top policies are planned at: bytes
// sum the same at every tier, so the coarsest (hours, with their edges from the finer tiers)
// serves any every.
func (p tierPlan) rankEvery(every time.Duration) time.Duration {
	if p.on {
		return time.Hour
	}
	return every
}

// ceilTime is the start of the first epoch-aligned window of every at or after t.
func ceilTime(t time.Time, every time.Duration) time.Time {
	f := floorTime(t, every)
	if f.Before(t) {
		return f.Add(every)
	}
	return f
}

// RateBinGrowth is the ratio between the bounds of neighbouring bins of the 1-hour tier's
// histogram of per-interval bytes: bin i holds [RateBinGrowth^i, RateBinGrowth^(i+1)) and is
// read back as one value inside it, at most RateRelativeError away from any value of the bin.
// Interval bytes below rateExactBelow are kept exactly.
const RateBinGrowth = 1.01

// RateRelativeError bounds the relative error of a p95_bps answered from the 1-hour tier:
// half a bin ((g-1)/(g+1) for g = RateBinGrowth) plus the rounding of the bin's value to whole
// bytes (at most 0.5 / rateExactBelow).
const RateRelativeError = 0.01

const rateExactBelow = 256

// rateBin returns the value bytes is kept as in the 1-hour histogram.
func rateBin(bytes int64) int64 {
	if bytes < rateExactBelow {
		return bytes
	}
	i := math.Floor(math.Log(float64(bytes)) / math.Log(RateBinGrowth))
	lo, hi := math.Pow(RateBinGrowth, i), math.Pow(RateBinGrowth, i+1)
	if float64(bytes) < lo { // rounding of Log at a bound
		lo, hi = lo/RateBinGrowth, lo
	} else if float64(bytes) >= hi {
		lo, hi = hi, hi*RateBinGrowth
	}
	return int64(math.Round(2 * lo * hi / (lo + hi))) // harmonic middle: equal relative error both ways
}

// rollupRow is one rollup bucket of one series (id), summed over instances; id
// totalSeriesID holds all series of the kind together.
type rollupRow struct {
	id                                             int64
	bucket                                         time.Time
	packets, bytes, samples, activeFlows, maxBytes int64
	lastAt                                         time.Time
	lastBytes                                      int64
	// rates: on Tier1m the bytes of each interval with traffic by its offset in seconds from
	// the bucket start; on Tier1h a count per (binned) bytes value. Rows built by a rollup
	// carry rates; rows read back carry the same as pairs, in key order.
	rates map[int64]int64
	pairs []ratePair
}

// ratePair is one entry of a row's rates: offset and bytes (Tier1m), or bytes and count
// (Tier1h).
type ratePair struct{ key, value int64 }

// totalSeriesID is the id of the rollup rows that hold every series of a kind together, the
// base of QueryTotal's per-interval rates (not derivable from the series' own histograms).
const totalSeriesID = -1

// encodeRates writes rates as "key:value" pairs in key order, separated by spaces.
func encodeRates(rates map[int64]int64) string {
	keys := make([]int64, 0, len(rates))
	for k := range rates {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(k, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(rates[k], 10))
	}
	return b.String()
}

// decodeRates reads what encodeRates wrote, in key order. It parses by hand: a month of 1h
// rows holds some 150,000 pairs per series.
func decodeRates(s string) ([]ratePair, error) {
	out := make([]ratePair, 0, strings.Count(s, ":"))
	var cur ratePair
	var n int64
	digits, inValue := 0, false
	bad := func() ([]ratePair, error) { return nil, fmt.Errorf("history rollup rates %.40q: unreadable", s) }
	for i := 0; i <= len(s); i++ {
		var c byte = ' '
		if i < len(s) {
			c = s[i]
		}
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int64(c-'0')
			digits++
		case c == '-' && digits == 0 && !inValue && (i == 0 || s[i-1] == ' '):
			return bad() // offsets and bytes are never negative
		case c == ':' && !inValue && digits > 0:
			cur.key, n, digits, inValue = n, 0, 0, true
		case c == ' ' && inValue && digits > 0:
			cur.value = n
			out = append(out, cur)
			n, digits, inValue = 0, 0, false
		case c == ' ' && !inValue && digits == 0:
		default:
			return bad()
		}
	}
	return out, nil
}

// rawGroup is the raw points of one series, instance and flush interval, aggregated: the
// input of the 1-minute rollup.
type rawGroup struct {
	id                              int64
	instance                        string
	interval                        time.Time
	packets, bytes, maxFlows, count int64
}

// rollupMinutes builds the 1-minute rows of raw groups: per series and minute, and all
// series together (totalSeriesID).
func rollupMinutes(groups []rawGroup) []rollupRow {
	type key struct {
		id     int64
		minute int64
	}
	type acc struct {
		row       rollupRow
		flows     map[string]int64
		intervals map[int64]int64 // interval start (unix s) -> bytes, all instances
	}
	accs := make(map[key]*acc)
	get := func(id int64, minute time.Time) *acc {
		k := key{id, minute.Unix()}
		a, ok := accs[k]
		if !ok {
			a = &acc{row: rollupRow{id: id, bucket: minute}, flows: map[string]int64{}, intervals: map[int64]int64{}}
			accs[k] = a
		}
		return a
	}
	for _, g := range groups {
		minute := floorTime(g.interval, time.Minute)
		for _, id := range []int64{g.id, totalSeriesID} {
			a := get(id, minute)
			if id == totalSeriesID && g.id == UnclassifiedPolicyID {
				// The total is the classified traffic's, as the raw queries over all
				// policies have it; the row still marks the minute as rolled up.
				continue
			}
			a.row.packets += g.packets
			a.row.bytes += g.bytes
			a.row.samples += g.count
			a.intervals[g.interval.Unix()] += g.bytes
			if id != totalSeriesID {
				a.flows[g.instance] = max(a.flows[g.instance], g.maxFlows)
			}
		}
	}
	out := make([]rollupRow, 0, len(accs))
	for _, a := range accs {
		r := a.row
		for _, f := range a.flows {
			r.activeFlows += f
		}
		r.rates = make(map[int64]int64, len(a.intervals))
		for at, b := range a.intervals {
			if b <= 0 {
				continue
			}
			r.rates[at-r.bucket.Unix()] = b
			r.maxBytes = max(r.maxBytes, b)
			if t := time.Unix(at, 0).UTC(); t.After(r.lastAt) || r.lastAt.IsZero() {
				r.lastAt, r.lastBytes = t, b
			}
		}
		out = append(out, r)
	}
	sortRows(out)
	return out
}

// rollupHours builds the 1-hour rows from 1-minute rows.
func rollupHours(minutes []rollupRow) []rollupRow {
	type key struct {
		id   int64
		hour int64
	}
	accs := make(map[key]*rollupRow)
	for _, m := range minutes {
		hour := floorTime(m.bucket, time.Hour)
		k := key{m.id, hour.Unix()}
		r, ok := accs[k]
		if !ok {
			r = &rollupRow{id: m.id, bucket: hour, rates: map[int64]int64{}}
			accs[k] = r
		}
		r.packets += m.packets
		r.bytes += m.bytes
		r.samples += m.samples
		r.activeFlows = max(r.activeFlows, m.activeFlows)
		r.maxBytes = max(r.maxBytes, m.maxBytes)
		if m.lastBytes > 0 && (m.lastAt.After(r.lastAt) || r.lastAt.IsZero()) {
			r.lastAt, r.lastBytes = m.lastAt, m.lastBytes
		}
		for _, pr := range m.pairs {
			r.rates[rateBin(pr.value)]++
		}
	}
	out := make([]rollupRow, 0, len(accs))
	for _, r := range accs {
		out = append(out, *r)
	}
	sortRows(out)
	return out
}

func sortRows(rows []rollupRow) {
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].id != rows[j].id {
			return rows[i].id < rows[j].id
		}
		return rows[i].bucket.Before(rows[j].bucket)
	})
}

// tierIntervals returns the per-interval bytes rollup rows stand for, per series, as
// QueryIntervals answers them: exact intervals on Tier1m; on Tier1h each bucket's largest
// and last intervals exactly (at their times), and the other intervals as histogram bins
// merged over all the series' buckets: one entry per value, with its count and no time. A
// month of 1h rows holds some 150,000 bin counts per series but only a few hundred distinct
// values, so merging keeps the answer, and the 95th percentile's sort, small.
func tierIntervals(tier string, rows []rollupRow) map[int64][]IntervalBytes {
	out := make(map[int64][]IntervalBytes)
	if tier == Tier1m {
		sizes := make(map[int64]int)
		for _, r := range rows {
			sizes[r.id] += len(r.pairs)
		}
		for id, n := range sizes {
			out[id] = make([]IntervalBytes, 0, n)
		}
		for _, r := range rows {
			ivs := out[r.id]
			for _, pr := range r.pairs {
				ivs = append(ivs, IntervalBytes{Time: r.bucket.Add(time.Duration(pr.key) * time.Second), Bytes: pr.value})
			}
			out[r.id] = ivs
		}
		return out
	}
	bins := make(map[int64]map[int64]int64) // per series: count by bytes
	for _, r := range rows {
		ivs, hist := out[r.id], bins[r.id]
		if hist == nil {
			hist = make(map[int64]int64)
			bins[r.id] = hist
		}
		lastBin, maxBin, maxDone := int64(-1), rateBin(r.maxBytes), r.maxBytes <= 0
		if r.lastBytes > 0 {
			lastBin = rateBin(r.lastBytes)
			ivs = append(ivs, IntervalBytes{Time: r.lastAt, Bytes: r.lastBytes})
		}
		for _, pr := range r.pairs {
			n := pr.value
			if pr.key == lastBin {
				n-- // the last interval, given exactly above
			}
			if !maxDone && pr.key == maxBin && n > 0 {
				// the largest interval exactly, unless it is the last one alone in its bin
				maxDone = true
				ivs = append(ivs, IntervalBytes{Time: r.bucket, Bytes: r.maxBytes})
				n--
			}
			if n > 0 {
				hist[min(pr.key, r.maxBytes)] += n
			}
		}
		out[r.id] = ivs
	}
	for id, hist := range bins {
		ivs := out[id]
		for b, n := range hist {
			ivs = append(ivs, IntervalBytes{Bytes: b, Count: n})
		}
		out[id] = ivs
	}
	return out
}

// rollupStore is what a history store provides for the rollups; rollupKind and friends do
// the rest the same way on every store.
type rollupStore interface {
	// rolledUntil is the end of the last bucket of tier with traffic; zero for none.
	rolledUntil(ctx context.Context, k historyKind, tier string) (time.Time, error)
	// firstSource is the time of the first row that tier is built from in [from, to) (raw
	// points for Tier1m, Tier1m rows for Tier1h); ok false when there is none. A store may
	// answer from itself when it cannot tell cheaply.
	firstSource(ctx context.Context, k historyKind, tier string, from, to time.Time) (first time.Time, ok bool, err error)
	// rawGroups reads the raw points of [from, to) per series, instance and flush interval.
	rawGroups(ctx context.Context, k historyKind, from, to time.Time) ([]rawGroup, error)
	// tierRows reads the rows of tier with buckets in [from, to): of ids, or of every series
	// (withTotal: the all-series rows too).
	tierRows(ctx context.Context, k historyKind, tier string, from, to time.Time, ids []int64, withTotal bool) ([]rollupRow, error)
	// writeRollup replaces the rows of tier with buckets in [from, to) by rows.
	writeRollup(ctx context.Context, k historyKind, tier string, from, to time.Time, rows []rollupRow) error
}

// rollupKind brings the tiers of kind k up to date: the 1-minute buckets from the last one
// rolled up (or the start of raw retention) to the last settled minute, then the hours those
// minutes complete. Buckets are rebuilt from their sources, so running it again, or on two
// replicas at once, gives the same rows. It returns how far each tier is complete.
func rollupKind(ctx context.Context, p tierPlan, s rollupStore, k historyKind) (minutes, hours time.Time, err error) {
	now := p.now().UTC()
	settled := floorTime(now.Add(-p.settle), time.Minute)
	start := floorTime(now.Add(-p.raw), time.Minute)
	if until, err := s.rolledUntil(ctx, k, Tier1m); err != nil {
		return time.Time{}, time.Time{}, err
	} else if !until.IsZero() {
		// The last bucket again: it may have been partial. Even when it lies before the
		// start of raw retention: raw rows not rolled up are never pruned, so the minutes
		// after it are still there (a job that did not run for longer than the raw
		// retention, or a write that rolled up part of a minute, would lose them).
		start = until.Add(-time.Minute)
	}
	if err := rollupSpans(ctx, s, k, Tier1m, start, settled, time.Hour); err != nil {
		return time.Time{}, time.Time{}, err
	}
	hourEnd := floorTime(settled, time.Hour)
	hourStart := floorTime(now.Add(-p.ret1m), time.Hour)
	if until, err := s.rolledUntil(ctx, k, Tier1h); err != nil {
		return settled, time.Time{}, err
	} else if !until.IsZero() {
		hourStart = until.Add(-time.Hour) // as for the minutes: 1m rows not rolled up are kept
	}
	if err := rollupSpans(ctx, s, k, Tier1h, hourStart, hourEnd, 24*time.Hour); err != nil {
		return settled, time.Time{}, err
	}
	return settled, hourEnd, nil
}

// rollupKinds is rollupKind of every kind with tiers; it returns how far both tiers are
// complete for all of them.
func rollupKinds(ctx context.Context, p tierPlan, s rollupStore) (minutes, hours time.Time, err error) {
	for i, k := range historyKinds {
		m, h, err := rollupKind(ctx, p, s, k)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		if i == 0 || m.Before(minutes) {
			minutes = m
		}
		if i == 0 || h.Before(hours) {
			hours = h
		}
	}
	return minutes, hours, nil
}

// rollupSpans rebuilds the buckets of tier in [from, to), span at a time, skipping ahead to
// the first source row so that a range without traffic costs one query.
func rollupSpans(ctx context.Context, s rollupStore, k historyKind, tier string, from, to time.Time, span time.Duration) error {
	for from.Before(to) {
		first, ok, err := s.firstSource(ctx, k, tier, from, to)
		if err != nil || !ok {
			return err
		}
		if first.After(from) {
			from = floorTime(first, tierResolution(tier))
		}
		end := from.Add(span)
		if end.After(to) {
			end = to
		}
		if err := rollupRange(ctx, s, k, tier, from, end); err != nil {
			return err
		}
		from = end
	}
	return nil
}

// rollupRange rebuilds the rows of tier with buckets in [from, to), both aligned to it.
func rollupRange(ctx context.Context, s rollupStore, k historyKind, tier string, from, to time.Time) error {
	var rows []rollupRow
	var err error
	if tier == Tier1m {
		var groups []rawGroup
		if groups, err = s.rawGroups(ctx, k, from, to); err == nil {
			rows = rollupMinutes(groups)
		}
	} else {
		var minutes []rollupRow
		if minutes, err = s.tierRows(ctx, k, Tier1m, from, to, nil, true); err == nil {
			rows = rollupHours(minutes)
		}
	}
	if err == nil {
		err = s.writeRollup(ctx, k, tier, from, to, rows)
	}
	if err != nil {
		return fmt.Errorf("history rollup %s %s..%s: %w", tier, from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return nil
}

// rollupWritten rebuilds the buckets a write touched that were settled already: points of a
// spool replay, or a retry that came late. Points of buckets not settled yet are left to the
// next run of the rollup.
func rollupWritten(ctx context.Context, p tierPlan, s rollupStore, deltas []PolicyDelta) error {
	if !p.on || len(deltas) == 0 {
		return nil
	}
	for _, k := range historyKinds {
		if err := rollupWrittenKind(ctx, p, s, k, deltasOf(k, deltas)); err != nil {
			return err
		}
	}
	return nil
}

// rollupWrittenKind is rollupWritten of the deltas of one kind.
func rollupWrittenKind(ctx context.Context, p tierPlan, s rollupStore, k historyKind, deltas []PolicyDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	settled := floorTime(p.now().UTC().Add(-p.settle), time.Minute)
	lo, hi := deltas[0].Time, deltas[0].Time
	for _, d := range deltas {
		if d.Time.Before(lo) {
			lo = d.Time
		}
		if d.Time.After(hi) {
			hi = d.Time
		}
	}
	if !lo.Before(settled) {
		return nil
	}
	from := floorTime(lo, time.Minute)
	to := minTime(floorTime(hi, time.Minute).Add(time.Minute), settled)
	if err := rollupSpans(ctx, s, k, Tier1m, from, to, time.Hour); err != nil {
		return err
	}
	hourTo := minTime(floorTime(hi, time.Hour).Add(time.Hour), floorTime(settled, time.Hour))
	return rollupSpans(ctx, s, k, Tier1h, floorTime(from, time.Hour), hourTo, 24*time.Hour)
}
