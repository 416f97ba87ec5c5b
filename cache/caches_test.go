package cache

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/storage"
)

func newTestCaches(t *testing.T) (*Caches, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	c, err := NewCaches(CachesConfig{MaxEntries: 100, Options: []Option{WithClock(clock.Now)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, clock
}

func TestCachesFill(t *testing.T) {
	c, _ := newTestCaches(t)
	old := storage.PathMetrics{PathID: 3, Score: 50}
	fresh := storage.PathMetrics{PathID: 3, Score: 90}

	t.Run("Fill", func(t *testing.T) {
		if !c.FillMetrics(c.MetricsGeneration(3), old) {
			t.Fatal("fill refused")
		}
		mustGet(t, c.Metrics, 3, old)
	})
	t.Run("WriteSpoilsFillInFlight", func(t *testing.T) {
		gen := c.MetricsGeneration(3) // a reader misses and goes to the database...
		c.StoreMetrics(fresh)         // ...a writer commits and stores...
		if c.FillMetrics(gen, old) {  // ...the reader's older read must not win.
			t.Fatal("a fill begun before a write stored its older value")
		}
		mustGet(t, c.Metrics, 3, fresh)
	})
	t.Run("OtherStripeUnaffected", func(t *testing.T) {
		gen := c.MetricsGeneration(4)
		c.StoreMetrics(storage.PathMetrics{PathID: 5})
		if !c.FillMetrics(gen, storage.PathMetrics{PathID: 4}) {
			t.Fatal("a write to path 5 spoiled the fill of path 4")
		}
	})
	t.Run("InvalidateSpoilsFillInFlight", func(t *testing.T) {
		gen := c.MetricsGeneration(3)
		c.InvalidatePaths([]int64{3})
		mustMiss(t, c.Metrics, 3)
		if c.FillMetrics(gen, fresh) {
			t.Fatal("a fill begun before an invalidation stored")
		}
		mustMiss(t, c.Metrics, 3)
	})
	t.Run("ClearSpoilsFillInFlight", func(t *testing.T) {
		gen := c.MetricsGeneration(3)
		rgen := c.RoutingGeneration()
		c.Clear(NameMetrics)
		c.Clear(NameRouting)
		if c.FillMetrics(gen, fresh) || c.FillRouting(rgen, "k", RoutingDecision{}) {
			t.Fatal("a fill begun before a clear stored")
		}
		if !c.FillMetrics(c.MetricsGeneration(3), fresh) {
			t.Fatal("fill after clear refused")
		}
	})
}

func TestCachesInvalidateRoutes(t *testing.T) {
	c, _ := newTestCaches(t)
	policy := int64(9)
	keyAB, keyAC, keyABp := RoutingKey("a", "b", nil), RoutingKey("a", "c", nil), RoutingKey("a", "b", &policy)
	fill := func() {
		t.Helper()
		for key, d := range map[string]RoutingDecision{
			keyAB:  {SelectedPathID: 1, PathIDs: []int64{1, 2}},
			keyABp: {SelectedPathID: 2, PathIDs: []int64{1, 2}},
			keyAC:  {SelectedPathID: 3, PathIDs: []int64{3}},
		} {
			if !c.FillRouting(c.RoutingGeneration(), key, d) {
				t.Fatalf("fill %s refused", key)
			}
		}
	}

	fill()
	gen := c.RoutingGeneration()
	c.StoreMetrics(storage.PathMetrics{PathID: 2}) // path 2 was not chosen, yet it may win now
	mustMiss(t, c.Routing, keyAB)
	mustMiss(t, c.Routing, keyABp)
	if _, ok := c.Routing.Get(keyAC); !ok {
		t.Fatal("a decision among other paths was dropped")
	}
	if c.FillRouting(gen, keyAB, RoutingDecision{SelectedPathID: 1}) {
		t.Fatal("a decision computed before the metrics write was stored")
	}

	fill()
	c.InvalidatePaths([]int64{3})
	mustMiss(t, c.Routing, keyAC)
	if c.Routing.Len() != 2 {
		t.Fatalf("%d decisions left, want 2", c.Routing.Len())
	}

	c.InvalidateRoutes()
	if c.Routing.Len() != 0 {
		t.Fatalf("%d decisions left after InvalidateRoutes", c.Routing.Len())
	}
	if _, ok := c.Clear("sessions"); ok {
		t.Fatal("Clear of an unknown cache succeeded")
	}
}

func TestCachesCollector(t *testing.T) {
	c, clock := newTestCaches(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	c.StoreMetrics(storage.PathMetrics{PathID: 1})
	c.Metrics.Get(1)
	c.Metrics.Get(2)
	c.Routing.Get("x")
	clock.Advance(DefaultMetricsTTL)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[f.GetName()+"/"+m.GetLabel()[0].GetValue()] = v
		}
	}
	for key, want := range map[string]float64{
		"patronus_cache_hits_total/metrics":          1,
		"patronus_cache_misses_total/metrics":        1,
		"patronus_cache_misses_total/routing":        1,
		"patronus_cache_entries/metrics":             1, // expired, not yet cleaned up
		"patronus_cache_entries/routing":             0,
		"patronus_cache_evictions_total/metrics":     0,
		"patronus_cache_rejected_sets_total/routing": 0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	if len(got) != 10 {
		t.Errorf("%d series, want 5 metrics for each of 2 caches: %v", len(got), got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.RunCleanup(ctx, time.Millisecond); close(done) }()
	for c.Metrics.Len() != 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
