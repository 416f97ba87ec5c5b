package flowexport

import (
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/format"
	_ "github.com/netsampler/goflow2/v2/format/binary" // goflow2's protobuf output
	_ "github.com/netsampler/goflow2/v2/format/json"   // goflow2's default output
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
	"github.com/netsampler/goflow2/v2/transport"
	_ "github.com/netsampler/goflow2/v2/transport/file" // goflow2's default transport
	"github.com/netsampler/goflow2/v2/utils"

	"github.com/patronus-sdwan/patronus/collector"
)

// The replayed stream: benchDatagrams IPFIX datagrams of full 1,400-byte payloads, from
// benchFlows distinct flows, of which about 4 in 5 match one of benchPolicies policies.
const (
	benchPolicies  = 1000
	benchFlows     = 16384
	benchDatagrams = 512
)

// benchWorkload returns the policies and the datagrams (template first) of the stream, for
// one IPFIX (version 10) or NetFlow v9 exporter, and how many flow records each data
// datagram holds.
func benchWorkload(version uint16) (policies []collector.Policy, stream [][]byte, perDatagram int) {
	rng := rand.New(rand.NewPCG(14, 2055))
	ports := []uint16{22, 53, 80, 123, 443, 993, 3389, 5060, 8080, 8443}
	for i := range benchPolicies {
		proto := []int{6, 17}[rng.IntN(2)]
		policies = append(policies, collector.Policy{
			ID: int64(i + 1), Name: "p", Priority: rng.IntN(100), Enabled: true, Protocol: &proto,
			DstCIDR:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24).String(),
			DstPorts: []collector.PortRange{{From: ports[i%len(ports)], To: ports[i%len(ports)]}},
		})
	}
	flows := make([]EncodedFlow, benchFlows)
	for i := range flows {
		p := policies[rng.IntN(len(policies))]
		dst := netip.MustParsePrefix(p.DstCIDR).Addr().As4()
		dst[3] = byte(rng.IntN(256))
		k := collector.FlowKey{
			SrcIP: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), DstIP: netip.AddrFrom4(dst),
			SrcPort: uint16(1024 + rng.IntN(60000)), DstPort: p.DstPorts[0].From, Protocol: uint8(*p.Protocol),
		}
		if rng.IntN(5) == 0 {
			k.DstPort++ // a miss: unclassified
		}
		flows[i] = EncodedFlow{Flow: k, Packets: uint64(1 + rng.IntN(100)), Bytes: uint64(64 + rng.IntN(100_000))}
	}
	e := &Encoder{Version: version, TemplateID: 256}
	perDatagram = e.RecordsPerDatagram(1400)
	stream = append(stream, e.Template())
	for d := range benchDatagrams {
		var batch []EncodedFlow
		for j := range perDatagram {
			batch = append(batch, flows[(d*perDatagram+j)%len(flows)])
		}
		dg, err := e.Data(batch)
		if err != nil {
			panic(err)
		}
		stream = append(stream, dg)
	}
	return policies, stream, perDatagram
}

// BenchmarkFlowPath replays one stream of flow datagrams through Patronus's path (goflow2's
// decoder, classification against 1,000 policies, recording into the collector) and through
// GoFlow2's own pipeline as cmd/goflow2 runs it (utils.NetFlowPipe: the same decoder, its
// protobuf producer, its JSON or binary format, its file transport writing to /dev/null).
// Reported in flow records per second; run with -cpu 1 for the rate per core. Each
// goroutine is its own exporter (its own source address), as SO_REUSEPORT spreads exporters
// over sockets.
func BenchmarkFlowPath(b *testing.B) {
	for _, version := range []uint16{10, 9} {
		name := map[uint16]string{9: "v9", 10: "ipfix"}[version]
		policies, stream, perDatagram := benchWorkload(version)
		b.Run("proto="+name+"/impl=patronus", func(b *testing.B) {
			c := collector.New(collector.Config{})
			if err := c.SetPolicies(policies); err != nil {
				b.Fatal(err)
			}
			d := NewDecoder(c, DecoderConfig{})
			var exporters atomic.Uint32
			b.ResetTimer()
			cpu := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				src := netip.AddrFrom4([4]byte{192, 0, 2, byte(exporters.Add(1))})
				batch := NewBatch()
				r := newReplay(stream, version, perDatagram)
				d.NetFlow(batch, src, stream[0])
				for pb.Next() {
					d.NetFlow(batch, src, r.next())
				}
			})
			reportRecords(b, perDatagram, cpu)
			if tot := c.Totals(); tot.Packets == 0 || tot.UnclassifiedPackets == tot.Packets {
				b.Fatalf("nothing classified: %+v", tot)
			}
			var records uint64
			for _, e := range d.Exporters() {
				if e.UnknownTemplates != 0 || e.DecodeErrors != 0 || e.Restarts != 0 {
					b.Fatalf("exporter %+v: the replay was not decoded whole", e)
				}
				records += e.FlowRecords
			}
			if records < uint64(b.N*perDatagram) {
				b.Fatalf("%d records recorded, want %d", records, b.N*perDatagram)
			}
		})
		for _, out := range []string{"json", "bin"} {
			b.Run("proto="+name+"/impl=goflow2-"+out, func(b *testing.B) {
				pipe := newGoflow2Pipe(b, out)
				var exporters atomic.Uint32
				b.ResetTimer()
				cpu := cpuTime(b)
				b.RunParallel(func(pb *testing.PB) {
					src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(exporters.Add(1))}), 2055)
					msg := &utils.Message{Src: src, Payload: stream[0], Received: time.Now()}
					if err := pipe.DecodeFlow(msg); err != nil {
						b.Error(err)
						return
					}
					r := newReplay(stream, version, perDatagram)
					for pb.Next() {
						msg.Payload = r.next()
						if err := pipe.DecodeFlow(msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
				reportRecords(b, perDatagram, cpu)
			})
		}
	}
}

// replay hands out the data datagrams of a stream round and round, their sequence numbers
// rewritten to keep counting up as an exporter's would (a sequence going back is a restart).
type replay struct {
	data    [][]byte
	i       int
	seq     uint32
	version uint16
	step    uint32
}

func newReplay(stream [][]byte, version uint16, perDatagram int) *replay {
	r := &replay{version: version, step: 1}
	if version == 10 {
		r.step = uint32(perDatagram)
	}
	for _, dg := range stream[1:] {
		r.data = append(r.data, append([]byte(nil), dg...))
	}
	return r
}

func (r *replay) next() []byte {
	dg := r.data[r.i]
	r.i = (r.i + 1) % len(r.data)
	off := 12 // v9: sequence after version, count, uptime, unix seconds
	if r.version == 10 {
		off = 8
	}
	binary.BigEndian.PutUint32(dg[off:], r.seq)
	r.seq += r.step
	return dg
}

// reportRecords reports records per second of wall time and per second of CPU time (user
// and system, every thread, the GC's included) since cpu was taken. On a shared machine the
// wall rate depends on what else runs; the CPU rate is the rate per core.
func reportRecords(b *testing.B, perDatagram int, cpu time.Duration) {
	records := float64(b.N * perDatagram)
	b.ReportMetric(records/b.Elapsed().Seconds(), "records/s")
	used := cpuTime(b) - cpu
	b.ReportMetric(records/used.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(used.Nanoseconds())/records, "cpu-ns/record")
}

// cpuTime is the CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// newGoflow2Pipe builds GoFlow2's NetFlow pipeline as cmd/goflow2 does with -format out
// -transport file -transport.file /dev/null and the default mapping.
func newGoflow2Pipe(b *testing.B, out string) *utils.NetFlowPipe {
	b.Helper()
	if err := flag.Set("transport.file", "/dev/null"); err != nil {
		b.Fatal(err)
	}
	formatter, err := format.FindFormat(out)
	if err != nil {
		b.Fatal(err)
	}
	transporter, err := transport.FindTransport("file")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = transporter.Close() })
	var cfg *protoproducer.ProducerConfig
	compiled, err := cfg.Compile()
	if err != nil {
		b.Fatal(err)
	}
	producer, err := protoproducer.CreateProtoProducer(compiled, protoproducer.CreateSamplingSystem)
	if err != nil {
		b.Fatal(err)
	}
	return utils.NewNetFlowPipe(&utils.PipeConfig{Format: formatter, Transport: transporter, Producer: producer})
}
