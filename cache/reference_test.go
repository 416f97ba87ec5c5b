package cache

import (
	"sync"
	"time"
)

// referenceCache is the reference system's design, as the benchmarks'
// baseline: a map of entries with deadlines behind one RWMutex, unbounded,
// expired entries kept until a cleanup.
type referenceCache[K comparable, V any] struct {
	mu      sync.RWMutex
	entries map[K]referenceEntry[V]
	ttl     time.Duration
	now     func() time.Time
}

type referenceEntry[V any] struct {
	value    V
	deadline time.Time
}

func newReferenceCache[K comparable, V any](ttl time.Duration) *referenceCache[K, V] {
	return &referenceCache[K, V]{entries: make(map[K]referenceEntry[V]), ttl: ttl, now: time.Now}
}

func (c *referenceCache[K, V]) Get(key K) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.deadline) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (c *referenceCache[K, V]) Set(key K, value V) {
	deadline := c.now().Add(c.ttl)
	c.mu.Lock()
	c.entries[key] = referenceEntry[V]{value: value, deadline: deadline}
	c.mu.Unlock()
}

func (c *referenceCache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
