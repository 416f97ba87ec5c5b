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

// pathHistory is what the API reads path history with; both stores implement it.
type pathHistory interface {
	historyStore
	QueryPath(ctx context.Context, pathID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
	QueryPathIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]history.IntervalBytes, error)
}

// TestPathAndUnclassifiedHistory runs on every store, InfluxDB 1.8 with InfluxQL and both Flux
// paths, SQLite and PostgreSQL: a path's series holds what was written with its path id and
// nothing else, and the unclassified series (policy 0) is its own, outside every
// all-policies query.
func TestPathAndUnclassifiedHistory(t *testing.T) {
	for _, windowing := range []string{history.InfluxWindowingInfluxQL, history.InfluxWindowingClient, history.InfluxWindowingServer} {
		t.Run("influxdb-"+windowing, func(t *testing.T) {
			testPathAndUnclassified(t, func(t *testing.T) pathHistory { return openInflux(t, windowing) })
		})
	}
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			testPathAndUnclassified(t, func(t *testing.T) pathHistory { return history.NewSQLHistory(storagetest.Open(t, dialect)) })
		})
	}
}

func pathDelta(pathID int64, instance string, at time.Duration, packets, bytes int64) history.PolicyDelta {
	return history.PolicyDelta{PathID: pathID, Instance: instance, Time: base.Add(at), Packets: packets, Bytes: bytes}
}

func testPathAndUnclassified(t *testing.T, open func(t *testing.T) pathHistory) {
	ctx := context.Background()
	from, to := base, base.Add(3*time.Minute)

	t.Run("PathSeries", func(t *testing.T) {
		h := open(t)
		// Path 7 on two instances at varying rates, path 8 once; policy 7 shares the id but
		// not the series.
		write(t, h,
			pathDelta(7, "a", 10*time.Second, 10, 1000),
			pathDelta(7, "b", 10*time.Second, 5, 500),
			pathDelta(7, "a", 20*time.Second, 20, 4000),
			pathDelta(7, "a", 70*time.Second, 1, 100),
			pathDelta(8, "a", 10*time.Second, 3, 300),
			delta(7, "a", 10*time.Second, 99, 9900, 4),
		)
		got, err := h.QueryPath(ctx, 7, from, to, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantPoints(t, got, []history.HistoryPoint{point(0, 35, 5500, 0), point(time.Minute, 1, 100, 0), point(2*time.Minute, 0, 0, 0)})
		policy, err := h.QueryPolicy(ctx, 7, from, to, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantPoints(t, policy, []history.HistoryPoint{point(0, 99, 9900, 4), point(time.Minute, 0, 0, 0), point(2*time.Minute, 0, 0, 0)})
		// Rewriting a path point replaces it, as for policies.
		write(t, h, pathDelta(7, "a", 70*time.Second, 2, 200))
		if got, err = h.QueryPath(ctx, 7, from, to, time.Minute); err != nil {
			t.Fatal(err)
		}
		wantPoints(t, got, []history.HistoryPoint{point(0, 35, 5500, 0), point(time.Minute, 2, 200, 0), point(2*time.Minute, 0, 0, 0)})

		intervals, err := h.QueryPathIntervals(ctx, []int64{7}, from, to, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wantIntervals := map[time.Time]int64{base.Add(10 * time.Second): 1500, base.Add(20 * time.Second): 4000, base.Add(70 * time.Second): 200}
		if len(intervals) != 1 || len(intervals[7]) != len(wantIntervals) {
			t.Fatalf("intervals = %v, want path 7 only with %v", intervals, wantIntervals)
		}
		for _, iv := range intervals[7] {
			if wantIntervals[iv.Time.UTC()] != iv.Bytes {
				t.Errorf("interval %s = %d bytes, want %d", iv.Time, iv.Bytes, wantIntervals[iv.Time.UTC()])
			}
		}
		// Paths are not policies: the all-policies queries see policy 7 only.
		top, err := h.QueryTop(ctx, from, to, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(top) != 1 || top[0].PolicyID != 7 || top[0].Points[0].Bytes != 9900 {
			t.Errorf("QueryTop = %+v, want policy 7 alone with 9900 bytes", top)
		}
		total, _, err := h.QueryTotal(ctx, from, to, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if total[0].Bytes != 9900 {
			t.Errorf("total bytes %d, want 9900 (policies only)", total[0].Bytes)
		}
	})

	t.Run("UnclassifiedSeries", func(t *testing.T) {
		h := open(t)
		write(t, h,
			delta(history.UnclassifiedPolicyID, "a", 10*time.Second, 4, 400, 2),
			delta(history.UnclassifiedPolicyID, "b", 10*time.Second, 6, 600, 3),
			delta(history.UnclassifiedPolicyID, "a", 80*time.Second, 1, 50, 1),
			delta(1, "a", 10*time.Second, 10, 1000, 1),
			delta(2, "a", 10*time.Second, 20, 2000, 1),
		)
		got, err := h.QueryPolicy(ctx, history.UnclassifiedPolicyID, from, to, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantPoints(t, got, []history.HistoryPoint{point(0, 10, 1000, 5), point(time.Minute, 1, 50, 1), point(2*time.Minute, 0, 0, 0)})
		ivs, err := h.QueryIntervals(ctx, []int64{history.UnclassifiedPolicyID}, from, to, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(ivs[0]) != 2 {
			t.Errorf("unclassified intervals %v, want 2", ivs[0])
		}
		// Outside every all-policies query: top, total and the intervals of all.
		top, err := h.QueryTop(ctx, from, to, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(top) != 2 || top[0].PolicyID != 2 || top[1].PolicyID != 1 {
			t.Errorf("QueryTop = %+v, want policies 2 and 1 only", top)
		}
		top1, err := h.QueryTop(ctx, from, to, time.Minute, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(top1) != 1 || top1[0].PolicyID != 2 {
			t.Errorf("QueryTop(1) = %+v, want policy 2", top1)
		}
		total, totalIvs, err := h.QueryTotal(ctx, from, to, time.Minute, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if total[0].Bytes != 3000 || total[1].Bytes != 0 {
			t.Errorf("total %+v, want 3000 bytes in the first window and none after (unclassified left out)", total)
		}
		if len(totalIvs) != 1 || totalIvs[0].Bytes != 3000 {
			t.Errorf("total intervals %+v, want one of 3000 bytes", totalIvs)
		}
		all, err := h.QueryIntervals(ctx, nil, from, to, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := all[0]; ok || len(all) != 2 {
			t.Errorf("intervals of all policies %v, want policies 1 and 2 only", all)
		}
	})

	t.Run("InvalidDelta", func(t *testing.T) {
		h := open(t)
		d := pathDelta(3, "a", 0, 1, 1)
		d.PolicyID = 2
		err := h.WriteDeltas(ctx, []history.PolicyDelta{d})
		var werr *history.WriteError
		if !errors.As(err, &werr) || werr.Retryable || !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("delta of a policy and a path: err %v, want a permanent invalid WriteError", err)
		}
	})
}

// TestSQLPathHistoryRetention: path rows have no foreign key (a deleted path keeps its
// history) and the history retention prunes them with the policy rows.
func TestSQLPathHistoryRetention(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			h := history.NewSQLHistory(storagetest.Open(t, dialect))
			write(t, h, pathDelta(42, "a", 0, 1, 10), pathDelta(42, "a", time.Hour, 2, 20), delta(1, "a", 0, 3, 30, 0))
			n, err := h.Prune(ctx, base.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Errorf("pruned %d rows, want 2 (one path row, one policy row)", n)
			}
			got, err := h.QueryPath(ctx, 42, base, base.Add(2*time.Hour), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			wantPoints(t, got, []history.HistoryPoint{point(0, 0, 0, 0), point(time.Hour, 2, 20, 0)})
		})
	}
}
