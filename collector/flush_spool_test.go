package collector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage/history"
)

// TestFlusherFromSpool runs the flusher on a real spool with a store that is down at first:
// points come from the acknowledged batches in the spool, the checkpoint waits for the store,
// and a "crash" (the flusher and spool dropped without a final flush, then reopened) replays
// what was not confirmed with the same timestamps, so the store ends with exactly the
// acknowledged traffic: per policy, unclassified (policy 0) and per path.
func TestFlusherFromSpool(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *spool.Spool {
		sp, err := spool.Open(spool.Config{Dir: dir, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	store := newStore()
	down := &history.WriteError{Retryable: true, Err: errors.New("connection refused")}
	store.failures = []error{down, down, down}
	clock := &stepClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	newFlusher := func(sp *spool.Spool) *Flusher {
		return NewFlusher(&fakeSource{}, store, FlushConfig{Instance: "test", Interval: time.Hour, MaxBatch: 1000,
			Now: clock.Now, Logger: logger, Spool: sp})
	}
	ctx := context.Background()
	sp := open()
	f := newFlusher(sp)
	var acked int64
	ack := func(sp *spool.Spool, packets int64) {
		if err := sp.Append(ctx, []spool.Delta{{PolicyID: 1, Packets: packets, Bytes: packets}, {PolicyID: 2, Packets: 1, Bytes: 1},
			{PolicyID: Unclassified, Packets: 2, Bytes: 2}, {PathID: 5, Packets: packets, Bytes: packets}}); err != nil {
			t.Fatal(err)
		}
		acked += packets
	}
	for i := range 3 {
		ack(sp, int64(10+i))
		f.CollectDeltas()
		f.writeOnce(ctx) // the store is down
	}
	if st := f.Stats(); st.PointsPending != 12 || st.PointsWritten != 0 {
		t.Fatalf("while down: %+v", st)
	}
	ack(sp, 100) // acknowledged, not yet cut
	// Crash: nothing flushed on the way out. The spool's files are all that is left.
	sp.Close()

	sp = open()
	defer sp.Close()
	f = newFlusher(sp)
	f.CollectDeltas() // replays the three unconfirmed flushes and cuts the fourth
	for range 3 {     // the store is back
		f.writeOnce(ctx)
	}
	if st := f.Stats(); st.PointsPending != 0 || st.PointsWritten != 16 {
		t.Fatalf("after restart: %+v, want the 4 flushes' 16 points written", st)
	}
	if got := store.total(1); got != acked {
		t.Fatalf("policy 1 history = %d, acknowledged %d", got, acked)
	}
	if got := store.pathTotal(5); got != acked {
		t.Fatalf("path 5 history = %d, acknowledged %d", got, acked)
	}
	// Confirmed now: another restart replays nothing, and so doubles nothing.
	sp.Close()
	sp = open()
	defer sp.Close()
	f = newFlusher(sp)
	f.CollectDeltas()
	if st := f.Stats(); st.PointsPending != 0 {
		t.Fatalf("after a clean restart %d points were replayed", st.PointsPending)
	}
	if got := store.total(1); got != acked || store.total(2) != 4 || store.total(Unclassified) != 8 || store.pathTotal(5) != acked {
		t.Fatalf("history %d/%d/%d/%d, want %d/4/8/%d", got, store.total(2), store.total(Unclassified), store.pathTotal(5), acked, acked)
	}
}
