package cache

import (
	"testing"
	"time"
)

func TestRoutingKey(t *testing.T) {
	p0, p1 := int64(0), int64(1)
	keys := map[string][3]any{}
	for _, args := range []struct {
		src, dst string
		policy   *int64
	}{
		{"a", "bc", nil}, {"ab", "c", nil}, {"a", "b", nil}, {"b", "a", nil},
		{"a", "b", &p0}, {"a", "b", &p1}, {"", "", nil}, {"1:x", "", nil},
		{"a", "bp1", nil}, {"site:p", "2:xy", &p1},
	} {
		key := RoutingKey(args.src, args.dst, args.policy)
		if prev, dup := keys[key]; dup {
			t.Fatalf("RoutingKey(%q, %q, %v) = %q, same as for %v", args.src, args.dst, args.policy, key, prev)
		}
		keys[key] = [3]any{args.src, args.dst, args.policy}

		src, dst, policy, ok := ParseRoutingKey(key)
		if !ok || src != args.src || dst != args.dst || (policy == nil) != (args.policy == nil) ||
			policy != nil && *policy != *args.policy {
			t.Fatalf("ParseRoutingKey(%q) = %q, %q, %v, %v; want the arguments back", key, src, dst, policy, ok)
		}
	}
	for _, bad := range []string{"", "x", "1:", "2:a", "1:a1:bq", "1:a1:bp", "1:a1:bp01", "01:a1:b", "-1:a"} {
		if _, _, _, ok := ParseRoutingKey(bad); ok {
			t.Errorf("ParseRoutingKey(%q) ok, want not a routing key", bad)
		}
	}
}

func TestInvalidateRoutes(t *testing.T) {
	clock := newFakeClock()
	rc, err := NewRoutingCache(DefaultRoutingTTL, 100, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	policy := int64(3)
	fill := func() {
		t.Helper()
		for key, path := range map[string]int64{
			RoutingKey("A", "B", nil):     1,
			RoutingKey("B", "A", nil):     1,
			RoutingKey("A", "B", &policy): 2,
			RoutingKey("A", "C", nil):     3,
			RoutingKey("C", "B", nil):     2,
		} {
			mustSet(t, rc, key, RoutingDecision{SelectedPathID: path, DecidedAt: clock.Now()})
		}
	}

	fill()
	if n := InvalidateRoutesBetween(rc, "B", "A"); n != 3 {
		t.Fatalf("InvalidateRoutesBetween(B, A) = %d, want 3", n)
	}
	mustMiss(t, rc, RoutingKey("A", "B", &policy))
	if _, ok := rc.Get(RoutingKey("A", "C", nil)); !ok {
		t.Fatal("decision A->C removed by invalidating A<->B")
	}

	fill()
	if n := InvalidateRoutesOfSite(rc, "C"); n != 2 {
		t.Fatalf("InvalidateRoutesOfSite(C) = %d, want 2", n)
	}
	if n := rc.Len(); n != 3 {
		t.Fatalf("Len = %d after invalidating C, want 3", n)
	}

	fill()
	if n := InvalidateRoutesVia(rc, 2); n != 2 {
		t.Fatalf("InvalidateRoutesVia(2) = %d, want 2", n)
	}
	mustMiss(t, rc, RoutingKey("C", "B", nil))
	if _, ok := rc.Get(RoutingKey("A", "B", nil)); !ok {
		t.Fatal("decision via path 1 removed by invalidating path 2")
	}
}

func TestMetricsCacheDefaults(t *testing.T) {
	if _, err := NewMetricsCache(0, 10); err == nil {
		t.Fatal("NewMetricsCache with ttl 0 succeeded")
	}
	c, err := NewMetricsCache(time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := c.Stats(); s != (Stats{}) {
		t.Fatalf("new cache stats = %+v, want zero", s)
	}
}
