package collector_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// trafficRun records known traffic on three policies until stopped and remembers the totals.
type trafficRun struct {
	coll    *collector.Collector
	sent    [3]atomic.Int64
	stop    chan struct{}
	stopped sync.WaitGroup
}

func startTraffic(t *testing.T, coll *collector.Collector) *trafficRun {
	t.Helper()
	policies := make([]collector.Policy, 3)
	for i := range policies {
		policies[i] = collector.Policy{ID: int64(i + 1), Name: "p", Priority: i, Enabled: true}
	}
	if err := coll.SetPolicies(policies); err != nil {
		t.Fatal(err)
	}
	r := &trafficRun{coll: coll, stop: make(chan struct{})}
	r.stopped.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-r.stop:
				return
			default:
			}
			p := n % 3
			k := collector.FlowKey{SrcIP: netip.AddrFrom4([4]byte{10, 0, byte(p), byte(n % 200)}), DstIP: netip.MustParseAddr("192.0.2.1"),
				SrcPort: uint16(1000 + n%50), DstPort: 443, Protocol: 6}
			coll.Record(int64(p+1), k, 2, 300)
			r.sent[p].Add(2)
			if n%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	return r
}

func (r *trafficRun) finish() { close(r.stop); r.stopped.Wait() }

// historyStore is a history store the flusher writes to and the test reads back.
type historyStore interface {
	collector.HistoryWriter
	QueryPolicy(ctx context.Context, policyID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
}

func historyTotal(t *testing.T, h historyStore, policyID int64, from time.Time) int64 {
	t.Helper()
	points, err := h.QueryPolicy(context.Background(), policyID, from.Truncate(time.Hour), time.Now().Add(time.Hour).Truncate(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range points {
		sum += p.Packets
	}
	return sum
}

func runFlusher(coll *collector.Collector, h historyStore) (*collector.Flusher, func()) {
	f := collector.NewFlusher(coll, h, collector.FlushConfig{
		Instance: "fault-test", Interval: 150 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond, WriteTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx, 20*time.Second); close(done) }()
	return f, func() { cancel(); <-done }
}

// TestHistoryExactAcrossInfluxOutage kills the real influxd for more than three flush
// intervals while traffic keeps flowing; after it comes back, history equals what was sent.
func TestHistoryExactAcrossInfluxOutage(t *testing.T) {
	influx := storagetest.StartInflux(t)
	bucket := influx.CreateDatabase("patronus")
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: influx.URL(), Token: "u:p", Org: "patronus", Bucket: bucket, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	coll := collector.New(collector.Config{})
	traffic := startTraffic(t, coll)
	f, stopFlusher := runFlusher(coll, h)

	time.Sleep(500 * time.Millisecond)
	influx.Stop()
	time.Sleep(800 * time.Millisecond) // > 5 flush intervals with the store down
	if st := f.Stats(); st.PointsPending == 0 || st.LastError == "" {
		t.Errorf("while down: %+v, want pending points and an error", st)
	}
	influx.Start()
	time.Sleep(500 * time.Millisecond)
	traffic.finish()
	stopFlusher()

	st := f.Stats()
	if st.PointsPending != 0 || st.PointsDropped != 0 {
		t.Fatalf("after recovery: %+v", st)
	}
	for i := range traffic.sent {
		want := traffic.sent[i].Load()
		if got := historyTotal(t, h, int64(i+1), start); got != want {
			t.Errorf("policy %d: history %d packets, recorded %d", i+1, got, want)
		}
	}
}

// responseDropper forwards writes to InfluxDB, and for the first drops of them hangs up after
// the server has applied the write, as a timeout or a broken connection would.
type responseDropper struct {
	target string
	drops  atomic.Int64
	writes atomic.Int64
}

func (d *responseDropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, d.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if r.URL.Path == "/api/v2/write" {
		d.writes.Add(1)
		if resp.StatusCode == http.StatusNoContent && d.drops.Add(-1) >= 0 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// TestHistoryNotDoubledWhenResponseLost: writes the server applied but whose answer never came
// back are retried with the same timestamps, so the totals are not doubled.
func TestHistoryNotDoubledWhenResponseLost(t *testing.T) {
	influxURL, bucket := storagetest.InfluxDatabase(t)
	dropper := &responseDropper{target: influxURL}
	dropper.drops.Store(3)
	proxy := httptest.NewServer(dropper)
	defer proxy.Close()
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: proxy.URL, Token: "u:p", Org: "patronus", Bucket: bucket, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	coll := collector.New(collector.Config{})
	traffic := startTraffic(t, coll)
	f, stopFlusher := runFlusher(coll, h)
	time.Sleep(1200 * time.Millisecond)
	traffic.finish()
	stopFlusher()
	if dropper.drops.Load() >= 0 {
		t.Fatalf("only %d writes went through the proxy; the dropped-response case was not exercised", dropper.writes.Load())
	}
	if st := f.Stats(); st.PointsPending != 0 || st.PointsDropped != 0 || st.WriteAttempts <= int64(dropper.writes.Load())-1 {
		t.Logf("stats %+v, proxy writes %d", st, dropper.writes.Load())
	}
	for i := range traffic.sent {
		want := traffic.sent[i].Load()
		if got := historyTotal(t, h, int64(i+1), start); got != want {
			t.Errorf("policy %d: history %d packets, recorded %d", i+1, got, want)
		}
	}
}

// TestRefusedPointIsolatedAcrossInfluxOutage stops the real influxd for six flushes, then
// queues one point that InfluxDB refuses for good (its timestamp lies outside the retention
// policy: 400 "partial write: points beyond retention policy") among the buffered good ones.
// When InfluxDB is back, the refused point alone is dropped and every good point reaches
// history.
func TestRefusedPointIsolatedAcrossInfluxOutage(t *testing.T) {
	influx := storagetest.StartInflux(t)
	influx.CreateDatabase("patronus")
	if err := storagetest.InfluxQL(influx.URL(), "CREATE RETENTION POLICY short ON patronus DURATION 1h REPLICATION 1"); err != nil {
		t.Fatal(err)
	}
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: influx.URL(), Token: "u:p", Org: "patronus", Bucket: "patronus/short", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	coll := collector.New(collector.Config{})
	if err := coll.SetPolicies([]collector.Policy{
		{ID: 1, Name: "a", Priority: 1, Enabled: true},
		{ID: 2, Name: "b", Priority: 2, Enabled: true},
		{ID: 3, Name: "c", Priority: 3, Enabled: true},
	}); err != nil {
		t.Fatal(err)
	}
	var lag atomic.Int64 // how far the flush clock is behind the real one
	f := collector.NewFlusher(coll, h, collector.FlushConfig{
		Instance: "refuse-test", Interval: time.Hour, MaxBatch: 1000, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, WriteTimeout: 2 * time.Second,
		Now:    func() time.Time { return time.Now().Add(-time.Duration(lag.Load())) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx, 5*time.Second); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	var want [4]int64
	record := func(id int64, packets uint64) {
		k := collector.FlowKey{SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("192.0.2.1"), SrcPort: 1000, DstPort: 443, Protocol: 6}
		coll.Record(id, k, packets, packets*100)
	}
	// waitWritten waits until nothing is pending; a freshly started influxd on a loaded machine
	// may take a while to take its first write, and a wait that ran out would only show later
	// as a wrong count, so it fails here, with the pipeline's state.
	waitWritten := func(what string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for f.Stats().PointsPending > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if st := f.Stats(); st.PointsPending > 0 {
			t.Fatalf("%s: still pending after 45 s: %+v", what, st)
		}
	}
	// One flush written while InfluxDB is up, so that it has the database on disk when killed.
	record(1, 7)
	want[1] += 7
	f.CollectDeltas()
	waitWritten("the first flush, InfluxDB up")
	influx.Stop()
	for round := range 6 {
		for id := int64(1); id <= 3; id++ {
			record(id, uint64(10*round+int(id)))
			want[id] += int64(10*round + int(id))
		}
		f.CollectDeltas()
		time.Sleep(60 * time.Millisecond)
		if round == 3 {
			record(3, 1000) // flushed three hours in the past: InfluxDB will refuse it
			lag.Store(int64(3 * time.Hour))
			f.CollectDeltas()
			lag.Store(0)
		}
	}
	if st := f.Stats(); st.PointsPending != 19 || st.LastError == "" {
		t.Fatalf("while down: %+v, want 19 points pending and an error", st)
	}
	influx.Start()
	waitWritten("after InfluxDB came back")
	st := f.Stats()
	if st.PointsPending != 0 || st.PointsDropped != 1 || st.BatchesFailed != 1 || st.PointsWritten != 19 {
		t.Fatalf("after recovery: %+v; want 19 written and the refused point alone dropped", st)
	}
	for id := int64(1); id <= 3; id++ {
		if got := historyTotal(t, h, id, start); got != want[id] {
			t.Errorf("policy %d: history %d packets, want %d", id, got, want[id])
		}
	}
}
