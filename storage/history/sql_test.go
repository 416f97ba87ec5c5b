package history_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

func countStats(t *testing.T, db *storage.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Gorm.Model(&storage.PolicyStat{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSQLHistoryPrune(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		h := history.NewSQLHistory(db)
		// More old rows than one pruning statement deletes, so Prune has to loop.
		const old = 10_050
		batch := make([]history.PolicyDelta, 0, old+3)
		for i := range old {
			batch = append(batch, delta(int64(i%50), "a", -time.Duration(i+1)*time.Second, 1, 1, 1))
		}
		batch = append(batch,
			delta(1, "a", 0, 1, 1, 1), // at the cut: kept
			delta(1, "a", time.Second, 1, 1, 1),
			delta(2, "b", time.Hour, 1, 1, 1),
		)
		write(t, h, batch...)
		n, err := h.Prune(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		if n != old {
			t.Fatalf("pruned %d rows, want %d", n, old)
		}
		if got := countStats(t, db); got != 3 {
			t.Fatalf("%d rows left, want 3", got)
		}
		if n, err := h.Prune(ctx, base); err != nil || n != 0 {
			t.Fatalf("second prune = %d, %v; want 0, nil", n, err)
		}
	})
}

func TestSQLHistoryRunRetention(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		h := history.NewSQLHistory(db)
		now := time.Now().UTC()
		write(t, h,
			history.PolicyDelta{PolicyID: 1, Instance: "a", Time: now.Add(-3 * time.Hour), Packets: 1},
			history.PolicyDelta{PolicyID: 1, Instance: "a", Time: now.Add(-2 * time.Hour), Packets: 1},
			history.PolicyDelta{PolicyID: 1, Instance: "a", Time: now.Add(-time.Minute), Packets: 1},
		)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.RunRetention(ctx, time.Hour, 10*time.Millisecond, nil)
		}()
		// The first pass runs at once; wait for it (bounded), then stop the loop.
		deadline := time.Now().Add(10 * time.Second)
		for countStats(t, db) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("retention left %d rows, want 1", countStats(t, db))
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		points, err := h.QueryPolicy(context.Background(), 1, now.Add(-time.Hour), now.Add(time.Second), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var packets int64
		for _, p := range points {
			packets += p.Packets
		}
		if packets != 1 {
			t.Fatalf("recent packets = %d, want 1", packets)
		}
	})
}

func TestSQLHistoryWriteErrorsAreRetryable(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		h := history.NewSQLHistory(db)
		if err := h.Ping(context.Background()); err != nil {
			t.Fatalf("ping: %v", err)
		}
		// A database that went away is the SQL store's outage: retry later.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		err := h.WriteDeltas(context.Background(), []history.PolicyDelta{delta(1, "a", 0, 1, 1, 1)})
		var werr *history.WriteError
		if !errors.As(err, &werr) || !werr.Retryable || werr.Status != 0 {
			t.Fatalf("err = %#v, want a retryable WriteError", err)
		}
		if err := h.Ping(context.Background()); err == nil {
			t.Fatal("ping of a closed database succeeded")
		}
	})
}

func TestSQLHistoryPingNeedsTable(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			h := history.NewSQLHistory(storagetest.OpenUnmigrated(t, dialect))
			if err := h.Ping(context.Background()); err == nil {
				t.Fatal("ping of an unmigrated database succeeded")
			}
		})
	}
}

// TestHistoryWindowCount checks that HistoryWindowCount, which callers use to check a range
// against their limits, counts exactly the windows a store answers with.
func TestHistoryWindowCount(t *testing.T) {
	h := history.NewSQLHistory(storagetest.Open(t, storage.DialectSQLite))
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		from, to time.Time
		every    time.Duration
		want     int64
	}{
		{t0, t0.Add(time.Hour), time.Minute, 60},
		{t0, t0.Add(time.Hour + time.Nanosecond), time.Minute, 61},
		{t0.Add(30 * time.Second), t0.Add(time.Hour), time.Minute, 60},
		{t0.Add(-time.Nanosecond), t0.Add(time.Nanosecond), time.Minute, 2},
		{t0, t0.Add(time.Second), time.Hour, 1},
		{time.Date(1969, 12, 31, 23, 59, 50, 0, time.UTC), time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC), 7 * time.Second, 3},
		{t0, t0.Add(10_000 * time.Second), time.Second, 10_000},
	} {
		got := history.HistoryWindowCount(tc.from, tc.to, tc.every)
		points, err := h.QueryPolicy(context.Background(), 1, tc.from, tc.to, tc.every)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want || int64(len(points)) != tc.want {
			t.Errorf("%s..%s every %s: count %d, store answers %d windows, want %d", tc.from, tc.to, tc.every, got, len(points), tc.want)
		}
	}
	for _, bad := range []struct {
		from, to time.Time
		every    time.Duration
	}{{t0, t0, time.Minute}, {t0.Add(time.Minute), t0, time.Minute}, {t0, t0.Add(time.Hour), 0}, {t0, t0.Add(time.Hour), 1500 * time.Millisecond}} {
		if n := history.HistoryWindowCount(bad.from, bad.to, bad.every); n != 0 {
			t.Errorf("%s..%s every %s: %d windows, want 0", bad.from, bad.to, bad.every, n)
		}
	}
	if n := history.HistoryWindowCount(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Second); n < 300e9 {
		t.Errorf("ten thousand years at 1s: %d windows", n)
	}
}
