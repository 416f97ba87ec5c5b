package collector

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	concWriters = 8
	concRecords = 4000
	concPolicy  = 4
)

// writerFlow is the j-th flow of writer w: each writer has its own flows, spread over policies.
func writerFlow(w, j int) FlowKey {
	src := netip.AddrFrom4([4]byte{10, byte(w), 0, byte(j % 50)})
	if j%5 == 0 {
		src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(w)})
	}
	return FlowKey{SrcIP: src, DstIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(j % 7)}),
		SrcPort: uint16(1000 + j%50), DstPort: 443, Protocol: 6}
}

type sent struct{ packets, bytes [concPolicy + 1]uint64 }

// writeTraffic records a known pattern from concWriters goroutines and returns what was sent
// per policy (index 0 is unused).
func writeTraffic(t *testing.T, c *Collector) sent {
	t.Helper()
	var mu sync.Mutex
	var total sent
	var wg sync.WaitGroup
	for w := range concWriters {
		wg.Go(func() {
			var mine sent
			batch := make([]Report, 0, 10)
			for j := range concRecords {
				id := int64(1 + (w+j)%concPolicy)
				packets, bytes := uint64(1+j%3), uint64(60+j%1400)
				k := writerFlow(w, j)
				switch j % 3 {
				case 0:
					if packets == 1 {
						c.RecordPacket(id, k, bytes)
					} else {
						c.Record(id, k, packets, bytes)
					}
				default:
					batch = append(batch, Report{PolicyID: &id, Flow: k, Packets: packets, Bytes: bytes})
					if len(batch) == cap(batch) {
						if _, err := c.RecordBatch(batch); err != nil {
							t.Error(err)
						}
						batch = batch[:0]
					}
				}
				mine.packets[id] += packets
				mine.bytes[id] += bytes
			}
			if _, err := c.RecordBatch(batch); err != nil {
				t.Error(err)
			}
			mu.Lock()
			for id := range total.packets {
				total.packets[id] += mine.packets[id]
				total.bytes[id] += mine.bytes[id]
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

// background runs f in a loop on its own goroutine until the returned stop is called.
func background(f func()) (stop func()) {
	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !done.Load() {
			f()
		}
	})
	return func() { done.Store(true); wg.Wait() }
}

func TestConcurrentRecordReadResetExact(t *testing.T) {
	var policies []Policy
	for id := range concPolicy {
		policies = append(policies, policy(int64(id+1), id))
	}
	c, clock := newTestCollector(t, Config{FlowIdleTimeout: time.Minute, MaxFlows: 500}, policies...)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	var deltaMu sync.Mutex
	var history sent
	takeDeltas := func() {
		for _, d := range c.TakeDeltas(clock.Now()) {
			if d.Packets < 0 || d.Bytes < 0 {
				t.Errorf("negative delta %+v", d)
			}
			deltaMu.Lock()
			history.packets[d.PolicyID] += uint64(d.Packets)
			history.bytes[d.PolicyID] += uint64(d.Bytes)
			deltaMu.Unlock()
		}
	}
	var stops []func()
	stops = append(stops,
		background(takeDeltas),
		background(func() { c.ResetPolicy(2); c.ResetAll() }),
		background(func() { clock.Advance(10 * time.Second); c.SweepIdle() }),
		background(func() {
			c.AllPolicyStats()
			c.PolicyStats(1)
			c.TopFlows(3, 5, SortByLastSeen)
			if tot := c.Totals(); tot.TrackedFlows > 500 {
				t.Errorf("tracked %d flows, more than MaxFlows", tot.TrackedFlows)
			}
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		}),
	)
	phase1 := writeTraffic(t, c)
	for _, stop := range stops {
		stop()
	}
	takeDeltas()
	if history != phase1 {
		t.Fatalf("history deltas = %+v, want everything sent %+v", history, phase1)
	}

	// After the last reset, live counts are exactly what is sent after it, and history still
	// gets it once.
	c.ResetAll()
	stop := background(func() { c.AllPolicyStats(); c.Totals() })
	phase2 := writeTraffic(t, c)
	stop()
	var live sent
	for _, st := range c.AllPolicyStats() {
		live.packets[st.PolicyID] = st.PacketsMatched
		live.bytes[st.PolicyID] = st.BytesMatched
	}
	if live != phase2 {
		t.Errorf("live after the last reset = %+v, want %+v", live, phase2)
	}
	history = sent{}
	takeDeltas()
	if history != phase2 {
		t.Errorf("history of phase 2 = %+v, want %+v", history, phase2)
	}
	var all uint64
	for _, p := range phase2.packets {
		all += p
	}
	if tot := c.Totals(); tot.Packets != all || tot.UnclassifiedPackets != 0 {
		t.Errorf("Totals = %+v, want %d packets", tot, all)
	}
}

// TestConcurrentPolicyRemovalLosesNothing removes and restores a policy while it receives
// traffic: what it was sent ends up either in its history deltas or, once it was gone, as
// unclassified traffic, exactly once.
func TestConcurrentPolicyRemovalLosesNothing(t *testing.T) {
	var all []Policy
	for id := range concPolicy {
		all = append(all, policy(int64(id+1), id))
	}
	c, clock := newTestCollector(t, Config{}, all...)
	var history sent
	takeDeltas := func() {
		for _, d := range c.TakeDeltas(clock.Now()) {
			history.packets[d.PolicyID] += uint64(d.Packets)
			history.bytes[d.PolicyID] += uint64(d.Bytes)
		}
	}
	var toggles atomic.Int64
	stop := background(func() {
		set := all
		if toggles.Add(1)%2 == 1 {
			set = all[:concPolicy-1]
		}
		if err := c.SetPolicies(set); err != nil {
			t.Error(err)
		}
		takeDeltas()
	})
	// Batches naming a removed policy are rejected whole; record directly so nothing is.
	var total sent
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range concWriters {
		wg.Go(func() {
			var mine sent
			for j := range concRecords {
				id := int64(1 + (w+j)%concPolicy)
				c.Record(id, writerFlow(w, j), 2, 100)
				mine.packets[id] += 2
				mine.bytes[id] += 100
			}
			mu.Lock()
			for id := range total.packets {
				total.packets[id] += mine.packets[id]
				total.bytes[id] += mine.bytes[id]
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	stop()
	takeDeltas()
	tot := c.Totals()
	for id := 1; id < concPolicy; id++ {
		if history.packets[id] != total.packets[id] || history.bytes[id] != total.bytes[id] {
			t.Errorf("policy %d: history %d/%d, sent %d/%d", id, history.packets[id], history.bytes[id],
				total.packets[id], total.bytes[id])
		}
	}
	if got := history.packets[concPolicy] + tot.UnclassifiedPackets; got != total.packets[concPolicy] {
		t.Errorf("toggled policy: history %d + unclassified %d packets, sent %d",
			history.packets[concPolicy], tot.UnclassifiedPackets, total.packets[concPolicy])
	}
	if got := history.bytes[concPolicy] + tot.UnclassifiedBytes; got != total.bytes[concPolicy] {
		t.Errorf("toggled policy: history %d + unclassified %d bytes, sent %d",
			history.bytes[concPolicy], tot.UnclassifiedBytes, total.bytes[concPolicy])
	}
	if toggles.Load() < 2 || tot.UnclassifiedPackets == 0 {
		t.Logf("only %d toggles, %d unclassified packets: the removal path was barely exercised",
			toggles.Load(), tot.UnclassifiedPackets)
	}
}
