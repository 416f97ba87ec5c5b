package history_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

// ratesTraffic is two instances of policy 1 flushing every 10 s, 3 s after each aligned
// interval, for 2 minutes, with bytes that vary per interval (0 = no point); packets are
// bytes/100. Policy 2 has traffic too, which must not leak into policy 1.
var ratesTraffic = struct{ a, b []int64 }{
	a: []int64{1000, 2000, 0, 4000, 5000, 1000, 1000, 1000, 0, 3000, 10000, 2000},
	b: []int64{0, 1000, 0, 0, 2500, 0, 0, 0, 0, 0, 5000, 0},
}

func writeRatesTraffic(t *testing.T, h historyStore) {
	t.Helper()
	var deltas []history.PolicyDelta
	for k := range ratesTraffic.a {
		at := time.Duration(k)*10*time.Second + 3*time.Second
		for instance, bytes := range map[string]int64{"a": ratesTraffic.a[k], "b": ratesTraffic.b[k]} {
			if bytes > 0 {
				deltas = append(deltas, delta(1, instance, at, bytes/100, bytes, 1))
			}
		}
		deltas = append(deltas, delta(2, "a", at, 1, 99999, 1))
	}
	write(t, h, deltas...)
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want)) }

// testHistoryRates checks per-window rates, peaks and the summary against values computed by
// hand from ratesTraffic. Per-interval sums over both instances (bytes): 1000, 3000, 0,
// 4000, 7500, 1000 | 1000, 1000, 0, 3000, 15000, 2000; as bits/s over 10 s: 800, 2400, 0,
// 3200, 6000, 800 | 800, 800, 0, 2400, 12000, 1600.
func testHistoryRates(t *testing.T, open openHistory) {
	h := open(t)
	writeRatesTraffic(t, h)
	from, to := base, base.Add(4*time.Minute)
	points, err := h.QueryPolicy(context.Background(), 1, from, to, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	intervals, err := h.QueryIntervals(context.Background(), []int64{1}, from, to, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := intervals[2]; ok {
		t.Errorf("intervals of policy 2 answered for policy 1 only")
	}
	rates, sum := history.HistoryRates(points, intervals[1], from, to, time.Minute, 10*time.Second)
	want := []history.PointRates{
		{PPS: 165.0 / 60, BPS: 16500 * 8.0 / 60, PeakBPS: 6000},
		{PPS: 220.0 / 60, BPS: 22000 * 8.0 / 60, PeakBPS: 12000},
		{}, {},
	}
	if len(rates) != len(want) {
		t.Fatalf("%d windows, want %d: %+v", len(rates), len(want), rates)
	}
	for i := range want {
		if !near(rates[i].PPS, want[i].PPS) || !near(rates[i].BPS, want[i].BPS) || !near(rates[i].PeakBPS, want[i].PeakBPS) {
			t.Errorf("window %d rates %+v, want %+v", i, rates[i], want[i])
		}
	}
	// 24 intervals in 4 minutes, 14 without traffic: nearest rank ceil(0.95*24) = 23 is the
	// 9th of the 10 non-zero rates in ascending order (800 800 800 800 1600 2400 2400 3200
	// 6000 12000), 6000.
	wantSum := history.HistorySummary{TotalPackets: 385, TotalBytes: 38500, AvgBPS: 38500 * 8.0 / 240,
		MaxBPS: 12000, P95BPS: 6000, LastBPS: 1600, Intervals: 24}
	if sum.TotalPackets != wantSum.TotalPackets || sum.TotalBytes != wantSum.TotalBytes || !near(sum.AvgBPS, wantSum.AvgBPS) ||
		!near(sum.MaxBPS, wantSum.MaxBPS) || !near(sum.P95BPS, wantSum.P95BPS) || !near(sum.LastBPS, wantSum.LastBPS) || sum.Intervals != wantSum.Intervals {
		t.Errorf("summary %+v, want %+v", sum, wantSum)
	}

	// All policies together: policy 2 adds 99999 bytes and 1 packet per interval.
	total, totalIntervals, err := h.QueryTotal(context.Background(), base, base.Add(4*time.Minute), time.Minute, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantPoints(t, total, []history.HistoryPoint{point(0, 171, 16500+6*99999, 0), point(time.Minute, 226, 22000+6*99999, 0), point(2*time.Minute, 0, 0, 0), point(3*time.Minute, 0, 0, 0)})
	perInterval := []int64{1000, 3000, 0, 4000, 7500, 1000, 1000, 1000, 0, 3000, 15000, 2000}
	if len(totalIntervals) != len(perInterval) {
		t.Fatalf("total intervals %v, want %d", totalIntervals, len(perInterval))
	}
	for _, iv := range totalIntervals {
		k := int(iv.Time.Sub(base) / (10 * time.Second))
		if k < 0 || k >= len(perInterval) || iv.Bytes != perInterval[k]+99999 {
			t.Errorf("total interval %+v, want %d bytes", iv, perInterval[max(0, min(k, len(perInterval)-1))]+99999)
		}
	}

	// A range starting inside a window: the clipped first window is averaged over its 30 s
	// in range, and only intervals from from on count (k3..5: 4000+7500+1000 bytes).
	from = base.Add(30 * time.Second)
	points, err = h.QueryPolicy(context.Background(), 1, from, base.Add(time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	intervals, err = h.QueryIntervals(context.Background(), []int64{1}, from, base.Add(time.Minute), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rates, sum = history.HistoryRates(points, intervals[1], from, base.Add(time.Minute), time.Minute, 10*time.Second)
	if len(rates) != 1 || !near(rates[0].BPS, 12500*8.0/30) || !near(rates[0].PeakBPS, 6000) || sum.Intervals != 3 || !near(sum.P95BPS, 6000) {
		t.Errorf("clipped window: rates %+v summary %+v, want bps %v peak 6000 over 3 intervals", rates, sum, 12500*8.0/30)
	}
}
