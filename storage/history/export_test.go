package history

import (
	"context"
	"fmt"
	"time"
)

// WriteSyntheticRollups writes rows of tier for policies 1..policies and the all-policies
// row over the buckets of [from, to), as if a rollup had built them from flushes of
// interval with bytes varying per interval: a month of 1h rows for benchmarks, without a
// month of raw points. Only tests see it.
func WriteSyntheticRollups(ctx context.Context, h any, tier string, policies int, from, to time.Time, interval time.Duration) error {
	s, ok := h.(rollupStore)
	if !ok {
		return fmt.Errorf("%T has no rollups", h)
	}
	res := tierResolution(tier)
	per := int64(res / interval)
	pattern := func(scale int64) (rates map[int64]int64, bytes, maxBytes, lastBytes int64) {
		rates = make(map[int64]int64)
		for k := range per {
			b := (1000 + (k*7919)%50000) * scale
			bytes += b
			maxBytes = max(maxBytes, b)
			lastBytes = b
			if tier == Tier1m {
				rates[k*int64(interval/time.Second)] = b
			} else {
				rates[rateBin(b)]++
			}
		}
		return rates, bytes, maxBytes, lastBytes
	}
	one, oneBytes, oneMax, oneLast := pattern(1)
	all, allBytes, allMax, allLast := pattern(int64(policies))
	var rows []rollupRow
	flush := func(force bool) error {
		if len(rows) >= 20_000 || (force && len(rows) > 0) {
			err := s.writeRollup(ctx, policyHistory, tier, rows[0].bucket, rows[len(rows)-1].bucket.Add(res), rows)
			rows = rows[:0]
			return err
		}
		return nil
	}
	for at := floorTime(from, res); at.Before(to); at = at.Add(res) {
		last := at.Add(res - interval)
		for p := 1; p <= policies; p++ {
			rows = append(rows, rollupRow{id: int64(p), bucket: at, packets: oneBytes / 100, bytes: oneBytes, samples: per, activeFlows: 1,
				maxBytes: oneMax, lastAt: last, lastBytes: oneLast, rates: one})
		}
		rows = append(rows, rollupRow{id: totalSeriesID, bucket: at, packets: allBytes / 100, bytes: allBytes, samples: per * int64(policies),
			maxBytes: allMax, lastAt: last, lastBytes: allLast, rates: all})
		if err := flush(false); err != nil {
			return err
		}
	}
	return flush(true)
}

// RollupRange rebuilds the rows of tier with buckets in [from, to) now, as the rollup job
// does, for benchmarks.
func RollupRange(ctx context.Context, h any, tier string, from, to time.Time) error {
	s, ok := h.(rollupStore)
	if !ok {
		return fmt.Errorf("%T has no rollups", h)
	}
	return rollupRange(ctx, s, policyHistory, tier, from, to)
}
