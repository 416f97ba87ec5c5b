package cache

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRejectedSets(t *testing.T) {
	t.Run("CostAboveMaxCost", func(t *testing.T) {
		c, _ := newTestCache[string, string](t, time.Minute, 10,
			WithCost(func(v string) int64 { return int64(len(v)) }))
		mustSet(t, c, "small", "12345")
		if c.Set("big", strings.Repeat("x", 11)) {
			t.Fatal("Set of a value costing more than maxCost = true")
		}
		mustMiss(t, c, "big")
		// A rejected overwrite leaves no stale value behind.
		if c.Set("small", strings.Repeat("y", 20)) {
			t.Fatal("oversized overwrite = true")
		}
		mustMiss(t, c, "small")
		want := Stats{Misses: 2, Inserts: 1, Deletes: 1, RejectedSets: 2}
		if got := c.Stats(); got != want {
			t.Fatalf("Stats = %+v\nwant    %+v", got, want)
		}
	})

	t.Run("AdmissionPolicy", func(t *testing.T) {
		// One slot, held by a key read often: ristretto's TinyLFU refuses a
		// newcomer nobody has read. Its read counts arrive asynchronously
		// and are sometimes dropped (for whole phases of a run), so try
		// newcomers until three are refused; whatever each verdict, the
		// layer must agree with it.
		if raceEnabled {
			t.Skip("under -race ristretto's read buffer loses the read counts admission needs")
		}
		c, _ := newTestCache[string, int](t, time.Minute, 1)
		mustSet(t, c, "hot", 1)
		rejected := 0
		for i := range 1000 {
			for range 2000 {
				c.Get("hot")
			}
			newcomer := "cold" + strconv.Itoa(i)
			if c.Set(newcomer, i) {
				mustGet(t, c, newcomer, i)
				mustMiss(t, c, "hot") // evicted to make room
				mustSet(t, c, "hot", 1)
				continue
			}
			rejected++
			mustMiss(t, c, newcomer)
			mustGet(t, c, "hot", 1)
			if rejected == 3 {
				break
			}
		}
		s := c.Stats()
		if rejected == 0 || s.RejectedSets != uint64(rejected) {
			t.Fatalf("rejected %d newcomers, stats %+v: want some, all counted", rejected, s)
		}
		if s.Entries != 1 || s.Inserts != uint64(s.Entries)+s.Evictions+s.Deletes {
			t.Fatalf("stats %+v: want 1 entry and every insert accounted for", s)
		}
	})
}

func TestEvictionKeepsIndexExact(t *testing.T) {
	c, _ := newTestCache[int, int](t, time.Minute, 100)
	const n = 1000
	stored := 0
	for i := range n {
		if c.Set(i, i) {
			stored++
			mustGet(t, c, i, i) // read-your-write, whatever was evicted
		}
	}
	s := c.Stats()
	if s.Entries > 100 {
		t.Fatalf("Entries = %d, above maxCost 100", s.Entries)
	}
	if s.Inserts != uint64(stored) || s.RejectedSets != uint64(n-stored) {
		t.Fatalf("stats %+v after %d stored sets of %d", s, stored, n)
	}
	if s.Inserts != uint64(s.Entries)+s.Evictions {
		t.Fatalf("stats %+v: inserts != entries + evictions", s)
	}
	hits := 0
	for i := range n {
		if _, ok := c.Get(i); ok {
			hits++
		}
	}
	if hits != s.Entries {
		t.Fatalf("%d keys readable, Stats.Entries = %d", hits, s.Entries)
	}
}

func TestReadYourWrite(t *testing.T) {
	// ristretto applies a new key's Set asynchronously; the layer waits, so
	// a Get straight after a successful Set sees it, every time.
	c, _ := newTestCache[int, int](t, time.Minute, 1_000_000)
	for i := range 20_000 {
		mustSet(t, c, i, i)
		mustGet(t, c, i, i)
		mustSet(t, c, i, -i)
		mustGet(t, c, i, -i)
	}
	if s := c.Stats(); s.Entries != 20_000 || s.RejectedSets != 0 {
		t.Fatalf("stats = %+v, want 20000 entries, none rejected", s)
	}
}

func TestDeleteFunc(t *testing.T) {
	c, clock := newTestCache[int, int](t, time.Minute, 100)
	for i := range 10 {
		mustSet(t, c, i, i*10)
	}
	c.SetWithTTL(10, 100, time.Second)
	clock.Advance(2 * time.Second)
	n := c.DeleteFunc(func(k, v int) bool { return k%2 == 0 && v == k*10 })
	if n != 6 {
		t.Fatalf("DeleteFunc = %d, want 6 (five live, one expired)", n)
	}
	for i := range 10 {
		if i%2 == 0 {
			mustMiss(t, c, i)
		} else {
			mustGet(t, c, i, i*10)
		}
	}
	if s := c.Stats(); s.Entries != 5 || s.Deletes != 6 {
		t.Fatalf("stats = %+v, want 5 entries, 6 deletes", s)
	}
}

func TestClose(t *testing.T) {
	c, err := New[string, int](time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, c, "a", 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					c.Get("a")
					c.Set("b", 2)
				}
			}
		})
	}
	c.Close()
	close(stop)
	wg.Wait()
	c.Close() // idempotent
	mustMiss(t, c, "a")
	if c.Set("a", 1) || c.Delete("a") || c.Clear() != 0 || c.CleanupExpired() != 0 {
		t.Fatal("a closed cache accepted a write")
	}
	s := c.Stats()
	if s.Entries != 0 || s.Inserts != s.Cleared+s.Deletes+s.Evictions || s.Misses == 0 {
		t.Fatalf("stats after close = %+v", s)
	}
}

func TestRunCleanup(t *testing.T) {
	c, clock := newTestCache[int, int](t, time.Second, 100)
	for i := range 5 {
		mustSet(t, c, i, i)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		c.RunCleanup(ctx, time.Millisecond)
		close(done)
	}()
	clock.Advance(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for c.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("RunCleanup left %d expired entries", c.Len())
		}
		time.Sleep(time.Millisecond)
	}
	if s := c.Stats(); s.Expirations != 5 {
		t.Fatalf("Expirations = %d, want 5", s.Expirations)
	}
	cancel()
	<-done // RunCleanup returns when its context ends
}
