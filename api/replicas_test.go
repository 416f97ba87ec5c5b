package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// replicaInterval is the flush and snapshot interval of the test replicas.
const replicaInterval = 100 * time.Millisecond

// testReplica is one in-process replica: a Server with its own collector, flusher and live
// snapshot loop, on a database and history store shared with the others.
type testReplica struct {
	name    string
	srv     *Server
	coll    *collector.Collector
	flusher *collector.Flusher
	baseURL string
	stop    func()
}

func startTestReplica(t *testing.T, db *storage.DB, history historyStore, name string) *testReplica {
	t.Helper()
	r := &testReplica{name: name, coll: collector.New(collector.Config{Logger: slog.New(slog.DiscardHandler)})}
	r.flusher = collector.NewFlusher(r.coll, history, collector.FlushConfig{Instance: name, Interval: replicaInterval,
		MinBackoff: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	srv, err := New(Config{DB: db, AdminToken: testAdminToken, Version: "test", Logger: slog.New(slog.DiscardHandler),
		Collector: r.coll, History: history, Pipeline: r.flusher, Instance: name, LiveInterval: replicaInterval})
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	if err := srv.ReloadPolicies(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	r.baseURL = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	flushed, snapped := make(chan struct{}), make(chan struct{})
	go func() { defer close(flushed); r.flusher.Run(ctx, 10*time.Second) }()
	go func() { defer close(snapped); srv.RunLiveSnapshots(ctx) }()
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = hs.Close()
		cancel()
		<-flushed
		<-snapped
	}
	t.Cleanup(r.stop)
	return r
}

func (r *testReplica) call(t *testing.T, method, path string, body []byte, out any) {
	t.Helper()
	req, err := http.NewRequest(method, r.baseURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s on %s = %d %s", method, path, r.name, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// eventually retries check until it returns "" or 10 s pass.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReplicasShareLiveAndHistoryCounts(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T, db *storage.DB) historyStore
	}{
		{"influxdb", func(t *testing.T, db *storage.DB) historyStore { return openTestInflux(t) }},
		{"sql-postgres", func(t *testing.T, db *storage.DB) historyStore { return history.NewSQLHistory(db) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			testReplicasShareCounts(t, b.open)
		})
	}
}

func testReplicasShareCounts(t *testing.T, openHistory func(t *testing.T, db *storage.DB) historyStore) {
	ctx := context.Background()
	db := storagetest.Open(t, storage.DialectPostgres)
	history := openHistory(t, db)
	store := storage.NewStore(db)
	var policies []int64
	for i := range 2 {
		p := storage.Policy{Name: fmt.Sprintf("p%d", i), Priority: 10 + i, Enabled: true, ActionType: storage.ActionDrop}
		if err := store.Policies().Create(ctx, &p); err != nil {
			t.Fatal(err)
		}
		policies = append(policies, p.ID)
	}
	replicas := []*testReplica{
		startTestReplica(t, db, history, "r0"), startTestReplica(t, db, history, "r1"), startTestReplica(t, db, history, "r2"),
	}

	// Replica i receives, for policy j, (i+1)*(j+1) reports of 3 packets and 100 bytes, each on
	// a flow of its own.
	sentPackets := map[string]map[int64]int64{}
	var totalPackets, totalBytes int64
	perPolicy := map[int64]int64{}
	for i, r := range replicas {
		sentPackets[r.name] = map[int64]int64{}
		var reports []collector.Report
		for j, id := range policies {
			for n := range (i + 1) * (j + 1) {
				flow := collector.FlowKey{SrcIP: netip.AddrFrom4([4]byte{10, byte(i), byte(j), byte(n)}), DstIP: netip.MustParseAddr("10.9.0.1"),
					SrcPort: 40000, DstPort: 443, Protocol: 6}
				reports = append(reports, collector.Report{PolicyID: &id, Flow: flow, Packets: 3, Bytes: 100})
				sentPackets[r.name][id] += 3
				perPolicy[id] += 3
				totalPackets += 3
				totalBytes += 100
			}
		}
		r.call(t, http.MethodPost, "/api/v1/traffic", collector.AppendBatchJSON(nil, reports), nil)
	}

	t.Run("ClusterStatsAreTheSumOnEveryReplica", func(t *testing.T) {
		for _, r := range replicas {
			eventually(t, "cluster stats on "+r.name, func() string {
				var st apigen.GlobalStats
				r.call(t, http.MethodGet, "/api/v1/stats", nil, &st)
				if st.Scope != apigen.LiveScopeCluster || st.Packets != totalPackets || st.Bytes != totalBytes || len(st.Instances) != 3 || len(st.LeftOut) != 0 {
					return fmt.Sprintf("%+v, want %d packets %d bytes from 3 instances", st, totalPackets, totalBytes)
				}
				if !st.Instances[0].Local || st.Instances[0].Instance != r.name {
					return fmt.Sprintf("first instance %+v is not %s", st.Instances[0], r.name)
				}
				for _, in := range st.Instances {
					want := sentPackets[in.Instance][policies[0]] + sentPackets[in.Instance][policies[1]]
					if in.Packets != want {
						return fmt.Sprintf("instance %s: %d packets, want %d", in.Instance, in.Packets, want)
					}
				}
				return ""
			})
		}
		var local apigen.GlobalStats
		replicas[0].call(t, http.MethodGet, "/api/v1/stats?scope=local", nil, &local)
		if want := sentPackets["r0"][policies[0]] + sentPackets["r0"][policies[1]]; local.Scope != apigen.LiveScopeLocal || local.Packets != want || len(local.Instances) != 1 {
			t.Errorf("local scope = %+v, want %d packets of r0 alone", local, want)
		}
	})

	t.Run("PolicyStatsAndLiveFieldsAreTheSum", func(t *testing.T) {
		for _, id := range policies {
			var st apigen.PolicyStats
			replicas[1].call(t, http.MethodGet, fmt.Sprintf("/api/v1/policies/%d/stats", id), nil, &st)
			if st.PacketsMatched != perPolicy[id] || len(st.Instances) != 3 || st.LastSeen == nil {
				t.Errorf("policy %d stats = %+v, want %d packets from 3 instances", id, st, perPolicy[id])
			}
			var p apigen.Policy
			replicas[2].call(t, http.MethodGet, fmt.Sprintf("/api/v1/policies/%d", id), nil, &p)
			if p.PacketsMatched != perPolicy[id] {
				t.Errorf("policy %d live fields = %d packets, want %d", id, p.PacketsMatched, perPolicy[id])
			}
		}
		var list apigen.PolicyList
		replicas[0].call(t, http.MethodGet, "/api/v1/policies", nil, &list)
		for _, p := range list.Items {
			if p.PacketsMatched != perPolicy[p.ID] {
				t.Errorf("listed policy %d: %d packets, want %d", p.ID, p.PacketsMatched, perPolicy[p.ID])
			}
		}
	})

	t.Run("HistoryIsTheSum", func(t *testing.T) {
		for _, id := range policies {
			eventually(t, fmt.Sprintf("history of policy %d", id), func() string {
				var h apigen.PolicyHistory
				replicas[0].call(t, http.MethodGet, fmt.Sprintf("/api/v1/policies/%d/stats/history?from=-1h&every=1h", id), nil, &h)
				var packets int64
				for _, pt := range h.Points {
					packets += pt.Packets
				}
				if packets != perPolicy[id] {
					return fmt.Sprintf("%d packets in history, want %d", packets, perPolicy[id])
				}
				return ""
			})
		}
	})

	t.Run("SilentReplicaIsLeftOutAndListed", func(t *testing.T) {
		if err := store.LiveStats().Write(ctx, storage.LiveSnapshot{Full: true, Totals: storage.LiveTotals{Instance: "ghost", Packets: 1000}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Gorm.Exec("UPDATE live_totals SET updated_at = now() - interval '10 seconds' WHERE instance = 'ghost'").Error; err != nil {
			t.Fatal(err)
		}
		var st apigen.GlobalStats
		replicas[0].call(t, http.MethodGet, "/api/v1/stats", nil, &st)
		if st.Packets != totalPackets || len(st.LeftOut) != 1 || st.LeftOut[0].Instance != "ghost" || st.LeftOut[0].Reason != apigen.LeftOutInstanceReasonStale {
			t.Errorf("with a silent replica: %d packets, left out %+v; want %d and ghost (stale)", st.Packets, st.LeftOut, totalPackets)
		}
		_ = store.LiveStats().Forget(ctx, "ghost")
	})

	t.Run("SnapshotsFromBeforeAResetAreNotCounted", func(t *testing.T) {
		// As the reset's transaction does: mark reset 5 of every policy, clear the rows.
		if err := store.LiveStats().Reset(ctx, 0, 5); err != nil {
			t.Fatal(err)
		}
		// r2 writes a snapshot taken before it applied the reset: it must not count.
		if err := replicas[2].srv.writeLiveSnapshot(ctx); err != nil {
			t.Fatal(err)
		}
		var st apigen.GlobalStats
		replicas[0].call(t, http.MethodGet, "/api/v1/stats", nil, &st)
		r0 := sentPackets["r0"][policies[0]] + sentPackets["r0"][policies[1]]
		if st.Packets != r0 || len(st.LeftOut) != 2 {
			t.Errorf("before the others applied the reset: %d packets, left out %+v; want r0's %d and r1, r2 reset_pending", st.Packets, st.LeftOut, r0)
		}
		for _, lo := range st.LeftOut {
			if lo.Reason != apigen.LeftOutInstanceReasonResetPending {
				t.Errorf("left out %+v, want reset_pending", lo)
			}
		}
		var ps apigen.PolicyStats
		replicas[0].call(t, http.MethodGet, fmt.Sprintf("/api/v1/policies/%d/stats", policies[0]), nil, &ps)
		if ps.PacketsMatched != sentPackets["r0"][policies[0]] {
			t.Errorf("policy stats before the others applied the reset = %d packets, want r0's %d", ps.PacketsMatched, sentPackets["r0"][policies[0]])
		}
		for _, r := range replicas {
			r.srv.applyStatsReset(0, 5)
		}
		for _, r := range replicas {
			eventually(t, "stats after every replica applied the reset", func() string {
				var st apigen.GlobalStats
				r.call(t, http.MethodGet, "/api/v1/stats", nil, &st)
				if st.Packets != 0 || len(st.Instances) != 3 || len(st.LeftOut) != 0 {
					return fmt.Sprintf("%+v, want 0 packets from 3 instances", st)
				}
				return ""
			})
		}
	})

	t.Run("StoppedReplicaLeavesTheTotals", func(t *testing.T) {
		replicas[2].stop()
		var st apigen.GlobalStats
		replicas[0].call(t, http.MethodGet, "/api/v1/stats", nil, &st)
		if len(st.Instances) != 2 || len(st.LeftOut) != 0 {
			t.Errorf("after r2 stopped: instances %+v, left out %+v", st.Instances, st.LeftOut)
		}
	})

	t.Run("UnreadableSnapshotsFallBackToLocal", func(t *testing.T) {
		if err := db.Gorm.Exec("ALTER TABLE live_totals RENAME TO live_totals_gone").Error; err != nil {
			t.Fatal(err)
		}
		replicas[0].coll.Record(policies[0], collector.FlowKey{SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2"), Protocol: 17}, 7, 70)
		var st apigen.GlobalStats
		replicas[0].call(t, http.MethodGet, "/api/v1/stats", nil, &st)
		if st.Scope != apigen.LiveScopeLocal || st.Packets != 7 || len(st.Instances) != 1 {
			t.Errorf("with the snapshots unreadable: %+v, want r0's 7 packets, scope local", st)
		}
		var ps apigen.PolicyStats
		replicas[0].call(t, http.MethodGet, fmt.Sprintf("/api/v1/policies/%d/stats", policies[0]), nil, &ps)
		if ps.Scope != apigen.LiveScopeLocal || ps.PacketsMatched != 7 {
			t.Errorf("policy stats with the snapshots unreadable: %+v", ps)
		}
	})
}
