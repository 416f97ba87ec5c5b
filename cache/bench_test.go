package cache

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	gocache "github.com/patrickmn/go-cache"

	"github.com/patronus-sdwan/patronus/storage"
)

// The benchmarks compare this package ("layer") with raw ristretto used as a
// TTL cache ("ristretto") and without TTLs ("ristretto-nottl"), the reference
// system's RWMutex map ("reference") and github.com/patrickmn/go-cache
// ("gocache"). Read the results with
//
//	go tool benchstat -col '/impl@(ristretto layer ristretto-nottl reference gocache lru)' FILE
//
// so each column is compared with raw ristretto.

const (
	benchKeys = 1024 // keys preloaded for the Get and mix benchmarks
	benchTTL  = time.Hour
)

// benchCache is what the Get and mix benchmarks drive, as closures so every
// implementation pays the same indirect call.
type benchCache struct {
	get func(int64) bool
	set func(int64, storage.PathMetrics)
}

type benchImpl struct {
	name string
	open func(b *testing.B, maxItems int64) benchCache
}

var metricsImpls = []benchImpl{
	{"ristretto", func(b *testing.B, maxItems int64) benchCache {
		rc := newRawRistretto[storage.PathMetrics](b, maxItems)
		return benchCache{
			get: func(k int64) bool { _, ok := rc.Get(k); return ok },
			set: func(k int64, v storage.PathMetrics) { rc.SetWithTTL(k, v, 1, benchTTL) },
		}
	}},
	{"layer", func(b *testing.B, maxItems int64) benchCache {
		c, err := New[int64, storage.PathMetrics](benchTTL, maxItems)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return benchCache{
			get: func(k int64) bool { _, ok := c.Get(k); return ok },
			set: func(k int64, v storage.PathMetrics) { c.Set(k, v) },
		}
	}},
	{"ristretto-nottl", func(b *testing.B, maxItems int64) benchCache {
		rc := newRawRistretto[storage.PathMetrics](b, maxItems)
		return benchCache{
			get: func(k int64) bool { _, ok := rc.Get(k); return ok },
			set: func(k int64, v storage.PathMetrics) { rc.Set(k, v, 1) },
		}
	}},
	{"reference", func(b *testing.B, _ int64) benchCache {
		c := newReferenceCache[int64, storage.PathMetrics](benchTTL)
		return benchCache{
			get: func(k int64) bool { _, ok := c.Get(k); return ok },
			set: c.Set,
		}
	}},
	{"gocache", func(b *testing.B, maxItems int64) benchCache {
		c := gocache.New(benchTTL, 0) // no janitor goroutine
		// go-cache keys are strings: convert once, outside the timed loop.
		names := make([]string, max(benchKeys, maxItems))
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		return benchCache{
			get: func(k int64) bool { _, ok := c.Get(names[k]); return ok },
			set: func(k int64, v storage.PathMetrics) { c.Set(names[k], v, gocache.DefaultExpiration) },
		}
	}},
}

func newRawRistretto[V any](b *testing.B, maxItems int64) *ristretto.Cache[int64, V] {
	rc, err := ristretto.NewCache(&ristretto.Config[int64, V]{
		NumCounters:        10 * maxItems,
		MaxCost:            maxItems,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.Close)
	return rc
}

// preload stores every benchmark key and fails unless all are readable. Raw
// ristretto applies Sets asynchronously and drops some under load, so keys
// that are not readable yet are set again, a bounded number of times.
func preload(b *testing.B, c benchCache) {
	b.Helper()
	m := storage.PathMetrics{LatencyMs: 5, MTU: 1500, Score: 90}
	missing := make([]int64, benchKeys)
	for k := range missing {
		missing[k] = int64(k)
	}
	for round := 0; len(missing) > 0 && round < 50; round++ {
		for _, k := range missing {
			m.PathID = k
			c.set(k, m)
		}
		time.Sleep(10 * time.Millisecond)
		missing = slices.DeleteFunc(missing, c.get)
	}
	if len(missing) > 0 {
		b.Fatalf("%d keys (first %d) not readable after preload", len(missing), missing[0])
	}
}

// BenchmarkGetHit reads keys that are all present, from GOMAXPROCS
// goroutines.
func BenchmarkGetHit(b *testing.B) {
	for _, impl := range metricsImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			c := impl.open(b, 1<<16)
			preload(b, c)
			var seed atomic.Uint64
			var misses atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := seed.Add(7919)
				missed := int64(0)
				for pb.Next() {
					if !c.get(int64(i % benchKeys)) {
						missed++
					}
					i++
				}
				misses.Add(missed)
			})
			if misses.Load() != 0 {
				b.Fatalf("%d misses in a hit benchmark", misses.Load())
			}
		})
	}
}

// BenchmarkMix90Read10Write does nine Gets to one Set, over present keys,
// from GOMAXPROCS goroutines.
func BenchmarkMix90Read10Write(b *testing.B) {
	for _, impl := range metricsImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			c := impl.open(b, 1<<16)
			preload(b, c)
			var seed atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(seed.Add(1), 42))
				m := storage.PathMetrics{LatencyMs: 7, MTU: 1500, Score: 80}
				for n := 0; pb.Next(); n++ {
					k := int64(r.IntN(benchKeys))
					if n%10 == 9 {
						m.PathID = k
						c.set(k, m)
					} else {
						c.get(k)
					}
				}
			})
		})
	}
}

// BenchmarkSetNewKey measures a Set of a key the cache does not hold: in the
// layer it waits for ristretto's admission verdict; raw ristretto returns
// before applying it. One goroutine.
func BenchmarkSetNewKey(b *testing.B) {
	for _, impl := range metricsImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			// Large enough that nothing is evicted; past it keys wrap.
			const maxItems = 1 << 21
			c := impl.open(b, maxItems)
			m := storage.PathMetrics{MTU: 1500}
			k := int64(0)
			for b.Loop() {
				c.set(k, m)
				k = (k + 1) % maxItems
			}
		})
	}
}

// The zipf benchmark: what ristretto is for. A Zipf-distributed stream of
// reads over zipfKeys keys goes through a cache bounded to 1% of them, each
// miss loading (allocating) a zipfValueBytes value and storing it.
const (
	zipfKeys       = 1_000_000
	zipfCapacity   = 10_000 // entries, each costing 1
	zipfValueBytes = 1024
	zipfWarmUp     = 1_000_000 // reads before the heap is measured and timing starts
	// zipfBound is the configured bound in bytes: zipfCapacity values.
	zipfBound = zipfCapacity * zipfValueBytes
)

type zipfCache struct {
	get func(int64) bool
	set func(int64, []byte)
	len func() int
}

var zipfImpls = []struct {
	name string
	open func(b *testing.B) zipfCache
}{
	{"ristretto", func(b *testing.B) zipfCache {
		rc := newRawRistretto[[]byte](b, zipfCapacity)
		held := func() int { // raw ristretto cannot count its keys; walk them
			n := 0
			rc.IterValues(func([]byte) bool { n++; return false })
			return n
		}
		return zipfCache{
			get: func(k int64) bool { _, ok := rc.Get(k); return ok },
			set: func(k int64, v []byte) { rc.Set(k, v, 1) },
			len: held,
		}
	}},
	{"layer", func(b *testing.B) zipfCache {
		c, err := New[int64, []byte](benchTTL, zipfCapacity)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Close)
		return zipfCache{
			get: func(k int64) bool { _, ok := c.Get(k); return ok },
			set: func(k int64, v []byte) { c.Set(k, v) },
			len: c.Len,
		}
	}},
	{"lru", func(b *testing.B) zipfCache {
		c, err := lru.New[int64, []byte](zipfCapacity)
		if err != nil {
			b.Fatal(err)
		}
		return zipfCache{
			get: func(k int64) bool { _, ok := c.Get(k); return ok },
			set: func(k int64, v []byte) { c.Add(k, v) },
			len: c.Len,
		}
	}},
	{"reference", func(b *testing.B) zipfCache {
		c := newReferenceCache[int64, []byte](benchTTL) // unbounded
		return zipfCache{
			get: func(k int64) bool { _, ok := c.Get(k); return ok },
			set: c.Set,
			len: c.Len,
		}
	}},
}

// BenchmarkZipf reports, per implementation, the hit ratio in steady state
// (after zipfWarmUp reads), the heap the cache holds after the warm-up and
// that heap over zipfBound. One op is one read, plus a load and Set on a
// miss. The stream comes from one goroutine; GOMAXPROCS matters only to
// ristretto, whose own goroutines apply Sets and read counts.
func BenchmarkZipf(b *testing.B) {
	for _, impl := range zipfImpls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.01, 1, zipfKeys-1)
			read := func(c zipfCache) bool {
				k := int64(zipf.Uint64())
				if c.get(k) {
					return true
				}
				c.set(k, make([]byte, zipfValueBytes))
				return false
			}

			before := heapInUse()
			c := impl.open(b)
			for range zipfWarmUp {
				read(c)
			}
			held := heapInUse() - before
			entries := c.len()

			hits, reads := 0, 0
			for b.Loop() {
				if read(c) {
					hits++
				}
				reads++
			}
			b.ReportMetric(float64(hits)/float64(reads), "hit-ratio")
			b.ReportMetric(float64(held)/1e6, "heap-MB")
			b.ReportMetric(float64(held)/zipfBound, "heap/bound")
			b.ReportMetric(float64(entries), "entries")
		})
	}
}

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
