package cache

import (
	"context"
	"time"
)

// CleanupExpired removes every entry whose TTL has passed by the cache's clock
// and returns how many it removed.
func (c *Cache[K, V]) CleanupExpired() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	c.reconcileLocked()
	now := c.nanos()
	n := 0
	for key, e := range c.index {
		if now >= e.deadline {
			delete(c.index, key)
			c.rc.Del(key)
			n++
		}
	}
	c.counts.expirations += uint64(n)
	return n
}

// Clear removes every entry, expired or not, and returns how many it removed.
// Gets running meanwhile see each entry or miss it; Sets wait until Clear is
// done. ristretto's admission history is reset as well.
func (c *Cache[K, V]) Clear() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	c.reconcileLocked()
	n := len(c.index)
	clear(c.index)
	// ristretto's Clear must not run beside its own Set or Del; mu keeps
	// those out. Its OnEvict calls for the dropped entries are ignored by
	// the reconcile below, as the index no longer points to them.
	c.rc.Clear()
	c.reconcileLocked()
	c.counts.cleared += uint64(n)
	return n
}

// DeleteFunc removes every entry, expired or not, for which match returns
// true, and returns how many it removed. match runs with the cache's write
// lock held: it must not call the cache.
func (c *Cache[K, V]) DeleteFunc(match func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	c.reconcileLocked()
	n := 0
	for key, e := range c.index {
		if match(key, e.value) {
			delete(c.index, key)
			c.rc.Del(key)
			n++
		}
	}
	c.counts.deletes += uint64(n)
	return n
}

// Len returns the number of entries held, including those whose TTL has
// passed and that CleanupExpired has not removed yet (Stats.Entries).
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reconcileLocked()
	return len(c.index)
}

// RunCleanup calls CleanupExpired every interval until ctx is done, so
// expired entries do not wait for eviction to free their memory. Expiry is
// judged by the cache's clock; the interval is real time and must be
// positive.
func (c *Cache[K, V]) RunCleanup(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			c.CleanupExpired()
		}
	}
}
