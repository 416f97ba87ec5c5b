package flowexport

import (
	"bytes"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/patronus-sdwan/patronus/collector"
)

// sFlow sampled-header protocols (sFlow v5 header_protocol).
const (
	sflowHeaderEthernet = 1
	sflowHeaderIPv4     = 11
	sflowHeaderIPv6     = 12
)

// SFlow decodes one sFlow v5 datagram from src and records one report per flow sample,
// scaled by the sample's sampling rate.
func (d *Decoder) SFlow(b *Batch, src netip.Addr, payload []byte) {
	e := d.exporters.get(src, SFlow)
	e.datagrams.Add(1)
	d.metrics.datagrams[SFlow].Inc()
	var pkt sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(payload), &pkt); err != nil {
		d.decodeError(e, SFlow)
		return
	}
	e.version.Store(int32(pkt.Version))
	for _, s := range pkt.Samples {
		var rate uint32
		var records []sflow.FlowRecord
		switch fs := s.(type) {
		case sflow.FlowSample:
			rate, records = fs.SamplingRate, fs.Records
		case sflow.ExpandedFlowSample:
			rate, records = fs.SamplingRate, fs.Records
		default:
			continue // counter and drop samples carry no traffic to count
		}
		rate = max(rate, 1)
		e.samplingRate.Store(rate)
		b.addSample(records, rate)
	}
	d.record(b, e, SFlow)
}

// addSample counts one sampled packet from the first record that describes it: the sampled
// header, else the sampled IPv4/IPv6 record.
func (b *Batch) addSample(records []sflow.FlowRecord, rate uint32) {
	for _, r := range records {
		switch rec := r.Data.(type) {
		case sflow.SampledHeader:
			if k, ipBytes, ok := b.sflow.parse(rec); ok {
				b.add(k, 1, ipBytes, rate)
				return
			}
		case sflow.SampledIPv4:
			b.add(sampledIPKey(rec.SampledIPBase), 1, uint64(rec.Length), rate)
			return
		case sflow.SampledIPv6:
			b.add(sampledIPKey(rec.SampledIPBase), 1, uint64(rec.Length), rate)
			return
		}
	}
}

func sampledIPKey(r sflow.SampledIPBase) collector.FlowKey {
	return collector.FlowKey{SrcIP: addrOf(r.SrcIP), DstIP: addrOf(r.DstIP),
		SrcPort: uint16(r.SrcPort), DstPort: uint16(r.DstPort), Protocol: uint8(r.Protocol)}
}

// headerParser reads the 5-tuple and IP length of a sampled packet header with gopacket's
// decoding layers, reused from one header to the next.
type headerParser struct {
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	ethP    *gopacket.DecodingLayerParser
	ip4P    *gopacket.DecodingLayerParser
	ip6P    *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newHeaderParser() *headerParser {
	h := &headerParser{}
	dl := []gopacket.DecodingLayer{&h.eth, &h.dot1q, &h.ip4, &h.ip6, &h.tcp, &h.udp}
	h.ethP = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, dl...)
	h.ip4P = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, dl...)
	h.ip6P = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, dl...)
	for _, p := range []*gopacket.DecodingLayerParser{h.ethP, h.ip4P, h.ip6P} {
		p.IgnoreUnsupported = true
		p.IgnorePanic = true
	}
	return h
}

// parse returns the flow of a sampled header and the IP length of the packet (from its IP
// header, which holds the length of the whole packet even when the sample is truncated).
func (h *headerParser) parse(s sflow.SampledHeader) (collector.FlowKey, uint64, bool) {
	var p *gopacket.DecodingLayerParser
	switch s.Protocol {
	case sflowHeaderEthernet:
		p = h.ethP
	case sflowHeaderIPv4:
		p = h.ip4P
	case sflowHeaderIPv6:
		p = h.ip6P
	default:
		return collector.FlowKey{}, 0, false
	}
	h.decoded = h.decoded[:0]
	_ = p.DecodeLayers(s.HeaderData, &h.decoded) // a truncated transport header still leaves the IP layer
	var k collector.FlowKey
	var ipBytes uint64
	for _, t := range h.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			k.SrcIP = addrOf(h.ip4.SrcIP.To4())
			k.DstIP = addrOf(h.ip4.DstIP.To4())
			k.Protocol = uint8(h.ip4.Protocol)
			ipBytes = uint64(h.ip4.Length)
		case layers.LayerTypeIPv6:
			k.SrcIP = addrOf(h.ip6.SrcIP.To16())
			k.DstIP = addrOf(h.ip6.DstIP.To16())
			k.Protocol = uint8(h.ip6.NextHeader)
			ipBytes = uint64(h.ip6.Length) + 40
		case layers.LayerTypeTCP:
			k.SrcPort, k.DstPort = uint16(h.tcp.SrcPort), uint16(h.tcp.DstPort)
		case layers.LayerTypeUDP:
			k.SrcPort, k.DstPort = uint16(h.udp.SrcPort), uint16(h.udp.DstPort)
		}
	}
	if !k.SrcIP.IsValid() || !k.DstIP.IsValid() {
		return collector.FlowKey{}, 0, false
	}
	return k, ipBytes, true
}
