package collector

import (
	"cmp"
	"slices"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

// PolicyStats is the live traffic of one policy since its last reset.
type PolicyStats struct {
	PolicyID       int64
	PacketsMatched uint64
	BytesMatched   uint64
	// ActiveFlows is the number of flows of the policy tracked right now.
	ActiveFlows int64
	// LastSeen is when the policy last saw traffic; zero if none since the last reset.
	LastSeen time.Time
}

func nanoTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// add adds a cell's live counts; the caller holds the shard lock.
func (st *PolicyStats) add(cell *policyCell) (last int64) {
	packets, bytes, last := cell.raw()
	st.PacketsMatched = addSat(st.PacketsMatched, packets-cell.basePackets)
	st.BytesMatched = addSat(st.BytesMatched, bytes-cell.baseBytes)
	st.ActiveFlows += int64(len(cell.flows))
	if last <= cell.resetAt {
		return 0 // nothing since the reset
	}
	return last
}

// PolicyStats returns the live statistics of a policy; ok is false if the policy is unknown.
func (c *Collector) PolicyStats(id int64) (st PolicyStats, ok bool) {
	if !c.policies.Load().known(id) {
		return PolicyStats{}, false
	}
	st.PolicyID = id
	var last int64
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		if ci, ok := s.cellOf[id]; ok {
			last = max(last, st.add(&s.cells[ci]))
		}
		s.mu.Unlock()
	}
	st.LastSeen = nanoTime(last)
	return st, true
}

// AllPolicyStats returns the live statistics of every known policy, enabled or not, by id.
func (c *Collector) AllPolicyStats() []PolicyStats {
	set := c.policies.Load()
	out := make([]PolicyStats, len(set.ids))
	lasts := make([]int64, len(set.ids))
	for i, id := range set.ids {
		out[i].PolicyID = id
	}
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		for ci := range s.cells {
			cell := &s.cells[ci]
			if !cell.live || cell.id == Unclassified {
				continue
			}
			if j, found := slices.BinarySearch(set.ids, cell.id); found {
				lasts[j] = max(lasts[j], out[j].add(cell))
			}
		}
		s.mu.Unlock()
	}
	for i := range out {
		out[i].LastSeen = nanoTime(lasts[i])
	}
	return out
}

// Totals is the traffic of the whole collector. Packets, Bytes and the Unclassified counts
// are since the last ResetAll; FlowOverflow and FlowsExpired are since start.
type Totals struct {
	// Packets and Bytes count all traffic recorded, classified or not.
	Packets uint64
	Bytes   uint64
	// ActiveFlows is the number of tracked flows attributed to a policy.
	ActiveFlows int64
	// UnclassifiedPackets, UnclassifiedBytes and UnclassifiedReports count the traffic that
	// matched no policy (see also TopFlows(Unclassified, ...)).
	UnclassifiedPackets uint64
	UnclassifiedBytes   uint64
	UnclassifiedReports uint64
	// TrackedFlows is the number of flows tracked, unclassified ones included; at most MaxFlows.
	TrackedFlows int64
	// FlowOverflow counts the records whose new flow was not tracked because MaxFlows was reached.
	FlowOverflow uint64
	// FlowsExpired counts the flows removed by SweepIdle.
	FlowsExpired uint64
}

// rawTotals adds, to Totals, the never-reset counters that metrics export.
type rawTotals struct {
	Totals
	unclassifiedPackets, unclassifiedBytes, unclassifiedReports uint64
}

func (c *Collector) totals() rawTotals {
	var t rawTotals
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		for ci := range s.cells {
			cell := &s.cells[ci]
			if !cell.live {
				continue
			}
			packets, bytes, _ := cell.raw()
			t.Packets = addSat(t.Packets, packets-cell.basePackets)
			t.Bytes = addSat(t.Bytes, bytes-cell.baseBytes)
			if cell.id == Unclassified {
				t.UnclassifiedPackets = addSat(t.UnclassifiedPackets, packets-cell.basePackets)
				t.UnclassifiedBytes = addSat(t.UnclassifiedBytes, bytes-cell.baseBytes)
				t.unclassifiedPackets = addSat(t.unclassifiedPackets, packets)
				t.unclassifiedBytes = addSat(t.unclassifiedBytes, bytes)
			} else {
				t.ActiveFlows += int64(len(cell.flows))
			}
		}
		t.FlowOverflow += s.overflow
		s.mu.Unlock()
	}
	t.unclassifiedReports = c.unclassifiedRecords.Load()
	t.UnclassifiedReports = t.unclassifiedReports - c.unclassifiedRecordsBase.Load()
	t.FlowsExpired = c.expired.Load()
	// The counter MaxFlows is enforced on; a sum over shards read one after another could
	// count a flow that moved between them twice.
	t.TrackedFlows = c.tracked.Load()
	return t
}

// Totals returns the collector-wide counts, exact at the time of the call.
func (c *Collector) Totals() Totals {
	return c.totals().Totals
}

// resetCellLocked zeroes the live view of a cell and its flows; raw counters keep growing,
// so deltas taken for history are unaffected.
func (s *shard) resetCellLocked(cell *policyCell, now int64) {
	cell.basePackets, cell.baseBytes, _ = cell.raw()
	cell.resetAt = now
	for _, f := range cell.flows {
		f.basePackets, f.baseBytes = f.packets.Load(), f.bytes.Load()
	}
}

// ResetPolicy zeroes the live packets, bytes and last-seen time of a policy and the counters
// of its flows, which stay tracked. It reports false if the policy is unknown. History deltas
// are unaffected: traffic recorded before the reset is still returned by TakeDeltas once.
func (c *Collector) ResetPolicy(id int64) bool {
	if !c.policies.Load().known(id) {
		return false
	}
	now := c.nanos()
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		if ci, ok := s.cellOf[id]; ok {
			s.resetCellLocked(&s.cells[ci], now)
		}
		s.mu.Unlock()
	}
	return true
}

// ResetAll resets every policy, as ResetPolicy does, and the unclassified counts.
func (c *Collector) ResetAll() {
	now := c.nanos()
	c.unclassifiedRecordsBase.Store(c.unclassifiedRecords.Load())
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		for ci := range s.cells {
			if s.cells[ci].live {
				s.resetCellLocked(&s.cells[ci], now)
			}
		}
		s.mu.Unlock()
	}
}

// TakeDeltas returns, for each policy that had traffic since the previous call, the packets
// and bytes recorded since then, with ActiveFlows the current number of tracked flows and
// Time set to now; the unclassified traffic is the delta of policy 0 (Unclassified). Then
// one delta per path with traffic (PathID set, ActiveFlows 0). Instance is left for the
// caller. Each recorded packet and byte is returned by exactly one call, whatever resets
// happen in between; a policy removed by SetPolicies still gets its last delta, and so does a
// path removed by SetPaths. The policies come first, sorted by id, then the paths by id.
func (c *Collector) TakeDeltas(now time.Time) []history.PolicyDelta {
	c.takeMu.Lock()
	defer c.takeMu.Unlock()
	c.pruneRemovedNamesLocked()
	acc := make(map[int64]*history.PolicyDelta, len(c.removed)+len(c.policies.Load().ids))
	for id, d := range c.removed {
		acc[id] = d
		delete(c.removed, id)
	}
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		for ci := range s.cells {
			cell := &s.cells[ci]
			if !cell.live {
				continue
			}
			d := acc[cell.id]
			if d == nil {
				d = &history.PolicyDelta{PolicyID: cell.id}
				acc[cell.id] = d
			}
			packets, bytes, _ := cell.raw()
			d.Packets = addInt64Sat(d.Packets, int64Sat(packets-cell.takenPackets))
			d.Bytes = addInt64Sat(d.Bytes, int64Sat(bytes-cell.takenBytes))
			d.ActiveFlows += int64(len(cell.flows))
			cell.takenPackets, cell.takenBytes = packets, bytes
		}
		s.mu.Unlock()
	}
	out := make([]history.PolicyDelta, 0, len(acc))
	for _, d := range acc {
		if d.Packets != 0 || d.Bytes != 0 {
			d.Time = now
			out = append(out, *d)
		}
	}
	slices.SortFunc(out, func(a, b history.PolicyDelta) int { return cmp.Compare(a.PolicyID, b.PolicyID) })
	for _, d := range c.takePathDeltas() {
		d.Time = now
		out = append(out, d)
	}
	return out
}

// KnowsPolicy says whether the classifier has the policy with this id.
func (c *Collector) KnowsPolicy(id int64) bool { return c.policies.Load().known(id) }
