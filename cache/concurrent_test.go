package cache

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentStatsStayExact runs readers, writers, deleters, cleaners and
// clearers at once on a cache smaller than its key space, so ristretto evicts
// and rejects too, while the writers move the clock so entries expire. Afterwards every
// counter must add up. Run it with -race.
func TestConcurrentStatsStayExact(t *testing.T) {
	const (
		keys     = 256
		capacity = 64
		rounds   = 3000
	)
	c, clock := newTestCache[int, int](t, 50*time.Millisecond, capacity)

	var (
		gets, cleared, cleaned, deleted atomic.Uint64
		wg, maintenance                 sync.WaitGroup
	)
	stop := make(chan struct{})
	for range 4 { // readers
		wg.Go(func() {
			for i := range rounds * 4 {
				if v, ok := c.Get(rand.IntN(keys)); ok && v < 0 {
					t.Errorf("Get returned %d, never stored", v)
				}
				gets.Add(1)
				interleave(i)
			}
		})
	}
	for range 2 { // writers, with mixed TTLs, moving the clock as they go
		wg.Go(func() {
			for i := range rounds {
				k := rand.IntN(keys)
				c.SetWithTTL(k, k, time.Duration(1+rand.IntN(50))*100*time.Microsecond)
				if i%10 == 0 {
					clock.Advance(100 * time.Microsecond)
				}
				interleave(i)
			}
		})
	}
	wg.Go(func() { // deleter
		for i := range rounds {
			if c.Delete(rand.IntN(keys)) {
				deleted.Add(1)
			}
			if i%100 == 0 {
				deleted.Add(uint64(c.DeleteFunc(func(k, _ int) bool { return k%7 == 0 })))
			}
			interleave(i)
		}
	})
	maintenance.Go(func() { // cleanup and clear, until the others stop
		for i := 0; ; i++ {
			select {
			case <-stop:
				if i >= 100 {
					return
				}
			default:
			}
			cleaned.Add(uint64(c.CleanupExpired()))
			if i%20 == 0 {
				cleared.Add(uint64(c.Clear()))
			}
			runtime.Gosched()
		}
	})
	maintenance.Go(func() { // stats while all that runs
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s := c.Stats(); s.Entries != s.Active+s.Expired || s.Entries > capacity {
				t.Errorf("inconsistent stats mid-run: %+v", s)
			}
			runtime.Gosched()
		}
	})
	wg.Wait()
	close(stop)
	maintenance.Wait()
	cleaned.Add(uint64(c.CleanupExpired()))
	// Refill, so the checks below look at a full cache and not an empty one.
	for k := range keys {
		c.Set(k, k)
	}

	s := c.Stats()
	t.Logf("final stats: %+v", s)
	if s.Entries != s.Active+s.Expired {
		t.Errorf("Entries %d != Active %d + Expired %d", s.Entries, s.Active, s.Expired)
	}
	if s.Hits+s.Misses != gets.Load() {
		t.Errorf("Hits %d + Misses %d != %d Gets", s.Hits, s.Misses, gets.Load())
	}
	if s.Cleared != cleared.Load() {
		t.Errorf("Stats.Cleared = %d, Clear returned %d in all", s.Cleared, cleared.Load())
	}
	if s.Expirations != cleaned.Load() {
		t.Errorf("Stats.Expirations = %d, CleanupExpired returned %d in all", s.Expirations, cleaned.Load())
	}
	if s.Deletes < deleted.Load() {
		t.Errorf("Stats.Deletes = %d, below the %d deletes reported", s.Deletes, deleted.Load())
	}
	if out := uint64(s.Entries) + s.Evictions + s.Expirations + s.Deletes + s.Cleared; s.Inserts != out {
		t.Errorf("Inserts %d != Entries + Evictions + Expirations + Deletes + Cleared = %d", s.Inserts, out)
	}
	if s.Cleared == 0 || s.Expirations == 0 || s.Evictions+s.RejectedSets == 0 {
		t.Errorf("the run did not exercise clear, expiry and capacity: %+v", s)
	}

	// The index and ristretto's store agree: exactly the active entries are
	// readable, and removing everything removes exactly Entries.
	readable := 0
	for k := range keys {
		if _, ok := c.Get(k); ok {
			readable++
		}
	}
	if readable != s.Active {
		t.Errorf("%d keys readable, Stats.Active = %d", readable, s.Active)
	}
	if n := c.DeleteFunc(func(int, int) bool { return true }); n != s.Entries {
		t.Errorf("DeleteFunc(all) = %d, Stats.Entries = %d", n, s.Entries)
	}
	for k := range keys {
		mustMiss(t, c, k)
	}
}

// interleave yields now and then, so the goroutines of a test take turns
// even when GOMAXPROCS is 1.
func interleave(i int) {
	if i%32 == 0 {
		runtime.Gosched()
	}
}
