package collector

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
)

// classifier finds the first matching policy without scanning the policies. Policies get a
// bit each, in match order (priority, then id). For each field the value space is cut into
// the intervals between the policies' range boundaries, and each interval stores the bit set
// of policies whose criterion covers it. A flow's candidates are the AND of the five sets
// its fields fall in, and the answer is the lowest bit. Memory is about intervals x policies
// bits per field: for 1,000 policies with distinct prefixes about 250 KiB per field.
type classifier struct {
	ids              []int64 // policy id of each bit
	words            int     // uint64 words per bit set
	proto            []uint64
	srcPort, dstPort index32
	src4, dst4       index32
	src6, dst6       index128
	// anyAddr holds the policies without a CIDR: what an invalid address can match.
	anyAddrSrc, anyAddrDst []uint64
}

// index32 maps a 32-bit value (a port or an IPv4 address) to the bit set of its interval.
// With many intervals a binary search costs more than the rest of classification, so
// bucket maps the top 16 bits of the value to the first interval that can hold it, leaving
// a search over the few boundaries inside one bucket (none, for ports).
type index32 struct {
	starts []uint32
	sets   []uint64
	shift  uint     // value >> shift is the bucket
	bucket []uint32 // len 1<<16 + 1, or nil for a plain binary search
}

// bucketedIntervals is the number of intervals from which lookups go through buckets.
const bucketedIntervals = 16

func (x *index32) buildBuckets(bits uint) {
	if len(x.starts) < bucketedIntervals {
		return
	}
	x.shift = bits - 16
	x.bucket = make([]uint32, 1<<16+1)
	i := 0
	for b := range 1 << 16 {
		first := uint32(b) << x.shift
		for i+1 < len(x.starts) && x.starts[i+1] <= first {
			i++
		}
		x.bucket[b] = uint32(i)
	}
	x.bucket[1<<16] = uint32(len(x.starts) - 1)
}

func (x *index32) lookup(v uint32, w int) []uint64 {
	s := x.starts
	lo, n := 0, len(s)
	if x.bucket != nil {
		b := v >> x.shift
		lo = int(x.bucket[b])
		n = int(x.bucket[b+1]) - lo + 1
	}
	// Branch-free: the branch of a binary search is unpredictable, and the compiler keeps
	// it (no conditional move on a loop-carried value); mispredicting it cost more than the
	// comparisons. d >> 63 is all ones exactly when s[mid] > v.
	for n > 1 {
		half := n >> 1
		d := int64(v) - int64(s[lo+half])
		lo += half &^ int(d>>63)
		n -= half
	}
	return x.sets[lo*w : lo*w+w]
}

type u128 struct{ hi, lo uint64 }

func cmp128(a, b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// index128 maps an IPv6 address to the bit set of its interval.
type index128 struct {
	starts []u128
	sets   []uint64
}

func (x *index128) lookup(v u128, w int) []uint64 {
	s := x.starts
	lo, n := 0, len(s)
	for n > 1 {
		half := n >> 1
		if m := s[lo+half]; m.hi < v.hi || (m.hi == v.hi && m.lo <= v.lo) {
			lo += half
		}
		n -= half
	}
	return x.sets[lo*w : lo*w+w]
}

// span is an inclusive range of one field that policy bit accepts.
type span[T any] struct {
	lo, hi T
	bit    int
}

// buildIndex cuts the value space [zero, max] at every span boundary and computes the bit
// set of each interval. succ returns v+1, or false at the maximum.
func buildIndex[T any](spans []span[T], anyBits []int, words int, zero T,
	compare func(a, b T) int, succ func(T) (T, bool)) (starts []T, sets []uint64) {
	starts = []T{zero}
	for _, s := range spans {
		starts = append(starts, s.lo)
		if next, ok := succ(s.hi); ok {
			starts = append(starts, next)
		}
	}
	slices.SortFunc(starts, compare)
	starts = slices.CompactFunc(starts, func(a, b T) bool { return compare(a, b) == 0 })
	sets = make([]uint64, len(starts)*words)
	find := func(v T) int {
		i, _ := slices.BinarySearchFunc(starts, v, compare)
		return i
	}
	for _, s := range spans {
		end := len(starts)
		if next, ok := succ(s.hi); ok {
			end = find(next)
		}
		for i := find(s.lo); i < end; i++ {
			sets[i*words+s.bit>>6] |= 1 << (s.bit & 63)
		}
	}
	for _, b := range anyBits {
		for i := range starts {
			sets[i*words+b>>6] |= 1 << (b & 63)
		}
	}
	return starts, sets
}

func succ32(max uint32) func(uint32) (uint32, bool) {
	return func(v uint32) (uint32, bool) { return v + 1, v != max }
}

func succ128(v u128) (u128, bool) {
	if v.lo != math.MaxUint64 {
		return u128{v.hi, v.lo + 1}, true
	}
	return u128{v.hi + 1, 0}, v.hi != math.MaxUint64
}

// parseCIDR parses a policy prefix; an IPv4-mapped IPv6 prefix becomes the IPv4 one, because
// flows are keyed by their unmapped addresses.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// addrDims collects one address field's spans for the IPv4 and IPv6 indexes.
type addrDims struct {
	v4    []span[uint32]
	v6    []span[u128]
	any   []int
	field string
}

func (d *addrDims) add(cidr string, bit int, id int64) error {
	if cidr == "" {
		d.any = append(d.any, bit)
		return nil
	}
	p, err := parseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("policy %d: %s %q: %w", id, d.field, cidr, err)
	}
	if p.Addr().Is4() {
		a := p.Addr().As4()
		lo := binary.BigEndian.Uint32(a[:])
		d.v4 = append(d.v4, span[uint32]{lo, lo | ^uint32(0)>>p.Bits(), bit})
		return nil
	}
	a := p.Addr().As16()
	lo := u128{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])}
	hi := lo
	if b := p.Bits(); b <= 64 {
		hi = u128{lo.hi | ^uint64(0)>>b, math.MaxUint64}
	} else {
		hi.lo |= ^uint64(0) >> (b - 64)
	}
	d.v6 = append(d.v6, span[u128]{lo, hi, bit})
	return nil
}

func (d *addrDims) build(words int) (v4 index32, v6 index128, anySet []uint64) {
	v4.starts, v4.sets = buildIndex(d.v4, d.any, words, 0, cmp.Compare[uint32], succ32(math.MaxUint32))
	v4.buildBuckets(32)
	v6.starts, v6.sets = buildIndex(d.v6, d.any, words, u128{}, cmp128, succ128)
	anySet = make([]uint64, words)
	for _, b := range d.any {
		anySet[b>>6] |= 1 << (b & 63)
	}
	return v4, v6, anySet
}

func portSpans(ranges []PortRange, bit int, id int64, field string) ([]span[uint32], error) {
	out := make([]span[uint32], 0, len(ranges))
	for _, r := range ranges {
		if r.From > r.To {
			return nil, fmt.Errorf("policy %d: %s range %d-%d is reversed", id, field, r.From, r.To)
		}
		out = append(out, span[uint32]{uint32(r.From), uint32(r.To), bit})
	}
	return out, nil
}

// compileClassifier builds the classifier of the enabled policies.
func compileClassifier(policies []Policy) (*classifier, error) {
	enabled := make([]*Policy, 0, len(policies))
	for i := range policies {
		if policies[i].Enabled {
			enabled = append(enabled, &policies[i])
		}
	}
	slices.SortFunc(enabled, func(a, b *Policy) int {
		if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	words := (len(enabled) + 63) / 64
	c := &classifier{ids: make([]int64, len(enabled)), words: words, proto: make([]uint64, 256*words)}
	src := addrDims{field: "src_cidr"}
	dst := addrDims{field: "dst_cidr"}
	var srcPorts, dstPorts []span[uint32]
	var anySrcPort, anyDstPort []int
	for bit, p := range enabled {
		c.ids[bit] = p.ID
		switch {
		case p.Protocol == nil:
			for v := range 256 {
				c.proto[v*words+bit>>6] |= 1 << (bit & 63)
			}
		case *p.Protocol < 0 || *p.Protocol > 255:
			return nil, fmt.Errorf("policy %d: protocol %d is not in 0-255", p.ID, *p.Protocol)
		default:
			c.proto[*p.Protocol*words+bit>>6] |= 1 << (bit & 63)
		}
		if err := src.add(p.SrcCIDR, bit, p.ID); err != nil {
			return nil, err
		}
		if err := dst.add(p.DstCIDR, bit, p.ID); err != nil {
			return nil, err
		}
		if len(p.SrcPorts) == 0 {
			anySrcPort = append(anySrcPort, bit)
		} else {
			s, err := portSpans(p.SrcPorts, bit, p.ID, "src_ports")
			if err != nil {
				return nil, err
			}
			srcPorts = append(srcPorts, s...)
		}
		if len(p.DstPorts) == 0 {
			anyDstPort = append(anyDstPort, bit)
		} else {
			s, err := portSpans(p.DstPorts, bit, p.ID, "dst_ports")
			if err != nil {
				return nil, err
			}
			dstPorts = append(dstPorts, s...)
		}
	}
	c.srcPort.starts, c.srcPort.sets = buildIndex(srcPorts, anySrcPort, words, 0, cmp.Compare[uint32], succ32(math.MaxUint16))
	c.dstPort.starts, c.dstPort.sets = buildIndex(dstPorts, anyDstPort, words, 0, cmp.Compare[uint32], succ32(math.MaxUint16))
	c.srcPort.buildBuckets(16)
	c.dstPort.buildBuckets(16)
	c.src4, c.src6, c.anyAddrSrc = src.build(words)
	c.dst4, c.dst6, c.anyAddrDst = dst.build(words)
	return c, nil
}

func (c *classifier) addrSet(a netip.Addr, v4 *index32, v6 *index128, none []uint64) []uint64 {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return v4.lookup(binary.BigEndian.Uint32(b[:]), c.words)
	case a.Is6():
		b := a.As16()
		return v6.lookup(u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, c.words)
	default:
		return none
	}
}

// classify returns the id of the first policy matching k.
func (c *classifier) classify(k *FlowKey) (int64, bool) {
	w := c.words
	if w == 0 {
		return 0, false
	}
	p := c.proto[int(k.Protocol)*w:][:w]
	sp := c.srcPort.lookup(uint32(k.SrcPort), w)[:w]
	dp := c.dstPort.lookup(uint32(k.DstPort), w)[:w]
	sa := c.addrSet(k.SrcIP, &c.src4, &c.src6, c.anyAddrSrc)[:w]
	da := c.addrSet(k.DstIP, &c.dst4, &c.dst6, c.anyAddrDst)[:w]
	for j := range w {
		if x := p[j] & sp[j] & dp[j] & sa[j] & da[j]; x != 0 {
			return c.ids[j<<6|bits.TrailingZeros64(x)], true
		}
	}
	return 0, false
}
