package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// trafficPolicies adds, beside the fixture's UDP 5060-5061 to 10.20.0.0/16 policy (priority
// 10), an HTTPS policy that comes first (priority 5) and a disabled catch-all (priority 1)
// that must never match, and loads them into the collector.
func (a *testAPI) trafficPolicies(fx fixture) (https, disabled storage.Policy) {
	a.t.Helper()
	ctx := context.Background()
	tcp := 6
	https = storage.Policy{Name: a.name("https"), Priority: 5, Enabled: true, Protocol: &tcp,
		DstPorts: []storage.PortRange{{From: 443, To: 443}}, ActionType: storage.ActionPreferPath, PathID: &fx.path.ID}
	disabled = storage.Policy{Name: a.name("all"), Priority: 1, Enabled: false, ActionType: storage.ActionDrop}
	for _, p := range []*storage.Policy{&https, &disabled} {
		if err := a.store.Policies().Create(ctx, p); err != nil {
			a.t.Fatalf("create policy: %v", err)
		}
	}
	if err := a.srv.ReloadPolicies(ctx); err != nil {
		a.t.Fatal(err)
	}
	return https, disabled
}

// flowOf builds a flow key.
func flowOf(src, dst string, srcPort, dstPort uint16, proto uint8) collector.FlowKey {
	return collector.FlowKey{SrcIP: netip.MustParseAddr(src), DstIP: netip.MustParseAddr(dst), SrcPort: srcPort, DstPort: dstPort, Protocol: proto}
}

// ingest posts reports as a batch with the operator token and returns the response.
func (a *testAPI) ingest(reports []collector.Report) apiResponse {
	a.t.Helper()
	return a.do(http.MethodPost, "/api/v1/traffic", a.operator, collector.AppendBatchJSON(nil, reports))
}

// stats reads GET /api/v1/stats.
// The per-instance breakdown is checked (this replica first, shares that add up to the
// totals) and cleared, so callers compare the counters alone.
func (a *testAPI) stats() apigen.GlobalStats {
	a.t.Helper()
	st := decodeAs[apigen.GlobalStats](a.t, a.do(http.MethodGet, "/api/v1/stats", a.viewer, nil), http.StatusOK)
	var packets, bytes int64
	for _, in := range st.Instances {
		packets, bytes = packets+in.Packets, bytes+in.Bytes
	}
	if len(st.Instances) == 0 || !st.Instances[0].Local || packets != st.Packets || bytes != st.Bytes {
		a.t.Errorf("stats breakdown %+v does not add up to %d packets, %d bytes", st.Instances, st.Packets, st.Bytes)
	}
	st.Scope, st.Instances, st.LeftOut = "", nil, nil
	return st
}

// policyStatsOf reads GET /api/v1/policies/{id}/stats.
func (a *testAPI) policyStatsOf(id int64) apigen.PolicyStats {
	a.t.Helper()
	st := decodeAs[apigen.PolicyStats](a.t, a.do(http.MethodGet, "/api/v1/policies/"+strconv.FormatInt(id, 10)+"/stats", a.viewer, nil), http.StatusOK)
	var packets int64
	for _, in := range st.Instances {
		packets += in.PacketsMatched
	}
	if len(st.Instances) == 0 || !st.Instances[0].Local || packets != st.PacketsMatched {
		a.t.Errorf("policy stats breakdown %+v does not add up to %d packets", st.Instances, st.PacketsMatched)
	}
	st.Scope, st.Instances, st.LeftOut = "", nil, nil
	return st
}

// flowsOf reads GET /api/v1/policies/{id}/flows with a query.
func (a *testAPI) flowsOf(id int64, query string) apigen.FlowList {
	a.t.Helper()
	return decodeAs[apigen.FlowList](a.t, a.do(http.MethodGet, "/api/v1/policies/"+strconv.FormatInt(id, 10)+"/flows"+query, a.viewer, nil), http.StatusOK)
}

// trafficBatch is a batch with one report per way of being counted; sent once it gives the
// counts checked by checkTrafficCounts.
func trafficBatch(fx fixture) []collector.Report {
	voip := flowOf("10.1.0.5", "10.20.3.4", 40000, 5060, 17)
	return []collector.Report{
		// Given policy: counted against it whatever the flow.
		{PolicyID: &fx.policy.ID, Flow: flowOf("10.1.0.9", "198.51.100.7", 1000, 80, 6), Packets: 10, Bytes: 1000},
		// Classified to the fixture's policy, twice on one flow.
		{Flow: voip, Packets: 5, Bytes: 500},
		// IPv6 HTTPS: the priority-5 policy.
		{Flow: flowOf("2001:db8::5", "2001:db8:1::9", 51000, 443, 6), Packets: 3, Bytes: 300},
		// Nothing matches (the catch-all is disabled).
		{Flow: flowOf("10.1.0.5", "192.0.2.1", 5353, 53, 17), Packets: 2, Bytes: 200},
		{Flow: voip, Packets: 1, Bytes: 100},
	}
}

// checkTrafficCounts checks the live counters after trafficBatch was sent n times.
func checkTrafficCounts(t *testing.T, a *testAPI, fx fixture, https, disabled storage.Policy, n int64) {
	t.Helper()
	want := apigen.GlobalStats{Packets: 21 * n, Bytes: 2100 * n, ActiveFlows: 3, UnclassifiedPackets: 2 * n,
		UnclassifiedBytes: 200 * n, UnclassifiedReports: n, TrackedFlows: 4}
	if got := a.stats(); !reflect.DeepEqual(got, want) {
		t.Errorf("stats = %+v\nwant    %+v", got, want)
	}
	st := a.policyStatsOf(fx.policy.ID)
	if st.PolicyID != fx.policy.ID || st.PacketsMatched != 16*n || st.BytesMatched != 1600*n || st.ActiveFlows != 2 || st.LastSeen == nil {
		t.Errorf("policy stats = %+v, want 16 packets, 1600 bytes, 2 flows per batch and a last_seen", st)
	}
	if st := a.policyStatsOf(https.ID); st.PacketsMatched != 3*n || st.BytesMatched != 300*n || st.ActiveFlows != 1 {
		t.Errorf("https policy stats = %+v", st)
	}
	if st := a.policyStatsOf(disabled.ID); !reflect.DeepEqual(st, apigen.PolicyStats{PolicyID: disabled.ID}) {
		t.Errorf("disabled policy stats = %+v, want zeros and no last_seen", st)
	}
	// The policy resource carries the same live fields.
	p := decodeAs[apigen.Policy](t, a.do(http.MethodGet, "/api/v1/policies/"+strconv.FormatInt(fx.policy.ID, 10), a.viewer, nil), http.StatusOK)
	if p.PacketsMatched != 16*n || p.BytesMatched != 1600*n || p.ActiveFlows != 2 {
		t.Errorf("policy live fields = %d %d %d", p.PacketsMatched, p.BytesMatched, p.ActiveFlows)
	}
}

func TestIngestTrafficCountsAndClassifies(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		https, disabled := a.trafficPolicies(fx)
		res := decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		if want := (apigen.TrafficResult{Accepted: 5, Classified: 4, Unclassified: 1}); res != want {
			t.Fatalf("result = %+v, want %+v", res, want)
		}
		checkTrafficCounts(t, a, fx, https, disabled, 1)

		flows := a.flowsOf(fx.policy.ID, "")
		if flows.PolicyID != fx.policy.ID || flows.Sort != apigen.FlowSortBytes || len(flows.Items) != 2 {
			t.Fatalf("flows = %+v", flows)
		}
		top := flows.Items[0]
		wantKey := apigen.FlowKey{SrcIP: "10.1.0.9", DstIP: "198.51.100.7", SrcPort: 1000, DstPort: 80, Protocol: 6}
		if top.Flow != wantKey || top.Packets != 10 || top.Bytes != 1000 || top.FirstSeen.IsZero() || top.LastSeen.Before(top.FirstSeen) {
			t.Errorf("top flow by bytes = %+v", top)
		}
		if second := flows.Items[1]; second.Flow.DstIP != "10.20.3.4" || second.Packets != 6 || second.Bytes != 600 {
			t.Errorf("second flow = %+v", second)
		}
		if got := a.flowsOf(fx.policy.ID, "?sort=packets&limit=1"); len(got.Items) != 1 || got.Sort != apigen.FlowSortPackets || got.Items[0].Packets != 10 {
			t.Errorf("top flow by packets = %+v", got)
		}
		if got := a.flowsOf(fx.policy.ID, "?sort=last_seen"); len(got.Items) != 2 || got.Items[0].LastSeen.Before(got.Items[1].LastSeen) {
			t.Errorf("flows by last_seen = %+v", got)
		}
		if got := a.flowsOf(disabled.ID, ""); got.Items == nil || len(got.Items) != 0 {
			t.Errorf("flows of a policy without traffic = %+v, want an empty list", got)
		}
		if got := a.flowsOf(https.ID, "?limit=5"); len(got.Items) != 1 || got.Items[0].Flow.SrcIP != "2001:db8::5" {
			t.Errorf("https flows = %+v", got)
		}

		// The same batch again: counters add up, flows are the same ones.
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		checkTrafficCounts(t, a, fx, https, disabled, 2)
	})
}

// gzipped compresses b.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ingestRaw posts body as is with the operator token and extra headers; the spec middleware
// cannot judge a compressed or oversized body, so the request is not checked against it.
func (a *testAPI) ingestRaw(body []byte, header ...string) apiResponse {
	a.t.Helper()
	req := a.newRequest(http.MethodPost, "/api/v1/traffic", a.operator, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return a.send(req, false)
}

func TestIngestTrafficGzip(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	https, disabled := a.trafficPolicies(fx)
	body := gzipped(t, collector.AppendBatchJSON(nil, trafficBatch(fx)))
	res := decodeAs[apigen.TrafficResult](t, a.ingestRaw(body, "Content-Encoding", "gzip"), http.StatusOK)
	if res != (apigen.TrafficResult{Accepted: 5, Classified: 4, Unclassified: 1}) {
		t.Fatalf("result = %+v", res)
	}
	checkTrafficCounts(t, a, fx, https, disabled, 1)
	// identity is the same as no encoding.
	decodeAs[apigen.TrafficResult](t, a.ingestRaw(collector.AppendBatchJSON(nil, trafficBatch(fx)), "Content-Encoding", "identity"), http.StatusOK)
	checkTrafficCounts(t, a, fx, https, disabled, 2)

	before := a.stats()
	t.Run("NotGzip", func(t *testing.T) {
		p := a.ingestRaw(collector.AppendBatchJSON(nil, trafficBatch(fx)), "Content-Encoding", "gzip").problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"body"}) {
			t.Errorf("fields = %v", p.fields())
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		p := a.ingestRaw(body[:len(body)-6], "Content-Encoding", "gzip").problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"body"}) {
			t.Errorf("fields = %v", p.fields())
		}
	})
	t.Run("CorruptChecksum", func(t *testing.T) {
		bad := slices.Clone(body)
		bad[len(bad)-8] ^= 0xff // the CRC-32 of the trailer
		a.ingestRaw(bad, "Content-Encoding", "gzip").problem(t, http.StatusBadRequest)
	})
	t.Run("DecompressesPastTheLimit", func(t *testing.T) {
		// 17 MiB of white space inside the batch compresses to a few kilobytes.
		big := append(append([]byte(`{"reports":[`), bytes.Repeat([]byte(" "), 17<<20)...), collector.AppendBatchJSON(nil, trafficBatch(fx))[len(`{"reports":[`):]...)
		zb := gzipped(t, big)
		if len(zb) > maxBodyBytes {
			t.Fatalf("the compressed body is %d bytes, meant to be small", len(zb))
		}
		p := a.ingestRaw(zb, "Content-Encoding", "gzip").problem(t, http.StatusRequestEntityTooLarge)
		if !slices.Equal(p.fields(), []string{"body"}) {
			t.Errorf("fields = %v", p.fields())
		}
	})
	t.Run("OtherEncoding", func(t *testing.T) {
		p := a.ingestRaw(body, "Content-Encoding", "br").problem(t, http.StatusUnsupportedMediaType)
		if !slices.Equal(p.fields(), []string{"Content-Encoding"}) {
			t.Errorf("fields = %v", p.fields())
		}
	})
	if after := a.stats(); !reflect.DeepEqual(after, before) {
		t.Errorf("a rejected batch changed the stats:\n%+v\n%+v", before, after)
	}
}

func TestIngestTrafficRejectsWholeBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		a.trafficPolicies(fx)
		// Some traffic first, so that "nothing recorded" is more than "still zero".
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		before, beforePolicy, snap := a.stats(), a.policyStatsOf(fx.policy.ID), a.snapshot()

		// valid is the JSON of four good reports; bad replaces report 3 with one that breaks.
		good := collector.AppendBatchJSON(nil, trafficBatch(fx)[:4])
		valid := string(good[len(`{"reports":[`) : len(good)-len("]}")])
		bad := func(report string) string { return `{"reports":[` + valid + `,` + report + `]}` }
		const flowJSON = `"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6}`
		cases := []struct {
			name, body, field string
			status            int
		}{
			{"BadIP", bad(`{"flow":{"src_ip":"10.0.0.256","dst_ip":"10.0.0.2","src_port":1,"dst_port":2,"protocol":6},"packets":1,"bytes":1}`), "reports[4].flow.src_ip", 422},
			{"PortTooBig", bad(`{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","src_port":1,"dst_port":65536,"protocol":6},"packets":1,"bytes":1}`), "reports[4].flow.dst_port", 422},
			{"MissingPort", bad(`{"flow":{"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","dst_port":2,"protocol":6},"packets":1,"bytes":1}`), "reports[4].flow.src_port", 422},
			{"NegativeBytes", bad(`{` + flowJSON + `,"packets":1,"bytes":-1}`), "reports[4].bytes", 422},
			{"FractionalPackets", bad(`{` + flowJSON + `,"packets":1.5,"bytes":1}`), "reports[4].packets", 422},
			{"UnknownPolicy", bad(`{"policy_id":999999,` + flowJSON + `,"packets":1,"bytes":1}`), "reports[4].policy_id", 422},
			{"UnknownField", bad(`{` + flowJSON + `,"packets":1,"bytes":1,"dscp":46}`), "reports[4].dscp", 422},
			{"MissingBytes", bad(`{` + flowJSON + `,"packets":1}`), "reports[4].bytes", 422},
			// A router's unsigned delta across a counter reset: beyond the spec's int64.
			{"PacketsTwoTo63", bad(`{` + flowJSON + `,"packets":9223372036854775808,"bytes":1}`), "reports[4].packets", 422},
			{"BytesMaxUint64", bad(`{` + flowJSON + `,"packets":1,"bytes":18446744073709551615}`), "reports[4].bytes", 422},
			{"Empty", `{"reports":[]}`, "reports", 422},
			{"NoReports", `{}`, "reports", 422},
			{"MalformedJSON", `{"reports":[` + valid + `,{`, "reports[4]", 400},
			{"NotJSON", `reports=1`, "body", 400},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p := a.ingestRaw([]byte(tc.body)).problem(t, tc.status)
				if !slices.Equal(p.fields(), []string{tc.field}) || p.Errors[0].Message == "" {
					t.Errorf("errors = %+v, want one naming %s", p.Errors, tc.field)
				}
			})
		}
		t.Run("NotJSONContentType", func(t *testing.T) {
			p := a.ingestRaw(good, "Content-Type", "text/plain").problem(t, http.StatusUnsupportedMediaType)
			if !slices.Equal(p.fields(), []string{"Content-Type"}) {
				t.Errorf("fields = %v", p.fields())
			}
		})
		t.Run("TooManyReports", func(t *testing.T) {
			reports := make([]collector.Report, collector.MaxBatchReports+1)
			for i := range reports {
				reports[i] = collector.Report{Flow: flowOf("10.1.0.5", "10.20.3.4", uint16(i), 5060, 17), Packets: 1, Bytes: 1}
			}
			p := a.ingestRaw(collector.AppendBatchJSON(nil, reports)).problem(t, http.StatusRequestEntityTooLarge)
			if !slices.Equal(p.fields(), []string{"reports"}) {
				t.Errorf("fields = %v", p.fields())
			}
			// Exactly the limit is fine, but is not sent here: it would change the counters.
		})
		t.Run("BodyTooLarge", func(t *testing.T) {
			body := append([]byte(`{"reports":[`), bytes.Repeat([]byte(" "), maxTrafficBodyBytes)...)
			a.ingestRaw(append(body, "]}"...)).problem(t, http.StatusRequestEntityTooLarge)
		})

		if after := a.stats(); !reflect.DeepEqual(after, before) {
			t.Errorf("a rejected batch changed the totals:\n%+v\n%+v", before, after)
		}
		if after := a.policyStatsOf(fx.policy.ID); !reflect.DeepEqual(after, beforePolicy) {
			t.Errorf("a rejected batch changed the policy's counters: %+v, then %+v", beforePolicy, after)
		}
		if diff := diffSnapshots(snap, a.snapshot()); diff != "" {
			t.Errorf("a rejected batch changed the database:\n%s", diff)
		}
		// BodyTooLarge is refused on its Content-Length before the handler, which counts the rest.
		rejected := len(cases) + 2
		want := fmt.Sprintf("# HELP patronus_ingest_rejected_total Traffic batches rejected as invalid; nothing of them was recorded.\n"+
			"# TYPE patronus_ingest_rejected_total counter\npatronus_ingest_rejected_total %d\n", rejected)
		if err := testutil.CollectAndCompare(a.collector, strings.NewReader(want), "patronus_ingest_rejected_total"); err != nil {
			t.Error(err)
		}
	})
}

func TestTrafficAndStatsRoles(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	body := collector.AppendBatchJSON(nil, trafficBatch(fx)[:1])
	a.do(http.MethodPost, "/api/v1/traffic", "", body).problem(t, http.StatusUnauthorized)
	a.do(http.MethodPost, "/api/v1/traffic", a.viewer, body).problem(t, http.StatusForbidden)
	decodeAs[apigen.TrafficResult](t, a.do(http.MethodPost, "/api/v1/traffic", a.admin, body), http.StatusOK)
	decodeAs[apigen.TrafficResult](t, a.do(http.MethodPost, "/api/v1/traffic", a.operator, body), http.StatusOK)

	policyReset := "/api/v1/policies/" + strconv.FormatInt(fx.policy.ID, 10) + "/stats/reset"
	for _, path := range []string{policyReset, "/api/v1/stats/reset"} {
		a.do(http.MethodPost, path, a.viewer, nil).problem(t, http.StatusForbidden)
		a.do(http.MethodPost, path, a.operator, nil).problem(t, http.StatusForbidden)
		a.do(http.MethodPost, path, "", nil).problem(t, http.StatusUnauthorized)
	}
	if st := a.policyStatsOf(fx.policy.ID); st.PacketsMatched != 20 {
		t.Fatalf("a refused reset changed the counters: %+v", st)
	}
	decodeAs[apigen.StatsResetResult](t, a.do(http.MethodPost, policyReset, a.admin, nil), http.StatusOK)
	decodeAs[apigen.StatsResetResult](t, a.do(http.MethodPost, "/api/v1/stats/reset", testAdminToken, nil), http.StatusOK)
	a.do(http.MethodGet, "/api/v1/stats", "", nil).problem(t, http.StatusUnauthorized)
}
