package collector

import (
	"slices"
	"time"
)

// Orders accepted by TopFlows.
const (
	SortByBytes    = "bytes"
	SortByPackets  = "packets"
	SortByLastSeen = "last_seen"
)

// FlowStats is the live state of one tracked flow.
type FlowStats struct {
	PolicyID int64
	Flow     FlowKey
	// Packets and Bytes are counted since the flow was first seen or its policy last reset.
	Packets   uint64
	Bytes     uint64
	FirstSeen time.Time
	LastSeen  time.Time
}

// flowSnap is a copy of a flow's live state taken under the shard lock.
type flowSnap struct {
	key            flowKey
	packets, bytes uint64
	first, last    int64
}

// ranksBefore orders flows for TopFlows: by the chosen field descending, then by the other
// counters, then by key, so that the result is deterministic.
func ranksBefore(a, b *flowSnap, sortBy string) bool {
	switch sortBy {
	case SortByPackets:
		if a.packets != b.packets {
			return a.packets > b.packets
		}
	case SortByLastSeen:
		if a.last != b.last {
			return a.last > b.last
		}
	}
	if a.bytes != b.bytes {
		return a.bytes > b.bytes
	}
	if a.packets != b.packets {
		return a.packets > b.packets
	}
	return a.key.less(&b.key)
}

// TopFlows returns up to limit tracked flows of a policy, the largest first by sortBy
// (SortByBytes, SortByPackets or SortByLastSeen; anything else sorts by bytes). It returns
// nil when limit <= 0 or the policy has no flows. Its cost is linear in the policy's flows,
// not in all flows.
func (c *Collector) TopFlows(policyID int64, limit int, sortBy string) []FlowStats {
	if limit <= 0 {
		return nil
	}
	// top is a heap whose root is the worst flow kept, so a better one replaces it.
	var top []flowSnap
	worse := func(i, j int) bool { return ranksBefore(&top[j], &top[i], sortBy) }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(top) {
				return
			}
			w := l
			if r := l + 1; r < len(top) && worse(r, l) {
				w = r
			}
			if !worse(w, i) {
				return
			}
			top[i], top[w] = top[w], top[i]
			i = w
		}
	}
	up := func(i int) {
		for i > 0 {
			p := (i - 1) / 2
			if !worse(i, p) {
				return
			}
			top[i], top[p] = top[p], top[i]
			i = p
		}
	}
	for i := range c.shards {
		s := &c.shards[i].shard
		s.mu.Lock()
		if ci, ok := s.cellOf[policyID]; ok {
			for _, e := range s.cells[ci].flows {
				f := flowSnap{key: e.key, packets: e.packets.Load() - e.basePackets,
					bytes: e.bytes.Load() - e.baseBytes, first: e.first, last: e.last.Load()}
				switch {
				case len(top) < limit:
					top = append(top, f)
					up(len(top) - 1)
				case ranksBefore(&f, &top[0], sortBy):
					top[0] = f
					down(0)
				}
			}
		}
		s.mu.Unlock()
	}
	if len(top) == 0 {
		return nil
	}
	slices.SortFunc(top, func(a, b flowSnap) int {
		switch {
		case ranksBefore(&a, &b, sortBy):
			return -1
		case ranksBefore(&b, &a, sortBy):
			return 1
		}
		return 0
	})
	out := make([]FlowStats, len(top))
	for i := range top {
		f := &top[i]
		out[i] = FlowStats{
			PolicyID:  policyID,
			Flow:      f.key.flow(),
			Packets:   f.packets,
			Bytes:     f.bytes,
			FirstSeen: nanoTime(f.first),
			LastSeen:  nanoTime(f.last),
		}
	}
	return out
}
