package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/patronus-sdwan/patronus/api/apigen"
)

// policySeries is one policy's samples in a /metrics scrape.
type policySeries struct {
	name                  string
	packets, bytes, flows float64
}

// scrapePolicies reads GET /metrics and returns the per-policy series by policy_id, checking
// that each policy has all three and that the counters are counters.
func (a *testAPI) scrapePolicies(t *testing.T) map[string]policySeries {
	t.Helper()
	r := a.do(http.MethodGet, "/metrics", a.viewer, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %s", r)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]policySeries{}
	seen := map[string]int{}
	for _, name := range []string{"patronus_policy_packets_total", "patronus_policy_bytes_total", "patronus_policy_active_flows"} {
		mf := families[name]
		if mf == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			id := labels["policy_id"]
			s := out[id]
			s.name = labels["policy_name"]
			switch name {
			case "patronus_policy_packets_total":
				s.packets = m.GetCounter().GetValue()
			case "patronus_policy_bytes_total":
				s.bytes = m.GetCounter().GetValue()
			default:
				s.flows = m.GetGauge().GetValue()
			}
			if m.GetCounter() == nil && m.GetGauge() == nil {
				t.Errorf("%s{policy_id=%q} is neither a counter nor a gauge", name, id)
			}
			out[id] = s
			seen[id]++
		}
	}
	for id, n := range seen {
		if n != 3 {
			t.Errorf("policy_id %q has %d of the 3 per-policy series", id, n)
		}
	}
	return out
}

// TestPolicyMetricsThroughAPI sends traffic, scrapes /metrics, and checks each policy's
// packets, bytes and active flows with its name; a reset of the live statistics leaves the
// counters alone, and a deleted policy's series are gone.
func TestPolicyMetricsThroughAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		https, disabled := a.trafficPolicies(fx)
		// A name with what the exposition format must escape.
		renamed := `https "tls", ü\n`
		https.Name = renamed
		if err := a.store.Policies().Update(context.Background(), &https); err != nil {
			t.Fatal(err)
		}
		if err := a.srv.ReloadPolicies(context.Background()); err != nil {
			t.Fatal(err)
		}
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)

		id := func(n int64) string { return strconv.FormatInt(n, 10) }
		want := func(n float64) map[string]policySeries {
			return map[string]policySeries{
				"0":              {name: "unclassified", packets: 2 * n, bytes: 200 * n, flows: 1},
				id(fx.policy.ID): {name: fx.policy.Name, packets: 16 * n, bytes: 1600 * n, flows: 2},
				id(https.ID):     {name: renamed, packets: 3 * n, bytes: 300 * n, flows: 1},
				id(disabled.ID):  {name: disabled.Name},
			}
		}
		check := func(t *testing.T, want map[string]policySeries) {
			t.Helper()
			if got := a.scrapePolicies(t); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("per-policy metrics\n got  %v\n want %v", got, want)
			}
		}
		check(t, want(1))

		// A reset zeroes the API's live numbers; the Prometheus counters keep counting.
		decodeAs[apigen.StatsResetResult](t, a.do(http.MethodPost, "/api/v1/stats/reset", a.admin, nil), http.StatusOK)
		if st := a.policyStatsOf(fx.policy.ID); st.PacketsMatched != 0 {
			t.Fatalf("live packets after the reset: %d", st.PacketsMatched)
		}
		check(t, want(1))
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		check(t, want(2))

		// A deleted policy's series disappear.
		if r := a.do(http.MethodDelete, "/api/v1/policies/"+id(https.ID), a.operator, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete policy: %s", r)
		}
		w := want(2)
		delete(w, id(https.ID))
		check(t, w)
	})
}
