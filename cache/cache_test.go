package cache

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// TestReference covers the twelve behaviours of the reference cache's tests,
// on a fake clock instead of sleeps.
func TestReference(t *testing.T) {
	t.Run("BasicOperations", func(t *testing.T) {
		c, _ := newTestCache[string, string](t, time.Minute, 100)
		mustMiss(t, c, "key")
		mustSet(t, c, "key", "value")
		mustGet(t, c, "key", "value")
		mustMiss(t, c, "other")
		if n := c.Len(); n != 1 {
			t.Fatalf("Len = %d, want 1", n)
		}
	})

	t.Run("Expiration", func(t *testing.T) {
		c, clock := newTestCache[string, string](t, 100*time.Millisecond, 100)
		mustSet(t, c, "key", "value")
		clock.Advance(99 * time.Millisecond)
		mustGet(t, c, "key", "value")
		clock.Advance(51 * time.Millisecond)
		mustMiss(t, c, "key")
		// Still held until cleaned up, but never returned.
		if s := c.Stats(); s.Entries != 1 || s.Expired != 1 || s.Active != 0 {
			t.Fatalf("stats after expiry = %+v, want 1 entry, 1 expired", s)
		}
	})

	t.Run("CustomTTL", func(t *testing.T) {
		c, clock := newTestCache[string, string](t, time.Minute, 100)
		mustSet(t, c, "default", "a")
		if !c.SetWithTTL("short", "b", 10*time.Second) {
			t.Fatal("SetWithTTL = false")
		}
		if !c.SetWithTTL("long", "c", time.Hour) {
			t.Fatal("SetWithTTL = false")
		}
		clock.Advance(11 * time.Second)
		mustMiss(t, c, "short")
		mustGet(t, c, "default", "a")
		clock.Advance(time.Minute)
		mustMiss(t, c, "default")
		mustGet(t, c, "long", "c")
	})

	t.Run("Remove", func(t *testing.T) {
		c, _ := newTestCache[string, string](t, time.Minute, 100)
		mustSet(t, c, "key", "value")
		mustSet(t, c, "keep", "value")
		if !c.Delete("key") {
			t.Fatal("Delete of a held key = false")
		}
		mustMiss(t, c, "key")
		mustGet(t, c, "keep", "value")
		if c.Delete("key") {
			t.Fatal("second Delete = true")
		}
		if s := c.Stats(); s.Entries != 1 || s.Deletes != 1 {
			t.Fatalf("stats = %+v, want 1 entry, 1 delete", s)
		}
	})

	t.Run("CleanupExpired", func(t *testing.T) {
		c, clock := newTestCache[int64, string](t, time.Second, 100)
		for i := range int64(3) {
			mustSet(t, c, i, "v")
		}
		if n := c.CleanupExpired(); n != 0 {
			t.Fatalf("CleanupExpired before expiry = %d, want 0", n)
		}
		clock.Advance(time.Second)
		if n := c.CleanupExpired(); n != 3 {
			t.Fatalf("CleanupExpired = %d, want 3", n)
		}
		if s := c.Stats(); s.Entries != 0 || s.Expirations != 3 {
			t.Fatalf("stats = %+v, want 0 entries, 3 expirations", s)
		}
	})

	t.Run("PartialCleanup", func(t *testing.T) {
		c, clock := newTestCache[string, int](t, time.Hour, 100)
		for i := range 2 {
			c.SetWithTTL("short"+strconv.Itoa(i), i, time.Second)
		}
		for i := range 3 {
			c.SetWithTTL("long"+strconv.Itoa(i), i, time.Minute)
		}
		clock.Advance(2 * time.Second)
		if s := c.Stats(); s.Entries != 5 || s.Active != 3 || s.Expired != 2 {
			t.Fatalf("stats before cleanup = %+v, want 5 entries, 3 active, 2 expired", s)
		}
		if n := c.CleanupExpired(); n != 2 {
			t.Fatalf("CleanupExpired = %d, want 2", n)
		}
		if n := c.Len(); n != 3 {
			t.Fatalf("Len = %d, want 3", n)
		}
		for i := range 3 {
			mustGet(t, c, "long"+strconv.Itoa(i), i)
		}
	})

	t.Run("Clear", func(t *testing.T) {
		c, clock := newTestCache[string, int](t, time.Minute, 100)
		for i := range 5 {
			mustSet(t, c, strconv.Itoa(i), i)
		}
		c.SetWithTTL("expired", 9, time.Second)
		clock.Advance(2 * time.Second)
		if n := c.Clear(); n != 6 {
			t.Fatalf("Clear = %d, want 6 (expired entries count too)", n)
		}
		for i := range 5 {
			mustMiss(t, c, strconv.Itoa(i))
		}
		if n := c.Clear(); n != 0 {
			t.Fatalf("second Clear = %d, want 0", n)
		}
		// The cache works after a clear.
		mustSet(t, c, "again", 1)
		mustGet(t, c, "again", 1)
		if s := c.Stats(); s.Entries != 1 || s.Cleared != 6 {
			t.Fatalf("stats = %+v, want 1 entry, 6 cleared", s)
		}
	})

	t.Run("Stats", func(t *testing.T) {
		c, clock := newTestCache[string, int](t, time.Minute, 100)
		mustSet(t, c, "a", 1)
		mustSet(t, c, "b", 2)
		c.SetWithTTL("c", 3, time.Second)
		clock.Advance(2 * time.Second)
		mustGet(t, c, "a", 1)
		mustGet(t, c, "b", 2)
		mustGet(t, c, "a", 1)
		mustMiss(t, c, "c") // expired: a miss
		mustMiss(t, c, "z") // absent: a miss
		want := Stats{
			Entries: 3, Active: 2, Expired: 1,
			Hits: 3, Misses: 2, HitRatio: 0.6,
			Inserts: 3,
		}
		if got := c.Stats(); got != want {
			t.Fatalf("Stats = %+v\nwant    %+v", got, want)
		}
	})

	t.Run("MetricsCache", func(t *testing.T) {
		clock := newFakeClock()
		c, err := NewMetricsCache(DefaultMetricsTTL, 1000, WithClock(clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		m := storage.PathMetrics{
			PathID: 7, LatencyMs: 5, JitterMs: 0.1, PacketLossPct: 0.5,
			BandwidthMbps: 100, MTU: 1500, Score: 95, MeasuredAt: clock.Now(),
		}
		mustSet(t, c, m.PathID, m)
		mustGet(t, c, 7, m)
		mustMiss(t, c, 8)
		clock.Advance(DefaultMetricsTTL)
		mustMiss(t, c, 7)
	})

	t.Run("RoutingCache", func(t *testing.T) {
		clock := newFakeClock()
		c, err := NewRoutingCache(DefaultRoutingTTL, 1000, WithClock(clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		score := 90
		d := RoutingDecision{SelectedPathID: 123, Reason: "best latency", Score: &score, DecidedAt: clock.Now(), PathIDs: []int64{123, 124}}
		key := RoutingKey("site-a", "site-b", nil)
		mustSet(t, c, key, d)
		mustGet(t, c, key, d)
		policy := int64(4)
		mustMiss(t, c, RoutingKey("site-a", "site-b", &policy))
		clock.Advance(DefaultRoutingTTL - time.Nanosecond)
		mustGet(t, c, key, d)
		clock.Advance(time.Nanosecond)
		mustMiss(t, c, key)
	})

	t.Run("Overwrite", func(t *testing.T) {
		c, clock := newTestCache[string, string](t, 10*time.Second, 100)
		mustSet(t, c, "key", "v1")
		clock.Advance(8 * time.Second)
		mustSet(t, c, "key", "v2")
		mustGet(t, c, "key", "v2")
		// The overwrite restarted the TTL.
		clock.Advance(8 * time.Second)
		mustGet(t, c, "key", "v2")
		if s := c.Stats(); s.Entries != 1 || s.Inserts != 1 {
			t.Fatalf("stats = %+v, want 1 entry inserted once", s)
		}
	})

	t.Run("EntryExpiry", func(t *testing.T) {
		c, clock := newTestCache[string, string](t, time.Minute, 100)
		c.SetWithTTL("key", "v", 5*time.Second)
		clock.Advance(5*time.Second - time.Nanosecond)
		mustGet(t, c, "key", "v")
		if s := c.Stats(); s.Active != 1 {
			t.Fatalf("Active = %d one nanosecond before the deadline, want 1", s.Active)
		}
		clock.Advance(time.Nanosecond)
		mustMiss(t, c, "key")
		if s := c.Stats(); s.Expired != 1 {
			t.Fatalf("Expired = %d at the deadline, want 1", s.Expired)
		}
		// A ttl <= 0 means already expired: nothing is stored.
		mustSet(t, c, "gone", "v")
		if c.SetWithTTL("gone", "v2", 0) {
			t.Fatal("SetWithTTL with ttl 0 = true")
		}
		mustMiss(t, c, "gone")
	})
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	cases := map[string]struct {
		ttl     time.Duration
		maxCost int64
		opts    []Option
	}{
		"ZeroTTL":          {0, 10, nil},
		"ZeroMaxCost":      {time.Second, 0, nil},
		"NilClock":         {time.Second, 10, []Option{WithClock(nil)}},
		"CostOfOtherType":  {time.Second, 10, []Option{WithCost(func(int) int64 { return 1 })}},
		"NegativeCounters": {time.Second, 10, []Option{WithNumCounters(-1)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := New[string, string](tc.ttl, tc.maxCost, tc.opts...)
			if !errors.Is(err, ErrInvalid) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("New error = %v, want ErrInvalid", err)
			}
		})
	}
}
