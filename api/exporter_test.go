package api

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/collector/flowexport"
)

// TestListExporters feeds real datagrams to a decoder from an endpoint's address and from an
// unknown one: the first is attributed to the endpoint's site, the second listed without one.
func TestListExporters(t *testing.T) {
	var dec *flowexport.Decoder
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		if r := a.do(http.MethodGet, "/api/v1/exporters", a.viewer, nil); r.Status != http.StatusOK || string(r.Body) != `{"items":[]}` {
			t.Fatalf("before any datagram: %s", r)
		}
		enc := &flowexport.Encoder{Version: 10, TemplateID: 256}
		data, err := enc.Data([]flowexport.EncodedFlow{{Flow: collector.FlowKey{
			SrcIP: netip.MustParseAddr("10.1.0.1"), DstIP: netip.MustParseAddr("10.20.0.1"), SrcPort: 1000, DstPort: 5060, Protocol: 17,
		}, Packets: 4, Bytes: 400}})
		if err != nil {
			t.Fatal(err)
		}
		b := flowexport.NewBatch()
		known, unknown := netip.MustParseAddr(fx.endpoint.Address), netip.MustParseAddr("198.51.100.7")
		dec.NetFlow(b, known, enc.Template())
		dec.NetFlow(b, known, data)
		dec.NetFlow(b, unknown, []byte("not a datagram"))

		r := a.do(http.MethodGet, "/api/v1/exporters", a.viewer, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list exporters: %s", r)
		}
		var out apigen.ExporterList
		if err := json.Unmarshal(r.Body, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Items) != 2 {
			t.Fatalf("%d exporters listed, want 2: %s", len(out.Items), r.Body)
		}
		k, u := out.Items[1], out.Items[0] // by address: 198.51.100.7 before 203.0.113.10
		if k.Address != fx.endpoint.Address || k.SiteID == nil || k.SiteID.String() != fx.site.ID ||
			k.Protocol != apigen.ExporterProtocolIpfix || k.Version != 10 || k.Datagrams != 2 || k.FlowRecords != 1 ||
			k.Templates != 1 || k.SamplingRate != 1 || k.DecodeErrors != 0 {
			t.Errorf("known exporter %+v, want site %s", k, fx.site.ID)
		}
		if u.Address != "198.51.100.7" || u.SiteID != nil || u.DecodeErrors != 1 || u.FlowRecords != 0 {
			t.Errorf("unknown exporter %+v", u)
		}
		if st, _ := a.collector.PolicyStats(fx.policy.ID); st.PacketsMatched != 4 || st.BytesMatched != 400 {
			t.Errorf("policy counted %d packets %d bytes, want 4 and 400", st.PacketsMatched, st.BytesMatched)
		}
	}, withConfig(func(c *Config) {
		dec = flowexport.NewDecoder(c.Collector, flowexport.DecoderConfig{})
		c.Exporters = dec
	}))
}
