package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Workload of the record benchmarks: every goroutine has its own benchFlows flows spread over
// benchPolicies policies, as edge routers reporting different sites would.
const (
	benchPolicies = 8
	benchFlows    = 256
	benchWorkers  = 64 // flow sets prepared; goroutines beyond reuse them
)

func benchFlow(worker, j int) FlowKey {
	return FlowKey{
		SrcIP:   netip.AddrFrom4([4]byte{10, byte(worker), byte(j >> 8), byte(j)}),
		DstIP:   netip.AddrFrom4([4]byte{172, 16, byte(j % 16), 1}),
		SrcPort: uint16(20000 + j), DstPort: 443, Protocol: 6,
	}
}

func benchPolicySet() []Policy {
	ps := make([]Policy, benchPolicies)
	for i := range ps {
		ps[i] = policy(int64(i+1), i)
	}
	return ps
}

type recorder interface {
	RecordPacket(policyID int64, k FlowKey, bytes uint64)
}

// newBenchRecorder returns the Collector, running so that its cached clock ticks, or the
// baseline on a clock as cheap; stop releases it.
func newBenchRecorder(b *testing.B, impl string) (r recorder, stop func()) {
	c := New(Config{})
	if err := c.SetPolicies(benchPolicySet()); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	if impl == "baseline" {
		return newBaselineCollector(&c.coarse), stop
	}
	return c, stop
}

func BenchmarkRecordPacket(b *testing.B) {
	for _, impl := range []string{"sharded", "baseline"} {
		b.Run("flow=existing/impl="+impl, func(b *testing.B) {
			r, stop := newBenchRecorder(b, impl)
			defer stop()
			for w := range benchWorkers {
				for j := range benchFlows {
					r.RecordPacket(int64(1+j%benchPolicies), benchFlow(w, j), 100)
				}
			}
			var workers atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := int(workers.Add(1)-1) % benchWorkers
				flows := make([]FlowKey, benchFlows)
				for j := range flows {
					flows[j] = benchFlow(w, j)
				}
				j := 0
				for pb.Next() {
					r.RecordPacket(int64(1+j%benchPolicies), flows[j], 1200)
					j = (j + 1) % benchFlows
				}
			})
		})
	}
	for _, impl := range []string{"sharded", "baseline"} {
		// Every op is a flow never seen; the recorder is replaced every 2^18 flows so that
		// the table size, and the memory used, stay bounded.
		b.Run("flow=new/impl="+impl, func(b *testing.B) {
			const segment = 1 << 18
			var r recorder
			stop := func() {}
			defer func() { stop() }()
			b.ReportAllocs()
			for i := range b.N {
				if i%segment == 0 {
					b.StopTimer()
					stop()
					r, stop = newBenchRecorder(b, impl)
					b.StartTimer()
				}
				k := FlowKey{SrcIP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
					DstIP: netip.AddrFrom4([4]byte{172, 16, 0, 1}), SrcPort: uint16(i), DstPort: 443, Protocol: 6}
				r.RecordPacket(int64(1+i%benchPolicies), k, 1200)
			}
		})
	}
}

// classifyWorkload is 1,000 policies as an SD-WAN might have them (each for a service: a
// destination prefix, a protocol, a few ports) and two sets of flows: ones built to hit a
// random policy, and ones no policy matches, which a scan must check against all of them.
func classifyWorkload(rng *rand.Rand) (policies []Policy, hit, miss []FlowKey) {
	ports := []uint16{22, 25, 53, 80, 123, 443, 993, 3389, 5060, 8080, 8443}
	for i := range 1000 {
		p := Policy{ID: int64(i + 1), Priority: rng.IntN(100), Enabled: true, Protocol: ptr([]int{6, 17}[rng.IntN(2)])}
		if rng.IntN(5) == 0 {
			p.DstCIDR = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48).String()
		} else {
			p.DstCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 16+rng.IntN(9)).Masked().String()
		}
		if rng.IntN(4) == 0 {
			from := uint16(10000 + rng.IntN(40000))
			p.DstPorts = []PortRange{{From: from, To: from + uint16(rng.IntN(1000))}}
		} else {
			port := ports[rng.IntN(len(ports))]
			p.DstPorts = []PortRange{{From: port, To: port}}
		}
		if rng.IntN(10) == 0 {
			p.SrcCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(16 + rng.IntN(16)), 0, 0}), 16).String()
		}
		policies = append(policies, p)
	}
	for len(hit) < 4096 {
		p := policies[rng.IntN(len(policies))]
		dst := netip.MustParsePrefix(p.DstCIDR).Addr().As16()
		dst[15] = byte(rng.IntN(256))
		src := netip.AddrFrom4([4]byte{172, byte(16 + rng.IntN(16)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		k := FlowKey{SrcIP: src, DstIP: netip.AddrFrom16(dst).Unmap(), SrcPort: uint16(1024 + rng.IntN(60000)),
			DstPort: p.DstPorts[0].From, Protocol: uint8(*p.Protocol)}
		if _, ok := referenceMatch(policies, k); ok {
			hit = append(hit, k)
		}
	}
	for len(miss) < 4096 {
		k := FlowKey{SrcIP: netip.AddrFrom4([4]byte{172, 16, byte(rng.IntN(256)), byte(rng.IntN(256))}),
			DstIP:   netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}),
			SrcPort: uint16(1024 + rng.IntN(60000)), DstPort: uint16(rng.IntN(65536)), Protocol: 6}
		if _, ok := referenceMatch(policies, k); !ok {
			miss = append(miss, k)
		}
	}
	return policies, hit, miss
}

func BenchmarkClassify(b *testing.B) {
	policies, hit, miss := classifyWorkload(rand.New(rand.NewPCG(3, 4)))
	c := New(Config{})
	if err := c.SetPolicies(policies); err != nil {
		b.Fatal(err)
	}
	lc := newLinearClassifier(policies)
	impls := map[string]func(*FlowKey) (int64, bool){
		"bitset": c.policies.Load().cls.classify,
		"linear": lc.classify,
	}
	for _, flows := range []struct {
		name string
		keys []FlowKey
	}{{"hit", hit}, {"miss", miss}} {
		for _, impl := range []string{"bitset", "linear"} {
			classify := impls[impl]
			b.Run("policies=1000/flows="+flows.name+"/impl="+impl, func(b *testing.B) {
				b.ReportAllocs()
				matched := 0
				for i := range b.N {
					if _, ok := classify(&flows.keys[i&4095]); ok {
						matched++
					}
				}
				if want := flows.name == "hit"; (matched > 0) != want && b.N > 4096 {
					b.Fatalf("%d of %d matched", matched, b.N)
				}
			})
		}
	}
}

// benchBatch is a batch of n reports like an edge router sends: mostly IPv4, some IPv6, half
// already tagged with a policy.
func benchBatch(n int) ([]Report, []byte) {
	rng := rand.New(rand.NewPCG(5, 6))
	reports := make([]Report, n)
	for i := range reports {
		reports[i] = Report{Flow: randomFlow(rng), Packets: uint64(1 + rng.IntN(100)), Bytes: uint64(64 + rng.IntN(150000))}
		if i%2 == 0 {
			reports[i].PolicyID = ptr(int64(1 + rng.IntN(1000)))
		}
	}
	return reports, AppendBatchJSON(nil, reports)
}

// wireBatch is the body as encoding/json would decode it, before validation.
type wireBatch struct {
	Reports []struct {
		PolicyID *int64 `json:"policy_id"`
		Flow     struct {
			SrcIP    string `json:"src_ip"`
			DstIP    string `json:"dst_ip"`
			SrcPort  uint16 `json:"src_port"`
			DstPort  uint16 `json:"dst_port"`
			Protocol uint8  `json:"protocol"`
		} `json:"flow"`
		Packets uint64 `json:"packets"`
		Bytes   uint64 `json:"bytes"`
	} `json:"reports"`
}

// decodeStdlib is the alternative to the scanner: encoding/json, strict, then the checks
// it cannot do (addresses), with coarser error positions.
func decodeStdlib(body []byte) ([]Report, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var w wireBatch
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	out := make([]Report, len(w.Reports))
	for i, r := range w.Reports {
		src, err1 := netip.ParseAddr(r.Flow.SrcIP)
		dst, err2 := netip.ParseAddr(r.Flow.DstIP)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("reports[%d]: bad address", i)
		}
		out[i] = Report{PolicyID: r.PolicyID, Flow: FlowKey{src.Unmap(), dst.Unmap(), r.Flow.SrcPort, r.Flow.DstPort, r.Flow.Protocol},
			Packets: r.Packets, Bytes: r.Bytes}
	}
	return out, nil
}

func BenchmarkDecodeBatch(b *testing.B) {
	const n = 1000
	_, body := benchBatch(n)
	impls := map[string]func([]byte) ([]Report, error){
		"scanner":       func(body []byte) ([]Report, error) { return DecodeBatch(bytes.NewReader(body), MaxBatchReports) },
		"encoding_json": decodeStdlib,
	}
	for _, impl := range []string{"scanner", "encoding_json"} {
		decode := impls[impl]
		b.Run(fmt.Sprintf("reports=%d/impl=%s", n, impl), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for range b.N {
				if got, err := decode(body); err != nil || len(got) != n {
					b.Fatal(len(got), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/report")
		})
	}
}

// BenchmarkRecordBatch is the collector's part of HTTP ingest: validating and recording a
// 1,000-report batch, half of it tagged with a policy and half classified against 1,000
// policies (of which half match one).
func BenchmarkRecordBatch(b *testing.B) {
	const n = 1000
	reports, _ := benchBatch(n)
	policies, hit, _ := classifyWorkload(rand.New(rand.NewPCG(3, 4)))
	for i := range reports {
		if reports[i].PolicyID == nil && i%4 == 1 {
			reports[i].Flow = hit[i] // half of the classified ones match a policy
		}
	}
	c := New(Config{})
	if err := c.SetPolicies(policies); err != nil {
		b.Fatal(err)
	}
	// Each goroutine sends its own flows, as different edge routers do.
	var workers atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := workers.Add(1)
		mine := slices.Clone(reports)
		for i := range mine {
			mine[i].Flow.SrcPort ^= uint16(w * 7919)
		}
		for pb.Next() {
			if _, err := c.RecordBatch(mine); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/report")
}

// BenchmarkTakeDeltas is the collector's side of a history flush: 1,000 policies with
// 100,000 tracked flows, each of which saw traffic since the previous flush.
func BenchmarkTakeDeltas(b *testing.B) {
	policies := make([]Policy, 1000)
	for i := range policies {
		policies[i] = policy(int64(i+1), i)
	}
	c := New(Config{})
	if err := c.SetPolicies(policies); err != nil {
		b.Fatal(err)
	}
	flows := make([]FlowKey, 100_000)
	for i := range flows {
		flows[i] = FlowKey{SrcIP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			DstIP: netip.AddrFrom4([4]byte{172, 16, 0, 1}), SrcPort: uint16(i), DstPort: 443, Protocol: 6}
	}
	now := time.Now()
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		for i := range flows {
			c.Record(int64(1+i%len(policies)), flows[i], 1, 100)
		}
		b.StartTimer()
		if d := c.TakeDeltas(now); len(d) != len(policies) {
			b.Fatalf("%d deltas", len(d))
		}
	}
}
