package storage_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestFeedConcurrentWritersNeverSkip has writers hold their transaction open for a random
// while after recording (so that, without the feed lock, a later seq could commit first) while a
// tailer runs: it must apply every committed change, once, in seq order.
func TestFeedConcurrentWritersNeverSkip(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		store := storage.NewStore(db)
		var mu sync.Mutex
		var applied []int64
		tailer := storage.NewTailer(storage.TailerConfig{Store: store, DB: db, PollInterval: 5 * time.Millisecond,
			Apply: func(_ context.Context, c storage.Change) {
				mu.Lock()
				applied = append(applied, c.Seq)
				mu.Unlock()
			}})
		store.OnCommit(func(int64) { tailer.Wake() })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); tailer.Run(ctx) }()

		const writers, each = 8, 25
		var wg sync.WaitGroup
		var recMu sync.Mutex
		var committed []int64
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					var seq int64
					err := store.Tx(context.Background(), func(tx *storage.Store) error {
						c := storage.Change{Kind: storage.KindSiteUpdated, Actor: "w", ResourceID: "x"}
						if err := tx.Changes().Record(context.Background(), &c); err != nil {
							return err
						}
						seq = c.Seq
						time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
						if (w+i)%7 == 0 {
							return errRollback // a rolled-back change leaves a gap, never a skip
						}
						return nil
					})
					if err == errRollback {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					recMu.Lock()
					committed = append(committed, seq)
					recMu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(committed)
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		if err := tailer.WaitApplied(wctx, committed[len(committed)-1]); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		if !slices.Equal(applied, committed) {
			t.Errorf("tailer applied %d changes, %d committed; applied %v, committed %v", len(applied), len(committed), applied, committed)
		}
	})
}

var errRollback = rollbackError{}

type rollbackError struct{}

func (rollbackError) Error() string { return "roll back" }

// TestFeedPruneAndReset prunes old changes (and their audit entries), and a tailer that had
// not applied them resets and resumes after the head.
func TestFeedPruneAndReset(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		store := storage.NewStore(db)
		var resets []int64
		var applied []int64
		tailer := storage.NewTailer(storage.TailerConfig{Store: store,
			Apply: func(_ context.Context, c storage.Change) { applied = append(applied, c.Seq) },
			Reset: func(_ context.Context, head int64) { resets = append(resets, head) }})
		if _, err := tailer.Head(ctx); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-48 * time.Hour)
		var seqs []int64
		for i := range 4 {
			c := storage.Change{Kind: storage.KindPolicyUpdated, Actor: "ci", ResourceID: "1"}
			if i < 3 {
				c.Time = old
			}
			if err := store.Changes().Record(ctx, &c); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, c.Seq)
		}
		n, err := store.Changes().Prune(ctx, time.Now().Add(-24*time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("Prune = %d, %v; want 3 rows", n, err)
		}
		if _, err := store.Audit().Get(ctx, seqs[0]); err == nil {
			t.Error("a pruned change is still in the audit log")
		}
		if err := tailer.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		head := seqs[3]
		if !slices.Equal(resets, []int64{head}) || len(applied) != 0 || tailer.Applied() != head {
			t.Errorf("after falling behind: resets %v, applied %v, at %d; want one reset to %d", resets, applied, tailer.Applied(), head)
		}
		// Not behind any more: the next change is applied normally.
		c := storage.Change{Kind: storage.KindStatsReset, Actor: "ci"}
		if err := store.Changes().Record(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if err := tailer.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(applied, []int64{c.Seq}) || len(resets) != 1 {
			t.Errorf("applied %v resets %v, want [%d] and one reset", applied, resets, c.Seq)
		}
		if err := store.Changes().Record(ctx, &storage.Change{Kind: "site.exploded"}); err == nil {
			t.Error("a change of an unknown kind was recorded")
		}
	})
}
