package collector

import (
	"errors"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

func TestRecordCountsPolicyAndFlows(t *testing.T) {
	c, clock := newTestCollector(t, Config{}, policy(1, 10), policy(2, 20))
	a := flow(t, "10.0.0.1", "10.0.0.2", 1234, 443, 6)
	b := flow(t, "2001:db8::1", "2001:db8::2", 5000, 53, 17)
	start := clock.Now()
	c.RecordPacket(1, a, 1500)
	clock.Advance(time.Second)
	c.RecordPacket(1, a, 500)
	c.Record(1, b, 10, 1000)
	c.Record(2, b, 1, 60)

	st := mustStats(t, c, 1)
	want := PolicyStats{PolicyID: 1, PacketsMatched: 12, BytesMatched: 3000, ActiveFlows: 2, LastSeen: clock.Now()}
	if st != want {
		t.Errorf("policy 1 = %+v, want %+v", st, want)
	}
	if st := mustStats(t, c, 2); st.PacketsMatched != 1 || st.BytesMatched != 60 || st.ActiveFlows != 1 {
		t.Errorf("policy 2 = %+v", st)
	}
	flows := c.TopFlows(1, 10, SortByBytes)
	if len(flows) != 2 {
		t.Fatalf("TopFlows = %d flows, want 2", len(flows))
	}
	if flows[0].Flow != a || flows[0].Packets != 2 || flows[0].Bytes != 2000 ||
		!flows[0].FirstSeen.Equal(start) || !flows[0].LastSeen.Equal(clock.Now()) {
		t.Errorf("top flow = %+v", flows[0])
	}
	tot := c.Totals()
	if tot.Packets != 13 || tot.Bytes != 3060 || tot.ActiveFlows != 3 || tot.TrackedFlows != 3 {
		t.Errorf("Totals = %+v", tot)
	}
	if _, ok := c.PolicyStats(99); ok {
		t.Error("PolicyStats(99) ok for an unknown policy")
	}
}

func TestFourInSixIsTheSameFlow(t *testing.T) {
	c, _ := newTestCollector(t, Config{}, policy(1, 10))
	v4 := flow(t, "192.0.2.1", "198.51.100.7", 1, 2, 6)
	mapped := flow(t, "::ffff:192.0.2.1", "::ffff:198.51.100.7", 1, 2, 6)
	c.RecordPacket(1, v4, 100)
	c.RecordPacket(1, mapped, 100)
	flows := c.TopFlows(1, 10, SortByPackets)
	if len(flows) != 1 || flows[0].Packets != 2 || flows[0].Flow != v4 {
		t.Fatalf("flows = %+v, want one IPv4 flow with 2 packets", flows)
	}
}

func TestUnknownPolicyIsCountedUnclassified(t *testing.T) {
	c, _ := newTestCollector(t, Config{}, policy(1, 10))
	c.Record(42, flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6), 3, 300)
	tot := c.Totals()
	if tot.UnclassifiedPackets != 3 || tot.UnclassifiedBytes != 300 || tot.UnclassifiedReports != 1 || tot.Packets != 3 {
		t.Errorf("Totals = %+v", tot)
	}
	if tot.ActiveFlows != 0 || tot.TrackedFlows != 1 {
		t.Errorf("flows: active %d tracked %d, want 0 and 1", tot.ActiveFlows, tot.TrackedFlows)
	}
	if got := c.TopFlows(Unclassified, 5, SortByBytes); len(got) != 1 || got[0].Bytes != 300 {
		t.Errorf("unclassified flows = %+v", got)
	}
}

func TestRecordBatch(t *testing.T) {
	c, _ := newTestCollector(t, Config{},
		policy(1, 10, proto(6), dstPorts(443, 443)),
		policy(2, 20, disabled))
	reports := []Report{
		{PolicyID: ptr(int64(2)), Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 17), Packets: 1, Bytes: 100},
		{Flow: flow(t, "10.0.0.1", "10.0.0.3", 1000, 443, 6), Packets: 2, Bytes: 200},
		{Flow: flow(t, "10.0.0.1", "10.0.0.3", 1000, 80, 6), Packets: 4, Bytes: 400},
	}
	res, err := c.RecordBatch(reports)
	if err != nil {
		t.Fatal(err)
	}
	if res != (BatchResult{Accepted: 3, Classified: 1, Unclassified: 1}) {
		t.Errorf("result = %+v", res)
	}
	if st := mustStats(t, c, 1); st.PacketsMatched != 2 || st.BytesMatched != 200 {
		t.Errorf("classified policy 1 = %+v", st)
	}
	if st := mustStats(t, c, 2); st.PacketsMatched != 1 {
		t.Errorf("disabled policy named explicitly = %+v, want its traffic counted", st)
	}
	if tot := c.Totals(); tot.UnclassifiedReports != 1 || tot.UnclassifiedPackets != 4 || tot.Packets != 7 {
		t.Errorf("Totals = %+v", tot)
	}

	t.Run("UnknownPolicyRejectsAll", func(t *testing.T) {
		before := c.Totals()
		bad := []Report{reports[1], {PolicyID: ptr(int64(7)), Flow: reports[0].Flow, Packets: 1, Bytes: 1}}
		_, err := c.RecordBatch(bad)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Index != 1 || ve.Field != "reports[1].policy_id" {
			t.Fatalf("err = %v, want a ValidationError for reports[1].policy_id", err)
		}
		if after := c.Totals(); after != before {
			t.Errorf("a rejected batch changed the totals: %+v -> %+v", before, after)
		}
	})
	t.Run("MissingAddress", func(t *testing.T) {
		_, err := c.RecordBatch([]Report{{Flow: FlowKey{SrcIP: netip.MustParseAddr("10.0.0.1")}}})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "reports[0].flow.dst_ip" {
			t.Fatalf("err = %v, want reports[0].flow.dst_ip", err)
		}
	})
}

func TestTakeDeltasAcrossReset(t *testing.T) {
	c, clock := newTestCollector(t, Config{}, policy(1, 10), policy(2, 20))
	f := flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)
	c.Record(1, f, 10, 1000)
	c.Record(2, f, 1, 1)
	if !c.ResetPolicy(1) {
		t.Fatal("ResetPolicy(1) = false")
	}
	if st := mustStats(t, c, 1); st.PacketsMatched != 0 || st.BytesMatched != 0 || !st.LastSeen.IsZero() || st.ActiveFlows != 1 {
		t.Errorf("after reset = %+v, want zero counters and the flow still tracked", st)
	}
	if fl := c.TopFlows(1, 1, SortByBytes); len(fl) != 1 || fl[0].Bytes != 0 {
		t.Errorf("flow after reset = %+v, want zeroed", fl)
	}
	c.Record(1, f, 5, 500)

	now := clock.Now()
	got := c.TakeDeltas(now)
	want := []history.PolicyDelta{
		{PolicyID: 1, Time: now, Packets: 15, Bytes: 1500, ActiveFlows: 1},
		{PolicyID: 2, Time: now, Packets: 1, Bytes: 1, ActiveFlows: 1},
	}
	if !equalDeltas(got, want) {
		t.Fatalf("first TakeDeltas = %+v, want %+v", got, want)
	}
	if st := mustStats(t, c, 1); st.PacketsMatched != 5 {
		t.Errorf("TakeDeltas changed live counters: %+v", st)
	}
	c.ResetAll()
	if got := c.TakeDeltas(now); len(got) != 0 {
		t.Errorf("TakeDeltas with no traffic since = %+v, want none", got)
	}
	c.Record(2, f, 3, 30)
	c.ResetAll()
	got = c.TakeDeltas(now)
	if len(got) != 1 || got[0].PolicyID != 2 || got[0].Packets != 3 || got[0].Bytes != 30 {
		t.Errorf("TakeDeltas after a reset = %+v, want policy 2 with 3/30", got)
	}
	if tot := c.Totals(); tot.Packets != 0 {
		t.Errorf("Totals after ResetAll = %+v", tot)
	}
	if c.ResetPolicy(77) {
		t.Error("ResetPolicy of an unknown policy = true")
	}
}

func equalDeltas(a, b []history.PolicyDelta) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].PolicyID != b[i].PolicyID || a[i].Packets != b[i].Packets || a[i].Bytes != b[i].Bytes ||
			a[i].ActiveFlows != b[i].ActiveFlows || !a[i].Time.Equal(b[i].Time) || a[i].Instance != b[i].Instance {
			return false
		}
	}
	return true
}

func TestRemovedPolicyDropsStatsKeepsDelta(t *testing.T) {
	c, clock := newTestCollector(t, Config{}, policy(1, 10), policy(2, 20))
	f := flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)
	c.Record(1, f, 4, 40)
	c.Record(2, f, 1, 10)
	if err := c.SetPolicies([]Policy{policy(2, 20)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.PolicyStats(1); ok {
		t.Error("policy 1 still known after removal")
	}
	if tot := c.Totals(); tot.TrackedFlows != 1 || tot.Packets != 1 {
		t.Errorf("Totals after removal = %+v, want only policy 2's flow and packet", tot)
	}
	got := c.TakeDeltas(clock.Now())
	if len(got) != 2 || got[0].PolicyID != 1 || got[0].Packets != 4 || got[0].ActiveFlows != 0 {
		t.Errorf("deltas = %+v, want policy 1's last 4 packets kept", got)
	}
	// Traffic still tagged with the removed policy is now unclassified.
	c.Record(1, f, 1, 1)
	if tot := c.Totals(); tot.UnclassifiedPackets != 1 {
		t.Errorf("UnclassifiedPackets = %d, want 1", tot.UnclassifiedPackets)
	}
}

func TestSetPoliciesRejectsBadInput(t *testing.T) {
	cases := map[string][]Policy{
		"BadCIDR":       {policy(1, 1, srcCIDR("10.0.0.0/33"))},
		"ReversedPorts": {policy(1, 1, dstPorts(100, 10))},
		"BadProtocol":   {policy(1, 1, proto(256))},
		"DuplicateID":   {policy(1, 1), policy(1, 2)},
		"ZeroID":        {policy(0, 1)},
	}
	for name, ps := range cases {
		t.Run(name, func(t *testing.T) {
			c, _ := newTestCollector(t, Config{}, policy(5, 1))
			if err := c.SetPolicies(ps); err == nil {
				t.Fatal("SetPolicies succeeded")
			}
			if _, ok := c.PolicyStats(5); !ok {
				t.Error("a failed SetPolicies changed the policies")
			}
		})
	}
}

func TestIdleExpiry(t *testing.T) {
	c, clock := newTestCollector(t, Config{FlowIdleTimeout: time.Minute}, policy(1, 10))
	old := flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)
	fresh := flow(t, "10.0.0.1", "10.0.0.3", 1, 2, 6)
	c.RecordPacket(1, old, 100)
	c.RecordPacket(1, fresh, 100)
	clock.Advance(40 * time.Second)
	c.RecordPacket(1, fresh, 100)
	clock.Advance(20 * time.Second) // old idle exactly the timeout: kept
	if n := c.SweepIdle(); n != 0 {
		t.Fatalf("SweepIdle at the timeout removed %d", n)
	}
	clock.Advance(time.Nanosecond)
	if n := c.SweepIdle(); n != 1 {
		t.Fatalf("SweepIdle removed %d, want 1", n)
	}
	st := mustStats(t, c, 1)
	if st.ActiveFlows != 1 || st.PacketsMatched != 3 {
		t.Errorf("after expiry %+v, want 1 flow and the packets kept", st)
	}
	if fl := c.TopFlows(1, 5, SortByBytes); len(fl) != 1 || fl[0].Flow != fresh {
		t.Errorf("flows = %+v, want only the fresh one", fl)
	}
	if tot := c.Totals(); tot.FlowsExpired != 1 || tot.TrackedFlows != 1 {
		t.Errorf("Totals = %+v", tot)
	}
	// The expired flow comes back as a new flow.
	c.RecordPacket(1, old, 1)
	if fl := c.TopFlows(1, 5, SortByLastSeen); len(fl) != 2 || fl[0].Flow != old || fl[0].Packets != 1 {
		t.Errorf("flows = %+v, want the old flow back first with 1 packet", fl)
	}
}

func TestFlowOverflow(t *testing.T) {
	c, clock := newTestCollector(t, Config{MaxFlows: 3, FlowIdleTimeout: time.Minute}, policy(1, 10))
	for port := range uint16(5) {
		c.Record(1, flow(t, "10.0.0.1", "10.0.0.2", port, 80, 6), 2, 20)
	}
	c.Record(1, flow(t, "10.0.0.1", "10.0.0.2", 0, 80, 6), 1, 10) // tracked: still recorded
	tot := c.Totals()
	if tot.TrackedFlows != 3 || tot.FlowOverflow != 2 {
		t.Errorf("tracked %d overflow %d, want 3 and 2", tot.TrackedFlows, tot.FlowOverflow)
	}
	if st := mustStats(t, c, 1); st.PacketsMatched != 11 || st.BytesMatched != 110 || st.ActiveFlows != 3 {
		t.Errorf("policy = %+v, want all 11 packets counted and 3 flows", st)
	}
	// Expiry makes room again.
	clock.Advance(2 * time.Minute)
	c.SweepIdle()
	c.Record(1, flow(t, "10.0.0.1", "10.0.0.2", 4, 80, 6), 1, 1)
	if tot := c.Totals(); tot.TrackedFlows != 1 || tot.FlowOverflow != 2 {
		t.Errorf("after expiry tracked %d overflow %d, want 1 and 2", tot.TrackedFlows, tot.FlowOverflow)
	}
}

// TestRecordRacingRemoval plays the interleavings of a lock-free record with the removal of
// its flow: whichever side takes the counts, each packet is counted once.
func TestRecordRacingRemoval(t *testing.T) {
	c, clock := newTestCollector(t, Config{}, policy(1, 10))
	f := flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)
	c.Record(1, f, 1, 10)
	key := makeFlowKey(1, &f)
	h := key.hash()
	s := &c.shards[h>>c.shardShift].shard
	e := s.index.Load().find(&key, h)
	if e == nil {
		t.Fatal("flow not in the index")
	}
	now := clock.Now().UnixNano()

	// The recorder adds before the removal: the remover takes it all, nothing is left over.
	if p, b := e.add(2, 20, now); p != 0 || b != 0 {
		t.Fatalf("live flow returned residue %d/%d", p, b)
	}
	s.mu.Lock()
	p, b := s.removeLocked(e)
	c.tracked.Add(-1)
	s.mu.Unlock()
	if p != 3 || b != 30 {
		t.Fatalf("removal took %d/%d, want 3/30", p, b)
	}
	// The recorder found the flow before the removal but adds after it: it gets its own
	// traffic back and records it again.
	p, b = e.add(4, 40, now)
	if p != 4 || b != 40 {
		t.Fatalf("late add returned %d/%d, want 4/40", p, b)
	}
	c.Record(1, f, p, b)
	st := mustStats(t, c, 1)
	if st.PacketsMatched != 7 || st.BytesMatched != 70 || st.ActiveFlows != 1 {
		t.Fatalf("stats = %+v, want 7/70 and the flow tracked again", st)
	}
	if d := c.TakeDeltas(clock.Now()); len(d) != 1 || d[0].Packets != 7 || d[0].Bytes != 70 {
		t.Fatalf("deltas = %+v, want 7/70", d)
	}
}

// TestCountersSaturate records reports at the int64 limit until 64-bit sums would wrap: the
// live counters stop at the largest value instead of going back to little traffic, and the
// history delta stops at the int64 limit instead of going negative.
func TestCountersSaturate(t *testing.T) {
	c := New(Config{Now: newFakeClock().Now})
	if err := c.SetPolicies([]Policy{policy(1, 1), policy(2, 2)}); err != nil {
		t.Fatal(err)
	}
	f1 := flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)
	f2 := flow(t, "10.0.0.1", "10.0.0.2", 1, 3, 6)
	for range 3 {
		c.Record(1, f1, MaxCount, MaxCount)
		c.Record(1, f2, MaxCount, 1)
	}
	c.Record(2, f1, 5, 50)
	st, _ := c.PolicyStats(1)
	if st.PacketsMatched != math.MaxUint64 || st.BytesMatched != math.MaxUint64 {
		t.Errorf("policy 1 live = %d packets, %d bytes; want both saturated at %d", st.PacketsMatched, st.BytesMatched, uint64(math.MaxUint64))
	}
	if tot := c.Totals(); tot.Packets != math.MaxUint64 || tot.Bytes != math.MaxUint64 {
		t.Errorf("totals = %d packets, %d bytes; want saturated", tot.Packets, tot.Bytes)
	}
	deltas := c.TakeDeltas(time.Now())
	if len(deltas) != 2 || deltas[0].Packets != math.MaxInt64 || deltas[0].Bytes != math.MaxInt64 ||
		deltas[1].Packets != 5 || deltas[1].Bytes != 50 {
		t.Fatalf("deltas = %+v; want policy 1 at the int64 limit and policy 2 exact", deltas)
	}
	// Saturated counters stay put: the next delta is what was added since, not a wrap.
	c.Record(1, f1, 1, 1)
	if d := c.TakeDeltas(time.Now()); len(d) != 0 {
		t.Errorf("after saturation a new record produced deltas %+v; the counter should stay saturated", d)
	}
	if st, _ := c.PolicyStats(1); st.PacketsMatched != math.MaxUint64 {
		t.Errorf("policy 1 live packets = %d after one more record, want still saturated", st.PacketsMatched)
	}
}
