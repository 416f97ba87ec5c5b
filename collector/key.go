package collector

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// FlowKey identifies a flow by its 5-tuple. IPv4 and IPv6 addresses are both accepted; an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the same flow as the plain IPv4 address.
type FlowKey struct {
	SrcIP    netip.Addr `json:"src_ip"`
	DstIP    netip.Addr `json:"dst_ip"`
	SrcPort  uint16     `json:"src_port"`
	DstPort  uint16     `json:"dst_port"`
	Protocol uint8      `json:"protocol"`
}

// Normalize returns k in the form the collector reports flows in: IPv4-mapped addresses
// unmapped and IPv6 zones removed.
func (k FlowKey) Normalize() FlowKey {
	k.SrcIP = normalizeAddr(k.SrcIP)
	k.DstIP = normalizeAddr(k.DstIP)
	return k
}

func normalizeAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// Report is one traffic report: a flow, the packets and bytes it carried since the previous
// report, and the policy it matched. A nil PolicyID asks the collector to classify the flow.
// PathID, when not 0, is the path (tunnel) the traffic was sent on: it is counted against
// that path too, in the path's own history series.
type Report struct {
	PolicyID *int64  `json:"policy_id,omitempty"`
	PathID   int64   `json:"path_id,omitempty"`
	Flow     FlowKey `json:"flow"`
	Packets  uint64  `json:"packets"`
	Bytes    uint64  `json:"bytes"`
}

// flowKey is the fixed-size internal key of a tracked flow: the policy it is counted against
// and its 5-tuple, addresses in their 16-byte form. Every field is a uint64 so that the
// struct has no padding and Go maps hash it as one block of memory. The 16-byte form maps
// IPv4 to ::ffff:a.b.c.d, which is what makes 4-in-6 and plain IPv4 the same key.
type flowKey struct {
	policy       int64
	srcHi, srcLo uint64
	dstHi, dstLo uint64
	// meta packs srcPort<<24 | dstPort<<8 | protocol.
	meta uint64
}

func makeFlowKey(policy int64, k *FlowKey) flowKey {
	srcHi, srcLo := addrWords(&k.SrcIP)
	dstHi, dstLo := addrWords(&k.DstIP)
	return flowKey{
		policy: policy,
		srcHi:  srcHi, srcLo: srcLo,
		dstHi: dstHi, dstLo: dstLo,
		meta: uint64(k.SrcPort)<<24 | uint64(k.DstPort)<<8 | uint64(k.Protocol),
	}
}

// addrWords returns the address as two big-endian words of its 16-byte form. netip.Addr
// holds exactly these two words first (IPv4 stored as ::ffff:a.b.c.d), and reading them
// directly instead of through As16 saved about a third of RecordPacket's time. The layout
// is checked once at start-up against As16; if a Go release changes it, As16 is used.
func addrWords(a *netip.Addr) (hi, lo uint64) {
	if addrLayoutKnown {
		w := (*[2]uint64)(unsafe.Pointer(a))
		return w[0], w[1]
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

var addrLayoutKnown = checkAddrLayout()

func checkAddrLayout() bool {
	if unsafe.Sizeof(netip.Addr{}) < 16 || unsafe.Alignof(netip.Addr{}) < 8 {
		return false
	}
	for _, s := range []string{"0.0.0.0", "1.2.3.4", "255.255.255.255", "::", "::1", "::ffff:1.2.3.4",
		"2001:db8::1", "fe80::1%eth0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		a := netip.MustParseAddr(s)
		b := a.As16()
		w := (*[2]uint64)(unsafe.Pointer(&a))
		if w[0] != binary.BigEndian.Uint64(b[:8]) || w[1] != binary.BigEndian.Uint64(b[8:]) {
			return false
		}
	}
	var zero netip.Addr
	w := (*[2]uint64)(unsafe.Pointer(&zero))
	return w[0] == 0 && w[1] == 0
}

// flow turns the internal key back into the public one.
func (k *flowKey) flow() FlowKey {
	return FlowKey{
		SrcIP:    addrFrom(k.srcHi, k.srcLo),
		DstIP:    addrFrom(k.dstHi, k.dstLo),
		SrcPort:  uint16(k.meta >> 24),
		DstPort:  uint16(k.meta >> 8),
		Protocol: uint8(k.meta),
	}
}

func addrFrom(hi, lo uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b).Unmap()
}

// hash mixes the key into 64 bits for choosing a shard. It is cheaper than a general hash
// because the shard index only needs its top bits to be well spread.
func (k *flowKey) hash() uint64 {
	h := k.srcLo*0x9e3779b97f4a7c15 ^ k.dstLo*0xc2b2ae3d27d4eb4f ^
		(k.srcHi^k.dstHi)*0x165667b19e3779f9 ^
		(k.meta+uint64(k.policy)<<40)*0xd6e8feb86659fd93
	h ^= h >> 29
	return h * 0xbf58476d1ce4e5b9
}

// equal is k == *o written out, which the compiler turns into six compares instead of a
// call to memequal.
func (k *flowKey) equal(o *flowKey) bool {
	return k.srcLo == o.srcLo && k.dstLo == o.dstLo && k.meta == o.meta && k.policy == o.policy &&
		k.srcHi == o.srcHi && k.dstHi == o.dstHi
}

// less orders keys for deterministic output.
func (k *flowKey) less(o *flowKey) bool {
	switch {
	case k.srcHi != o.srcHi:
		return k.srcHi < o.srcHi
	case k.srcLo != o.srcLo:
		return k.srcLo < o.srcLo
	case k.dstHi != o.dstHi:
		return k.dstHi < o.dstHi
	case k.dstLo != o.dstLo:
		return k.dstLo < o.dstLo
	default:
		return k.meta < o.meta
	}
}
