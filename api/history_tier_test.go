package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// TestHistoryAnswersItsTier checks the tier field: a range raw still holds at the flush
// resolution is raw; an old range at 1 h windows comes from the 1h rollup, with the totals
// and peaks of what was sent.
func TestHistoryAnswersItsTier(t *testing.T) {
	for _, dialect := range []string{storage.DialectSQLite, storage.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			a, h := newTieredAPI(t, dialect)
			fx := a.seed()
			// 3 h ago (raw aged out) and 10 min ago (raw).
			old, recent := historyNow.Add(-3*time.Hour), historyNow.Add(-10*time.Minute)
			var deltas []history.PolicyDelta
			for k := range 6 {
				for _, base := range []time.Time{old, recent} {
					deltas = append(deltas, history.PolicyDelta{PolicyID: fx.policy.ID, Instance: "a", Time: base.Add(time.Duration(k)*10*time.Second + time.Second),
						Packets: int64(k + 1), Bytes: int64(1000 * (k + 1)), ActiveFlows: 1})
				}
			}
			if err := h.WriteDeltas(context.Background(), deltas); err != nil {
				t.Fatal(err)
			}
			if err := h.RetentionJob(time.Hour, nil)(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				from, to, every string
				tier            apigen.HistoryTier
				bytes           int64
			}{
				{"-4h", "-2h", "1h", apigen.HistoryTierN1H, 21000},
				{"-20m", "-5m", "10s", apigen.HistoryTierRaw, 21000},
				{"-20m", "-5m", "1m", apigen.HistoryTierN1M, 21000},
			} {
				r := a.do(http.MethodGet, historyPath(fx.policy.ID, "from", tc.from, "to", tc.to, "every", tc.every), a.viewer, nil)
				got := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK)
				if got.Tier != tc.tier || got.Summary.TotalBytes != tc.bytes || got.Summary.MaxBps == nil || *got.Summary.MaxBps != 6000*8/10 {
					t.Errorf("%s..%s at %s: tier %q, total %d, max %v; want %q, %d, 4800", tc.from, tc.to, tc.every, got.Tier, got.Summary.TotalBytes, got.Summary.MaxBps, tc.tier, tc.bytes)
				}
			}
			r := a.do(http.MethodGet, "/api/v1/stats/history"+queryOf("from", "-4h", "to", "-2h", "every", "1h"), a.viewer, nil)
			if got := decodeAs[apigen.StatsHistory](t, r, http.StatusOK); got.Tier != apigen.HistoryTierN1H || len(got.Series) != 1 {
				t.Errorf("all-policies history: tier %q, %d series; want 1h and 1", got.Tier, len(got.Series))
			}
		})
	}
}

// TestStatsHistoryOtherFromHistograms checks the other series once per-interval bytes come
// from the 1h tier's histograms: they cannot be subtracted, so other has no peak_bps,
// max_bps, p95_bps or last_bps (they used to be the total's bins minus the top policy's:
// max_bps 19621.6 over 72h..9h ago, where other's busiest interval had 4000), while its
// totals and window rates stay right; from raw and from the 1m tier other's figures are
// exact, also at 1h windows over hours already rolled up (the total's intervals come from
// the tier the policies' do). The CSV answers carry the tier and the policy name.
func TestStatsHistoryOtherFromHistograms(t *testing.T) {
	for _, dialect := range []string{storage.DialectSQLite, storage.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			a, h := newTieredAPI(t, dialect)
			top, b, c := a.seed().policy, a.seed().policy, a.seed().policy
			// In each of six intervals from base: top 10000, 20000, ... 60000 bytes, b 3000 and
			// c 2000 (other: 5000 a interval, 4000 bps). 70 h ago (1h tier, histograms), 10 h ago
			// (1m tier, exact) and 10 min ago (raw).
			var deltas []history.PolicyDelta
			for _, base := range []time.Time{historyNow.Add(-70 * time.Hour), historyNow.Add(-10 * time.Hour), historyNow.Add(-10 * time.Minute)} {
				for k := range 6 {
					ts := base.Add(time.Duration(k)*10*time.Second + time.Second)
					deltas = append(deltas,
						history.PolicyDelta{PolicyID: top.ID, Instance: "a", Time: ts, Packets: 1, Bytes: int64(10000 * (k + 1)), ActiveFlows: 1},
						history.PolicyDelta{PolicyID: b.ID, Instance: "a", Time: ts, Packets: 1, Bytes: 3000, ActiveFlows: 1},
						history.PolicyDelta{PolicyID: c.ID, Instance: "a", Time: ts, Packets: 1, Bytes: 2000, ActiveFlows: 1})
				}
			}
			if err := h.WriteDeltas(context.Background(), deltas); err != nil {
				t.Fatal(err)
			}
			if err := h.RetentionJob(time.Hour, nil)(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				from, to, every string
				tier            apigen.HistoryTier
				otherBytes      int64 // other's total
				exact           bool  // other's per-interval figures known
				p95             float64
				intervals       int64 // other's summary intervals, when exact
			}{
				{"-72h", "-9h", "1h", apigen.HistoryTierN1H, 2 * 30000, false, 0, 0},
				// Windows of 1h from the 1h tier; the intervals, the total's as the policies',
				// from the 1m tier (4 h, raw aged out), exact: 6 of 1440 intervals.
				{"-12h", "-8h", "1h", apigen.HistoryTierN1H, 30000, true, 0, 1440},
				{"-12h", "-8h", "1m", apigen.HistoryTierN1M, 30000, true, 0, 1440},  // 6 of 1440 intervals
				{"-20m", "-5m", "1m", apigen.HistoryTierN1M, 30000, true, 4000, 90}, // 6 of 90
				{"-20m", "-5m", "10s", apigen.HistoryTierRaw, 30000, true, 4000, 90},
			} {
				name := tc.from + ".." + tc.to + " at " + tc.every
				query := queryOf("from", tc.from, "to", tc.to, "every", tc.every, "top", "1", "other", "true")
				r := a.do(http.MethodGet, "/api/v1/stats/history"+query, a.viewer, nil)
				if got := r.Header.Get("X-History-Tier"); got != string(tc.tier) {
					t.Errorf("%s: X-History-Tier %q, want %q", name, got, tc.tier)
				}
				got := decodeAs[apigen.StatsHistory](t, r, http.StatusOK)
				if got.Tier != tc.tier || len(got.Series) != 2 || got.Series[0].PolicyID != top.ID || got.Series[1].Other == nil {
					t.Fatalf("%s: tier %q, series %+v; want %q, the top policy then other", name, got.Tier, got.Series, tc.tier)
				}
				// The top policy's own figures are right at every tier.
				if s := got.Series[0].Summary; s.MaxBps == nil || *s.MaxBps != 60000*8/10 {
					t.Errorf("%s: top max_bps %v, want 48000", name, s.MaxBps)
				}
				other := got.Series[1]
				s := other.Summary
				var sum int64
				for _, p := range other.Points {
					sum += p.Bytes
					if (p.PeakBps != nil) != tc.exact {
						t.Errorf("%s: other's peak_bps at %s is %v, want it present: %v", name, p.Time, p.PeakBps, tc.exact)
					}
					if tc.exact && p.Bytes > 0 && p.PeakBps != nil && *p.PeakBps != 4000 {
						t.Errorf("%s: other's peak_bps at %s is %v, want 4000", name, p.Time, *p.PeakBps)
					}
				}
				if s.TotalBytes != tc.otherBytes || sum != tc.otherBytes || s.TotalPackets != tc.otherBytes/5000*2 {
					t.Errorf("%s: other's totals %d bytes (points %d), %d packets; want %d bytes, %d packets", name, s.TotalBytes, sum, s.TotalPackets, tc.otherBytes, tc.otherBytes/5000*2)
				}
				if tc.exact {
					if s.MaxBps == nil || *s.MaxBps != 4000 || s.P95Bps == nil || *s.P95Bps != tc.p95 || s.LastBps == nil || *s.LastBps != 4000 || s.Intervals == nil || *s.Intervals != tc.intervals {
						t.Errorf("%s: other's summary max %v p95 %v last %v intervals %v; want 4000, %v, 4000, %d", name, orNilText(s.MaxBps), orNilText(s.P95Bps), orNilText(s.LastBps), orNilText(s.Intervals), tc.p95, tc.intervals)
					}
				} else if s.MaxBps != nil || s.P95Bps != nil || s.LastBps != nil || s.Intervals != nil {
					t.Errorf("%s: other's summary max %v p95 %v last %v intervals %v; want them absent", name, s.MaxBps, s.P95Bps, s.LastBps, s.Intervals)
				}

				// The same as CSV: the tier header, the top policy's name, other's peak_bps empty
				// when unknown.
				r = a.do(http.MethodGet, "/api/v1/stats/history"+query+"&format=csv", a.viewer, nil)
				if r.Status != http.StatusOK || r.Header.Get("X-History-Tier") != string(tc.tier) {
					t.Fatalf("%s as CSV: %d, X-History-Tier %q; want 200, %q", name, r.Status, r.Header.Get("X-History-Tier"), tc.tier)
				}
				rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
				if err != nil || len(rows) != 1+2*len(other.Points) || rows[0][1] != "policy_name" || rows[0][8] != "peak_bps" {
					t.Fatalf("%s as CSV: %v, rows %q", name, err, rows)
				}
				for _, row := range rows[1:] {
					wantName, wantPeak := top.Name, true
					if row[0] == "0" {
						wantName, wantPeak = "", tc.exact
					}
					if row[1] != wantName || (row[8] != "") != wantPeak {
						t.Errorf("%s as CSV: row %q; want name %q, a peak_bps: %v", name, row, wantName, wantPeak)
					}
				}
			}
			r := a.do(http.MethodGet, historyPath(top.ID, "from", "-72h", "to", "-9h", "every", "1h", "format", "csv"), a.viewer, nil)
			if r.Status != http.StatusOK || r.Header.Get("X-History-Tier") != "1h" {
				t.Errorf("one policy as CSV: %d, X-History-Tier %q; want 200, 1h", r.Status, r.Header.Get("X-History-Tier"))
			}
		})
	}
}

// orNilText is *p, or nil for a nil p, for messages.
func orNilText[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// newTieredAPI is a test API whose history is SQL with rollup tiers (10 s flushes, an hour of
// raw) and whose clock stands at historyNow.
func newTieredAPI(t *testing.T, dialect string) (*testAPI, *history.SQLHistory) {
	t.Helper()
	var h *history.SQLHistory
	a := newTestAPI(t, dialect, withConfig(func(c *Config) {
		var err error
		h, err = history.NewSQLHistoryTiers(c.DB, history.TierConfig{Interval: 10 * time.Second, RawRetention: time.Hour,
			Now: func() time.Time { return historyNow }})
		if err != nil {
			t.Fatal(err)
		}
		c.History = h
		c.HistoryInterval = 10 * time.Second
		c.Now = func() time.Time { return historyNow }
	}))
	return a, h
}
