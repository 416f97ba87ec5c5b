package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// TestHistoryAnswersItsTier checks the tier field: a range raw still holds at the flush
// resolution is raw; an old range at 1 h windows comes from the 1h rollup, with the totals
// and peaks of what was sent.
func TestHistoryAnswersItsTier(t *testing.T) {
	for _, dialect := range []string{storage.DialectSQLite, storage.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			var h *storage.SQLHistory
			a := newTestAPI(t, dialect, withConfig(func(c *Config) {
				var err error
				h, err = storage.NewSQLHistoryTiers(c.DB, storage.TierConfig{Interval: 10 * time.Second, RawRetention: time.Hour,
					Now: func() time.Time { return historyNow }})
				if err != nil {
					t.Fatal(err)
				}
				c.History = h
				c.HistoryInterval = 10 * time.Second
				c.Now = func() time.Time { return historyNow }
			}))
			fx := a.seed()
			// 3 h ago (raw aged out) and 10 min ago (raw).
			old, recent := historyNow.Add(-3*time.Hour), historyNow.Add(-10*time.Minute)
			var deltas []storage.PolicyDelta
			for k := range 6 {
				for _, base := range []time.Time{old, recent} {
					deltas = append(deltas, storage.PolicyDelta{PolicyID: fx.policy.ID, Instance: "a", Time: base.Add(time.Duration(k)*10*time.Second + time.Second),
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
