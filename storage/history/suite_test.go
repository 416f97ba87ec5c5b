package history_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// openHistory returns a fresh, empty history store that lives as long as the test.
// historyStore is what the shared suite exercises: every read and write both stores have.
type historyStore interface {
	WriteDeltas(ctx context.Context, deltas []history.PolicyDelta) error
	QueryPolicy(ctx context.Context, policyID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
	QueryTop(ctx context.Context, from, to time.Time, every time.Duration, top int) ([]history.PolicySeries, error)
	QueryIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]history.IntervalBytes, error)
	QueryTotal(ctx context.Context, from, to time.Time, every, interval time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	QueryPath(ctx context.Context, pathID int64, from, to time.Time, every time.Duration) ([]history.HistoryPoint, error)
	QueryPathIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]history.IntervalBytes, error)
	QueryPolicyWithIntervals(ctx context.Context, policyID int64, from, to time.Time, every, interval time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	QueryPathWithIntervals(ctx context.Context, pathID int64, from, to time.Time, every, interval time.Duration) ([]history.HistoryPoint, []history.IntervalBytes, error)
	QueryTopWithIntervals(ctx context.Context, from, to time.Time, every time.Duration, top int, interval time.Duration) ([]history.PolicySeries, map[int64][]history.IntervalBytes, error)
	Tier(ctx context.Context, from, to time.Time, every time.Duration) (string, error)
	Ping(ctx context.Context) error
	Close()
}

var (
	_ historyStore = (*history.SQLHistory)(nil)
	_ historyStore = (*history.InfluxHistory)(nil)
)

type openHistory func(t *testing.T) historyStore

// TestHistoryStores runs the shared history suite on every implementation, each on its real
// backend.
func TestHistoryStores(t *testing.T) {
	// InfluxQL is what InfluxDB 1.x, the server here, gets by default; windowing on the
	// server with Flux is what 2.x gets, and the Flux points path was the 1.x default before.
	// All three run on the real 1.8.
	for _, windowing := range []string{history.InfluxWindowingInfluxQL, history.InfluxWindowingClient, history.InfluxWindowingServer} {
		t.Run("influxdb-"+windowing, func(t *testing.T) {
			testHistoryStore(t, func(t *testing.T) historyStore { return openInflux(t, windowing) })
		})
	}
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			testHistoryStore(t, func(t *testing.T) historyStore {
				return history.NewSQLHistory(storagetest.Open(t, dialect))
			})
		})
	}
}

// influxToken is accepted by the test InfluxDB, which runs with authentication off.
const influxToken = "patronus:patronus"

// openInflux returns an InfluxHistory on a fresh database of the test InfluxDB.
func openInflux(t testing.TB, windowing string) *history.InfluxHistory {
	t.Helper()
	serverURL, bucket := influxDatabase(t)
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: serverURL, Token: influxToken, Org: "patronus", Bucket: bucket, Windowing: windowing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// influxDatabase is storagetest.InfluxDatabase made synchronous. InfluxDB 1.8 sends the 200
// of /query before it runs the statement, and storagetest.InfluxQL closes the response
// unread, so the database may not exist yet when it returns (writes then fail with 404
// "database not found"). CREATE DATABASE is idempotent: running it again and reading the
// answer to the end waits for it.
func influxDatabase(t testing.TB) (serverURL, bucket string) {
	t.Helper()
	serverURL, bucket = storagetest.InfluxDatabase(t)
	db, _, _ := strings.Cut(bucket, "/")
	resp, err := http.PostForm(serverURL+"/query", url.Values{"q": {"CREATE DATABASE " + db}})
	if err != nil {
		t.Fatalf("create InfluxDB database: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
		t.Fatalf("create InfluxDB database: HTTP %d %s %v", resp.StatusCode, body, err)
	}
	return serverURL, bucket
}

// base is a window-aligned time for every multiple of a minute up to an hour.
var base = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func delta(policyID int64, instance string, at time.Duration, packets, bytes, flows int64) history.PolicyDelta {
	return history.PolicyDelta{PolicyID: policyID, Instance: instance, Time: base.Add(at), Packets: packets, Bytes: bytes, ActiveFlows: flows}
}

func point(at time.Duration, packets, bytes, flows int64) history.HistoryPoint {
	return history.HistoryPoint{Time: base.Add(at), Packets: packets, Bytes: bytes, ActiveFlows: flows}
}

func write(t *testing.T, h historyStore, deltas ...history.PolicyDelta) {
	t.Helper()
	if err := h.WriteDeltas(context.Background(), deltas); err != nil {
		t.Fatalf("write deltas: %v", err)
	}
}

func queryPolicy(t *testing.T, h historyStore, policyID int64, from, to time.Duration, every time.Duration) []history.HistoryPoint {
	t.Helper()
	points, err := h.QueryPolicy(context.Background(), policyID, base.Add(from), base.Add(to), every)
	if err != nil {
		t.Fatalf("query policy %d: %v", policyID, err)
	}
	return points
}

func wantPoints(t *testing.T, got, want []history.HistoryPoint) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d points, want %d:\n got  %v\n want %v", len(got), len(want), got, want)
	}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) || got[i].Packets != want[i].Packets || got[i].Bytes != want[i].Bytes || got[i].ActiveFlows != want[i].ActiveFlows {
			t.Errorf("point %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testHistoryStore(t *testing.T, open openHistory) {
	ctx := context.Background()

	t.Run("Windows", func(t *testing.T) {
		h := open(t)
		write(t, h,
			delta(1, "a", 0, 1, 100, 3),
			delta(1, "a", 10*time.Second, 2, 200, 5),
			delta(1, "a", 50*time.Second, 4, 400, 4),
			delta(1, "a", 60*time.Second, 8, 800, 1),
			delta(1, "a", 2*time.Minute+5*time.Second, 16, 1600, 2),
			delta(2, "a", 10*time.Second, 1000, 1000, 1000), // another policy
		)
		wantPoints(t, queryPolicy(t, h, 1, 0, 3*time.Minute, time.Minute), []history.HistoryPoint{
			point(0, 7, 700, 5),
			point(time.Minute, 8, 800, 1),
			point(2*time.Minute, 16, 1600, 2),
		})
		wantPoints(t, queryPolicy(t, h, 1, 0, 3*time.Minute, 3*time.Minute), []history.HistoryPoint{
			point(0, 31, 3100, 5),
		})
		wantPoints(t, queryPolicy(t, h, 1, 0, time.Minute, 20*time.Second), []history.HistoryPoint{
			point(0, 3, 300, 5),
			point(20*time.Second, 0, 0, 0),
			point(40*time.Second, 4, 400, 4),
		})
	})

	t.Run("EmptyWindowsAreZeros", func(t *testing.T) {
		h := open(t)
		write(t, h, delta(1, "a", time.Minute, 1, 10, 1), delta(1, "a", 3*time.Minute, 2, 20, 2))
		wantPoints(t, queryPolicy(t, h, 1, -time.Minute, 5*time.Minute, time.Minute), []history.HistoryPoint{
			point(-time.Minute, 0, 0, 0),
			point(0, 0, 0, 0),
			point(time.Minute, 1, 10, 1),
			point(2*time.Minute, 0, 0, 0),
			point(3*time.Minute, 2, 20, 2),
			point(4*time.Minute, 0, 0, 0),
		})
		// A policy without any point gets the full grid of zeros.
		wantPoints(t, queryPolicy(t, h, 99, 0, 2*time.Minute, time.Minute), []history.HistoryPoint{
			point(0, 0, 0, 0),
			point(time.Minute, 0, 0, 0),
		})
	})

	t.Run("RangeEdges", func(t *testing.T) {
		h := open(t)
		write(t, h,
			delta(1, "a", time.Minute-time.Microsecond, 1, 1, 1), // before from: out
			delta(1, "a", time.Minute, 10, 10, 10),               // at from: in
			delta(1, "a", 2*time.Minute-time.Microsecond, 100, 100, 100),
			delta(1, "a", 3*time.Minute-time.Microsecond, 1000, 1000, 1000), // last instant: in
			delta(1, "a", 3*time.Minute, 10000, 10000, 10000),               // at to: out
		)
		wantPoints(t, queryPolicy(t, h, 1, time.Minute, 3*time.Minute, time.Minute), []history.HistoryPoint{
			point(time.Minute, 110, 110, 100),
			point(2*time.Minute, 1000, 1000, 1000),
		})
		// A from and a to inside windows: the windows overlapping the range are returned,
		// aligned to the epoch, and count only the points inside the range.
		wantPoints(t, queryPolicy(t, h, 1, 90*time.Second, 3*time.Minute+30*time.Second, time.Minute), []history.HistoryPoint{
			point(time.Minute, 100, 100, 100),
			point(2*time.Minute, 1000, 1000, 1000),
			point(3*time.Minute, 10000, 10000, 10000),
		})
		// The point a microsecond before a window ends belongs to that window.
		wantPoints(t, queryPolicy(t, h, 1, 0, 2*time.Minute, time.Minute), []history.HistoryPoint{
			point(0, 1, 1, 1),
			point(time.Minute, 110, 110, 100),
		})
	})

	t.Run("InstancesSummed", func(t *testing.T) {
		h := open(t)
		write(t, h,
			delta(1, "a", 0, 1, 100, 3),
			delta(1, "a", 10*time.Second, 2, 200, 5),
			delta(1, "b", 0, 4, 400, 4),
			delta(1, "b", 20*time.Second, 8, 800, 2),
			delta(1, "c", 70*time.Second, 16, 1600, 7),
		)
		// Window 0: packets 1+2+4+8, active flows max(a)=5 + max(b)=4.
		wantPoints(t, queryPolicy(t, h, 1, 0, 2*time.Minute, time.Minute), []history.HistoryPoint{
			point(0, 15, 1500, 9),
			point(time.Minute, 16, 1600, 7),
		})
	})

	t.Run("RewriteDoesNotDoubleCount", func(t *testing.T) {
		h := open(t)
		batch := []history.PolicyDelta{
			delta(1, "a", 0, 1, 100, 3),
			delta(1, "b", 0, 2, 200, 4),
			delta(2, "a", 10*time.Second, 5, 500, 1),
		}
		want := []history.HistoryPoint{point(0, 3, 300, 7)}
		write(t, h, batch...)
		wantPoints(t, queryPolicy(t, h, 1, 0, time.Minute, time.Minute), want)
		write(t, h, batch...)
		write(t, h, batch...)
		wantPoints(t, queryPolicy(t, h, 1, 0, time.Minute, time.Minute), want)
		// A point written again with other values replaces the old one.
		write(t, h, delta(1, "a", 0, 10, 1000, 30))
		wantPoints(t, queryPolicy(t, h, 1, 0, time.Minute, time.Minute), []history.HistoryPoint{point(0, 12, 1200, 34)})
		// Within one batch, the last of two points with one key wins.
		write(t, h, delta(3, "a", 0, 1, 1, 1), delta(3, "a", 0, 2, 2, 2))
		wantPoints(t, queryPolicy(t, h, 3, 0, time.Minute, time.Minute), []history.HistoryPoint{point(0, 2, 2, 2)})
	})

	t.Run("TimeZones", func(t *testing.T) {
		h := open(t)
		east := time.FixedZone("UTC+5", 5*3600)
		west := time.FixedZone("UTC-8", -8*3600)
		write(t, h,
			history.PolicyDelta{PolicyID: 1, Instance: "a", Time: base.In(east), Packets: 1, Bytes: 1, ActiveFlows: 1},
			history.PolicyDelta{PolicyID: 1, Instance: "a", Time: base.Add(time.Minute + time.Second).In(west), Packets: 2, Bytes: 2, ActiveFlows: 2},
		)
		points, err := h.QueryPolicy(ctx, 1, base.In(west), base.Add(2*time.Minute).In(east), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		wantPoints(t, points, []history.HistoryPoint{point(0, 1, 1, 1), point(time.Minute, 2, 2, 2)})
		for _, p := range points {
			if p.Time.Location() != time.UTC {
				t.Errorf("point time %v is not in UTC", p.Time)
			}
		}
	})

	t.Run("LargeBatch", func(t *testing.T) {
		h := open(t)
		const policies = 600 // more than one SQL statement's worth
		batch := make([]history.PolicyDelta, policies)
		for i := range batch {
			batch[i] = delta(int64(i+1), "a", 0, int64(i+1), 2*int64(i+1), 1)
		}
		write(t, h, batch...)
		series, err := h.QueryTop(ctx, base, base.Add(time.Minute), time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) != policies {
			t.Fatalf("got %d series, want %d", len(series), policies)
		}
		for i, s := range series {
			id := int64(policies - i) // most bytes first
			wantSeries := history.PolicySeries{PolicyID: id, Points: []history.HistoryPoint{point(0, id, 2*id, 1)}}
			if s.PolicyID != id || len(s.Points) != 1 || s.Points[0].Packets != id || s.Points[0].Bytes != 2*id || s.Points[0].ActiveFlows != 1 {
				t.Fatalf("series %d = %+v, want %+v", i, s, wantSeries)
			}
		}
	})

	t.Run("QueryTop", func(t *testing.T) {
		h := open(t)
		write(t, h,
			delta(1, "a", 0, 1, 300, 1),
			delta(2, "a", 0, 1, 100, 1),
			delta(3, "a", 0, 1, 150, 1),
			delta(3, "b", time.Minute, 1, 50, 2),     // policy 3: 200 bytes over two windows
			delta(4, "a", 0, 1, 200, 1),              // ties with 3: the lower id first
			delta(5, "a", 5*time.Minute, 1, 9999, 1), // outside the range
			delta(6, "a", -time.Second, 1, 9999, 1),  // outside the range
		)
		ids := func(series []history.PolicySeries) []int64 {
			out := make([]int64, len(series))
			for i, s := range series {
				out[i] = s.PolicyID
			}
			return out
		}
		all, err := h.QueryTop(ctx, base, base.Add(2*time.Minute), time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(all), []int64{1, 3, 4, 2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("all policies %v, want %v", got, want)
		}
		wantPoints(t, all[1].Points, []history.HistoryPoint{point(0, 1, 150, 1), point(time.Minute, 1, 50, 2)})
		wantPoints(t, all[3].Points, []history.HistoryPoint{point(0, 1, 100, 1), point(time.Minute, 0, 0, 0)})

		top2, err := h.QueryTop(ctx, base, base.Add(2*time.Minute), time.Minute, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(top2), []int64{1, 3}; !reflect.DeepEqual(got, want) {
			t.Fatalf("top 2 %v, want %v", got, want)
		}
		wantPoints(t, top2[1].Points, all[1].Points)

		top10, err := h.QueryTop(ctx, base, base.Add(2*time.Minute), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(top10), []int64{1, 3, 4, 2}; !reflect.DeepEqual(got, want) {
			t.Fatalf("top 10 %v, want %v", got, want)
		}

		empty, err := h.QueryTop(ctx, base.Add(time.Hour), base.Add(2*time.Hour), time.Minute, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(empty) != 0 {
			t.Fatalf("top of an empty range: %v", ids(empty))
		}
	})

	t.Run("InvalidQueries", func(t *testing.T) {
		h := open(t)
		for name, call := range map[string]func() error{
			"EveryZero": func() error { _, err := h.QueryPolicy(ctx, 1, base, base.Add(time.Hour), 0); return err },
			"EverySubSecond": func() error {
				_, err := h.QueryPolicy(ctx, 1, base, base.Add(time.Hour), 1500*time.Millisecond)
				return err
			},
			"FromNotBeforeTo": func() error { _, err := h.QueryPolicy(ctx, 1, base, base, time.Minute); return err },
			"TooManyWindows": func() error {
				_, err := h.QueryPolicy(ctx, 1, base, base.Add(history.MaxHistoryWindows*time.Second+time.Second), time.Second)
				return err
			},
			"TopNegative": func() error { _, err := h.QueryTop(ctx, base, base.Add(time.Hour), time.Minute, -1); return err },
			"TopTooLarge": func() error {
				_, err := h.QueryTop(ctx, base, base.Add(time.Hour), time.Minute, history.MaxHistoryTop+1)
				return err
			},
		} {
			if err := call(); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
	})

	t.Run("InvalidDeltasArePermanent", func(t *testing.T) {
		h := open(t)
		for name, d := range map[string]history.PolicyDelta{
			"EmptyInstance": {PolicyID: 1, Time: base, Packets: 1},
			"ZeroTime":      {PolicyID: 1, Instance: "a", Packets: 1},
			"Negative":      {PolicyID: 1, Instance: "a", Time: base, Bytes: -1},
		} {
			err := h.WriteDeltas(ctx, []history.PolicyDelta{delta(1, "a", 0, 1, 1, 1), d})
			var werr *history.WriteError
			if !errors.As(err, &werr) || werr.Retryable || !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("%s: err = %#v, want a permanent WriteError wrapping ErrInvalid", name, err)
			}
		}
		// Nothing of a rejected batch was written.
		wantPoints(t, queryPolicy(t, h, 1, 0, time.Minute, time.Minute), []history.HistoryPoint{point(0, 0, 0, 0)})
		if err := h.WriteDeltas(ctx, nil); err != nil {
			t.Errorf("empty batch: %v", err)
		}
	})

	t.Run("Rates", func(t *testing.T) { testHistoryRates(t, open) })

	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
