package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

func TestLiveStats(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		live := storage.NewStore(db).LiveStats()
		seen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		write := func(snap storage.LiveSnapshot) {
			t.Helper()
			if err := live.Write(ctx, snap); err != nil {
				t.Fatal(err)
			}
		}
		write(storage.LiveSnapshot{Full: true,
			Totals:   storage.LiveTotals{Instance: "a", Packets: 10, Bytes: 100, ActiveFlows: 2, FlowsExpired: 1},
			Policies: []storage.LivePolicy{{PolicyID: 1, Packets: 6, Bytes: 60, ActiveFlows: 1, LastSeen: &seen}, {PolicyID: 2, Packets: 4, Bytes: 40, ActiveFlows: 1}}})
		write(storage.LiveSnapshot{Full: true,
			Totals:   storage.LiveTotals{Instance: "b", Packets: 5, Bytes: 50},
			Policies: []storage.LivePolicy{{PolicyID: 1, Packets: 5, Bytes: 50}}})

		cl, err := live.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cl.Totals) != 2 || cl.Totals[0].Instance != "a" || cl.Totals[0].Packets != 10 || cl.Totals[0].FlowsExpired != 1 || cl.Totals[1].Bytes != 50 {
			t.Fatalf("totals = %+v", cl.Totals)
		}
		if age := cl.Now.Sub(cl.Totals[0].UpdatedAt); age < 0 || age > time.Minute {
			t.Fatalf("updated_at %s is not near the database's now %s", cl.Totals[0].UpdatedAt, cl.Now)
		}
		rows, err := live.Policies(ctx, []int64{1})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Instance != "a" || rows[0].Packets != 6 || rows[0].LastSeen == nil || !rows[0].LastSeen.Equal(seen) || rows[1].Packets != 5 || rows[1].LastSeen != nil {
			t.Fatalf("policy 1 rows = %+v", rows)
		}

		t.Run("ChangedAndRemovedRows", func(t *testing.T) {
			write(storage.LiveSnapshot{Totals: storage.LiveTotals{Instance: "a", Packets: 12},
				Policies: []storage.LivePolicy{{PolicyID: 1, Packets: 8}}, Removed: []int64{2}})
			rows, err := live.Policies(ctx, []int64{1, 2})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].Instance != "a" || rows[0].Packets != 8 || rows[1].Instance != "b" {
				t.Fatalf("rows = %+v", rows)
			}
		})

		t.Run("ResetMarksAndClears", func(t *testing.T) {
			if err := live.Reset(ctx, 1, 7); err != nil {
				t.Fatal(err)
			}
			if err := live.Reset(ctx, 1, 5); err != nil { // an older reset never lowers the mark
				t.Fatal(err)
			}
			if err := live.Reset(ctx, 0, 3); err != nil {
				t.Fatal(err)
			}
			rows, err := live.Policies(ctx, []int64{1})
			if err != nil || len(rows) != 0 {
				t.Fatalf("rows of the reset policy = %+v, %v", rows, err)
			}
			r, err := live.Resets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.Newest(1) != 7 || r.Newest(2) != 3 || r.NewestAny() != 7 {
				t.Fatalf("resets = %+v", r)
			}
		})

		t.Run("Forget", func(t *testing.T) {
			if err := live.Forget(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			cl, err := live.Cluster(ctx)
			if err != nil || len(cl.Totals) != 1 || cl.Totals[0].Instance != "a" {
				t.Fatalf("after forget: %+v, %v", cl.Totals, err)
			}
		})
	})
}
