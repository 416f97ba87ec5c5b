package cache

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
)

// Key is the set of key types the cache accepts: the comparable types that
// ristretto can hash, integers and strings. Types defined on them work too,
// hashed through reflection, which is slower.
type Key interface {
	comparable
	ristretto.Key
}

// Cache is a bounded TTL cache: ristretto decides what stays within maxCost,
// this layer decides what has expired and keeps exact counts. It is safe for
// concurrent use; see the package doc for what each method guarantees.
type Cache[K Key, V any] struct {
	rc         *ristretto.Cache[K, *entry[K, V]]
	defaultTTL time.Duration
	maxCost    int64
	costOf     func(V) int64
	// Deadlines are nanoseconds since epoch: by the monotonic clock, one
	// clock read per Get, unless WithClock gave a clock.
	epoch time.Time
	clock func() time.Time
	// closing is set by Close before it waits for Gets in flight to leave.
	closing atomic.Bool

	_ [64]byte // keep the fields above, read by every Get, off the shards' lines
	// readers count the Gets that enter and leave, as a hit or a miss, so
	// Close knows when no Get is inside ristretto. They are spread over
	// padded shards so parallel Gets do not write the same cache line.
	readers [numReadShards]readShard

	// mu serialises everything that changes the index or calls ristretto's
	// Set, Del, Wait, Clear or Close, so the index and ristretto's store
	// change in the same order. Get never takes it.
	mu     sync.Mutex
	index  map[K]*entry[K, V]
	closed bool
	counts counters

	// removed collects entries that ristretto evicted, from its callbacks.
	// The callbacks run on ristretto's goroutine, which mu's holder may be
	// waiting for, so they only append here and mu's holder reconciles.
	removedMu sync.Mutex
	removed   []*entry[K, V]
	// anyRemoved is set with removed, so reconciling finds an empty list
	// without taking removedMu.
	anyRemoved atomic.Bool
}

// entry is what ristretto stores: the key travels with the value because
// ristretto's callbacks only see the key's hash. Each Set makes a new entry,
// so the pointer identifies one write.
type entry[K Key, V any] struct {
	key      K
	value    V
	deadline int64 // nanoseconds since the cache's epoch; live while now < deadline
	inPlace  atomic.Bool
	rejected atomic.Bool
}

type counters struct {
	inserts, evictions, expirations, deletes, cleared, rejectedSets uint64
}

const (
	readShardBits = 6
	numReadShards = 1 << readShardBits
)

type readShard struct {
	enters atomic.Uint64
	hits   atomic.Uint64
	misses atomic.Uint64
	_      [128 - 24]byte // keep shards on separate cache lines
}

// ErrInvalid is wrapped by New when an argument or option is out of range.
var ErrInvalid = errors.New("invalid cache configuration")

// New returns a cache whose entries live for defaultTTL unless SetWithTTL says
// otherwise and whose entries' costs (1 each unless WithCost) sum to at most
// maxCost. Call Close when done with it to stop ristretto's goroutines.
func New[K Key, V any](defaultTTL time.Duration, maxCost int64, opts ...Option) (*Cache[K, V], error) {
	if defaultTTL <= 0 {
		return nil, fmt.Errorf("new cache: default ttl %v must be positive: %w", defaultTTL, ErrInvalid)
	}
	if maxCost <= 0 {
		return nil, fmt.Errorf("new cache: max cost %d must be positive: %w", maxCost, ErrInvalid)
	}
	cfg, costOf, err := buildConfig[V](maxCost, opts)
	if err != nil {
		return nil, fmt.Errorf("new cache: %w: %w", err, ErrInvalid)
	}
	c := &Cache[K, V]{
		defaultTTL: defaultTTL,
		maxCost:    maxCost,
		clock:      cfg.clock,
		costOf:     costOf,
		index:      make(map[K]*entry[K, V]),
	}
	rc, err := ristretto.NewCache(&ristretto.Config[K, *entry[K, V]]{
		NumCounters:        cfg.numCounters,
		MaxCost:            maxCost,
		BufferItems:        64,
		IgnoreInternalCost: true, // costs are the caller's units, not bytes
		OnEvict:            c.onEvict,
		OnReject:           onReject[K, V],
		ShouldUpdate:       markInPlace[K, V],
	})
	if err != nil {
		return nil, fmt.Errorf("new cache: ristretto: %w", err)
	}
	c.rc = rc
	if c.clock != nil {
		c.epoch = c.clock()
	} else {
		c.epoch = time.Now()
	}
	return c, nil
}

// nanos is the time by the cache's clock, in nanoseconds since its epoch.
// time.Since reads only the monotonic clock, half the cost of time.Now.
func (c *Cache[K, V]) nanos() int64 {
	if c.clock == nil {
		return int64(time.Since(c.epoch))
	}
	return int64(c.clock().Sub(c.epoch))
}

// deadline is when an entry stored now for ttl expires, saturating.
func (c *Cache[K, V]) deadline(ttl time.Duration) int64 {
	now := c.nanos()
	if int64(ttl) > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + int64(ttl)
}

// onEvict runs on ristretto's goroutine when it drops an entry for space, and
// for every entry when the store is cleared.
func (c *Cache[K, V]) onEvict(item *ristretto.Item[*entry[K, V]]) {
	if item.Value == nil {
		return
	}
	c.removedMu.Lock()
	c.removed = append(c.removed, item.Value)
	c.anyRemoved.Store(true)
	c.removedMu.Unlock()
}

// onReject runs on ristretto's goroutine when admission refuses a new entry;
// the Set that made it is waiting and reads the flag.
func onReject[K Key, V any](item *ristretto.Item[*entry[K, V]]) {
	if item.Value != nil {
		item.Value.rejected.Store(true)
	}
}

// markInPlace is ristretto's ShouldUpdate hook. ristretto calls it inside Set
// when the key is already stored and the new entry replaces the old one at
// once, so the Set knows it need not wait.
func markInPlace[K Key, V any](cur, _ *entry[K, V]) bool {
	cur.inPlace.Store(true)
	return true
}

// Get returns the value stored under key if its TTL has not passed by the
// cache's clock. It never blocks on writers.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	r := &c.readers[readShardIndex()]
	r.enters.Add(1)
	if !c.closing.Load() {
		e, ok := c.rc.Get(key)
		if ok && e != nil && c.nanos() < e.deadline {
			r.hits.Add(1)
			return e.value, true
		}
	}
	r.misses.Add(1)
	var zero V
	return zero, false
}

// Set stores value under key for the default TTL. It reports whether the
// value is stored: false when admission refused it (then the key has no
// entry at all) or the cache is closed.
func (c *Cache[K, V]) Set(key K, value V) bool {
	return c.SetWithTTL(key, value, c.defaultTTL)
}

// SetWithTTL stores value under key until ttl has passed by the cache's
// clock, replacing any entry the key had. A ttl <= 0 stores nothing and
// removes the key's entry, as if it had expired at once. It reports whether
// the value is stored; when it returns true the next Get from any goroutine
// sees the value, unless something has removed it in between.
func (c *Cache[K, V]) SetWithTTL(key K, value V, ttl time.Duration) bool {
	if ttl <= 0 {
		c.Delete(key)
		return false
	}
	cost := c.costOf(value)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.reconcileLocked()
	if cost < 0 || cost > c.maxCost {
		// ristretto would update an existing key in place whatever its cost;
		// refuse here so a rejected Set never leaves the old value behind.
		c.counts.rejectedSets++
		c.removeLocked(key)
		return false
	}
	e := &entry[K, V]{key: key, value: value, deadline: c.deadline(ttl)}
	stored := c.rc.Set(key, e, cost)
	if !stored {
		// The set buffer was full: let ristretto drain it and try once more.
		c.rc.Wait()
		stored = c.rc.Set(key, e, cost)
	}
	if stored && !e.inPlace.Load() {
		// A new key goes through ristretto's buffer and admission; wait for
		// the verdict so the index matches the store when mu is released.
		c.rc.Wait()
		stored = !e.rejected.Load()
	}
	if !stored {
		c.counts.rejectedSets++
		// An old entry that ristretto evicted meanwhile counts as evicted,
		// one it still holds as deleted: the key ends with no entry.
		c.reconcileLocked()
		c.removeLocked(key)
		return false
	}
	if _, had := c.index[key]; !had {
		c.counts.inserts++
	}
	c.index[key] = e
	c.reconcileLocked()
	return true
}

// Delete removes key's entry and reports whether there was one (expired or
// not).
func (c *Cache[K, V]) Delete(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.reconcileLocked()
	return c.removeLocked(key)
}

// removeLocked drops key from the index and from ristretto, counting it as a
// delete if the index had it.
func (c *Cache[K, V]) removeLocked(key K) bool {
	_, had := c.index[key]
	if had {
		delete(c.index, key)
		c.counts.deletes++
	}
	// Always tell ristretto: Del also cancels a buffered Set of the key.
	c.rc.Del(key)
	return had
}

// reconcileLocked drops from the index the entries ristretto has evicted.
// An evicted entry that the index no longer points to was replaced or removed
// already and is ignored; that is why entries are compared by pointer.
//
// ristretto evicts only while applying a new key's Set, and every such Set
// waits under mu until ristretto has applied it (and run OnEvict), so the
// holder of mu sees every eviction that has happened.
func (c *Cache[K, V]) reconcileLocked() {
	if !c.anyRemoved.Load() {
		return
	}
	c.removedMu.Lock()
	removed := c.removed
	c.removed = nil
	c.anyRemoved.Store(false)
	c.removedMu.Unlock()
	for _, e := range removed {
		if cur, ok := c.index[e.key]; ok && cur == e {
			delete(c.index, e.key)
			c.counts.evictions++
		}
	}
}

// Close stops ristretto's goroutines and drops every entry, counting them as
// cleared. Afterwards Get misses, Set returns false and Stats reports no
// entries. Close is safe to
// call concurrently with anything, and more than once.
func (c *Cache[K, V]) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	// A Get that enters after closing is set misses without touching
	// ristretto; wait for those that entered before to leave, as ristretto's
	// Close must not run beside its Get.
	c.closing.Store(true)
	for i := range c.readers {
		r := &c.readers[i]
		for {
			left := r.hits.Load() + r.misses.Load() // read before enters
			if r.enters.Load() == left {
				break
			}
			runtime.Gosched()
		}
	}
	c.rc.Close()
	c.counts.cleared += uint64(len(c.index))
	clear(c.index)
	c.removedMu.Lock()
	c.removed = nil
	c.anyRemoved.Store(false)
	c.removedMu.Unlock()
}

// readShardIndex picks the reader shard of the calling goroutine from the
// address of its stack. A goroutine then keeps counting on one shard, whose
// cache line stays with the core it runs on; with a random pick every Get
// would pull a line last written by another core (measured: 2x slower on two
// cores). Stacks are at least 8 KiB apart, hence the shift, and the
// multiplication spreads neighbouring stacks over the shards. Any index is
// correct: only speed depends on it.
func readShardIndex() uintptr {
	var marker byte
	h := uint64(uintptr(unsafe.Pointer(&marker))>>13) * 0x9e3779b97f4a7c15
	return uintptr(h >> (64 - readShardBits))
}
