package cache

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// newTestCache returns a cache on a fake clock, closed when the test ends.
func newTestCache[K Key, V any](t testing.TB, ttl time.Duration, maxCost int64, opts ...Option) (*Cache[K, V], *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	c, err := New[K, V](ttl, maxCost, append([]Option{WithClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("new cache: %v", err)
	}
	t.Cleanup(c.Close)
	return c, clock
}

// mustGet fails the test unless key holds want.
func mustGet[K Key, V any](t *testing.T, c *Cache[K, V], key K, want V) {
	t.Helper()
	got, ok := c.Get(key)
	if !ok {
		t.Fatalf("Get(%v): miss, want %v", key, want)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Get(%v) = %v, want %v", key, got, want)
	}
}

// mustMiss fails the test if key holds a value.
func mustMiss[K Key, V any](t *testing.T, c *Cache[K, V], key K) {
	t.Helper()
	if got, ok := c.Get(key); ok {
		t.Fatalf("Get(%v) = %v, want a miss", key, got)
	}
}

func mustSet[K Key, V any](t *testing.T, c *Cache[K, V], key K, value V) {
	t.Helper()
	if !c.Set(key, value) {
		t.Fatalf("Set(%v) = false, want true", key)
	}
}
