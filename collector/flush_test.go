package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage/history"
)

// fakeSource hands out scripted deltas.
type fakeSource struct {
	mu   sync.Mutex
	next []history.PolicyDelta
}

func (s *fakeSource) add(policyID, packets int64) {
	s.mu.Lock()
	s.next = append(s.next, history.PolicyDelta{PolicyID: policyID, Packets: packets, Bytes: packets * 100})
	s.mu.Unlock()
}

func (s *fakeSource) TakeDeltas(time.Time) []history.PolicyDelta {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.next
	s.next = nil
	return d
}

// idempotentStore keeps points by series and timestamp, like InfluxDB: a re-sent point
// overwrites itself. failures scripts the outcome of the next writes.
type idempotentStore struct {
	mu       sync.Mutex
	points   map[string]history.PolicyDelta
	writes   int
	failures []error
	// applyThenFail makes a failing write store its points first (a response lost after the
	// server applied the write).
	applyThenFail bool
}

func newStore() *idempotentStore { return &idempotentStore{points: map[string]history.PolicyDelta{}} }

func (s *idempotentStore) WriteDeltas(_ context.Context, batch []history.PolicyDelta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	var err error
	if len(s.failures) > 0 {
		err, s.failures = s.failures[0], s.failures[1:]
	}
	if err == nil || s.applyThenFail {
		for _, d := range batch {
			s.points[fmt.Sprintf("%d/%d/%s/%d", d.PolicyID, d.PathID, d.Instance, d.Time.UnixNano())] = d
		}
	}
	return err
}

func (s *idempotentStore) total(policyID int64) (packets int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.points {
		if d.PolicyID == policyID && d.PathID == 0 {
			packets += d.Packets
		}
	}
	return packets
}

func (s *idempotentStore) pathTotal(pathID int64) (packets int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.points {
		if d.PathID == pathID {
			packets += d.Packets
		}
	}
	return packets
}

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(10 * time.Second)
	return c.t
}

func newTestFlusher(src DeltaSource, w HistoryWriter, maxPending int) *Flusher {
	clock := &stepClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return NewFlusher(src, w, FlushConfig{
		Instance: "test", Interval: time.Hour, MaxPending: maxPending, MaxBatch: 3,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

func retryable(status int) error {
	return &history.WriteError{Status: status, Retryable: true, Err: errors.New("unavailable")}
}

func TestFlusherRetriesKeepTimestampsSoNothingDoubles(t *testing.T) {
	src := &fakeSource{}
	store := newStore()
	store.applyThenFail = true
	store.failures = []error{retryable(503), retryable(0), retryable(429)}
	f := newTestFlusher(src, store, 100)
	ctx := context.Background()
	want := int64(0)
	for i := range 5 {
		src.add(1, int64(i+1))
		src.add(2, 7)
		want += int64(i + 1)
		f.CollectDeltas()
	}
	for range 20 {
		if more, _, _ := f.writeOnce(ctx); !more && f.Stats().PointsPending == 0 {
			break
		}
	}
	st := f.Stats()
	if st.PointsPending != 0 || st.PointsWritten != 10 || st.PointsDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if got := store.total(1); got != want {
		t.Fatalf("policy 1 history total = %d, want %d (a retry counted twice or lost points)", got, want)
	}
	if got := store.total(2); got != 35 {
		t.Fatalf("policy 2 history total = %d, want 35", got)
	}
	if st.LastError == "" || st.LastSuccessAt.IsZero() {
		t.Fatalf("last error/success not recorded: %+v", st)
	}
}

func TestFlusherDropsPermanentlyRejectedBatchOnly(t *testing.T) {
	src := &fakeSource{}
	store := newStore()
	store.failures = []error{&history.WriteError{Status: 400, Err: errors.New("bad point")}}
	f := newTestFlusher(src, store, 100)
	f.cfg.MaxBatch = 1
	src.add(1, 5)
	f.CollectDeltas()
	src.add(1, 6)
	f.CollectDeltas()
	for range 5 {
		f.writeOnce(context.Background())
	}
	st := f.Stats()
	if st.PointsDropped != 1 || st.BatchesFailed != 1 || st.PointsWritten != 1 || store.total(1) != 6 {
		t.Fatalf("stats %+v total %d", st, store.total(1))
	}
}

func TestFlusherBoundsPendingDroppingOldest(t *testing.T) {
	src := &fakeSource{}
	store := newStore()
	f := newTestFlusher(src, store, 4)
	for i := range 6 {
		src.add(int64(i), 1)
		f.CollectDeltas()
	}
	st := f.Stats()
	if st.PointsPending != 4 || st.PointsDropped != 2 {
		t.Fatalf("stats %+v", st)
	}
	for range 5 {
		f.writeOnce(context.Background())
	}
	if store.total(0) != 0 || store.total(1) != 0 || store.total(5) != 1 {
		t.Fatal("the oldest points were not the ones dropped")
	}
}

func TestFlusherRunDrainsOnShutdown(t *testing.T) {
	src := &fakeSource{}
	store := newStore()
	f := newTestFlusher(src, store, 100)
	f.cfg.Interval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx, 5*time.Second); close(done) }()
	src.add(3, 11)
	deadline := time.Now().Add(5 * time.Second)
	for store.total(3) != 11 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	src.add(3, 4) // taken only by the final flush
	cancel()
	<-done
	if got := store.total(3); got != 15 {
		t.Fatalf("history total after shutdown = %d, want 15", got)
	}
}

func TestFlusherShutdownGivesUpAtDeadline(t *testing.T) {
	src := &fakeSource{}
	store := newStore()
	for range 1000 {
		store.failures = append(store.failures, retryable(503))
	}
	f := newTestFlusher(src, store, 100)
	src.add(1, 1)
	start := time.Now()
	f.drain(50 * time.Millisecond)
	if time.Since(start) > 5*time.Second {
		t.Fatal("drain ignored its deadline")
	}
	if f.Stats().PointsPending != 1 {
		t.Fatalf("stats %+v", f.Stats())
	}
}

// refusingStore is an idempotentStore that refuses for good, as a whole, every batch holding
// a point of policy poison, as InfluxDB answers 400 for a batch with one bad line.
type refusingStore struct {
	*idempotentStore
	poison int64
}

func (s refusingStore) WriteDeltas(ctx context.Context, batch []history.PolicyDelta) error {
	for _, d := range batch {
		if d.PolicyID == s.poison {
			s.mu.Lock()
			s.writes++
			s.mu.Unlock()
			return &history.WriteError{Status: 400, Err: errors.New("unable to parse point")}
		}
	}
	return s.idempotentStore.WriteDeltas(ctx, batch)
}

// TestFlusherIsolatesRefusedPoint checks that a point the store refuses for good is dropped
// alone: the store is down for several flushes, then the merged backlog holds one refused
// point among many good ones, and every good point still reaches history.
func TestFlusherIsolatesRefusedPoint(t *testing.T) {
	src := &fakeSource{}
	inner := newStore()
	down := &history.WriteError{Retryable: true, Err: errors.New("connection refused")}
	inner.failures = []error{down, down, down, down, down, down}
	store := refusingStore{idempotentStore: inner, poison: 13}
	f := newTestFlusher(src, store, 1000)
	f.cfg.MaxBatch = 1000 // the backlog goes out as one batch
	want := map[int64]int64{}
	for flush := range 6 {
		for id := int64(1); id <= 20; id++ {
			if id == 13 && flush != 4 {
				continue
			}
			src.add(id, id)
			want[id] += id
		}
		f.CollectDeltas()
		f.writeOnce(context.Background()) // fails: the store is down
	}
	for range 3 {
		f.writeOnce(context.Background())
	}
	st := f.Stats()
	if st.PointsPending != 0 || st.PointsDropped != 1 || st.BatchesFailed != 1 || st.PointsWritten != 6*19 {
		t.Fatalf("stats %+v; want 114 written, the refused point alone dropped", st)
	}
	for id := int64(1); id <= 20; id++ {
		wantTotal := want[id]
		if id == 13 {
			wantTotal = 0
		}
		if got := inner.total(id); got != wantTotal {
			t.Errorf("policy %d history = %d packets, want %d", id, got, wantTotal)
		}
	}
	// Splitting costs about 2·log2(n) writes per refused point, not one per point.
	if inner.writes > 6+1+2*7+2 {
		t.Errorf("%d writes to isolate one point in 115", inner.writes)
	}
}

// hookStore runs during before each write.
type hookStore struct {
	*idempotentStore
	during func()
}

func (s hookStore) WriteDeltas(ctx context.Context, batch []history.PolicyDelta) error {
	if s.during != nil {
		s.during()
	}
	return s.idempotentStore.WriteDeltas(ctx, batch)
}

// TestFlusherCompletesOnlyWhatItSent: while a write is in flight the buffer overflows and the
// oldest flush is dropped; completing the write must not also remove the flush queued after
// it, which was never sent.
func TestFlusherCompletesOnlyWhatItSent(t *testing.T) {
	src := &fakeSource{}
	inner := newStore()
	var f *Flusher
	once := false
	store := hookStore{idempotentStore: inner, during: func() {
		if !once {
			once = true
			src.add(2, 7)
			src.add(3, 7)
			f.CollectDeltas() // 3 points queued behind the one being written, MaxPending 2
		}
	}}
	f = newTestFlusher(src, store, 2)
	src.add(1, 5)
	f.CollectDeltas()
	f.writeOnce(context.Background()) // sends policy 1; meanwhile policy 1 is dropped from the queue
	st := f.Stats()
	if st.PointsPending != 2 || st.PointsDropped != 1 {
		t.Fatalf("after the first write: %+v; want the 2 new points still pending", st)
	}
	for range 3 {
		f.writeOnce(context.Background())
	}
	if inner.total(2) != 7 || inner.total(3) != 7 {
		t.Fatalf("history %d/%d, want the flush queued during the write written too", inner.total(2), inner.total(3))
	}
}

// TestFlusherTakesTheStoresRetryDecision checks that the flusher has no default of its own: an
// error the store did not classify is retried (history.AsWriteError), and a permanent
// WriteError wrapped by the writer is still permanent.
func TestFlusherTakesTheStoresRetryDecision(t *testing.T) {
	if retry, _ := classifyWriteError(errors.New("unclassified")); !retry {
		t.Error("an unclassified error is not retried")
	}
	if retry, _ := classifyWriteError(fmt.Errorf("wrapped: %w", &history.WriteError{Status: 400, Err: errors.New("bad")})); retry {
		t.Error("a wrapped permanent WriteError is retried")
	}
	src := &fakeSource{}
	store := newStore()
	store.failures = []error{errors.New("unclassified")}
	f := newTestFlusher(src, store, 100)
	src.add(1, 5)
	f.CollectDeltas()
	for range 5 {
		f.writeOnce(context.Background())
	}
	if st := f.Stats(); st.PointsDropped != 0 || st.PointsWritten != 1 || store.total(1) != 5 {
		t.Fatalf("after an unclassified failure: stats %+v, total %d; want the point retried and written", st, store.total(1))
	}
}
