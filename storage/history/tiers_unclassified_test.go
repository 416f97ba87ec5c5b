package history_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestHistoryTiersKeepUnclassifiedApart checks that the unclassified traffic (policy 0) is
// rolled up as a series of its own and stays out of the all-policies total and top at every
// tier, as the raw queries keep it out: a range read from the 1h tier and one read from raw
// give the same figures.
func TestHistoryTiersKeepUnclassifiedApart(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			testUnclassifiedTiers(t, func(t *testing.T, tiers history.TierConfig) tieredStore {
				h, err := history.NewSQLHistoryTiers(storagetest.Open(t, dialect), tiers)
				if err != nil {
					t.Fatal(err)
				}
				return tieredStore{historyStore: h, tier: h.Tier, job: h.RetentionJob(tiers.RawRetention, nil)}
			})
		})
	}
	for _, windowing := range []string{history.InfluxWindowingInfluxQL, history.InfluxWindowingServer} {
		t.Run("influxdb-"+windowing, func(t *testing.T) {
			testUnclassifiedTiers(t, func(t *testing.T, tiers history.TierConfig) tieredStore {
				serverURL, bucket := influxDatabase(t)
				cfg := history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket, Windowing: windowing, Tiers: &tiers}
				h, err := history.NewInfluxHistory(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(h.Close)
				return tieredStore{historyStore: h, tier: h.Tier, job: func(ctx context.Context) error { _, _, err := h.Rollup(ctx); return err }}
			})
		})
	}
}

func testUnclassifiedTiers(t *testing.T, open openTiered) {
	ctx := context.Background()
	clock := &fakeClock{}
	tiers := history.TierConfig{Interval: tierInterval, RawRetention: 30 * time.Minute, Retention1m: influxRetention1m,
		Retention1h: 400 * 24 * time.Hour, Settle: time.Minute, Now: clock.Now}
	h := open(t, tiers)
	// Two hours: policy 1 and the unclassified traffic every interval, policy 2 every other.
	var sent [3]int64 // bytes per policy id 0, 1, 2
	for hour := range 2 {
		clock.set(tierBase.Add(time.Duration(hour) * time.Hour).Add(30 * time.Minute))
		var batch []history.PolicyDelta
		for k := hour * 360; k < (hour+1)*360; k++ {
			at := tierBase.Add(time.Duration(k)*tierInterval + 3*time.Second)
			for id, b := range map[int64]int64{0: 700 + int64(k%13)*100, 1: 1000 + int64(k%7)*10, 2: int64(k%2) * 5000} {
				if b == 0 {
					continue
				}
				sent[id] += b
				batch = append(batch, history.PolicyDelta{PolicyID: id, Instance: "a", Time: at, Packets: 1, Bytes: b})
			}
		}
		write(t, h, batch...)
		clock.set(tierBase.Add(time.Duration(hour+1) * time.Hour).Add(2 * time.Minute))
		if err := h.job(ctx); err != nil {
			t.Fatalf("job after hour %d: %v", hour, err)
		}
	}
	from, to := tierBase, tierBase.Add(2*time.Hour)
	if tier, err := h.tier(ctx, from, to, time.Hour); err != nil || tier != history.Tier1h {
		t.Fatalf("tier %q %v, want %q: the test must read the rollups", tier, err, history.Tier1h)
	}
	sum := func(points []history.HistoryPoint) (b int64) {
		for _, p := range points {
			b += p.Bytes
		}
		return b
	}
	unclassified, err := h.QueryPolicy(ctx, history.UnclassifiedPolicyID, from, to, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum(unclassified); got != sent[0] {
		t.Errorf("unclassified series from the 1h tier: %d bytes, want %d", got, sent[0])
	}
	total, intervals, err := h.QueryTotal(ctx, from, to, time.Hour, tierInterval)
	if err != nil {
		t.Fatal(err)
	}
	if got := sum(total); got != sent[1]+sent[2] {
		t.Errorf("all-policies total from the 1h tier: %d bytes, want %d (policies 1 and 2, without the %d unclassified)", got, sent[1]+sent[2], sent[0])
	}
	var ivBytes int64
	for _, iv := range intervals {
		ivBytes += iv.Bytes * max(iv.Count, 1)
	}
	// From the 1h tier the intervals are histogram bins, each within RateRelativeError.
	if want := sent[1] + sent[2]; math.Abs(float64(ivBytes-want)) > history.RateRelativeError*float64(want) {
		t.Errorf("all-policies intervals from the 1h tier: %d bytes, want %d (within %v)", ivBytes, want, history.RateRelativeError)
	}
	series, err := h.QueryTop(ctx, from, to, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range series {
		if s.PolicyID == history.UnclassifiedPolicyID {
			t.Errorf("the all-policies history lists the unclassified traffic as a policy")
		}
	}
	if len(series) != 2 {
		t.Errorf("%d series, want policies 1 and 2", len(series))
	}
}
