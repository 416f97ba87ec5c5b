package collector

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// baselineCollector is what the reference design did, kept to measure against: one
// sync.RWMutex over Go maps of per-policy and per-flow stats. It gets the same cached clock
// as the Collector, so benchmarks compare the data structures and not the clock.
type baselineCollector struct {
	mu       sync.RWMutex
	policies map[int64]*baselinePolicyStats
	flows    map[FlowKey]*baselineFlowStats
	clock    *atomic.Int64
}

type baselinePolicyStats struct {
	packets, bytes uint64
	lastSeen       int64
	activeFlows    int
}

type baselineFlowStats struct {
	policyID              int64
	packets, bytes        uint64
	firstSeen, lastSeenNs int64
}

func newBaselineCollector(clock *atomic.Int64) *baselineCollector {
	return &baselineCollector{
		policies: make(map[int64]*baselinePolicyStats),
		flows:    make(map[FlowKey]*baselineFlowStats),
		clock:    clock,
	}
}

func (b *baselineCollector) RecordPacket(policyID int64, k FlowKey, bytes uint64) {
	now := b.clock.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	ps := b.policies[policyID]
	if ps == nil {
		ps = &baselinePolicyStats{}
		b.policies[policyID] = ps
	}
	ps.packets++
	ps.bytes += bytes
	ps.lastSeen = now
	fs := b.flows[k]
	if fs == nil {
		fs = &baselineFlowStats{policyID: policyID, firstSeen: now}
		b.flows[k] = fs
		ps.activeFlows++
	}
	fs.packets++
	fs.bytes += bytes
	fs.lastSeenNs = now
}

func (b *baselineCollector) PolicyStats(id int64) (baselinePolicyStats, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ps, ok := b.policies[id]
	if !ok {
		return baselinePolicyStats{}, false
	}
	return *ps, true
}

// linearClassifier is the obvious classifier: the enabled policies, parsed once, sorted by
// priority and scanned until one matches.
type linearClassifier struct {
	policies []linearPolicy
}

type linearPolicy struct {
	id                 int64
	protocol           int // -1: any
	src, dst           netip.Prefix
	srcPorts, dstPorts []PortRange
}

func newLinearClassifier(ps []Policy) *linearClassifier {
	lc := &linearClassifier{}
	for _, p := range ps {
		if !p.Enabled {
			continue
		}
		lp := linearPolicy{id: p.ID, protocol: -1, srcPorts: p.SrcPorts, dstPorts: p.DstPorts}
		if p.Protocol != nil {
			lp.protocol = *p.Protocol
		}
		if p.SrcCIDR != "" {
			lp.src, _ = parseCIDR(p.SrcCIDR)
		}
		if p.DstCIDR != "" {
			lp.dst, _ = parseCIDR(p.DstCIDR)
		}
		lc.policies = append(lc.policies, lp)
	}
	prio := make(map[int64]int, len(ps))
	for _, p := range ps {
		prio[p.ID] = p.Priority
	}
	slices.SortFunc(lc.policies, func(a, b linearPolicy) int {
		if c := cmp.Compare(prio[a.id], prio[b.id]); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return lc
}

func inRanges(rs []PortRange, port uint16) bool {
	if len(rs) == 0 {
		return true
	}
	for _, r := range rs {
		if r.From <= port && port <= r.To {
			return true
		}
	}
	return false
}

func (lc *linearClassifier) classify(k *FlowKey) (int64, bool) {
	src, dst := k.SrcIP.Unmap(), k.DstIP.Unmap()
	for i := range lc.policies {
		p := &lc.policies[i]
		if (p.protocol < 0 || p.protocol == int(k.Protocol)) &&
			(!p.src.IsValid() || p.src.Contains(src)) && (!p.dst.IsValid() || p.dst.Contains(dst)) &&
			inRanges(p.srcPorts, k.SrcPort) && inRanges(p.dstPorts, k.DstPort) {
			return p.id, true
		}
	}
	return 0, false
}
