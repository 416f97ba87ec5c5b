// Package cache keeps path metrics and routing decisions off the database on
// hot read paths: a TTL cache over github.com/dgraph-io/ristretto/v2 whose
// counts are exact, and the two typed caches built on it, MetricsCache and
// RoutingCache.
//
// # Who decides what
//
// ristretto decides what stays: its TinyLFU admission and sampled-LFU
// eviction keep the sum of entry costs (1 each unless WithCost) within
// maxCost. This layer decides what has expired, keeps a key index, and
// counts.
//
// Each Set stores in ristretto a new *entry holding the key, the value and a
// deadline by the cache's clock (the monotonic clock, or the one WithClock
// gives). Get asks ristretto and returns the entry only if the clock is
// before its deadline. ristretto gets no TTL of its own: its TTLs run on the
// wall clock in 5 s buckets, would cost Get a second clock read, and would
// remove entries behind an injected clock's back. An expired entry stays held
// (Stats.Expired, never returned) until CleanupExpired or RunCleanup removes
// it, a Set replaces it or ristretto evicts it; maxCost bounds memory either
// way.
//
// # The key index
//
// ristretto cannot list its keys, applies a new key's Set later on its own
// goroutine, may refuse it, and reports evictions by key hash. The layer
// keeps a map from key to the *entry it last stored, and keeps it equal to
// ristretto's store:
//
//   - One mutex serialises every call that changes ristretto's store (Set,
//     Del, Wait, Clear, Close) together with the matching index change, so
//     both change in the same order. Get never takes it.
//   - A Set of a key ristretto holds replaces the entry inside ristretto's
//     Set call; ristretto's ShouldUpdate hook tells the layer so, and the Set
//     returns at once. A Set of a new key goes through ristretto's buffer and
//     admission, and the layer calls Wait for the verdict (OnReject marks the
//     entry refused) before it updates the index. So at most one new-key Set
//     is ever in ristretto's buffer. That rules out ristretto admitting one
//     of two buffered Sets of a key and refusing the other, which would leave
//     the older value readable after the newer Set.
//   - Evictions arrive through OnEvict on ristretto's goroutine, which the
//     mutex holder may be waiting for in Wait, so the callback only appends
//     the evicted *entry to a list. Whoever takes the mutex first drops those
//     entries from the index. Entries are compared by pointer, so the late
//     eviction of an entry that a newer Set has replaced is ignored.
//   - Clear and Close call ristretto's Clear and Close, which must not run
//     beside ristretto's Set or Del: the mutex keeps those out. ristretto's
//     Clear is safe beside Get (its store shards and policy have their own
//     locks; checked against v2.4.2), so Gets are not blocked by a Clear.
//     ristretto's Close is not (a Get in flight can send on a closed
//     channel): Gets count themselves in and out on per-goroutine shards, and
//     Close waits until every Get that entered before it began has left.
//
// # Guarantees
//
//   - Get never returns an entry whose TTL has passed by the cache's clock:
//     an entry set at t for ttl is returned while now < t+ttl.
//   - When Set or SetWithTTL returns true the value is in ristretto's store:
//     a Get from any goroutine returns it until a later Set replaces it,
//     Delete, DeleteFunc, Clear or CleanupExpired removes it, a Set of
//     another key makes ristretto evict it, or its TTL passes.
//   - When Set returns false nothing is stored and the key has no entry,
//     not even its old one; RejectedSets counts it. That happens when
//     ristretto's admission refuses a new key (it keeps entries read more
//     often than the newcomer), when the cost exceeds maxCost, or when the
//     cache is closed.
//   - CleanupExpired, Clear and DeleteFunc return exactly how many entries
//     they removed, and Stats satisfies, whenever nothing runs beside it,
//     Entries == Active + Expired, Hits + Misses == Gets, and
//     Inserts == Entries + Evictions + Expirations + Deletes + Cleared.
//     While other calls run, each Stats is still one consistent cut for the
//     entry counts; Hits and Misses may lag Gets in flight.
//
// # Costs
//
// A Get hit is one ristretto Get, one monotonic clock read and two atomic
// adds on a cache line of the calling goroutine's own; it never waits for a
// writer. A Set of a held key is synchronous. A Set of a new key waits one
// round trip to ristretto's goroutine, and writers queue on the mutex, so
// this cache suits read-mostly data. Stats walks the index: O(entries).
// Measured numbers are in bench/cache.txt.
//
// Each entry costs about 60 bytes of heap beyond ristretto's own (the index
// slot and the *entry), and ristretto costs about 155 to 280 bytes an entry
// beyond its value, plus its fixed buffers: small values are dominated by
// overhead.
//
// ristretto's admission learns from Gets through a lossy buffer that it
// feeds asynchronously. Under the race detector that buffer almost never
// delivers (sync.Pool drops a quarter of its Puts there), so admission acts
// on no read history.
package cache
