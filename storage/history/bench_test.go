package history_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// benchStores are the history stores the benchmarks compare, each on its real backend.
var benchStores = []struct {
	name string
	open func(b *testing.B) historyStore
}{
	{"influxdb", func(b *testing.B) historyStore { return openInflux(b, history.InfluxWindowingClient) }},
	{"influxdb-aggregatewindow", func(b *testing.B) historyStore { return openInflux(b, history.InfluxWindowingServer) }},
	{"sqlite", func(b *testing.B) historyStore {
		return history.NewSQLHistory(storagetest.Open(b, storage.DialectSQLite))
	}},
	{"postgres", func(b *testing.B) historyStore {
		return history.NewSQLHistory(storagetest.Open(b, storage.DialectPostgres))
	}},
}

// BenchmarkHistoryFlush writes one flush of 10,000 policies per op, each flush 10 s after
// the previous one, as the flush loop does (goal on InfluxDB: < 200 ms).
func BenchmarkHistoryFlush(b *testing.B) {
	const policies = 10_000
	for _, store := range benchStores {
		if store.name == "influxdb-aggregatewindow" {
			continue // same writes as influxdb
		}
		b.Run(store.name, func(b *testing.B) {
			h := store.open(b)
			batch := make([]history.PolicyDelta, policies)
			for i := range batch {
				batch[i] = history.PolicyDelta{PolicyID: int64(i + 1), Instance: "bench", Packets: int64(i%97 + 1), Bytes: int64(i%97+1) * 800, ActiveFlows: int64(i % 13)}
			}
			ctx := context.Background()
			at := time.Now().Add(-24 * time.Hour).Truncate(10 * time.Second)
			b.ResetTimer()
			for b.Loop() {
				at = at.Add(10 * time.Second)
				for i := range batch {
					batch[i].Time = at
				}
				if err := h.WriteDeltas(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(policies, "points/op")
		})
	}
}

// dayOfFlushes is one day of 10 s flushes of policies 1..n on one instance.
func dayOfFlushes(day time.Time, policies int) []history.PolicyDelta {
	const flushes = 24 * 60 * 6
	out := make([]history.PolicyDelta, 0, flushes*policies)
	for k := range flushes {
		at := day.Add(time.Duration(k) * 10 * time.Second)
		for p := 1; p <= policies; p++ {
			out = append(out, history.PolicyDelta{PolicyID: int64(p), Instance: "bench", Time: at, Packets: int64(k%50 + p), Bytes: int64(k%50+p) * 900, ActiveFlows: int64(k % 17)})
		}
	}
	return out
}

func writeChunked(b *testing.B, h historyStore, deltas []history.PolicyDelta) {
	b.Helper()
	for start := 0; start < len(deltas); start += 10_000 {
		if err := h.WriteDeltas(context.Background(), deltas[start:min(start+10_000, len(deltas))]); err != nil {
			b.Fatal(err)
		}
	}
}

// reportLatencies reports the median and 99th percentile of the ops' durations.
func reportLatencies(b *testing.B, latencies []time.Duration) {
	b.Helper()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	at := func(q float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(q*float64(len(latencies))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkHistoryQueryDay reads one policy's day of 10 s flushes at 1 m windows (1,440
// points), from a store holding that day for 10 policies (goal: p99 < 50 ms).
func BenchmarkHistoryQueryDay(b *testing.B) {
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	data := dayOfFlushes(day, 10)
	for _, store := range benchStores {
		b.Run(store.name, func(b *testing.B) {
			h := store.open(b)
			writeChunked(b, h, data)
			ctx := context.Background()
			var latencies []time.Duration
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				points, err := h.QueryPolicy(ctx, 3, day, day.Add(24*time.Hour), time.Minute)
				latencies = append(latencies, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if len(points) != 1440 || points[0].Packets == 0 {
					b.Fatalf("%d points, first %+v", len(points), points[0])
				}
			}
			reportLatencies(b, latencies)
		})
	}
}

// BenchmarkHistoryQueryDaySQLScan is the alternative to SQL bucketing measured against it:
// scan the day's rows and window them in Go.
func BenchmarkHistoryQueryDaySQLScan(b *testing.B) {
	day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	data := dayOfFlushes(day, 10)
	for _, dialect := range storagetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			db := storagetest.Open(b, dialect)
			writeChunked(b, history.NewSQLHistory(db), data)
			query := "SELECT timestamp, instance, packets, bytes, active_flows FROM policy_stats WHERE policy_id = ? AND timestamp >= ? AND timestamp < ?"
			if dialect == storage.DialectPostgres {
				query = "SELECT timestamp, instance, packets, bytes, active_flows FROM policy_stats WHERE policy_id = $1 AND timestamp >= $2 AND timestamp < $3"
			}
			var latencies []time.Duration
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				points, err := scanWindows(db.SQL(), query, 3, day, day.Add(24*time.Hour), time.Minute)
				latencies = append(latencies, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if len(points) != 1440 {
					b.Fatalf("%d points", len(points))
				}
			}
			reportLatencies(b, latencies)
		})
	}
}

func scanWindows(db *sql.DB, query string, policyID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error) {
	rows, err := db.Query(query, policyID, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := int(to.Sub(from) / every)
	points := make([]history.HistoryPoint, n)
	flows := make([]map[string]int64, n)
	for rows.Next() {
		var at time.Time
		var instance string
		var packets, bytes, activeFlows int64
		if err := rows.Scan(&at, &instance, &packets, &bytes, &activeFlows); err != nil {
			return nil, err
		}
		i := int(at.Sub(from) / every)
		points[i].Packets += packets
		points[i].Bytes += bytes
		if flows[i] == nil {
			flows[i] = map[string]int64{}
		}
		flows[i][instance] = max(flows[i][instance], activeFlows)
	}
	for i := range points {
		points[i].Time = from.Add(time.Duration(i) * every)
		for _, f := range flows[i] {
			points[i].ActiveFlows += f
		}
	}
	return points, rows.Err()
}

// BenchmarkHistoryQueryTop reads the top 10 of 1,000 policies over an hour of 10 s flushes
// at 1 m windows, what a dashboard asks for.
func BenchmarkHistoryQueryTop(b *testing.B) {
	hour := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	var data []history.PolicyDelta
	for k := range 360 {
		for p := 1; p <= 1000; p++ {
			data = append(data, history.PolicyDelta{PolicyID: int64(p), Instance: "bench", Time: hour.Add(time.Duration(k) * 10 * time.Second), Packets: int64(p), Bytes: int64(p) * 100, ActiveFlows: 1})
		}
	}
	for _, store := range benchStores {
		b.Run(store.name, func(b *testing.B) {
			h := store.open(b)
			writeChunked(b, h, data)
			ctx := context.Background()
			var latencies []time.Duration
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				series, err := h.QueryTop(ctx, hour, hour.Add(time.Hour), time.Minute, 10)
				latencies = append(latencies, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if len(series) != 10 || series[0].PolicyID != 1000 {
					b.Fatalf("%d series, first %d", len(series), series[0].PolicyID)
				}
			}
			reportLatencies(b, latencies)
		})
	}
}
