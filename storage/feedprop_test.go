package storage_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestFeedPropagationDelay measures, over 1,000 changes, the time from the commit of a change
// on one replica to its application by another replica's tailer (its own connection pool and
// listener on the same PostgreSQL), with NOTIFY and with polling only. It logs p50/p99/max and
// asserts only that every change arrived: wall time is not asserted on a shared machine.
func TestFeedPropagationDelay(t *testing.T) {
	const changes = 1000
	for _, mode := range []struct {
		name     string
		noNotify bool
	}{{"notify", false}, {"poll", true}} {
		t.Run(mode.name, func(t *testing.T) {
			url := storagetest.PostgresSchemaURL(t)
			open := func() *storage.DB {
				db, err := storage.Open(context.Background(), url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close() })
				return db
			}
			dbA, dbB := open(), open()
			if err := dbA.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			writer := storage.NewStore(dbA)
			var mu sync.Mutex
			appliedAt := make(map[int64]time.Time, changes)
			readerStore := storage.NewStore(dbB)
			tailer := storage.NewTailer(storage.TailerConfig{Store: readerStore, DB: dbB, NoNotify: mode.noNotify,
				PollInterval: storage.DefaultFeedPollInterval,
				Apply: func(_ context.Context, c storage.Change) {
					now := time.Now()
					mu.Lock()
					appliedAt[c.Seq] = now
					mu.Unlock()
				}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); tailer.Run(ctx) }()
			defer func() { cancel(); <-done }()
			if !mode.noNotify {
				waitFor(t, tailer.Listening)
			}

			committedAt := make(map[int64]time.Time, changes)
			var last int64
			for range changes {
				c := storage.Change{Kind: storage.KindPathMetricsReplaced, Actor: "bench", ResourceID: "1",
					Effects: storage.Effects{PathIDs: []int64{1}}}
				err := writer.Tx(context.Background(), func(tx *storage.Store) error {
					return tx.Changes().Record(context.Background(), &c)
				})
				if err != nil {
					t.Fatal(err)
				}
				committedAt[c.Seq] = time.Now()
				last = c.Seq
				time.Sleep(time.Millisecond) // a steady stream of writes, not one burst
			}
			wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer wcancel()
			if err := tailer.WaitApplied(wctx, last); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			delays := make([]time.Duration, 0, changes)
			for seq, at := range committedAt {
				got, ok := appliedAt[seq]
				if !ok {
					t.Fatalf("change %d never applied", seq)
				}
				delays = append(delays, max(got.Sub(at), 0))
			}
			slices.Sort(delays)
			pct := func(p float64) time.Duration { return delays[int(p*float64(len(delays)-1))] }
			t.Logf("propagation %s over %d changes: p50 %v p99 %v max %v", mode.name, len(delays),
				pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), delays[len(delays)-1].Round(10*time.Microsecond))
		})
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
