package collector

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct{ nanos atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.nanos.Store(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

func flow(t testing.TB, src, dst string, srcPort, dstPort uint16, proto uint8) FlowKey {
	t.Helper()
	return FlowKey{
		SrcIP: netip.MustParseAddr(src), DstIP: netip.MustParseAddr(dst),
		SrcPort: srcPort, DstPort: dstPort, Protocol: proto,
	}
}

func ptr[T any](v T) *T { return &v }

// policy builds an enabled policy matching everything, for options to narrow.
func policy(id int64, priority int, opts ...func(*Policy)) Policy {
	p := Policy{ID: id, Name: "p", Priority: priority, Enabled: true}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func proto(n int) func(*Policy)      { return func(p *Policy) { p.Protocol = &n } }
func srcCIDR(s string) func(*Policy) { return func(p *Policy) { p.SrcCIDR = s } }
func dstCIDR(s string) func(*Policy) { return func(p *Policy) { p.DstCIDR = s } }
func disabled(p *Policy)             { p.Enabled = false }

func dstPorts(r ...uint16) func(*Policy) {
	return func(p *Policy) {
		for i := 0; i+1 < len(r); i += 2 {
			p.DstPorts = append(p.DstPorts, PortRange{From: r[i], To: r[i+1]})
		}
	}
}

func srcPorts(r ...uint16) func(*Policy) {
	return func(p *Policy) {
		for i := 0; i+1 < len(r); i += 2 {
			p.SrcPorts = append(p.SrcPorts, PortRange{From: r[i], To: r[i+1]})
		}
	}
}

// newTestCollector returns a collector on a fake clock that knows the given policies.
func newTestCollector(t testing.TB, cfg Config, policies ...Policy) (*Collector, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	c := New(cfg)
	if err := c.SetPolicies(policies); err != nil {
		t.Fatalf("SetPolicies: %v", err)
	}
	return c, clock
}

func mustStats(t *testing.T, c *Collector, id int64) PolicyStats {
	t.Helper()
	st, ok := c.PolicyStats(id)
	if !ok {
		t.Fatalf("PolicyStats(%d): unknown policy", id)
	}
	return st
}

// referenceMatch is the obvious classifier the compiled one must agree with: a scan of the
// enabled policies in priority order.
func referenceMatch(policies []Policy, k FlowKey) (int64, bool) {
	var best *Policy
	for i := range policies {
		p := &policies[i]
		if !p.Enabled || !referenceMatches(p, k) {
			continue
		}
		if best == nil || p.Priority < best.Priority || (p.Priority == best.Priority && p.ID < best.ID) {
			best = p
		}
	}
	if best == nil {
		return 0, false
	}
	return best.ID, true
}

func referenceMatches(p *Policy, k FlowKey) bool {
	if p.Protocol != nil && *p.Protocol != int(k.Protocol) {
		return false
	}
	cidr := func(s string, a netip.Addr) bool {
		if s == "" {
			return true
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return false
		}
		a = a.Unmap()
		if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		return pfx.Contains(a)
	}
	ports := func(rs []PortRange, port uint16) bool {
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
	return cidr(p.SrcCIDR, k.SrcIP) && cidr(p.DstCIDR, k.DstIP) &&
		ports(p.SrcPorts, k.SrcPort) && ports(p.DstPorts, k.DstPort)
}
