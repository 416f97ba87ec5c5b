package api

import (
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
)

func TestResetPolicyStats(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		https, _ := a.trafficPolicies(fx)
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		a.rec.takeEvents()

		id := strconv.FormatInt(fx.policy.ID, 10)
		res := decodeAs[apigen.StatsResetResult](t, a.do(http.MethodPost, "/api/v1/policies/"+id+"/stats/reset", a.admin, nil), http.StatusOK)
		if !res.Success || res.PoliciesReset != 1 || res.AuditID <= 0 || res.Message == "" {
			t.Fatalf("reset = %+v", res)
		}
		if st := a.policyStatsOf(fx.policy.ID); st.PacketsMatched != 0 || st.BytesMatched != 0 || st.LastSeen != nil {
			t.Errorf("after the reset: %+v", st)
		}
		for _, f := range a.flowsOf(fx.policy.ID, "").Items {
			if f.Packets != 0 || f.Bytes != 0 {
				t.Errorf("a flow kept its counts after the reset: %+v", f)
			}
		}
		// Other policies and the unclassified counts are untouched.
		if st := a.policyStatsOf(https.ID); st.PacketsMatched != 3 || st.BytesMatched != 300 {
			t.Errorf("another policy after the reset: %+v", st)
		}
		if st := a.stats(); st.Packets != 5 || st.UnclassifiedPackets != 2 || st.UnclassifiedReports != 1 {
			t.Errorf("totals after one policy's reset = %+v, want the other policy's 3 and unclassified 2 packets", st)
		}

		entries := a.auditOf("stats", id)
		if len(entries) != 1 || entries[0].ID != res.AuditID || entries[0].Action != apigen.AuditActionReset || entries[0].Actor != "test-admin" {
			t.Fatalf("audit = %+v", entries)
		}
		if before, _ := entries[0].Details["before"].(map[string]any); before["packets_matched"] != float64(16) || before["bytes_matched"] != float64(1600) {
			t.Errorf("audit details = %+v", entries[0].Details)
		}
		events := a.rec.takeEvents()
		if len(events) != 1 || events[0].Type != "stats.reset" || events[0].Data["policy_id"] != float64(fx.policy.ID) ||
			events[0].Data["audit_id"] != float64(res.AuditID) {
			t.Errorf("events = %+v", events)
		}

		// New traffic counts from zero.
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		if st := a.policyStatsOf(fx.policy.ID); st.PacketsMatched != 16 || st.BytesMatched != 1600 || st.ActiveFlows != 2 {
			t.Errorf("after the reset and one more batch: %+v", st)
		}

		t.Run("UnknownPolicy", func(t *testing.T) {
			snap := a.snapshot()
			for _, path := range []string{"/stats/reset", "/stats", "/flows"} {
				method := http.MethodGet
				if path == "/stats/reset" {
					method = http.MethodPost
				}
				a.do(method, "/api/v1/policies/999999"+path, a.admin, nil).problem(t, http.StatusNotFound)
			}
			if diff := diffSnapshots(snap, a.snapshot()); diff != "" {
				t.Errorf("a reset of an unknown policy changed the database:\n%s", diff)
			}
			if ev := a.rec.takeEvents(); len(ev) != 0 {
				t.Errorf("events = %+v", ev)
			}
		})
	})
}

func TestResetPolicyStatsKeepsHistory(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
	decodeAs[apigen.StatsResetResult](t, a.do(http.MethodPost, "/api/v1/stats/reset", a.admin, nil), http.StatusOK)
	// What the history flush takes is everything recorded, reset or not: 16 packets of
	// policies and 5 unclassified (policy 0), which history keeps as a series of its own.
	var packets, bytes, unclassified int64
	for _, d := range a.collector.TakeDeltas(time.Now()) {
		packets += d.Packets
		bytes += d.Bytes
		if d.PolicyID == history.UnclassifiedPolicyID && d.PathID == 0 {
			unclassified += d.Packets
		}
	}
	if packets != 21 || bytes != 2100 || unclassified != 5 {
		t.Errorf("history deltas after a reset = %d packets (%d unclassified) %d bytes, want 21 (5) and 2100", packets, unclassified, bytes)
	}
}

func TestResetStats(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		fx := a.seed()
		https, _ := a.trafficPolicies(fx)
		decodeAs[apigen.TrafficResult](t, a.ingest(trafficBatch(fx)), http.StatusOK)
		a.rec.takeEvents()

		res := decodeAs[apigen.StatsResetResult](t, a.do(http.MethodPost, "/api/v1/stats/reset", a.admin, nil), http.StatusOK)
		if !res.Success || res.PoliciesReset != 3 || res.AuditID <= 0 {
			t.Fatalf("reset = %+v", res)
		}
		// Flows stay tracked, with zero counts.
		if st := a.stats(); !reflect.DeepEqual(st, apigen.GlobalStats{ActiveFlows: 3, TrackedFlows: 4}) {
			t.Errorf("stats after the reset = %+v", st)
		}
		for _, id := range []int64{fx.policy.ID, https.ID} {
			if st := a.policyStatsOf(id); st.PacketsMatched != 0 || st.BytesMatched != 0 || st.LastSeen != nil {
				t.Errorf("policy %d after the reset: %+v", id, st)
			}
		}
		entries := decodeAs[apigen.AuditList](t, a.do(http.MethodGet, "/api/v1/audit?resource_kind=stats", a.viewer, nil), http.StatusOK).Items
		if len(entries) != 1 || entries[0].ID != res.AuditID || entries[0].ResourceID != "" || entries[0].Details["policies_reset"] != float64(3) {
			t.Fatalf("audit = %+v", entries)
		}
		events := a.rec.takeEvents()
		if len(events) != 1 || events[0].Type != "stats.reset" || events[0].Data["policy_id"] != nil {
			t.Errorf("events = %+v", events)
		}
		if _, ok := events[0].Data["policy_id"]; !ok {
			t.Error("stats.reset of everything has no policy_id: null")
		}
	})
}

func TestStatsScope(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	for _, path := range []string{"/api/v1/stats?scope=everywhere", "/api/v1/policies/1/stats?scope=everywhere"} {
		p := a.send(a.newRequest(http.MethodGet, path, a.viewer, nil), false).problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"scope"}) {
			t.Errorf("%s: fields %v, want [scope]", path, p.fields())
		}
	}
	// Without other replicas (SQLite is one process) the answer is this replica's, and says so.
	st := decodeAs[apigen.GlobalStats](t, a.do(http.MethodGet, "/api/v1/stats", a.viewer, nil), http.StatusOK)
	if st.Scope != apigen.LiveScopeLocal || len(st.Instances) != 1 || !st.Instances[0].Local || len(st.LeftOut) != 0 {
		t.Errorf("stats on one embedded replica = %+v", st)
	}
}
