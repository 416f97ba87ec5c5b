package flowexport

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// sflowPacket is one sampled packet of a hand-built sFlow datagram.
type sflowPacket struct {
	src, dst       string
	sport, dport   uint16
	payload        int // UDP payload bytes
	samplingRate   uint32
	truncateHeader int // sampled header bytes kept; 0 keeps all
}

// ethernetFrame serialises an Ethernet/IPv4/UDP frame with gopacket and returns it with its
// IP length.
func ethernetFrame(t testing.TB, p sflowPacket) ([]byte, int) {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.ParseIP(p.src).To4(), DstIP: net.ParseIP(p.dst).To4()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(make([]byte, p.payload)))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), 20 + 8 + p.payload
}

// sflowDatagram builds an sFlow v5 datagram (XDR, RFC-less but sflow.org's sFlow v5) with
// one flow sample of a raw Ethernet header per packet.
func sflowDatagram(t testing.TB, packets ...sflowPacket) []byte {
	t.Helper()
	u32 := binary.BigEndian.AppendUint32
	var dg []byte
	dg = u32(dg, 5)
	dg = u32(dg, 1)
	dg = append(dg, 192, 0, 2, 9)
	dg = u32(dg, 0)   // sub agent
	dg = u32(dg, 1)   // sequence
	dg = u32(dg, 100) // uptime
	dg = u32(dg, uint32(len(packets)))
	for i, p := range packets {
		frame, _ := ethernetFrame(t, p)
		header := frame
		if p.truncateHeader > 0 {
			header = frame[:p.truncateHeader]
		}
		var rec []byte
		rec = u32(rec, 1) // header protocol: ethernet
		rec = u32(rec, uint32(len(frame)+4))
		rec = u32(rec, 4) // stripped (FCS)
		rec = u32(rec, uint32(len(header)))
		rec = append(rec, header...)
		for len(rec)%4 != 0 {
			rec = append(rec, 0)
		}
		var sample []byte
		sample = u32(sample, uint32(i+1)) // sample sequence
		sample = u32(sample, 3)           // source id
		sample = u32(sample, p.samplingRate)
		sample = u32(sample, uint32(i+1)*p.samplingRate) // pool
		sample = u32(sample, 0)                          // drops
		sample = u32(sample, 1)                          // input
		sample = u32(sample, 2)                          // output
		sample = u32(sample, 1)                          // records
		sample = u32(sample, 1)                          // raw packet header
		sample = u32(sample, uint32(len(rec)))
		sample = append(sample, rec...)
		dg = u32(dg, 1) // flow sample
		dg = u32(dg, uint32(len(sample)))
		dg = append(dg, sample...)
	}
	return dg
}

func TestSFlowSamplesScaled(t *testing.T) {
	c := newTestCollector(t)
	d := NewDecoder(c, DecoderConfig{})
	dg := sflowDatagram(t,
		sflowPacket{src: "10.1.0.1", dst: "10.9.0.1", sport: 5000, dport: 53, payload: 72, samplingRate: 100},
		sflowPacket{src: "10.1.0.2", dst: "10.9.0.1", sport: 5001, dport: 53, payload: 1400, samplingRate: 100, truncateHeader: 60},
		sflowPacket{src: "10.2.0.1", dst: "10.9.0.1", sport: 5002, dport: 53, payload: 100, samplingRate: 1},
	)
	d.SFlow(NewBatch(), netip.MustParseAddr("192.0.2.9"), dg)
	// IP lengths 100 and 1428 at 1-in-100, 128 unsampled.
	if p, by := policyCounts(t, c, 1); p != 200 || by != 100*(100+1428) {
		t.Errorf("policy 1: %d packets %d bytes, want 200 and %d", p, by, 100*(100+1428))
	}
	if p, by := policyCounts(t, c, 2); p != 1 || by != 128 {
		t.Errorf("policy 2: %d packets %d bytes, want 1 and 128", p, by)
	}
	ex := exporterOf(t, d, "192.0.2.9", SFlow)
	if ex.FlowRecords != 3 || ex.DecodeErrors != 0 || ex.Version != 5 {
		t.Errorf("exporter %+v", ex)
	}
}
