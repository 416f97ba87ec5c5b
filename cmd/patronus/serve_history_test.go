package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// e2eAdminToken is the PATRONUS_ADMIN_TOKEN of the end-to-end test's service.
const e2eAdminToken = "e2e-admin-token-0123456789abcdef"

// call sends a request with the admin token and a JSON body (nil for none), and decodes a
// JSON answer into out (nil to ignore it); the status must be want.
func call(t *testing.T, method, url string, body, out any, want int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
		}
	}
}

// historyTotals sums the packets and bytes of each policy over the last hour, read through
// GET /api/v1/stats/history.
func historyTotals(t *testing.T, base string) map[int64][2]int64 {
	t.Helper()
	var h apigen.StatsHistory
	call(t, http.MethodGet, base+"/api/v1/stats/history?from=-1h&to=now&every=1h", nil, &h, http.StatusOK)
	out := map[int64][2]int64{}
	for _, s := range h.Series {
		var tot [2]int64
		for _, p := range s.Points {
			tot[0] += p.Packets
			tot[1] += p.Bytes
		}
		out[s.PolicyID] = tot
	}
	return out
}

func sameTotals(a, b map[int64][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestServeTrafficReachesHistoryExactly runs the whole service as its flags configure it,
// on the embedded SQL history and on InfluxDB: traffic posted to /api/v1/traffic is written
// by the flush loop and read back through the history API with exactly the posted totals,
// per policy, including the traffic only the shutdown's final flush writes, across a
// restart.
func TestServeTrafficReachesHistoryExactly(t *testing.T) {
	backends := []struct {
		name    string
		backend apigen.PipelineStatsBackend
		flags   func(t *testing.T) []string
	}{
		{"sql", apigen.PipelineStatsBackendSQL, func(t *testing.T) []string { return nil }},
		{"influxdb", apigen.PipelineStatsBackendInfluxdb, func(t *testing.T) []string {
			serverURL, bucket := storagetest.InfluxDatabase(t)
			return []string{"--influx-url", serverURL, "--influx-bucket", bucket, "--influx-token", "patronus:patronus"}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			args := append([]string{"serve", "--database-url", filepath.Join(t.TempDir(), "patronus.db"),
				"--admin-token", e2eAdminToken, "--flush-interval", "100ms", "--instance", "e2e"}, b.flags(t)...)
			start := func() (base string, stop func()) {
				addr := freeAddr(t)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- run(ctx, append(args, "--listen", addr), io.Discard, io.Discard) }()
				base = "http://" + addr
				waitFor(t, base+"/healthz", done)
				return base, func() {
					cancel()
					select {
					case err := <-done:
						if err != nil {
							t.Fatalf("serve returned %v", err)
						}
					case <-time.After(30 * time.Second):
						t.Fatal("serve did not stop")
					}
				}
			}
			base, stop := start()
			if b.backend == apigen.PipelineStatsBackendInfluxdb {
				// The server's version picks the read path once, shown in /readyz.
				var ready apigen.Readiness
				call(t, http.MethodGet, base+"/readyz", nil, &ready, http.StatusOK)
				if ready.Checks.Influxdb == nil || ready.Checks.Influxdb.Detail == nil || *ready.Checks.Influxdb.Detail != "influxql" {
					t.Errorf("readyz influxdb check %+v, want detail influxql", ready.Checks.Influxdb)
				}
			}
			var ids []int64
			for i := range 3 {
				var p apigen.Policy
				call(t, http.MethodPost, base+"/api/v1/policies", map[string]any{
					"name": fmt.Sprintf("e2e-%d", i), "priority": 10 + i, "action": map[string]any{"type": "drop"},
				}, &p, http.StatusCreated)
				ids = append(ids, p.ID)
			}
			sent := map[int64][2]int64{}
			post := func(batch int) {
				t.Helper()
				var reports []map[string]any
				for i, id := range ids {
					for n := range 5 * (i + 1) {
						packets, bytes := int64(batch+n+1), int64(1200*(batch+n+1)+i)
						reports = append(reports, map[string]any{"policy_id": id, "packets": packets, "bytes": bytes,
							"flow": map[string]any{"src_ip": fmt.Sprintf("10.0.%d.%d", i, n), "dst_ip": "192.0.2.10", "src_port": 40000 + batch, "dst_port": 443, "protocol": 6}})
						tot := sent[id]
						sent[id] = [2]int64{tot[0] + packets, tot[1] + bytes}
					}
				}
				call(t, http.MethodPost, base+"/api/v1/traffic", map[string]any{"reports": reports}, nil, http.StatusOK)
			}
			for batch := range 3 {
				post(batch)
				time.Sleep(150 * time.Millisecond) // let flushes fall between batches
			}
			deadline := time.Now().Add(20 * time.Second)
			for got := historyTotals(t, base); !sameTotals(got, sent); got = historyTotals(t, base) {
				if time.Now().After(deadline) {
					t.Fatalf("history totals %v, want what was posted %v", got, sent)
				}
				time.Sleep(50 * time.Millisecond)
			}
			var ps apigen.PipelineStats
			call(t, http.MethodGet, base+"/api/v1/stats/pipeline", nil, &ps, http.StatusOK)
			if ps.Backend != b.backend || ps.PointsWritten < int64(len(ids)) || ps.PointsDropped != 0 || ps.LastSuccessAt == nil {
				t.Errorf("pipeline %+v", ps)
			}

			// Traffic posted just before shutdown is written by the final flush.
			post(3)
			stop()
			base, stop = start()
			defer stop()
			if got := historyTotals(t, base); !sameTotals(got, sent) {
				t.Fatalf("after a restart: history totals %v, want what was posted %v", got, sent)
			}
		})
	}
}
