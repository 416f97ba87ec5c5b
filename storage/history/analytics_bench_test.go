package history_test

import (
	"context"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// BenchmarkHistoryAnalytics measures the read side of issue 13 on a day of 10 s flushes of
// 1,000 policies (8.64M points), written once per backend: what GET .../stats/history asks
// of a store. "flux-points" is the InfluxDB 1.x read path before InfluxQL (Flux pulling the
// raw points, windowed in Go), with windows only, as the API asked for them then; the
// others also read the per-interval bytes behind peak_bps and p95 (and for top, the total
// behind other). Goals: Day1m p99 < 20 ms, Month1h p99 < 50 ms, Top10Other p99 < 100 ms.
// Month1h spans 30 days of which the store holds one: there are no rollups yet.
func BenchmarkHistoryAnalytics(b *testing.B) {
	const policies = 1000
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	data := dayOfFlushes(day, policies)
	const iv = 10 * time.Second
	type plan struct {
		name  string
		store historyStore
		rates bool
	}
	backends := []struct {
		name  string
		plans func(b *testing.B) []plan
	}{
		{"influxdb", func(b *testing.B) []plan {
			serverURL, bucket := influxDatabase(b)
			open := func(windowing string) historyStore {
				h, err := history.NewInfluxHistory(history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket, Windowing: windowing, Timeout: 2 * time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(h.Close)
				return h
			}
			ql := open(history.InfluxWindowingInfluxQL)
			writeChunked(b, ql, data)
			return []plan{{"influxql", ql, true}, {"influxql-windows-only", ql, false}, {"flux-points", open(history.InfluxWindowingClient), false}}
		}},
		{"sqlite", func(b *testing.B) []plan {
			h := history.NewSQLHistory(storagetest.Open(b, storage.DialectSQLite))
			writeChunked(b, h, data)
			return []plan{{"sqlite", h, true}}
		}},
		{"postgres", func(b *testing.B) []plan {
			h := history.NewSQLHistory(storagetest.Open(b, storage.DialectPostgres))
			writeChunked(b, h, data)
			return []plan{{"postgres", h, true}}
		}},
	}
	ctx := context.Background()
	for _, backend := range backends {
		b.Run(backend.name, func(b *testing.B) {
			for _, p := range backend.plans(b) {
				measure := func(name string, op func() error) {
					b.Run(name+"/"+p.name, func(b *testing.B) {
						var latencies []time.Duration
						for b.Loop() {
							start := time.Now()
							err := op()
							latencies = append(latencies, time.Since(start))
							if err != nil {
								b.Fatal(err)
							}
						}
						reportLatencies(b, latencies)
					})
				}
				measure("Day1m", func() error {
					points, err := p.store.QueryPolicy(ctx, 3, day, day.Add(24*time.Hour), time.Minute)
					if err == nil && (len(points) != 1440 || points[0].Packets == 0) {
						b.Fatalf("%d points", len(points))
					}
					if err == nil && p.rates {
						_, err = p.store.QueryIntervals(ctx, []int64{3}, day, day.Add(24*time.Hour), iv)
					}
					return err
				})
				month := day.Add(-29 * 24 * time.Hour)
				measure("Month1h", func() error {
					points, err := p.store.QueryPolicy(ctx, 3, month, day.Add(24*time.Hour), time.Hour)
					if err == nil && len(points) != 720 {
						b.Fatalf("%d points", len(points))
					}
					if err == nil && p.rates {
						_, err = p.store.QueryIntervals(ctx, []int64{3}, month, day.Add(24*time.Hour), iv)
					}
					return err
				})
				measure("Top10Other", func() error {
					series, err := p.store.QueryTop(ctx, day, day.Add(24*time.Hour), time.Minute, 10)
					if err == nil && (len(series) != 10 || series[0].PolicyID != policies) {
						b.Fatalf("%d series", len(series))
					}
					if err == nil && p.rates {
						ids := make([]int64, len(series))
						for i, s := range series {
							ids[i] = s.PolicyID
						}
						if _, err = p.store.QueryIntervals(ctx, ids, day, day.Add(24*time.Hour), iv); err == nil {
							_, _, err = p.store.QueryTotal(ctx, day, day.Add(24*time.Hour), time.Minute, iv)
						}
					}
					return err
				})
			}
		})
	}
}
