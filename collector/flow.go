package collector

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// shard owns the flows whose key hashes to it and its share of every policy's counters.
//
// Recording to an existing flow takes no lock: it finds the flow in an open-addressing index
// read with atomic loads and adds to the flow's atomic counters, so recorders working on
// different flows write to no common cache line. Everything else (new flows, expiry, resets,
// reads) holds mu. A policy's counters are its cells' retired counts plus the sum of its
// live flows; a flow removed by expiry or policy removal is marked dead and its counts are
// moved to the retired ones with Swap, and a recorder that finds the flow dead after adding
// takes back, with Swap too, whatever the remover did not see and records it again. So each
// packet is counted exactly once without the hot path ever waiting.
type shard struct {
	mu    sync.Mutex
	index atomic.Pointer[flowIndex]
	// live and used count the index's entries and entries plus tombstones.
	live, used int
	cells      []policyCell
	cellOf     map[int64]uint32
	freeCells  []uint32
	// overflow counts records whose new flow was not tracked because MaxFlows was reached.
	overflow uint64
}

// paddedShard keeps each shard's lock on cache lines of its own, so that cores working on
// different shards do not invalidate each other's lines (false sharing).
type paddedShard struct {
	shard
	_ [128 - unsafe.Sizeof(shard{})%128]byte
}

// flowEntry is the state of one tracked flow.
type flowEntry struct {
	key flowKey
	// Raw counters: they only grow while the flow is live.
	packets atomic.Uint64
	bytes   atomic.Uint64
	last    atomic.Int64 // unix nanoseconds
	dead    atomic.Bool
	// Guarded by the shard lock.
	first                  int64
	basePackets, baseBytes uint64 // raw counters at the policy's last reset
	cell                   uint32
	pos                    uint32 // index in the cell's flow list
}

// policyCell is one shard's share of one policy. Raw counters (retired plus live flows) only
// grow: a reset moves the base and a delta flush moves taken, so neither disturbs the other.
type policyCell struct {
	id                           int64
	live                         bool
	retiredPackets, retiredBytes uint64 // of removed flows and of untracked traffic
	retiredLast                  int64
	basePackets, baseBytes       uint64
	resetAt                      int64
	takenPackets, takenBytes     uint64
	flows                        []*flowEntry
}

// raw sums the cell's raw counters and last-seen time; the caller holds the shard lock.
func (cell *policyCell) raw() (packets, bytes uint64, last int64) {
	packets, bytes, last = cell.retiredPackets, cell.retiredBytes, cell.retiredLast
	for _, f := range cell.flows {
		packets = addSat(packets, f.packets.Load())
		bytes = addSat(bytes, f.bytes.Load())
		last = max(last, f.last.Load())
	}
	return packets, bytes, last
}

// flowIndex is an open-addressing hash table with linear probing. Writers hold the shard lock
// and publish with atomic stores; readers probe without it. A reader that misses because the
// table changed under it falls back to the locked path, which is authoritative.
type flowIndex struct {
	slots []atomic.Pointer[flowEntry]
	mask  uint64
}

// tombstone marks a removed entry so that probes continue past it.
var tombstone = &flowEntry{}

func newFlowIndex(capacity int) *flowIndex {
	return &flowIndex{slots: make([]atomic.Pointer[flowEntry], capacity), mask: uint64(capacity - 1)}
}

func (x *flowIndex) find(k *flowKey, h uint64) *flowEntry {
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		e := x.slots[i].Load()
		if e == nil {
			return nil
		}
		if e.key.equal(k) && e != tombstone {
			return e
		}
	}
}

func newShards(n int) []paddedShard {
	shards := make([]paddedShard, n)
	for i := range shards {
		shards[i].cellOf = make(map[int64]uint32)
		shards[i].index.Store(newFlowIndex(64))
	}
	return shards
}

// insertLocked adds e to the index, growing it to keep probes short.
func (s *shard) insertLocked(e *flowEntry, h uint64) {
	x := s.index.Load()
	if (s.used+1)*4 > len(x.slots)*3 {
		capacity := 64
		for capacity < 4*(s.live+1) {
			capacity *= 2
		}
		nx := newFlowIndex(capacity)
		for i := range x.slots {
			if old := x.slots[i].Load(); old != nil && old != tombstone {
				nx.put(old, old.key.hash())
			}
		}
		s.used = s.live
		s.index.Store(nx)
		x = nx
	}
	if !x.put(e, h) {
		s.used++
	}
	s.live++
}

// put stores e in the first free or tombstone slot of its probe sequence and reports whether
// that slot was a tombstone.
func (x *flowIndex) put(e *flowEntry, h uint64) (reused bool) {
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		if old := x.slots[i].Load(); old == nil || old == tombstone {
			x.slots[i].Store(e)
			return old == tombstone
		}
	}
}

// removeLocked unlinks a flow from the index and its cell and moves its counts to the cell's
// retired ones. It returns what it moved.
func (s *shard) removeLocked(e *flowEntry) (packets, bytes uint64) {
	x := s.index.Load()
	for i := e.key.hash() & x.mask; ; i = (i + 1) & x.mask {
		if x.slots[i].Load() == e {
			x.slots[i].Store(tombstone)
			break
		}
	}
	s.live--
	cell := &s.cells[e.cell]
	lastIdx := len(cell.flows) - 1
	moved := cell.flows[lastIdx]
	cell.flows[e.pos] = moved
	moved.pos = e.pos
	cell.flows[lastIdx] = nil
	cell.flows = cell.flows[:lastIdx]
	// Mark dead before taking the counts: a recorder that then sees the flow alive added
	// before the Swap, and one that sees it dead takes back what the Swap missed.
	e.dead.Store(true)
	packets, bytes = e.packets.Swap(0), e.bytes.Swap(0)
	cell.retiredPackets = addSat(cell.retiredPackets, packets)
	cell.retiredBytes = addSat(cell.retiredBytes, bytes)
	cell.retiredLast = max(cell.retiredLast, e.last.Load())
	return packets, bytes
}

func (s *shard) newCell(id int64) uint32 {
	var ci uint32
	if n := len(s.freeCells); n > 0 {
		ci = s.freeCells[n-1]
		s.freeCells = s.freeCells[:n-1]
	} else {
		s.cells = append(s.cells, policyCell{})
		ci = uint32(len(s.cells) - 1)
	}
	s.cells[ci] = policyCell{id: id, live: true, flows: s.cells[ci].flows[:0]}
	s.cellOf[id] = ci
	return ci
}

// dropCellLocked forgets a policy in this shard, returning its raw counters minus what
// TakeDeltas already took, and the number of flows removed.
func (s *shard) dropCellLocked(ci uint32) (packets, bytes uint64, flows int) {
	cell := &s.cells[ci]
	flows = len(cell.flows)
	for len(cell.flows) > 0 {
		s.removeLocked(cell.flows[len(cell.flows)-1])
	}
	packets, bytes = cell.retiredPackets-cell.takenPackets, cell.retiredBytes-cell.takenBytes
	delete(s.cellOf, cell.id)
	*cell = policyCell{flows: cell.flows[:0]}
	s.freeCells = append(s.freeCells, ci)
	return packets, bytes, flows
}

// add adds traffic to a flow found without the lock. If the flow was removed meanwhile it
// returns what the remover's Swap did not take, for the caller to record again.
func (e *flowEntry) add(packets, bytes uint64, now int64) (residuePackets, residueBytes uint64) {
	atomicAddSat(&e.packets, packets)
	atomicAddSat(&e.bytes, bytes)
	for old := e.last.Load(); now > old && !e.last.CompareAndSwap(old, now); old = e.last.Load() {
	}
	if !e.dead.Load() {
		return 0, 0
	}
	return e.packets.Swap(0), e.bytes.Swap(0)
}

// record adds traffic to a flow of a policy.
func (c *Collector) record(policyID int64, k *FlowKey, packets, bytes uint64, now int64) {
	key := makeFlowKey(policyID, k)
	h := key.hash()
	s := &c.shards[h>>c.shardShift].shard
	if e := s.index.Load().find(&key, h); e != nil {
		if packets, bytes = e.add(packets, bytes, now); packets == 0 && bytes == 0 {
			return
		}
	}
	if !c.recordNew(s, &key, h, packets, bytes, now) {
		c.unclassifiedRecords.Add(1)
		c.record(Unclassified, k, packets, bytes, now)
	}
}

// recordNew records traffic of a flow the index did not have, starting to track it if
// MaxFlows allows. It reports false, recording nothing, when the policy is unknown.
func (c *Collector) recordNew(s *shard, key *flowKey, h uint64, packets, bytes uint64, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.index.Load().find(key, h); e != nil {
		// Added by another recorder meanwhile; it cannot die while we hold the lock.
		atomicAddSat(&e.packets, packets)
		atomicAddSat(&e.bytes, bytes)
		for old := e.last.Load(); now > old && !e.last.CompareAndSwap(old, now); old = e.last.Load() {
		}
		return true
	}
	ci, ok := s.cellOf[key.policy]
	if !ok {
		// Checked under the shard lock: SetPolicies publishes the new set before it clears
		// the shards, so a cell cannot be created here for a policy already cleared.
		if key.policy != Unclassified && !c.policies.Load().known(key.policy) {
			return false
		}
		ci = s.newCell(key.policy)
	}
	cell := &s.cells[ci]
	if !c.reserveFlow() {
		s.overflow++
		cell.retiredPackets = addSat(cell.retiredPackets, packets)
		cell.retiredBytes = addSat(cell.retiredBytes, bytes)
		cell.retiredLast = max(cell.retiredLast, now)
		return true
	}
	e := &flowEntry{key: *key, first: now, cell: ci, pos: uint32(len(cell.flows))}
	e.packets.Store(packets)
	e.bytes.Store(bytes)
	e.last.Store(now)
	cell.flows = append(cell.flows, e)
	s.insertLocked(e, h)
	return true
}

// reserveFlow counts one more tracked flow if MaxFlows allows. It never lets the count pass
// MaxFlows even for a moment, so Totals never reports more tracked flows than the limit.
func (c *Collector) reserveFlow() bool {
	for {
		n := c.tracked.Load()
		if n >= c.maxFlows {
			return false
		}
		if c.tracked.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// SweepIdle removes the flows idle for longer than FlowIdleTimeout according to the clock and
// returns how many it removed. It holds one shard's lock, for one policy's flows, at a time;
// recording to existing flows never waits for it. Removing a flow does not change any
// policy's packet or byte counters.
func (c *Collector) SweepIdle() int {
	cutoff := c.now().UnixNano() - int64(c.idleTimeout)
	removed := 0
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		ncells := len(s.cells)
		s.mu.Unlock()
		for ci := range ncells {
			s.mu.Lock()
			n := 0
			if cell := &s.cells[ci]; cell.live {
				// Backwards, because removal moves the last flow into the hole.
				for j := len(cell.flows) - 1; j >= 0; j-- {
					if e := cell.flows[j]; e.last.Load() < cutoff {
						s.removeLocked(e)
						n++
					}
				}
			}
			if n > 0 {
				c.tracked.Add(-int64(n))
				c.expired.Add(uint64(n))
				removed += n
			}
			s.mu.Unlock()
		}
	}
	return removed
}
