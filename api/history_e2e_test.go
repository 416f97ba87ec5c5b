package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
)

// settableClock is a clock the test moves by hand.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestHistoryEndToEnd records traffic into the collector the way ingestion does, lets the
// flusher write it to each history backend (two flushes through its writer loop, the third
// by the shutdown drain), and checks that the history API shows exactly what was recorded,
// per flush and in total, and that the pipeline state says so.
func TestHistoryEndToEnd(t *testing.T) {
	for _, b := range historyBackends {
		t.Run(b.name, func(t *testing.T) {
			clock := &settableClock{}
			var flusher *collector.Flusher
			a := newTestAPI(t, b.dialect, withConfig(func(c *Config) {
				h := b.open(t, c.DB)
				c.History = h
				c.Now = func() time.Time { return historyNow }
				flusher = collector.NewFlusher(c.Collector, h, collector.FlushConfig{
					Instance: "e2e", Interval: time.Hour, Now: clock.Now, MinBackoff: 10 * time.Millisecond,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				})
				c.Pipeline = flusher
			}))
			ids := []int64{a.seed().policy.ID, a.seed().policy.ID, a.seed().policy.ID}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { flusher.Run(ctx, 10*time.Second); close(done) }()
			defer func() { stop(); <-done }()

			// Burst k sends, for policy i, (k+1)*(i+1) reports of 3 packets and 1000 bytes
			// each, on flows 0..k of that policy: flows seen so far are k+1.
			type totals struct{ packets, bytes int64 }
			sent := map[int64]*totals{}
			perFlush := map[time.Time]map[int64]totals{}
			flushAt := []time.Time{at("11:59:10"), at("11:59:20"), at("11:59:30")}
			for k, when := range flushAt {
				var reports []collector.Report
				perFlush[when] = map[int64]totals{}
				for i, id := range ids {
					for n := range (k + 1) * (i + 1) {
						flow := collector.FlowKey{SrcIP: netip.AddrFrom4([4]byte{10, 1, byte(i), byte(n % (k + 1))}), DstIP: netip.MustParseAddr("10.20.0.1"),
							SrcPort: 40000, DstPort: 5060, Protocol: 17}
						reports = append(reports, collector.Report{PolicyID: &id, Flow: flow, Packets: 3, Bytes: 1000})
						if sent[id] == nil {
							sent[id] = &totals{}
						}
						sent[id].packets += 3
						sent[id].bytes += 1000
						f := perFlush[when][id]
						perFlush[when][id] = totals{f.packets + 3, f.bytes + 1000}
					}
				}
				if _, err := a.collector.RecordBatch(reports); err != nil {
					t.Fatal(err)
				}
				clock.Set(when)
				if k == len(flushAt)-1 {
					stop() // the last flush is the shutdown drain's
					<-done
					break
				}
				flusher.CollectDeltas()
				waitWritten(t, flusher, int64((k+1)*len(ids)))
			}
			if st := flusher.Stats(); st.PointsWritten != int64(len(flushAt)*len(ids)) || st.PointsPending != 0 {
				t.Fatalf("after shutdown: %+v", st)
			}

			for i, id := range ids {
				r := a.do(http.MethodGet, historyPath(id, "from", "2025-06-01T11:59:00Z", "to", "2025-06-01T12:00:00Z", "every", "10s"), a.viewer, nil)
				h := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK)
				var want []apigen.HistoryPoint
				for w := range 6 {
					p := apigen.HistoryPoint{Time: at("11:59:00").Add(time.Duration(w) * 10 * time.Second)}
					if tot, ok := perFlush[p.Time][id]; ok {
						p.Packets, p.Bytes = tot.packets, tot.bytes
						p.ActiveFlows = int64(w) // flows 0..k of burst k, flushed in window k+1
					}
					want = append(want, p)
				}
				if !samePoints(h.Points, want) {
					t.Errorf("policy %d (#%d):\n got  %+v\n want %+v", id, i, h.Points, want)
				}
			}

			all := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history?from=-1h&every=1h", a.viewer, nil), http.StatusOK)
			if len(all.Series) != len(ids) {
				t.Fatalf("%d series, want %d", len(all.Series), len(ids))
			}
			for rank, s := range all.Series {
				want := sent[ids[len(ids)-1-rank]] // more reports per burst for later policies
				if s.PolicyID != ids[len(ids)-1-rank] || len(s.Points) != 1 || s.Points[0].Packets != want.packets || s.Points[0].Bytes != want.bytes {
					t.Errorf("series %d: policy %d %+v, want policy %d with %+v", rank, s.PolicyID, s.Points, ids[len(ids)-1-rank], *want)
				}
			}

			st := decodeAs[apigen.PipelineStats](t, a.do(http.MethodGet, "/api/v1/stats/pipeline", a.viewer, nil), http.StatusOK)
			if st.PointsWritten != int64(len(flushAt)*len(ids)) || st.PointsPending != 0 || st.PointsDropped != 0 || st.BatchesFailed != 0 ||
				st.LastSuccessAt == nil || !st.LastSuccessAt.Equal(flushAt[2]) {
				t.Errorf("pipeline %+v", st)
			}
			if wantBackend := map[bool]apigen.PipelineStatsBackend{true: apigen.PipelineStatsBackendInfluxdb, false: apigen.PipelineStatsBackendSQL}[b.name == "influxdb"]; st.Backend != wantBackend {
				t.Errorf("backend %s, want %s", st.Backend, wantBackend)
			}
		})
	}
}

// waitWritten waits until the flusher's writer loop has written n points.
func waitWritten(t *testing.T, f *collector.Flusher, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := f.Stats()
		if st.PointsWritten >= n && st.PointsPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flusher wrote %d of %d points: %+v", st.PointsWritten, n, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
