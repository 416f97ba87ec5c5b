package collector

import (
	"context"
	"testing"
)

// TestLastSuccessReportsFlushHealthNotTraffic: an empty flush cycle is a success; a cycle
// while points wait for a store that is down is not, even with no new traffic; once they are
// written it is again.
func TestLastSuccessReportsFlushHealthNotTraffic(t *testing.T) {
	src := &fakeSource{}
	store := newStore()
	f := newTestFlusher(src, store, 100)
	if !f.Stats().LastSuccessAt.IsZero() {
		t.Fatal("last success set before any flush")
	}
	f.CollectDeltas() // nothing to write
	first := f.Stats().LastSuccessAt
	if first.IsZero() {
		t.Fatal("an empty flush cycle did not count as a success")
	}
	f.CollectDeltas()
	if second := f.Stats().LastSuccessAt; !second.After(first) {
		t.Fatalf("a second empty cycle left last success at %s (was %s)", second, first)
	}

	// The store goes down with a point waiting: empty cycles no longer count.
	store.failures = []error{retryable(503), retryable(503)}
	src.add(1, 5)
	f.CollectDeltas()
	if _, _, err := f.writeOnce(context.Background()); err == nil {
		t.Fatal("the write succeeded while the store was down")
	}
	stuck := f.Stats().LastSuccessAt
	f.CollectDeltas()
	if st := f.Stats(); !st.LastSuccessAt.Equal(stuck) || st.PointsPending != 1 {
		t.Fatalf("an empty cycle with a point waiting counted as a success: %+v", st)
	}

	// It recovers: the waiting point is written, then empty cycles are successes again.
	store.failures = nil
	for range 5 {
		if more, _, _ := f.writeOnce(context.Background()); !more && f.Stats().PointsPending == 0 {
			break
		}
	}
	written := f.Stats().LastSuccessAt
	if !written.After(stuck) || store.total(1) != 5 {
		t.Fatalf("after the store came back: last success %s (stuck at %s), total %d", written, stuck, store.total(1))
	}
	f.CollectDeltas()
	if st := f.Stats(); !st.LastSuccessAt.After(written) {
		t.Fatalf("an empty cycle after recovery did not count: %+v", st)
	}
}
