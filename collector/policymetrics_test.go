package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func named(name string) func(*Policy) { return func(p *Policy) { p.Name = name } }

const policyMetricsHeader = `# HELP patronus_policy_active_flows Flows of a policy tracked right now. policy_id 0 (policy_name unclassified) counts the unclassified flows.
# TYPE patronus_policy_active_flows gauge
`

// TestPolicyMetrics checks the per-policy series: the raw counters, untouched by resets and
// by flow expiry, active flows as a gauge, names as labels, and a removed policy's series
// gone.
func TestPolicyMetrics(t *testing.T) {
	web := policy(1, 10, proto(6), named("web, \"tls\" ü"))
	voip := policy(2, 20, proto(17), named("voip"))
	c, clock := newTestCollector(t, Config{FlowIdleTimeout: time.Minute}, web, voip)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.PolicyMetrics())

	if _, err := c.RecordBatch([]Report{
		{Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 443, 6), Packets: 3, Bytes: 300},
		{Flow: flow(t, "10.0.0.1", "10.0.0.3", 1, 443, 6), Packets: 4, Bytes: 400},
		{Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 5060, 17), Packets: 5, Bytes: 500},
		{Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 1), Packets: 6, Bytes: 600}, // ICMP: unclassified
	}); err != nil {
		t.Fatal(err)
	}
	want := func(webFlows, voipFlows int) string {
		return fmt.Sprintf(policyMetricsHeader+`patronus_policy_active_flows{policy_id="0",policy_name="unclassified"} 1
patronus_policy_active_flows{policy_id="1",policy_name="web, \"tls\" ü"} %d
patronus_policy_active_flows{policy_id="2",policy_name="voip"} %d
`, webFlows, voipFlows)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(2, 1)), "patronus_policy_active_flows"); err != nil {
		t.Error(err)
	}
	checkCounters := func(t *testing.T, wantPackets, wantBytes map[string]float64) {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		gotPackets, gotBytes := map[string]float64{}, map[string]float64{}
		for _, mf := range families {
			for _, m := range mf.GetMetric() {
				var id string
				for _, l := range m.GetLabel() {
					if l.GetName() == "policy_id" {
						id = l.GetValue()
					}
				}
				switch mf.GetName() {
				case "patronus_policy_packets_total":
					gotPackets[id] = m.GetCounter().GetValue()
				case "patronus_policy_bytes_total":
					gotBytes[id] = m.GetCounter().GetValue()
				}
			}
		}
		if fmt.Sprint(gotPackets) != fmt.Sprint(wantPackets) || fmt.Sprint(gotBytes) != fmt.Sprint(wantBytes) {
			t.Errorf("packets %v bytes %v, want %v and %v", gotPackets, gotBytes, wantPackets, wantBytes)
		}
	}
	checkCounters(t, map[string]float64{"0": 6, "1": 7, "2": 5}, map[string]float64{"0": 600, "1": 700, "2": 500})

	t.Run("ResetKeepsCounters", func(t *testing.T) {
		c.ResetAll()
		c.ResetPolicy(1)
		if st := mustStats(t, c, 1); st.PacketsMatched != 0 {
			t.Fatalf("live packets after reset %d, want 0", st.PacketsMatched)
		}
		checkCounters(t, map[string]float64{"0": 6, "1": 7, "2": 5}, map[string]float64{"0": 600, "1": 700, "2": 500})
	})
	t.Run("ExpiryKeepsCountersAndLowersFlows", func(t *testing.T) {
		clock.Advance(30 * time.Second)
		c.Record(1, flow(t, "10.0.0.1", "10.0.0.2", 1, 443, 6), 1, 100)
		clock.Advance(45 * time.Second)
		if removed := c.SweepIdle(); removed != 3 {
			t.Fatalf("swept %d flows, want 3", removed)
		}
		checkCounters(t, map[string]float64{"0": 6, "1": 8, "2": 5}, map[string]float64{"0": 600, "1": 800, "2": 500})
		if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.Replace(want(1, 0),
			`policy_name="unclassified"} 1`, `policy_name="unclassified"} 0`, 1)), "patronus_policy_active_flows"); err != nil {
			t.Error(err)
		}
	})
	t.Run("RemovedPolicyDisappears", func(t *testing.T) {
		renamed := web
		renamed.Name = "web"
		if err := c.SetPolicies([]Policy{renamed}); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, map[string]float64{"0": 6, "1": 8}, map[string]float64{"0": 600, "1": 800})
		if err := testutil.GatherAndCompare(reg, strings.NewReader(policyMetricsHeader+`patronus_policy_active_flows{policy_id="0",policy_name="unclassified"} 0
patronus_policy_active_flows{policy_id="1",policy_name="web"} 1
`), "patronus_policy_active_flows"); err != nil {
			t.Error(err)
		}
	})
}

// BenchmarkPolicyMetricsScrape gathers the per-policy metrics of 10,000 policies, each with
// traffic on one flow: Gather alone, and a whole GET /metrics in the text format.
func BenchmarkPolicyMetricsScrape(b *testing.B) {
	const n = 10_000
	policies := make([]Policy, n)
	for i := range policies {
		policies[i] = policy(int64(i+1), i, named(fmt.Sprintf("policy %d", i+1)))
	}
	c, _ := newTestCollector(b, Config{}, policies...)
	for i := range n {
		src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		c.Record(int64(i+1), FlowKey{SrcIP: src, DstIP: netip.MustParseAddr("10.255.0.1"), SrcPort: 1, DstPort: 2, Protocol: 6}, 1, 100)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.PolicyMetrics())
	b.Run("Gather", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			families, err := reg.Gather()
			if err != nil || len(families) != 3 || len(families[0].GetMetric()) != n+1 {
				b.Fatalf("gather: %v, %d families", err, len(families))
			}
		}
	})
	b.Run("HTTP", func(b *testing.B) {
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK || w.Body.Len() < 30*n {
				b.Fatalf("GET /metrics: %d, %d bytes", w.Code, w.Body.Len())
			}
		}
	})
}
