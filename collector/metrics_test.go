package collector

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	c, clock := newTestCollector(t, Config{MaxFlows: 2, FlowIdleTimeout: time.Minute}, policy(1, 10, proto(6)))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	_, err := c.RecordBatch([]Report{
		{Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6), Packets: 1, Bytes: 10},
		{Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 17), Packets: 2, Bytes: 20},
		{Flow: flow(t, "10.0.0.1", "10.0.0.3", 1, 2, 17), Packets: 3, Bytes: 30},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecordBatch([]Report{{PolicyID: ptr(int64(9)), Flow: flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)}}); err == nil {
		t.Fatal("batch with an unknown policy accepted")
	}
	c.ObserveRejected()
	c.ResetAll() // metrics are counters: a reset does not lower them
	clock.Advance(2 * time.Minute)
	c.SweepIdle()

	want := map[string]float64{
		"patronus_ingest_records_total":       3,
		"patronus_ingest_batches_total":       1,
		"patronus_ingest_rejected_total":      2,
		"patronus_unclassified_records_total": 2,
		"patronus_unclassified_packets_total": 5,
		"patronus_unclassified_bytes_total":   50,
		"patronus_active_flows":               0,
		"patronus_tracked_flows":              0,
		"patronus_flows_expired_total":        2,
		"patronus_flow_overflow_total":        1,
	}
	got := gather(t, reg)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("gathered %d metrics, want %d: %v", len(got), len(want), got)
	}
}

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}

func (h *logRecorder) removedLogged() (removed int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "removed" && a.Value.Int64() > 0 {
				removed, ok = a.Value.Int64(), true
			}
			return true
		})
	}
	return removed, ok
}

func TestRunSweepsAndLogs(t *testing.T) {
	logs := &logRecorder{}
	c, clock := newTestCollector(t, Config{FlowIdleTimeout: time.Minute, SweepInterval: time.Millisecond,
		Logger: slog.New(logs)}, policy(1, 10))
	c.RecordPacket(1, flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6), 100)
	c.RecordPacket(1, flow(t, "10.0.0.1", "10.0.0.3", 1, 2, 6), 100)
	clock.Advance(time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.Totals().FlowsExpired < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := c.Totals().FlowsExpired; got != 2 {
		t.Fatalf("FlowsExpired = %d, want 2", got)
	}
	if removed, ok := logs.removedLogged(); !ok || removed != 2 {
		t.Errorf("logged removed = %d, %v; want 2", removed, ok)
	}
}

func TestRunKeepsCachedClock(t *testing.T) {
	c := New(Config{})
	if err := c.SetPolicies(nil); err != nil {
		t.Fatal(err)
	}
	k := FlowKey{SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.0.0.2")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	for !c.ticking.Load() {
		time.Sleep(time.Millisecond)
	}
	before := time.Now().Add(-time.Minute)
	c.RecordPacket(Unclassified, k, 1)
	cancel()
	<-done
	if c.ticking.Load() {
		t.Error("the cached clock is still used after Run returned")
	}
	flows := c.TopFlows(Unclassified, 1, SortByBytes)
	if len(flows) != 1 || flows[0].LastSeen.Before(before) || flows[0].LastSeen.After(time.Now().Add(time.Minute)) {
		t.Fatalf("flows = %+v, want one seen about now", flows)
	}
}
