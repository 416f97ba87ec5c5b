package cache

// Stats is a snapshot of a cache's contents and of its counters since New.
// Clear does not reset the counters. Taken while nothing else uses the cache,
// it satisfies
//
//	Entries == Active + Expired
//	Hits + Misses == number of Get calls
//	Inserts == Entries + Evictions + Expirations + Deletes + Cleared
type Stats struct {
	// Entries is the number of keys held, live or expired.
	Entries int
	// Active is the number of entries whose TTL has not passed: the ones Get
	// can return.
	Active int
	// Expired is the number of entries whose TTL has passed but that no
	// CleanupExpired has removed yet. Get never returns them.
	Expired int

	// Hits counts Gets that returned a value.
	Hits uint64
	// Misses counts Gets that returned nothing: the key was absent, expired,
	// refused by admission, evicted, or the cache was closed.
	Misses uint64
	// HitRatio is Hits / (Hits + Misses), or 0 before the first Get.
	HitRatio float64

	// Inserts counts Sets that stored a key the cache did not hold; a Set of
	// a held key replaces its entry and is not counted.
	Inserts uint64
	// Evictions counts entries ristretto dropped to stay within maxCost.
	Evictions uint64
	// Expirations counts entries removed by CleanupExpired (or RunCleanup)
	// because their TTL had passed.
	Expirations uint64
	// Deletes counts entries removed by Delete and DeleteFunc, and entries
	// dropped because the Set replacing them was rejected.
	Deletes uint64
	// Cleared counts entries removed by Clear and Close.
	Cleared uint64
	// RejectedSets counts Sets that stored nothing: refused by ristretto's
	// admission policy, costing more than maxCost, or dropped because
	// ristretto's set buffer stayed full.
	RejectedSets uint64
}

// Stats returns a snapshot of the cache's contents and counters. It walks the
// index to split live from expired entries, so it costs O(entries).
func (c *Cache[K, V]) Stats() Stats {
	c.mu.Lock()
	c.reconcileLocked()
	now := c.nanos()
	s := Stats{
		Entries:      len(c.index),
		Inserts:      c.counts.inserts,
		Evictions:    c.counts.evictions,
		Expirations:  c.counts.expirations,
		Deletes:      c.counts.deletes,
		Cleared:      c.counts.cleared,
		RejectedSets: c.counts.rejectedSets,
	}
	for _, e := range c.index {
		if now < e.deadline {
			s.Active++
		}
	}
	c.mu.Unlock()
	s.Expired = s.Entries - s.Active
	for i := range c.readers {
		s.Hits += c.readers[i].hits.Load()
		s.Misses += c.readers[i].misses.Load()
	}
	if total := s.Hits + s.Misses; total > 0 {
		s.HitRatio = float64(s.Hits) / float64(total)
	}
	return s
}
