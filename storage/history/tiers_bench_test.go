package history_test

import (
	"context"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// benchTiers is the tier configuration of the tier benchmarks: the defaults, with the clock
// fixed at now.
func benchTiers(now time.Time) history.TierConfig {
	return history.TierConfig{Interval: 10 * time.Second, Now: func() time.Time { return now }}
}

// BenchmarkHistoryTierMonth1h reads one policy's 30 days at 1 h windows with its per-interval
// rates and computes them (peak_bps, max_bps, p95_bps), what GET .../stats/history?from=-30d&every=1h asks,
// from the 1h tier of 1,000 policies (raw has aged out for most of the month). Goal: p99 <
// 50 ms.
func BenchmarkHistoryTierMonth1h(b *testing.B) {
	const policies = 1000
	end := time.Now().UTC().Truncate(time.Hour)
	from := end.Add(-30 * 24 * time.Hour)
	now := end.Add(2 * time.Minute)
	ctx := context.Background()
	for _, backend := range []struct {
		name string
		open func(b *testing.B) historyStore
	}{
		{"influxdb-influxql", func(b *testing.B) historyStore {
			return openTieredInflux(b, history.InfluxWindowingInfluxQL, now)
		}},
		{"influxdb-flux", func(b *testing.B) historyStore {
			return openTieredInflux(b, history.InfluxWindowingServer, now)
		}},
		{"sqlite", func(b *testing.B) historyStore { return openTieredSQL(b, storage.DialectSQLite, now) }},
		{"postgres", func(b *testing.B) historyStore { return openTieredSQL(b, storage.DialectPostgres, now) }},
	} {
		b.Run(backend.name, func(b *testing.B) {
			h := backend.open(b)
			if err := history.WriteSyntheticRollups(ctx, h, history.Tier1h, policies, from, end, 10*time.Second); err != nil {
				b.Fatal(err)
			}
			if tier, err := h.Tier(ctx, from, end, time.Hour); err != nil || tier != history.Tier1h {
				b.Fatalf("tier %q, %v; want 1h", tier, err)
			}
			var latencies []time.Duration
			for b.Loop() {
				start := time.Now()
				points, err := h.QueryPolicy(ctx, 3, from, end, time.Hour)
				var intervals map[int64][]history.IntervalBytes
				if err == nil {
					intervals, err = h.QueryIntervals(ctx, []int64{3}, from, end, 10*time.Second)
				}
				var sum history.HistorySummary
				if err == nil {
					_, sum = history.HistoryRates(points, intervals[3], from, end, time.Hour, 10*time.Second)
				}
				latencies = append(latencies, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if len(points) != 720 || points[0].Bytes == 0 || sum.P95BPS <= 0 {
					b.Fatalf("%d points, first %+v, summary %+v", len(points), points[0], sum)
				}
			}
			reportLatencies(b, latencies)
		})
	}
}

// BenchmarkHistoryTierFlush10k measures a flush of 10,000 policies on InfluxDB with its share
// of the rollups: Raw is the flush itself (WriteDeltas of 10,000 points, the same on every
// flush); Minute is the rollup job's work once a minute (six such flushes into 10,001 1m
// rows); Hour is its work once an hour (600,000 1m rows into 10,001 1h rows). Goal for a
// flush, raw plus rollups: < 150 ms.
func BenchmarkHistoryTierFlush10k(b *testing.B) {
	const policies = 10_000
	ctx := context.Background()
	minute := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	// The clock is in the flushes' minute, as in a live flush: the write does not roll up
	// (the job does, measured apart).
	h := openTieredInflux(b, history.InfluxWindowingInfluxQL, minute.Add(55*time.Second))
	flush := func(k int) []history.PolicyDelta {
		out := make([]history.PolicyDelta, policies)
		for p := range out {
			out[p] = history.PolicyDelta{PolicyID: int64(p + 1), Instance: "bench", Time: minute.Add(time.Duration(k)*10*time.Second + 3*time.Second),
				Packets: int64(p%100 + k + 1), Bytes: int64((p%100 + k + 1) * 1000), ActiveFlows: 2}
		}
		return out
	}
	b.Run("Raw", func(b *testing.B) {
		batch := flush(0)
		var latencies []time.Duration
		for b.Loop() {
			start := time.Now()
			err := h.WriteDeltas(ctx, batch)
			latencies = append(latencies, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		reportLatencies(b, latencies)
	})
	b.Run("Minute", func(b *testing.B) {
		for k := range 6 {
			writeChunked(b, h, flush(k))
		}
		var latencies []time.Duration
		for b.Loop() {
			start := time.Now()
			err := history.RollupRange(ctx, h, history.Tier1m, minute, minute.Add(time.Minute))
			latencies = append(latencies, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		reportLatencies(b, latencies)
	})
	b.Run("Hour", func(b *testing.B) {
		if err := history.WriteSyntheticRollups(ctx, h, history.Tier1m, policies, minute, minute.Add(time.Hour), 10*time.Second); err != nil {
			b.Fatal(err)
		}
		var latencies []time.Duration
		for b.Loop() {
			start := time.Now()
			err := history.RollupRange(ctx, h, history.Tier1h, minute, minute.Add(time.Hour))
			latencies = append(latencies, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		reportLatencies(b, latencies)
	})
}

func openTieredInflux(b *testing.B, windowing string, now time.Time) *history.InfluxHistory {
	serverURL, bucket := influxDatabase(b)
	tiers := benchTiers(now)
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket,
		Windowing: windowing, Timeout: 2 * time.Minute, Tiers: &tiers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	return h
}

func openTieredSQL(b *testing.B, dialect string, now time.Time) *history.SQLHistory {
	h, err := history.NewSQLHistoryTiers(storagetest.Open(b, dialect), benchTiers(now))
	if err != nil {
		b.Fatal(err)
	}
	return h
}
