package history_test

import (
	"context"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// fakeClock is an injectable clock the tier tests move across hours.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// tieredStore is a history store with rollup tiers and the job that maintains them.
type tieredStore struct {
	historyStore
	tier func(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
	// pathTier is tier for path history.
	pathTier func(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
	// job rolls up what settled and prunes what aged out, as the store's periodic job does.
	job func(ctx context.Context) error
	// raw reads the raw points only (a store of the same data without tiers).
	raw historyStore
}

// openTiered returns an empty tiered store with the given tiers.
type openTiered func(t *testing.T, tiers history.TierConfig) tieredStore

// sqlRetention1m is the 1-minute retention of the SQL tier tests: raw and 1m age out in
// turn. InfluxDB refuses points older than a retention policy (in real time), so its tests
// keep the 1m tier for the whole run (influxRetention1m).
const (
	sqlRetention1m    = 6 * time.Hour
	influxRetention1m = 12 * time.Hour
)

func TestHistoryTiers(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			testHistoryTiers(t, sqlRetention1m, func(t *testing.T, tiers history.TierConfig) tieredStore {
				db := storagetest.Open(t, dialect)
				h, err := history.NewSQLHistoryTiers(db, tiers)
				if err != nil {
					t.Fatal(err)
				}
				return tieredStore{historyStore: h, tier: h.Tier, pathTier: h.PathTier, job: h.RetentionJob(tiers.RawRetention, nil), raw: history.NewSQLHistory(db)}
			})
		})
	}
}

// tierTraffic is what testHistoryTiers sends: policies 1 and 2 on instances a and b, every
// 10 s for 10 hours from tierBase, with bytes that vary per interval (and some intervals
// without traffic on one instance or both).
const (
	tierHours    = 10
	tierInterval = 10 * time.Second
)

// tierBase is 11 hours before now (on the hour), so that InfluxDB, which applies retention
// policies in real time, keeps what the tests write.
var tierBase = time.Now().UTC().Truncate(time.Hour).Add(-11 * time.Hour)

func tierBytes(policy int64, instance string, k int) int64 {
	n := int64(k)*7919 + policy*104729
	if instance == "b" {
		n = n*31 + 17
	}
	if n%11 == 0 || (instance == "b" && n%3 == 0) {
		return 0 // no traffic on this instance in this interval
	}
	return 500 + n%9000 + int64(k/360)*1000 // a higher level each hour
}

// tierDeltas returns the points of hour h: instance a flushes 3 s, b 7 s into each interval.
// Path 1 carries what policy 1 does (its own points, as the collector writes them), so that
// path history is checked against the same figures.
func tierDeltas(h int) []history.PolicyDelta {
	var out []history.PolicyDelta
	for k := h * 360; k < (h+1)*360; k++ {
		for _, p := range []int64{1, 2} {
			for inst, off := range map[string]time.Duration{"a": 3 * time.Second, "b": 7 * time.Second} {
				b := tierBytes(p, inst, k)
				if b == 0 {
					continue
				}
				flows := int64(3)
				if inst == "b" {
					flows = 4
				}
				d := history.PolicyDelta{PolicyID: p, Instance: inst, Time: tierBase.Add(time.Duration(k)*tierInterval + off),
					Packets: b/100 + 1, Bytes: b, ActiveFlows: flows}
				out = append(out, d)
				if p == 1 {
					d.PolicyID, d.PathID, d.ActiveFlows = 0, 1, 0
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// expected are the figures of policy 1 over [from, to) at every, computed here from the
// definitions: per-interval bytes summed over instances, rates over seconds.
type expected struct {
	packets, bytes []int64 // per window
	peak           []float64
	avg, max, p95  float64
	last           float64
	totalBytes     int64
}

func expect(from, to time.Time, every time.Duration) expected {
	n := int((to.Sub(from) + every - 1) / every)
	e := expected{packets: make([]int64, n), bytes: make([]int64, n), peak: make([]float64, n)}
	var rates []float64
	for k := range tierHours * 360 {
		at := tierBase.Add(time.Duration(k) * tierInterval)
		if at.Before(from) || !at.Before(to) {
			continue
		}
		w := int(at.Sub(from) / every)
		var iv int64
		for _, inst := range []string{"a", "b"} {
			if b := tierBytes(1, inst, k); b > 0 {
				iv += b
				e.packets[w] += b/100 + 1
			}
		}
		e.bytes[w] += iv
		e.totalBytes += iv
		rate := float64(iv) * 8 / tierInterval.Seconds()
		rates = append(rates, rate)
		e.peak[w] = math.Max(e.peak[w], rate)
		e.max = math.Max(e.max, rate)
		if iv > 0 {
			e.last = rate
		}
	}
	slices.Sort(rates)
	e.p95 = rates[(95*len(rates)+99)/100-1]
	e.avg = float64(e.totalBytes) * 8 / to.Sub(from).Seconds()
	return e
}

func testHistoryTiers(t *testing.T, retention1m time.Duration, open openTiered) {
	ctx := context.Background()
	clock := &fakeClock{}
	tiers := history.TierConfig{Interval: tierInterval, RawRetention: 2 * time.Hour, Retention1m: retention1m,
		Retention1h: 400 * 24 * time.Hour, Settle: time.Minute, Now: clock.Now}
	h := open(t, tiers)
	// Ten hours of traffic, an hour at a time, the job running after each as the clock
	// passes; the last hour's batch is sent twice (a retry must not double count).
	for hour := range tierHours {
		clock.set(tierBase.Add(time.Duration(hour) * time.Hour).Add(30 * time.Minute))
		batch := tierDeltas(hour)
		write(t, h, batch...)
		if hour == tierHours-1 {
			write(t, h, batch...)
		}
		clock.set(tierBase.Add(time.Duration(hour+1) * time.Hour).Add(2 * time.Minute))
		if err := h.job(ctx); err != nil {
			t.Fatalf("job after hour %d: %v", hour, err)
		}
	}
	now := tierBase.Add(tierHours * time.Hour).Add(2 * time.Minute)
	// Raw has aged out for all but the last two hours.
	if h.raw != nil {
		for name, query := range map[string]func(context.Context, int64, time.Time, time.Time, time.Duration) ([]history.HistoryPoint, error){
			"policy": h.raw.QueryPolicy, "path": h.raw.QueryPath} {
			gone, err := query(ctx, 1, tierBase, tierBase.Add(7*time.Hour), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range gone {
				if p.Bytes != 0 {
					t.Fatalf("raw %s rows of %s still there: retention did not prune them", name, p.Time)
				}
			}
		}
	}

	check := func(t *testing.T, from, to time.Time, every time.Duration, wantTier string, p95Exact bool) {
		t.Helper()
		for _, series := range []struct {
			name      string
			tier      func(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
			windows   func(ctx context.Context, id int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
			intervals func(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]history.IntervalBytes, error)
			flows     int64
		}{{"policy 1", h.tier, h.QueryPolicy, h.QueryIntervals, 7}, {"path 1", h.pathTier, h.QueryPath, h.QueryPathIntervals, 0}} {
			// The same series read in one call (windows and per-interval bytes together).
			combined := h.QueryPolicyWithIntervals
			if series.name == "path 1" {
				combined = h.QueryPathWithIntervals
			}
			checkSeries(t, from, to, every, wantTier, p95Exact, series.name+" (with intervals)", series.flows,
				func() (string, []history.HistoryPoint, []history.IntervalBytes) {
					tier, err := series.tier(ctx, from, to, every)
					if err != nil {
						t.Fatal(err)
					}
					points, intervals, err := combined(ctx, 1, from, to, every, tierInterval)
					if err != nil {
						t.Fatal(err)
					}
					return tier, points, intervals
				})
			checkSeries(t, from, to, every, wantTier, p95Exact, series.name, series.flows,
				func() (string, []history.HistoryPoint, []history.IntervalBytes) {
					tier, err := series.tier(ctx, from, to, every)
					if err != nil {
						t.Fatal(err)
					}
					points, err := series.windows(ctx, 1, from, to, every)
					if err != nil {
						t.Fatal(err)
					}
					intervals, err := series.intervals(ctx, []int64{1}, from, to, tierInterval)
					if err != nil {
						t.Fatal(err)
					}
					return tier, points, intervals[1]
				})
		}
	}
	testTierReads(t, h, now, check)
}

// checkSeries compares what read returns for one series over [from, to) at every (its tier,
// windows and intervals) with the figures of policy 1 computed from the definitions.
func checkSeries(t *testing.T, from, to time.Time, every time.Duration, wantTier string, p95Exact bool, name string, flows int64,
	read func() (string, []history.HistoryPoint, []history.IntervalBytes)) {
	t.Helper()
	tier, points, intervals := read()
	if tier != wantTier {
		t.Errorf("%s: tier %q, want %q", name, tier, wantTier)
	}
	rates, sum := history.HistoryRates(points, intervals, from, to, every, tierInterval)
	e := expect(from, to, every)
	if len(points) != len(e.bytes) {
		t.Fatalf("%s: %d windows, want %d", name, len(points), len(e.bytes))
	}
	for i, p := range points {
		if p.Bytes != e.bytes[i] || p.Packets != e.packets[i] || (e.bytes[i] > 0 && every >= time.Minute && p.ActiveFlows != flows) {
			t.Errorf("%s window %s: packets %d bytes %d flows %d, want %d %d %d", name, p.Time, p.Packets, p.Bytes, p.ActiveFlows, e.packets[i], e.bytes[i], flows)
		}
		if !near(rates[i].BPS, float64(e.bytes[i])*8/every.Seconds()) || !near(rates[i].PPS, float64(e.packets[i])/every.Seconds()) || !near(rates[i].PeakBPS, e.peak[i]) {
			t.Errorf("%s window %s: bps %v pps %v peak %v, want %v %v %v", name, p.Time, rates[i].BPS, rates[i].PPS, rates[i].PeakBPS,
				float64(e.bytes[i])*8/every.Seconds(), float64(e.packets[i])/every.Seconds(), e.peak[i])
		}
	}
	if sum.TotalBytes != e.totalBytes || !near(sum.AvgBPS, e.avg) || !near(sum.MaxBPS, e.max) || !near(sum.LastBPS, e.last) {
		t.Errorf("%s summary %+v, want total %d avg %v max %v last %v", name, sum, e.totalBytes, e.avg, e.max, e.last)
	}
	if p95Exact && !near(sum.P95BPS, e.p95) || math.Abs(sum.P95BPS-e.p95) > history.RateRelativeError*e.p95 {
		t.Errorf("%s p95 %v, want %v (exact: %v)", name, sum.P95BPS, e.p95, p95Exact)
	}
}

// testTierReads runs the reads of testHistoryTiers over the data it wrote.
func testTierReads(t *testing.T, h tieredStore, now time.Time, check func(t *testing.T, from, to time.Time, every time.Duration, wantTier string, p95Exact bool)) {
	ctx := context.Background()
	t.Run("SpanningAllTiersAt1h", func(t *testing.T) {
		// Raw holds the last 2 h, 1m the last 6 h, 1h all: the 1h tier answers, totals as sent.
		check(t, tierBase, tierBase.Add(tierHours*time.Hour), time.Hour, history.Tier1h, false)
	})
	t.Run("UpToNow", func(t *testing.T) {
		// The part after the last rolled-up hour comes from raw (here: no traffic).
		check(t, tierBase, now, time.Hour, history.Tier1h, false)
	})
	t.Run("OneMinuteTierAfterRawAgedOut", func(t *testing.T) {
		check(t, tierBase.Add(5*time.Hour), tierBase.Add(7*time.Hour), time.Minute, history.Tier1m, true)
	})
	t.Run("OneMinuteTierWithRawEdges", func(t *testing.T) {
		// An edge inside a minute, within raw: the edge from raw, the rest from 1m.
		check(t, tierBase.Add(9*time.Hour+30*time.Second), tierBase.Add(9*time.Hour+30*time.Minute+30*time.Second), 30*time.Second, history.TierRaw, true)
		check(t, tierBase.Add(8*time.Hour+30*time.Minute), tierBase.Add(9*time.Hour+30*time.Minute), time.Minute, history.Tier1m, true)
	})
	t.Run("RawAtFlushResolution", func(t *testing.T) {
		check(t, tierBase.Add(9*time.Hour), tierBase.Add(10*time.Hour), tierInterval, history.TierRaw, true)
	})
	t.Run("TotalOfAllPolicies", func(t *testing.T) {
		from, to := tierBase, tierBase.Add(tierHours*time.Hour)
		points, intervals, err := h.QueryTotal(ctx, from, to, time.Hour, tierInterval)
		if err != nil {
			t.Fatal(err)
		}
		var want, got, ivs int64
		for k := range tierHours * 360 {
			for _, p := range []int64{1, 2} {
				for _, inst := range []string{"a", "b"} {
					want += tierBytes(p, inst, k)
				}
			}
		}
		for _, p := range points {
			got += p.Bytes
		}
		for _, iv := range intervals {
			ivs += iv.Bytes * max(iv.Count, 1)
		}
		if got != want || math.Abs(float64(ivs-want)) > history.RateRelativeError*float64(want) {
			t.Errorf("total bytes %d, per-interval %d, want %d", got, ivs, want)
		}
		top, err := h.QueryTop(ctx, from, to, time.Hour, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(top) != 1 {
			t.Fatalf("top 1: %d series", len(top))
		}
		// Top read with its per-interval bytes in one call answers the same, at every tier.
		for _, span := range []struct {
			from, to time.Time
			every    time.Duration
		}{{from, to, time.Hour}, {tierBase.Add(8*time.Hour + 30*time.Second), tierBase.Add(9*time.Hour + 30*time.Minute), time.Minute},
			{tierBase.Add(9 * time.Hour), tierBase.Add(10 * time.Hour), tierInterval}} {
			for _, n := range []int{0, 1} {
				want, err := h.QueryTop(ctx, span.from, span.to, span.every, n)
				if err != nil {
					t.Fatal(err)
				}
				ids := make([]int64, len(want))
				for i, s := range want {
					ids[i] = s.PolicyID
				}
				wantIntervals, err := h.QueryIntervals(ctx, ids, span.from, span.to, tierInterval)
				if err != nil {
					t.Fatal(err)
				}
				got, gotIntervals, err := h.QueryTopWithIntervals(ctx, span.from, span.to, span.every, n, tierInterval)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("top %d over %s..%s at %s with intervals: series %+v, want %+v", n, span.from, span.to, span.every, got, want)
				}
				for _, id := range ids {
					if !sameIntervals(gotIntervals[id], wantIntervals[id]) {
						t.Errorf("top %d over %s..%s at %s with intervals: policy %d's intervals differ (%d, want %d)",
							n, span.from, span.to, span.every, id, len(gotIntervals[id]), len(wantIntervals[id]))
					}
				}
			}
		}
	})
	t.Run("TotalIntervalsExactAt1h", func(t *testing.T) {
		// Hour 9 is rolled up and raw still holds it: the windows at 1h come from the 1h
		// tier, the intervals from the 1m tier (as QueryIntervals reads them), each exact.
		from, to := tierBase.Add(9*time.Hour), tierBase.Add(10*time.Hour)
		if tier, err := h.tier(ctx, from, to, time.Hour); err != nil || tier != history.Tier1h {
			t.Fatalf("tier %q (%v), want %q", tier, err, history.Tier1h)
		}
		points, intervals, err := h.QueryTotal(ctx, from, to, time.Hour, tierInterval)
		if err != nil {
			t.Fatal(err)
		}
		want := make(map[time.Time]int64)
		var wantBytes int64
		for k := 9 * 360; k < tierHours*360; k++ {
			at := tierBase.Add(time.Duration(k) * tierInterval)
			for _, p := range []int64{1, 2} {
				for _, inst := range []string{"a", "b"} {
					if b := tierBytes(p, inst, k); b > 0 {
						want[at] += b
						wantBytes += b
					}
				}
			}
		}
		if len(points) != 1 || points[0].Bytes != wantBytes {
			t.Errorf("windows %+v, want one of %d bytes", points, wantBytes)
		}
		got := make(map[time.Time]int64, len(intervals))
		for _, iv := range intervals {
			if iv.Count > 1 {
				t.Fatalf("interval %s: a histogram bin of %d intervals, want raw intervals", iv.Time, iv.Count)
			}
			if _, dup := got[iv.Time.UTC()]; dup {
				t.Fatalf("interval %s twice", iv.Time)
			}
			got[iv.Time.UTC()] = iv.Bytes
		}
		if len(got) != len(want) {
			t.Errorf("%d intervals, want %d", len(got), len(want))
		}
		for at, b := range want {
			if got[at] != b {
				t.Errorf("interval %s: %d bytes, want %d", at, got[at], b)
			}
		}
	})
	t.Run("LateWriteIsRolledUpAgain", func(t *testing.T) {
		// A spool replay into hour 8 (rolled up, raw still there): the tiers follow.
		at := tierBase.Add(8*time.Hour + 5*time.Minute + 2*time.Second)
		write(t, h, history.PolicyDelta{PolicyID: 3, Instance: "c", Time: at, Packets: 5, Bytes: 12345, ActiveFlows: 1})
		for _, tc := range []struct {
			every time.Duration
			tier  string
		}{{time.Minute, history.Tier1m}, {time.Hour, history.Tier1h}} {
			from, to := tierBase.Add(8*time.Hour), tierBase.Add(9*time.Hour)
			if tier, _ := h.tier(ctx, from, to, tc.every); tier != tc.tier {
				t.Errorf("tier %q, want %q", tier, tc.tier)
			}
			points, err := h.QueryPolicy(ctx, 3, from, to, tc.every)
			if err != nil {
				t.Fatal(err)
			}
			var bytes int64
			for _, p := range points {
				bytes += p.Bytes
			}
			if bytes != 12345 {
				t.Errorf("at %s: policy 3 has %d bytes, want 12345", tc.every, bytes)
			}
		}
	})
}

func TestInfluxHistoryTiers(t *testing.T) {
	for _, tc := range []struct {
		windowing string
		// databaseOnly names the 1.8 bucket by its database alone ("patronus", the default
		// setting), not "database/retention-policy": the tiers are still the database's.
		databaseOnly bool
	}{{history.InfluxWindowingInfluxQL, false}, {history.InfluxWindowingServer, false}, {history.InfluxWindowingInfluxQL, true}} {
		windowing := tc.windowing
		name := "influxdb-" + windowing
		if tc.databaseOnly {
			name += "-database-only"
		}
		t.Run(name, func(t *testing.T) {
			testHistoryTiers(t, influxRetention1m, func(t *testing.T, tiers history.TierConfig) tieredStore {
				serverURL, bucket := influxDatabase(t)
				if tc.databaseOnly {
					bucket, _, _ = strings.Cut(bucket, "/")
				}
				cfg := history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket, Windowing: windowing}
				raw, err := history.NewInfluxHistory(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(raw.Close)
				cfg.Tiers = &tiers
				h, err := history.NewInfluxHistory(cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(h.Close)
				// The server keeps raw points by its retention policy, in real time; the
				// store's plan takes raw as aged out after tiers.RawRetention of the test's
				// clock, so the raw view here still has them: the check that raw was pruned
				// is the SQL stores'.
				return tieredStore{historyStore: h, tier: h.Tier, pathTier: h.PathTier, job: func(ctx context.Context) error { _, _, err := h.Rollup(ctx); return err }, raw: nil}
			})
		})
	}
}

// sameIntervals says whether two answers of per-interval bytes hold the same entries, in any
// order.
func sameIntervals(a, b []history.IntervalBytes) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(iv history.IntervalBytes) [3]int64 { return [3]int64{iv.Time.UnixNano(), iv.Bytes, iv.Count} }
	count := make(map[[3]int64]int, len(a))
	for _, iv := range a {
		count[key(iv)]++
	}
	for _, iv := range b {
		if count[key(iv)]--; count[key(iv)] < 0 {
			return false
		}
	}
	return true
}
