package flowexport

import (
	"net/netip"
	"testing"
)

// FuzzDatagram drives arbitrary bytes through both decoders into a collector: nothing may
// panic or hang, and a datagram either records or counts a decode error (or an unknown
// template). Templates learnt from earlier inputs stay, as they would on a socket.
func FuzzDatagram(f *testing.F) {
	e9 := &Encoder{Version: 9, TemplateID: 300}
	e10 := &Encoder{Version: 10, TemplateID: 300}
	for _, e := range []*Encoder{e9, e10} {
		f.Add(e.Template())
		f.Add(e.SamplingOptions(100))
		d, _ := e.Data([]EncodedFlow{flow("10.1.0.1", "10.9.0.1", 1, 2, 3, 300)})
		f.Add(d)
		f.Add(append(e.Template(), d[4:]...))
	}
	f.Add(sflowDatagram(f, sflowPacket{src: "10.1.0.1", dst: "10.9.0.1", sport: 1, dport: 2, payload: 72, samplingRate: 10}))
	f.Add([]byte{0, 5, 0, 1})
	c := newTestCollector(&testing.T{})
	d := NewDecoder(c, DecoderConfig{MaxTemplates: 16, MaxExporters: 4})
	b := NewBatch()
	src := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, dg []byte) {
		d.NetFlow(b, src, dg)
		d.SFlow(b, src, dg)
		if len(b.reports) != 0 {
			t.Fatal("batch not emptied")
		}
		for _, x := range d.Exporters() {
			if x.Templates > 16 {
				t.Fatalf("%d templates kept, bound 16", x.Templates)
			}
		}
	})
}
