package collector_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// influxBytesByName answers SELECT sum(bytes) ... GROUP BY policy_name on the database.
func influxBytesByName(t *testing.T, serverURL, db string) map[string]float64 {
	t.Helper()
	resp, err := http.PostForm(serverURL+"/query", url.Values{"db": {db},
		"q": {`SELECT sum("bytes") FROM "policy_traffic" GROUP BY "policy_name"`}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []struct {
				Tags   map[string]string `json:"tags"`
				Values [][]any           `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != 1 {
		t.Fatalf("query: %v %+v", err, out)
	}
	got := map[string]float64{}
	for _, s := range out.Results[0].Series {
		got[s.Tags["policy_name"]] = s.Values[0][1].(float64)
	}
	return got
}

// TestFlushedPointsCarryPolicyNames runs the collector and flusher against the real
// InfluxDB: points carry the name the policy had when they were taken, so a renamed
// policy's later points carry the new one, and history still sums the policy as one.
func TestFlushedPointsCarryPolicyNames(t *testing.T) {
	serverURL, bucket := storagetest.InfluxDatabase(t)
	db, _, _ := strings.Cut(bucket, "/")
	// 1.8 answers CREATE DATABASE before it has run it: run it again and read the answer.
	resp, err := http.PostForm(serverURL+"/query", url.Values{"q": {"CREATE DATABASE " + db}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: serverURL, Token: "u:p", Org: "patronus", Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	web := collector.Policy{ID: 1, Name: "web, tls", Priority: 1, Enabled: true}
	coll := collector.New(collector.Config{})
	if err := coll.SetPolicies([]collector.Policy{web}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := collector.NewFlusher(coll, h, collector.FlushConfig{Instance: "i1", Interval: time.Hour,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(10 * time.Second)
			return clock
		}})
	k := collector.FlowKey{SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2"), SrcPort: 1, DstPort: 443, Protocol: 6}
	coll.Record(1, k, 1, 100)
	f.CollectDeltas()
	web.Name = "web v2"
	if err := coll.SetPolicies([]collector.Policy{web}); err != nil {
		t.Fatal(err)
	}
	coll.Record(1, k, 2, 250)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Run(ctx, 10*time.Second) // the final drain writes both flushes
	if st := f.Stats(); st.PointsWritten != 2 || st.PointsPending != 0 {
		t.Fatalf("pipeline %+v, want 2 points written", st)
	}
	if got := influxBytesByName(t, serverURL, db); len(got) != 2 || got["web, tls"] != 100 || got["web v2"] != 250 {
		t.Errorf("bytes by policy_name %v, want 100 under the old name and 250 under the new", got)
	}
	points, err := h.QueryPolicy(context.Background(), 1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC), time.Hour)
	if err != nil || len(points) != 1 || points[0].Bytes != 350 {
		t.Errorf("history of the renamed policy %v %v, want one window of 350 bytes", points, err)
	}
}
