package api

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// writeRatedTraffic writes 12 flush intervals of 10 s (11:00:00-11:02:00) of policy from
// two instances, each flushing 3 s into the interval, with bytes per interval summed over
// both: 1000, 3000, 0, 4000, 7500, 1000 | 1000, 1000, 0, 3000, 15000, 2000 (packets are
// bytes/100). As bits/s over 10 s: 800, 2400, 0, 3200, 6000, 800 | 800, 800, 0, 2400,
// 12000, 1600.
func (a historyAPI) writeRatedTraffic(policy int64) {
	a.t.Helper()
	perA := []int64{1000, 2000, 0, 4000, 5000, 1000, 1000, 1000, 0, 3000, 10000, 2000}
	perB := []int64{0, 1000, 0, 0, 2500, 0, 0, 0, 0, 0, 5000, 0}
	var deltas []history.PolicyDelta
	for k := range perA {
		t := at("11:00:03").Add(time.Duration(k) * 10 * time.Second)
		for instance, bytes := range map[string]int64{"a": perA[k], "b": perB[k]} {
			if bytes > 0 {
				deltas = append(deltas, history.PolicyDelta{PolicyID: policy, Instance: instance, Time: t, Packets: bytes / 100, Bytes: bytes, ActiveFlows: 1})
			}
		}
	}
	a.write(deltas...)
}

func closeTo(got *float64, want float64) bool {
	return got != nil && math.Abs(*got-want) <= 1e-9*math.Max(1, want)
}

// TestPolicyHistoryRates checks the rates, peaks and summary of the history route against
// values computed by hand, on every history backend, in JSON and CSV.
func TestPolicyHistoryRates(t *testing.T) {
	forEachHistoryBackend(t, func(t *testing.T, a historyAPI) {
		fx := a.seed()
		a.writeRatedTraffic(fx.policy.ID)
		path := historyPath(fx.policy.ID, "from", "2025-06-01T11:00:00Z", "to", "2025-06-01T11:04:00Z", "every", "1m")
		h := decodeAs[apigen.PolicyHistory](t, a.do(http.MethodGet, path, a.viewer, nil), http.StatusOK)
		if h.Interval == nil || *h.Interval != "10s" || len(h.Points) != 4 {
			t.Fatalf("interval %v, %d points; want 10s and 4", h.Interval, len(h.Points))
		}
		want := []struct{ pps, bps, peak float64 }{
			{165.0 / 60, 16500 * 8.0 / 60, 6000}, {220.0 / 60, 22000 * 8.0 / 60, 12000}, {0, 0, 0}, {0, 0, 0},
		}
		for i, w := range want {
			p := h.Points[i]
			if !closeTo(&p.Pps, w.pps) || !closeTo(&p.Bps, w.bps) || !closeTo(p.PeakBps, w.peak) {
				t.Errorf("window %d: pps %v bps %v peak %v, want %v %v %v", i, p.Pps, p.Bps, p.PeakBps, w.pps, w.bps, w.peak)
			}
		}
		// 24 intervals, 14 without traffic: p95 is rank ceil(0.95*24) = 23, the 9th of the
		// ten non-zero rates ascending (800 800 800 800 1600 2400 2400 3200 6000 12000).
		s := h.Summary
		if s.TotalPackets != 385 || s.TotalBytes != 38500 || !closeTo(&s.AvgBps, 38500*8.0/240) || !closeTo(s.MaxBps, 12000) ||
			!closeTo(s.P95Bps, 6000) || !closeTo(s.LastBps, 1600) || s.Intervals == nil || *s.Intervals != 24 {
			t.Errorf("summary %+v", s)
		}

		r := a.do(http.MethodGet, path+"&format=csv", a.viewer, nil)
		lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n")
		rate := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		wantSecond := "2025-06-01T11:01:00Z,220,22000,2," + rate(220.0/60) + "," + rate(22000*8.0/60) + ",12000"
		if len(lines) != 5 || lines[2] != wantSecond {
			t.Errorf("csv %q, want its 11:01 row %q", lines, wantSecond)
		}

		// compare=previous: the four minutes before, with their own rates.
		a.write(history.PolicyDelta{PolicyID: fx.policy.ID, Instance: "a", Time: at("10:57:13"), Packets: 30, Bytes: 3000})
		h = decodeAs[apigen.PolicyHistory](t, a.do(http.MethodGet, path+"&compare=previous", a.viewer, nil), http.StatusOK)
		if p := h.Previous; p == nil || len(p.Points) != 4 || !p.Points[1].Time.Equal(at("10:57:00")) || p.Points[1].Bytes != 3000 ||
			!closeTo(&p.Points[1].Bps, 400) || !closeTo(p.Points[1].PeakBps, 2400) || !closeTo(p.Summary.MaxBps, 2400) || h.Summary.TotalBytes != 38500 {
			t.Errorf("previous %+v (summary %+v)", h.Previous, h.Summary)
		}

		// The all-policies history carries the same rates and a summary per series.
		all := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history"+queryOf(
			"from", "2025-06-01T11:00:00Z", "to", "2025-06-01T11:04:00Z", "every", "1m"), a.viewer, nil), http.StatusOK)
		if len(all.Series) != 1 || all.Series[0].Summary == nil || !closeTo(all.Series[0].Summary.P95Bps, 6000) || !closeTo(all.Series[0].Points[1].PeakBps, 12000) {
			t.Errorf("all-policies history %+v", all)
		}
	}, withConfig(func(c *Config) { c.HistoryInterval = 10 * time.Second }))
}

// TestStatsHistoryTopOtherCompare checks top with other, rank and compare=previous on
// every backend: policy A is writeRatedTraffic (38500 bytes in 11:00-11:02, 2000 more at
// 10:56:03), B sends 500 bytes in each of those 12 intervals, C 100 bytes at 11:00:03.
func TestStatsHistoryTopOtherCompare(t *testing.T) {
	forEachHistoryBackend(t, func(t *testing.T, a historyAPI) {
		pa, pb, pc := a.seed().policy.ID, a.seed().policy.ID, a.seed().policy.ID
		a.writeRatedTraffic(pa)
		var deltas []history.PolicyDelta
		for k := range 12 {
			deltas = append(deltas, history.PolicyDelta{PolicyID: pb, Instance: "a", Time: at("11:00:03").Add(time.Duration(k) * 10 * time.Second), Packets: 5, Bytes: 500})
		}
		deltas = append(deltas,
			history.PolicyDelta{PolicyID: pc, Instance: "b", Time: at("11:00:03"), Packets: 1, Bytes: 100},
			history.PolicyDelta{PolicyID: pa, Instance: "a", Time: at("10:56:03"), Packets: 20, Bytes: 2000})
		a.write(deltas...)
		get := func(query ...string) apigen.StatsHistory {
			t.Helper()
			query = append([]string{"from", "2025-06-01T11:00:00Z", "to", "2025-06-01T11:04:00Z", "every", "1m"}, query...)
			return decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history"+queryOf(query...), a.viewer, nil), http.StatusOK)
		}

		h := get("top", "1", "other", "true", "compare", "previous")
		if len(h.Series) != 2 || h.Series[0].PolicyID != pa || h.Series[1].PolicyID != 0 || h.Series[1].Other == nil || !*h.Series[1].Other {
			t.Fatalf("series %+v, want A then other", h.Series)
		}
		other := h.Series[1]
		wantBytes := []int64{6*500 + 100, 6 * 500, 0, 0}
		for i, w := range wantBytes {
			if other.Points[i].Bytes != w {
				t.Errorf("other window %d: %d bytes, want %d", i, other.Points[i].Bytes, w)
			}
		}
		// The stack sums to the total of every policy, window by window.
		all := get()
		for i := range wantBytes {
			var stacked, total int64
			for _, s := range h.Series {
				stacked += s.Points[i].Bytes
			}
			for _, s := range all.Series {
				total += s.Points[i].Bytes
			}
			if stacked != total {
				t.Errorf("window %d: top+other %d bytes, all policies %d", i, stacked, total)
			}
		}
		// other's intervals: 600 bytes (480 bps) once, then 500 (400 bps) 11 times, 12 empty:
		// p95 is rank 23 of 24, the 11th non-zero ascending, 400.
		if s := other.Summary; s == nil || !closeTo(s.MaxBps, 480) || !closeTo(s.P95Bps, 400) || s.TotalBytes != 6100 || !closeTo(other.Points[0].PeakBps, 480) {
			t.Errorf("other summary %+v", other.Summary)
		}
		// compare=previous: 10:56-11:00, the same windows four minutes earlier.
		prev := h.Series[0].Previous
		if prev == nil || !prev.From.Equal(at("10:56:00")) || !prev.To.Equal(at("11:00:00")) || len(prev.Points) != 4 ||
			!prev.Points[0].Time.Equal(at("10:56:00")) || prev.Points[0].Bytes != 2000 || prev.Summary.TotalBytes != 2000 {
			t.Errorf("previous of A %+v", prev)
		}
		if p := h.Series[1].Previous; p == nil || p.Summary.TotalBytes != 0 {
			t.Errorf("previous of other %+v, want zeros", p)
		}

		// rank=p95: A 6000, B 400, C 0 (one busy interval of 24); rank=max picks A first too.
		h = get("top", "2", "rank", "p95", "other", "true")
		if len(h.Series) != 3 || h.Series[0].PolicyID != pa || h.Series[1].PolicyID != pb || h.Series[2].Summary.TotalBytes != 100 {
			t.Errorf("rank=p95 series %+v, want A, B, other with C's 100 bytes", h.Series)
		}
		if h = get("top", "1", "rank", "max"); len(h.Series) != 1 || h.Series[0].PolicyID != pa {
			t.Errorf("rank=max series %+v, want A", h.Series)
		}

		r := a.do(http.MethodGet, "/api/v1/stats/history?other=true", a.viewer, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "other") {
			t.Errorf("other without top: %d %s", r.Status, r.Body)
		}
	}, withConfig(func(c *Config) { c.HistoryInterval = 10 * time.Second }))
}
