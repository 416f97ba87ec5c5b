package storage_test

import (
	"context"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// BenchmarkLiveStatsWrite is what one replica's snapshot costs the database each flush
// interval with 10,000 policies: a full write (after start-up or a reset) against the usual
// one, where 100 policies changed.
func BenchmarkLiveStatsWrite(b *testing.B) {
	const policies = 10_000
	rows := make([]storage.LivePolicy, policies)
	for i := range rows {
		rows[i] = storage.LivePolicy{PolicyID: int64(i + 1), Packets: 1, Bytes: 100, ActiveFlows: 1}
	}
	for _, dialect := range storagetest.Dialects {
		for _, c := range []struct {
			name    string
			full    bool
			changed int
		}{{"full-10000", true, policies}, {"changed-100-of-10000", false, 100}} {
			b.Run(dialect+"/"+c.name, func(b *testing.B) {
				db := storagetest.Open(b, dialect)
				live := storage.NewStore(db).LiveStats()
				ctx := context.Background()
				if err := live.Write(ctx, storage.LiveSnapshot{Full: true, Totals: storage.LiveTotals{Instance: "a"}, Policies: rows}); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := range b.N {
					for j := range c.changed {
						rows[j].Packets = int64(i + 2)
					}
					snap := storage.LiveSnapshot{Full: c.full, Totals: storage.LiveTotals{Instance: "a", Packets: int64(i)}, Policies: rows[:c.changed]}
					if err := live.Write(ctx, snap); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
