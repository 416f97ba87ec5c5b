package flowexport

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
)

// Policies of the tests: 10.1.0.0/16 -> 1, 10.2.0.0/16 -> 2; the rest is unclassified.
func newTestCollector(t *testing.T) *collector.Collector {
	t.Helper()
	c := collector.New(collector.Config{})
	err := c.SetPolicies([]collector.Policy{
		{ID: 1, Name: "one", Priority: 1, Enabled: true, SrcCIDR: "10.1.0.0/16"},
		{ID: 2, Name: "two", Priority: 2, Enabled: true, SrcCIDR: "10.2.0.0/16"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func policyCounts(t *testing.T, c *collector.Collector, id int64) (packets, bytes uint64) {
	t.Helper()
	st, ok := c.PolicyStats(id)
	if !ok {
		t.Fatalf("policy %d unknown", id)
	}
	return st.PacketsMatched, st.BytesMatched
}

func flow(src, dst string, sport, dport uint16, packets, bytes uint64) EncodedFlow {
	return EncodedFlow{Flow: collector.FlowKey{SrcIP: netip.MustParseAddr(src), DstIP: netip.MustParseAddr(dst),
		SrcPort: sport, DstPort: dport, Protocol: 6}, Packets: packets, Bytes: bytes}
}

func mustData(t *testing.T, e *Encoder, flows ...EncodedFlow) []byte {
	t.Helper()
	b, err := e.Data(flows)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exporterOf(t *testing.T, d *Decoder, addr string, p Protocol) ExporterInfo {
	t.Helper()
	for _, e := range d.Exporters() {
		if e.Address == netip.MustParseAddr(addr) && e.Protocol == p {
			return e
		}
	}
	t.Fatalf("exporter %s %s not listed in %+v", addr, p, d.Exporters())
	return ExporterInfo{}
}

func TestNetFlowRecords(t *testing.T) {
	for _, version := range []uint16{9, 10} {
		t.Run(map[uint16]string{9: "NetFlowV9", 10: "IPFIX"}[version], func(t *testing.T) {
			c := newTestCollector(t)
			d := NewDecoder(c, DecoderConfig{})
			b := NewBatch()
			src := netip.MustParseAddr("192.0.2.1")
			e := &Encoder{Version: version, TemplateID: 300}
			d.NetFlow(b, src, e.Template())
			d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1000, 443, 3, 300), flow("10.2.0.1", "10.9.0.1", 1000, 80, 5, 500)))
			d.NetFlow(b, src, mustData(t, e, flow("10.1.0.2", "10.9.0.1", 1001, 443, 7, 700), flow("172.16.0.1", "10.9.0.1", 1, 2, 11, 1100)))
			if p, by := policyCounts(t, c, 1); p != 10 || by != 1000 {
				t.Errorf("policy 1: %d packets %d bytes, want 10 and 1000", p, by)
			}
			if p, by := policyCounts(t, c, 2); p != 5 || by != 500 {
				t.Errorf("policy 2: %d packets %d bytes, want 5 and 500", p, by)
			}
			if tot := c.Totals(); tot.UnclassifiedPackets != 11 || tot.UnclassifiedBytes != 1100 {
				t.Errorf("unclassified %d packets %d bytes, want 11 and 1100", tot.UnclassifiedPackets, tot.UnclassifiedBytes)
			}
			want := NetFlow
			if version == 10 {
				want = IPFIX
			}
			ex := exporterOf(t, d, "192.0.2.1", want)
			if ex.Datagrams != 3 || ex.FlowRecords != 4 || ex.DecodeErrors != 0 || ex.Templates != 1 || ex.SamplingRate != 1 || ex.Version != int(version) {
				t.Errorf("exporter %+v", ex)
			}
		})
	}
}

func TestSamplingScaled(t *testing.T) {
	for _, version := range []uint16{9, 10} {
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{})
		b := NewBatch()
		src := netip.MustParseAddr("192.0.2.1")
		e := &Encoder{Version: version, TemplateID: 300}
		d.NetFlow(b, src, e.Template())
		d.NetFlow(b, src, e.SamplingOptions(100))
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1000, 443, 3, 300)))
		if p, by := policyCounts(t, c, 1); p != 300 || by != 30000 {
			t.Errorf("v%d: policy 1: %d packets %d bytes, want 300 and 30000 (1-in-100)", version, p, by)
		}
		if ex := d.Exporters()[0]; ex.SamplingRate != 100 {
			t.Errorf("v%d: exporter sampling rate %d, want 100", version, ex.SamplingRate)
		}
	}
}

func TestTemplates(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.1")
	t.Run("DataBeforeTemplate", func(t *testing.T) {
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{})
		b := NewBatch()
		e := &Encoder{Version: 10, TemplateID: 300}
		early := mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300))
		d.NetFlow(b, src, early)
		if p, _ := policyCounts(t, c, 1); p != 0 {
			t.Fatalf("data before its template counted %d packets", p)
		}
		ex := exporterOf(t, d, "192.0.2.1", IPFIX)
		if ex.UnknownTemplates != 1 || ex.DecodeErrors != 0 {
			t.Errorf("unknown templates %d, decode errors %d; want 1 and 0", ex.UnknownTemplates, ex.DecodeErrors)
		}
		d.NetFlow(b, src, e.Template())
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 4, 400)))
		if p, by := policyCounts(t, c, 1); p != 4 || by != 400 {
			t.Errorf("after the template: %d packets %d bytes, want 4 and 400", p, by)
		}
	})
	t.Run("RefreshAndExpiry", func(t *testing.T) {
		now := time.Unix(1_000_000, 0)
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{TemplateTTL: time.Minute, Now: func() time.Time { return now }})
		b := NewBatch()
		e := &Encoder{Version: 9, TemplateID: 300}
		d.NetFlow(b, src, e.Template())
		now = now.Add(50 * time.Second)
		// A refresh with another layout: the counters are 4 bytes wide now.
		e.fields = []templateField{{fieldInBytes, 4}, {fieldInPackets, 4}, {fieldSrcIPv4, 4}, {fieldDstIPv4, 4}, {fieldProtocol, 1}, {fieldSrcPort, 2}, {fieldDstPort, 2}}
		d.NetFlow(b, src, e.Template())
		now = now.Add(50 * time.Second) // 100 s after the first, 50 s after the refresh
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300)))
		if p, by := policyCounts(t, c, 1); p != 3 || by != 300 {
			t.Errorf("refreshed template: %d packets %d bytes, want 3 and 300", p, by)
		}
		now = now.Add(61 * time.Second)
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300)))
		ex := exporterOf(t, d, "192.0.2.1", NetFlow)
		if p, _ := policyCounts(t, c, 1); p != 3 || ex.UnknownTemplates != 1 || ex.Templates != 0 {
			t.Errorf("expired template: policy packets %d (want 3), unknown templates %d (want 1), templates %d (want 0)", p, ex.UnknownTemplates, ex.Templates)
		}
	})
	t.Run("TwoExportersSameTemplateID", func(t *testing.T) {
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{})
		b := NewBatch()
		a := &Encoder{Version: 10, TemplateID: 256}
		z := &Encoder{Version: 10, TemplateID: 256, fields: []templateField{{fieldInBytes, 4}, {fieldInPackets, 4}, {fieldDstIPv4, 4}, {fieldSrcIPv4, 4}, {fieldDstPort, 2}, {fieldSrcPort, 2}, {fieldProtocol, 1}}}
		srcA, srcZ := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		d.NetFlow(b, srcA, a.Template())
		d.NetFlow(b, srcZ, z.Template())
		d.NetFlow(b, srcA, mustData(t, a, flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300)))
		d.NetFlow(b, srcZ, mustData(t, z, flow("10.2.0.1", "10.9.0.1", 1, 2, 5, 500)))
		p1, b1 := policyCounts(t, c, 1)
		p2, b2 := policyCounts(t, c, 2)
		if p1 != 3 || b1 != 300 || p2 != 5 || b2 != 500 {
			t.Errorf("policy 1 %d/%d (want 3/300), policy 2 %d/%d (want 5/500)", p1, b1, p2, b2)
		}
	})
	t.Run("ExporterRestart", func(t *testing.T) {
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{})
		b := NewBatch()
		// An exporter up for an hour; then it reboots.
		e := &Encoder{Version: 9, TemplateID: 300, Start: time.Now().Add(-time.Hour)}
		d.NetFlow(b, src, e.Template())
		d.NetFlow(b, src, e.SamplingOptions(10))
		for range 5 {
			d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
		}
		// Restart: sequence and uptime from zero, a new layout under the same id, unsampled;
		// its first data arrives before its template and must not be read with the old one.
		e.sequence, e.Start = 0, time.Now()
		e.fields = []templateField{{fieldInBytes, 4}, {fieldInPackets, 4}, {fieldSrcIPv4, 4}, {fieldDstIPv4, 4}, {fieldProtocol, 1}, {fieldSrcPort, 2}, {fieldDstPort, 2}}
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
		d.NetFlow(b, src, e.Template())
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 2, 200)))
		ex := exporterOf(t, d, "192.0.2.1", NetFlow)
		if p, by := policyCounts(t, c, 1); p != 52 || by != 5200 {
			t.Errorf("policy 1: %d packets %d bytes, want 52 and 5200 (5x1 at 1-in-10, then 2 unsampled)", p, by)
		}
		if ex.Restarts != 1 || ex.UnknownTemplates != 1 || ex.SamplingRate != 1 {
			t.Errorf("restarts %d (want 1), unknown templates %d (want 1), sampling %d (want 1)", ex.Restarts, ex.UnknownTemplates, ex.SamplingRate)
		}
	})
	t.Run("ExporterRestartIPFIX", func(t *testing.T) {
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{})
		b := NewBatch()
		e := &Encoder{Version: 10, TemplateID: 300}
		d.NetFlow(b, src, e.Template())
		e.sequence = 100_000 // records exported so far
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
		// Reordering is not a restart: a datagram from a little earlier still counts.
		e.sequence = 99_990
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
		// Restarted: the sequence starts again from zero and the old template is gone.
		e.sequence = 0
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
		d.NetFlow(b, src, e.Template())
		d.NetFlow(b, src, mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 1, 100)))
		ex := exporterOf(t, d, "192.0.2.1", IPFIX)
		if p, _ := policyCounts(t, c, 1); p != 3 || ex.Restarts != 1 || ex.UnknownTemplates != 1 {
			t.Errorf("policy packets %d (want 3), restarts %d (want 1), unknown templates %d (want 1)", p, ex.Restarts, ex.UnknownTemplates)
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		c := newTestCollector(t)
		d := NewDecoder(c, DecoderConfig{MaxTemplates: 4, MaxExporters: 3})
		b := NewBatch()
		for id := range uint16(6) {
			e := &Encoder{Version: 10, TemplateID: 256 + id}
			d.NetFlow(b, src, e.Template())
		}
		ex := exporterOf(t, d, "192.0.2.1", IPFIX)
		if ex.Templates != 4 || ex.DecodeErrors != 2 {
			t.Errorf("templates %d (want 4), decode errors %d (want 2)", ex.Templates, ex.DecodeErrors)
		}
		for i := range 10 {
			d.NetFlow(b, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), []byte{0, 9})
		}
		if n := len(d.Exporters()); n != 3 {
			t.Errorf("%d exporters kept, want 3", n)
		}
	})
}

func TestNetFlowV5(t *testing.T) {
	c := newTestCollector(t)
	d := NewDecoder(c, DecoderConfig{})
	dg := make([]byte, 24+48)
	be := func(off int, v uint32, n int) {
		for i := n - 1; i >= 0; i-- {
			dg[off+i] = byte(v)
			v >>= 8
		}
	}
	be(0, 5, 2)
	be(2, 1, 2)
	be(22, 0x4000|100, 2) // sampling mode 1, interval 100
	r := 24
	copy(dg[r:], []byte{10, 1, 0, 9})
	copy(dg[r+4:], []byte{10, 9, 0, 1})
	be(r+16, 2, 4)   // packets
	be(r+20, 120, 4) // octets
	be(r+32, 5000, 2)
	be(r+34, 53, 2)
	dg[r+38] = 17
	d.NetFlow(NewBatch(), netip.MustParseAddr("192.0.2.5"), dg)
	if p, by := policyCounts(t, c, 1); p != 200 || by != 12000 {
		t.Errorf("policy 1: %d packets %d bytes, want 200 and 12000", p, by)
	}
	if ex := exporterOf(t, d, "192.0.2.5", NetFlow); ex.Version != 5 || ex.SamplingRate != 100 || ex.FlowRecords != 1 {
		t.Errorf("exporter %+v", ex)
	}
}

func TestHostileDatagrams(t *testing.T) {
	c := newTestCollector(t)
	d := NewDecoder(c, DecoderConfig{})
	b := NewBatch()
	src := netip.MustParseAddr("192.0.2.1")
	e := &Encoder{Version: 10, TemplateID: 300}
	tmpl := e.Template()
	cases := map[string][]byte{
		"empty":            {},
		"one byte":         {0},
		"unknown version":  {0, 7, 1, 2, 3},
		"truncated header": tmpl[:10],
		"truncated set":    tmpl[:len(tmpl)-3],
		// A template of zero fields would make goflow2 loop for ever on its data.
		"empty template": (&Encoder{Version: 10, TemplateID: 301, fields: []templateField{}}).Template(),
		"zero-length fields": (&Encoder{Version: 9, TemplateID: 302,
			fields: []templateField{{fieldSrcIPv4, 0}, {fieldDstIPv4, 0}}}).Template(),
	}
	for name, dg := range cases {
		before := totalDecodeErrors(d)
		d.NetFlow(b, src, dg)
		if after := totalDecodeErrors(d); after != before+1 {
			t.Errorf("%s: decode errors went from %d to %d, want one more", name, before, after)
		}
	}
	d.SFlow(b, src, []byte{0, 0, 0, 5, 0, 0, 0, 9})
	if ex := exporterOf(t, d, "192.0.2.1", SFlow); ex.DecodeErrors != 1 {
		t.Errorf("sflow decode errors %d, want 1", ex.DecodeErrors)
	}
	if tot := c.Totals(); tot.Packets != 0 {
		t.Errorf("hostile datagrams recorded %d packets", tot.Packets)
	}
}

func totalDecodeErrors(d *Decoder) uint64 {
	var n uint64
	for _, x := range d.Exporters() {
		n += x.DecodeErrors
	}
	return n
}

// TestV9CountOfRecordsOnly: softflowd 1.1.0 puts only its data records in the v9 header's
// count, fewer than the sets it sends; the data sets after the templates must still count.
func TestV9CountOfRecordsOnly(t *testing.T) {
	c := newTestCollector(t)
	d := NewDecoder(c, DecoderConfig{})
	e := &Encoder{Version: 9, TemplateID: 300}
	tmpl := e.Template()
	data := mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300))
	dg := append(append([]byte{}, tmpl...), data[20:]...)
	dg[2], dg[3] = 0, 1 // one record: the data record; two sets
	keep := append([]byte{}, dg...)
	d.NetFlow(NewBatch(), netip.MustParseAddr("192.0.2.1"), dg)
	if p, by := policyCounts(t, c, 1); p != 3 || by != 300 {
		t.Errorf("policy 1: %d packets %d bytes, want 3 and 300", p, by)
	}
	if string(dg) != string(keep) {
		t.Error("the caller's datagram was changed")
	}
}

// TestDataRecordsInPlace: data records are read in place (Batch.addRecords), variable-length
// and unknown fields skipped, a record cut short ending the set without a report.
func TestDataRecordsInPlace(t *testing.T) {
	c := newTestCollector(t)
	d := NewDecoder(c, DecoderConfig{})
	b := NewBatch()
	src := netip.MustParseAddr("192.0.2.1")
	e := &Encoder{Version: 10, TemplateID: 300, fields: []templateField{{fieldSrcIPv4, 4}, {82, 0xffff}, {10, 4},
		{fieldDstIPv4, 4}, {fieldInPackets, 4}, {fieldInBytes, 8}, {fieldProtocol, 1}, {fieldSrcPort, 2}, {fieldDstPort, 2}}}
	d.NetFlow(b, src, e.Template())
	dg := mustData(t, e, flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300), flow("10.2.0.1", "10.9.0.1", 1, 2, 5, 500))
	d.NetFlow(b, src, dg)
	p1, b1 := policyCounts(t, c, 1)
	p2, b2 := policyCounts(t, c, 2)
	if p1 != 3 || b1 != 300 || p2 != 5 || b2 != 500 {
		t.Errorf("policy 1 %d/%d (want 3/300), policy 2 %d/%d (want 5/500)", p1, b1, p2, b2)
	}
	// The same datagram with its last record cut short (set and header lengths kept honest).
	cut := append([]byte{}, dg[:len(dg)-10]...)
	binary.BigEndian.PutUint16(cut[2:], uint16(len(cut)))
	binary.BigEndian.PutUint16(cut[18:], uint16(len(cut)-16))
	d.NetFlow(b, src, cut)
	if p, _ := policyCounts(t, c, 1); p != 6 {
		t.Errorf("policy 1 after the cut datagram: %d packets, want 6", p)
	}
	if p, _ := policyCounts(t, c, 2); p != 5 {
		t.Errorf("policy 2 after the cut datagram: %d packets, want 5 (its record was cut)", p)
	}
}
