package collector

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestClassify(t *testing.T) {
	policies := []Policy{
		policy(1, 50, proto(6), dstPorts(443, 443)),                         // HTTPS anywhere
		policy(2, 10, proto(6), dstCIDR("10.1.0.0/16"), dstPorts(443, 443)), // HTTPS to 10.1/16 wins by priority
		policy(3, 10, dstCIDR("10.1.2.0/24")),                               // same priority as 2: id breaks the tie
		policy(4, 20, srcCIDR("2001:db8::/32"), proto(17)),
		policy(5, 5, dstCIDR("192.0.2.0/24"), disabled), // would win, but disabled
		policy(6, 30, srcPorts(1000, 1999, 3000, 3000)),
		policy(7, 40, dstCIDR("::ffff:198.51.100.0/120")), // a 4-in-6 prefix means IPv4
		policy(8, 60, dstCIDR("2001:db8:ffff::/48"), dstPorts(0, 1023)),
	}
	cases := []struct {
		name string
		flow FlowKey
		want int64 // 0: unclassified
	}{
		{"PortAndProtocol", flow(t, "172.16.0.1", "8.8.8.8", 40000, 443, 6), 1},
		{"HigherPriorityCIDR", flow(t, "172.16.0.1", "10.1.9.9", 40000, 443, 6), 2},
		{"TieByLowerID", flow(t, "172.16.0.1", "10.1.2.3", 40000, 443, 6), 2},
		{"AnyProtocol", flow(t, "172.16.0.1", "10.1.2.3", 40000, 22, 17), 3},
		{"WrongProtocol", flow(t, "172.16.0.1", "8.8.8.8", 40000, 443, 17), 0},
		{"IPv6Source", flow(t, "2001:db8:1::5", "2001:db8:ffff::1", 5353, 5353, 17), 4},
		{"IPv6SourceOutside", flow(t, "2001:db9::5", "2001:db8:ffff::1", 5353, 5353, 17), 0},
		{"IPv6PortRange", flow(t, "2001:db9::5", "2001:db8:ffff::1", 5353, 1023, 6), 8},
		{"IPv6PortRangeEnd", flow(t, "2001:db9::5", "2001:db8:ffff::1", 5353, 1024, 6), 0},
		{"DisabledSkipped", flow(t, "172.16.0.1", "192.0.2.1", 40000, 22, 6), 0},
		{"SecondSrcRange", flow(t, "172.16.0.1", "192.0.2.1", 3000, 22, 6), 6},
		{"SrcRangeStart", flow(t, "172.16.0.1", "192.0.2.1", 1000, 22, 6), 6},
		{"SrcRangeEnd", flow(t, "172.16.0.1", "192.0.2.1", 1999, 22, 6), 6},
		{"SrcRangeAfter", flow(t, "172.16.0.1", "192.0.2.1", 2000, 22, 6), 0},
		{"MappedPolicyPrefix", flow(t, "172.16.0.1", "198.51.100.200", 1, 22, 6), 7},
		{"MappedFlowAddress", flow(t, "::ffff:172.16.0.1", "::ffff:198.51.100.200", 1, 22, 6), 7},
		{"IPv4NotInIPv6Prefix", flow(t, "172.16.0.1", "8.8.8.8", 1, 22, 6), 0},
	}
	c, _ := newTestCollector(t, Config{}, policies...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := c.Classify(tc.flow)
			if tc.want == 0 {
				if ok {
					t.Fatalf("Classify = %d, want unclassified", got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Fatalf("Classify = %d, %v, want %d", got, ok, tc.want)
			}
			if ref, _ := referenceMatch(policies, tc.flow); ref != tc.want {
				t.Fatalf("the reference matcher says %d: the case is wrong", ref)
			}
		})
	}
	t.Run("NoPolicies", func(t *testing.T) {
		c, _ := newTestCollector(t, Config{})
		if id, ok := c.Classify(cases[0].flow); ok {
			t.Fatalf("Classify with no policies = %d", id)
		}
	})
	t.Run("Recompiled", func(t *testing.T) {
		c, _ := newTestCollector(t, Config{}, policies...)
		if err := c.SetPolicies([]Policy{policy(9, 1)}); err != nil {
			t.Fatal(err)
		}
		if id, ok := c.Classify(cases[0].flow); !ok || id != 9 {
			t.Fatalf("Classify after SetPolicies = %d, %v, want 9", id, ok)
		}
	})
}

// randomPolicies makes n policies of the kind an SD-WAN has: some protocols, well-known
// ports and ranges, IPv4 and IPv6 prefixes, some disabled.
func randomPolicies(rng *rand.Rand, n int) []Policy {
	ports := []uint16{22, 53, 80, 123, 443, 3389, 5060, 8080, 8443}
	out := make([]Policy, n)
	for i := range out {
		p := Policy{ID: int64(i + 1), Priority: rng.IntN(n), Enabled: rng.IntN(10) != 0}
		switch rng.IntN(3) {
		case 0:
			p.Protocol = ptr(6)
		case 1:
			p.Protocol = ptr(17)
		}
		if rng.IntN(4) != 0 {
			p.DstCIDR = randomPrefix(rng).String()
		}
		if rng.IntN(3) == 0 {
			p.SrcCIDR = randomPrefix(rng).String()
		}
		for range rng.IntN(3) {
			if rng.IntN(2) == 0 {
				port := ports[rng.IntN(len(ports))]
				p.DstPorts = append(p.DstPorts, PortRange{From: port, To: port})
			} else {
				from := uint16(rng.IntN(60000))
				p.DstPorts = append(p.DstPorts, PortRange{From: from, To: from + uint16(rng.IntN(5000))})
			}
		}
		if rng.IntN(8) == 0 {
			from := uint16(1024 + rng.IntN(30000))
			p.SrcPorts = []PortRange{{From: from, To: from + 1000}}
		}
		out[i] = p
	}
	return out
}

func randomPrefix(rng *rand.Rand) netip.Prefix {
	if rng.IntN(4) == 0 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[4], b[5] = byte(rng.IntN(4)), byte(rng.IntN(256))
		return netip.PrefixFrom(netip.AddrFrom16(b), 32+rng.IntN(33)).Masked()
	}
	a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	return netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
}

// randomFlow makes a flow likely to hit the prefixes of randomPolicies.
func randomFlow(rng *rand.Rand) FlowKey {
	addr := func() netip.Addr {
		if rng.IntN(4) == 0 {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			b[4], b[5] = byte(rng.IntN(4)), byte(rng.IntN(256))
			b[15] = byte(rng.IntN(256))
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
	}
	dport := uint16(rng.IntN(65536))
	if rng.IntN(2) == 0 {
		dport = []uint16{22, 53, 80, 443, 8080}[rng.IntN(5)]
	}
	return FlowKey{SrcIP: addr(), DstIP: addr(), SrcPort: uint16(rng.IntN(65536)), DstPort: dport,
		Protocol: []uint8{6, 17, 1}[rng.IntN(3)]}
}

func TestClassifyAgreesWithReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	matched, unmatched := 0, 0
	for _, n := range []int{1, 10, 63, 64, 65, 200, 1000} {
		policies := randomPolicies(rng, n)
		c, _ := newTestCollector(t, Config{}, policies...)
		for range 3000 {
			k := randomFlow(rng)
			got, gotOK := c.Classify(k)
			want, wantOK := referenceMatch(policies, k)
			if got != want || gotOK != wantOK {
				t.Fatalf("%d policies, flow %+v: Classify = %d, %v; reference = %d, %v", n, k, got, gotOK, want, wantOK)
			}
			if gotOK {
				matched++
			} else {
				unmatched++
			}
		}
	}
	if matched < 1000 || unmatched < 1000 {
		t.Errorf("%d flows matched and %d did not: the random cases do not test both", matched, unmatched)
	}
}
