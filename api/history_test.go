package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/history"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// historyNow is the clock of the history tests: relative ranges resolve against it.
var historyNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// historyBackend is a history store the history routes are tested on, with the inventory
// dialect its server uses.
// historyStore is a history store the tests both write to and serve from.
type historyStore interface {
	HistoryReader
	PathHistoryReader
	WriteDeltas(ctx context.Context, deltas []history.PolicyDelta) error
	Ping(ctx context.Context) error
	Close()
}

type historyBackend struct {
	name    string
	dialect string
	open    func(t *testing.T, db *storage.DB) historyStore
}

var historyBackends = []historyBackend{
	{"sql-sqlite", storage.DialectSQLite, func(t *testing.T, db *storage.DB) historyStore { return history.NewSQLHistory(db) }},
	{"sql-postgres", storage.DialectPostgres, func(t *testing.T, db *storage.DB) historyStore { return history.NewSQLHistory(db) }},
	{"influxdb", storage.DialectSQLite, func(t *testing.T, db *storage.DB) historyStore { return openTestInflux(t) }},
}

// openTestInflux returns an InfluxHistory on a fresh database of the test InfluxDB.
func openTestInflux(t *testing.T) *history.InfluxHistory {
	t.Helper()
	serverURL, bucket := storagetest.InfluxDatabase(t)
	h, err := history.NewInfluxHistory(history.InfluxConfig{URL: serverURL, Token: "patronus:patronus", Org: "patronus", Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// historyAPI is a test server with a history store and the fixed clock historyNow.
type historyAPI struct {
	*testAPI
	history historyStore
}

// forEachHistoryBackend runs fn on a server per history backend.
func forEachHistoryBackend(t *testing.T, fn func(t *testing.T, a historyAPI), opts ...apiOption) {
	t.Helper()
	for _, b := range historyBackends {
		t.Run(b.name, func(t *testing.T) {
			var h historyStore
			opts := append([]apiOption{withConfig(func(c *Config) {
				h = b.open(t, c.DB)
				c.History = h
				c.Now = func() time.Time { return historyNow }
			})}, opts...)
			fn(t, historyAPI{newTestAPI(t, b.dialect, opts...), h})
		})
	}
}

func (a historyAPI) write(deltas ...history.PolicyDelta) {
	a.t.Helper()
	if err := a.history.WriteDeltas(context.Background(), deltas); err != nil {
		a.t.Fatalf("write deltas: %v", err)
	}
}

// historyPath is the history route of a policy with the query parameters given as
// name, value pairs.
func historyPath(policyID int64, query ...string) string {
	return fmt.Sprintf("/api/v1/policies/%d/stats/history", policyID) + queryOf(query...)
}

func queryOf(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func at(hhmmss string) time.Time {
	t, err := time.Parse(time.RFC3339, "2025-06-01T"+hhmmss+"Z")
	if err != nil {
		panic(err)
	}
	return t
}

// point is a HistoryPoint written compactly for comparisons.
func point(hhmmss string, packets, bytes, flows int64) apigen.HistoryPoint {
	return apigen.HistoryPoint{Time: at(hhmmss), Packets: packets, Bytes: bytes, ActiveFlows: flows}
}

func samePoints(got, want []apigen.HistoryPoint) bool {
	return slices.EqualFunc(got, want, func(g, w apigen.HistoryPoint) bool {
		return g.Time.Equal(w.Time) && g.Packets == w.Packets && g.Bytes == w.Bytes && g.ActiveFlows == w.ActiveFlows
	})
}

// knownHistory writes traffic of policy over 11:00-12:00 from two instances, plus points
// of another policy and points just outside the range, and returns the 10-minute windows
// the range must show.
func (a historyAPI) knownHistory(policy, other int64) []apigen.HistoryPoint {
	d := func(id int64, instance, hhmmss string, packets, bytes, flows int64) history.PolicyDelta {
		return history.PolicyDelta{PolicyID: id, Instance: instance, Time: at(hhmmss), Packets: packets, Bytes: bytes, ActiveFlows: flows}
	}
	a.write(
		d(policy, "a", "10:59:59", 1000, 100000, 99), // before from
		d(policy, "a", "11:00:00", 10, 1000, 3),      // the first instant counts
		d(policy, "a", "11:05:00", 20, 2000, 5),
		d(policy, "b", "11:05:00", 7, 700, 2),
		d(policy, "b", "11:09:59", 1, 100, 4),
		d(policy, "a", "11:30:10", 5, 500, 1),
		d(policy, "b", "11:59:59", 3, 300, 6),
		d(policy, "a", "12:00:00", 1000, 100000, 99), // to is exclusive
		d(other, "a", "11:05:00", 500, 50000, 9),
	)
	return []apigen.HistoryPoint{
		// 11:00 window: packets 10+20+7+1, flows max(a)=5 + max(b)=4.
		point("11:00:00", 38, 3800, 9),
		point("11:10:00", 0, 0, 0),
		point("11:20:00", 0, 0, 0),
		point("11:30:00", 5, 500, 1),
		point("11:40:00", 0, 0, 0),
		point("11:50:00", 3, 300, 6),
	}
}

func TestPolicyHistory(t *testing.T) {
	forEachHistoryBackend(t, func(t *testing.T, a historyAPI) {
		fx := a.seed()
		other := a.seed().policy.ID
		want := a.knownHistory(fx.policy.ID, other)

		t.Run("ExactWindows", func(t *testing.T) {
			r := a.do(http.MethodGet, historyPath(fx.policy.ID, "from", "2025-06-01T11:00:00Z", "to", "2025-06-01T12:00:00Z", "every", "10m"), a.viewer, nil)
			h := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK)
			if h.PolicyID != fx.policy.ID || h.PolicyName != fx.policy.Name || !h.From.Equal(at("11:00:00")) || !h.To.Equal(at("12:00:00")) || h.Every != "10m" {
				t.Errorf("header fields %d %q %s %s %s", h.PolicyID, h.PolicyName, h.From, h.To, h.Every)
			}
			if !samePoints(h.Points, want) {
				t.Errorf("points\n got  %+v\n want %+v", h.Points, want)
			}
		})

		t.Run("RelativeRange", func(t *testing.T) {
			// -30m..now at 12:00 is 11:30..12:00; the 11:00 window's traffic is outside.
			r := a.do(http.MethodGet, historyPath(fx.policy.ID, "from", "-30m", "to", "now", "every", "10m"), a.viewer, nil)
			h := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK)
			if !h.From.Equal(at("11:30:00")) || !h.To.Equal(at("12:00:00")) {
				t.Errorf("resolved %s..%s, want 11:30..12:00", h.From, h.To)
			}
			if !samePoints(h.Points, want[3:]) {
				t.Errorf("points\n got  %+v\n want %+v", h.Points, want[3:])
			}
			// A relative to: -1h..-30m is 11:00..11:30.
			r = a.do(http.MethodGet, historyPath(fx.policy.ID, "from", "-1h", "to", "-30m", "every", "10m"), a.viewer, nil)
			h = decodeAs[apigen.PolicyHistory](t, r, http.StatusOK)
			if !samePoints(h.Points, want[:3]) {
				t.Errorf("points\n got  %+v\n want %+v", h.Points, want[:3])
			}
		})

		t.Run("Defaults", func(t *testing.T) {
			// from=-1h, to=now, every=1m: sixty one-minute windows, totals as written.
			h := decodeAs[apigen.PolicyHistory](t, a.do(http.MethodGet, historyPath(fx.policy.ID), a.viewer, nil), http.StatusOK)
			if h.Every != "1m" || !h.From.Equal(at("11:00:00")) || !h.To.Equal(at("12:00:00")) || len(h.Points) != 60 {
				t.Fatalf("every %s, %s..%s, %d points; want 1m, 11:00..12:00, 60", h.Every, h.From, h.To, len(h.Points))
			}
			var packets, bytes int64
			for _, p := range h.Points {
				packets += p.Packets
				bytes += p.Bytes
			}
			if packets != 46 || bytes != 4600 {
				t.Errorf("totals %d packets %d bytes, want 46 and 4600", packets, bytes)
			}
			if !samePoints(h.Points[5:6], []apigen.HistoryPoint{point("11:05:00", 27, 2700, 7)}) {
				t.Errorf("11:05 window %+v", h.Points[5])
			}
		})

		t.Run("EmptyWindowsAreZeros", func(t *testing.T) {
			r := a.do(http.MethodGet, historyPath(fx.policy.ID, "from", "2025-05-31T00:00:00Z", "to", "2025-05-31T00:03:00Z", "every", "1m"), a.viewer, nil)
			h := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK)
			want := []apigen.HistoryPoint{
				{Time: time.Date(2025, 5, 31, 0, 0, 0, 0, time.UTC)},
				{Time: time.Date(2025, 5, 31, 0, 1, 0, 0, time.UTC)},
				{Time: time.Date(2025, 5, 31, 0, 2, 0, 0, time.UTC)},
			}
			if !samePoints(h.Points, want) {
				t.Errorf("points %+v, want three zero windows", h.Points)
			}
			// A policy without any history: zeros too, not 404.
			r = a.do(http.MethodGet, historyPath(a.seed().policy.ID, "from", "-10m", "every", "5m"), a.viewer, nil)
			if h := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK); !samePoints(h.Points, []apigen.HistoryPoint{point("11:50:00", 0, 0, 0), point("11:55:00", 0, 0, 0)}) {
				t.Errorf("points %+v, want two zero windows", h.Points)
			}
		})

		t.Run("CSV", func(t *testing.T) {
			// pps and bps are averages over the 600 s windows; peak_bps is empty: this server
			// has no flush interval configured.
			rate := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
			wantCSV := "time,packets,bytes,active_flows,pps,bps,peak_bps\n" +
				"2025-06-01T11:00:00Z,38,3800,9," + rate(38.0/600) + "," + rate(3800*8.0/600) + ",\n" +
				"2025-06-01T11:10:00Z,0,0,0,0,0,\n" +
				"2025-06-01T11:20:00Z,0,0,0,0,0,\n" +
				"2025-06-01T11:30:00Z,5,500,1," + rate(5.0/600) + "," + rate(500*8.0/600) + ",\n" +
				"2025-06-01T11:40:00Z,0,0,0,0,0,\n" +
				"2025-06-01T11:50:00Z,3,300,6," + rate(3.0/600) + "," + rate(300*8.0/600) + ",\n"
			path := historyPath(fx.policy.ID, "from", "2025-06-01T11:00:00Z", "to", "2025-06-01T12:00:00Z", "every", "10m")
			byFormat := a.do(http.MethodGet, path+"&format=csv", a.viewer, nil)
			req := a.newRequest(http.MethodGet, path, a.viewer, nil)
			req.Header.Set("Accept", "text/csv")
			byAccept := a.send(req, true)
			for name, r := range map[string]apiResponse{"format=csv": byFormat, "Accept: text/csv": byAccept} {
				if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") || r.Header.Get("X-History-Tier") != "raw" {
					t.Errorf("%s: %d %s, X-History-Tier %q", name, r.Status, r.Header.Get("Content-Type"), r.Header.Get("X-History-Tier"))
				}
				if string(r.Body) != wantCSV {
					t.Errorf("%s: body\n%s\nwant\n%s", name, r.Body, wantCSV)
				}
			}
			// format wins over Accept.
			req = a.newRequest(http.MethodGet, path+"&format=json", a.viewer, nil)
			req.Header.Set("Accept", "text/csv")
			if h := decodeAs[apigen.PolicyHistory](t, a.send(req, true), http.StatusOK); !samePoints(h.Points, want) {
				t.Errorf("format=json with Accept: text/csv: %+v", h.Points)
			}
		})

		t.Run("UnknownPolicy", func(t *testing.T) {
			a.do(http.MethodGet, historyPath(987654321), a.viewer, nil).problem(t, http.StatusNotFound)
		})

		t.Run("NeedsToken", func(t *testing.T) {
			a.do(http.MethodGet, historyPath(fx.policy.ID), "", nil).problem(t, http.StatusUnauthorized)
		})
	})
}

func TestStatsHistory(t *testing.T) {
	forEachHistoryBackend(t, func(t *testing.T, a historyAPI) {
		p1, p2, p3 := a.seed().policy.ID, a.seed().policy.ID, a.seed().policy.ID
		d := func(id int64, instance, hhmmss string, bytes int64) history.PolicyDelta {
			return history.PolicyDelta{PolicyID: id, Instance: instance, Time: at(hhmmss), Packets: bytes / 100, Bytes: bytes, ActiveFlows: 1}
		}
		a.write(
			d(p1, "a", "11:10:00", 1000), d(p1, "b", "11:40:00", 1000), // 2000
			d(p2, "a", "11:20:00", 5000), // 5000
			d(p3, "a", "11:50:00", 3000), // 3000
			d(p3, "a", "10:00:00", 9e9),  // outside the range
		)
		query := queryOf("from", "-1h", "every", "30m")

		all := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history"+query, a.viewer, nil), http.StatusOK)
		if !all.From.Equal(at("11:00:00")) || !all.To.Equal(at("12:00:00")) || all.Every != "30m" {
			t.Errorf("range %s..%s every %s", all.From, all.To, all.Every)
		}
		var order []int64
		for _, s := range all.Series {
			order = append(order, s.PolicyID)
		}
		if !slices.Equal(order, []int64{p2, p3, p1}) {
			t.Fatalf("series %v, want by bytes %v", order, []int64{p2, p3, p1})
		}
		if want := []apigen.HistoryPoint{point("11:00:00", 10, 1000, 1), point("11:30:00", 10, 1000, 1)}; !samePoints(all.Series[2].Points, want) {
			t.Errorf("policy %d: %+v, want %+v", p1, all.Series[2].Points, want)
		}
		if want := []apigen.HistoryPoint{point("11:00:00", 0, 0, 0), point("11:30:00", 30, 3000, 1)}; !samePoints(all.Series[1].Points, want) {
			t.Errorf("policy %d: %+v, want %+v", p3, all.Series[1].Points, want)
		}

		top := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history"+query+"&top=2", a.viewer, nil), http.StatusOK)
		if len(top.Series) != 2 || top.Series[0].PolicyID != p2 || top.Series[1].PolicyID != p3 {
			t.Errorf("top 2: %+v", top.Series)
		}

		// Each series carries its policy's name; other has none, nor has a deleted policy.
		names := func(h apigen.StatsHistory) map[int64]string {
			out := map[int64]string{}
			for _, s := range h.Series {
				name := "<none>"
				if s.PolicyName != nil {
					name = *s.PolicyName
				}
				out[s.PolicyID] = name
			}
			return out
		}
		policyName := func(id int64) string {
			p, err := a.store.Policies().Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return p.Name
		}
		if got, want := names(all), map[int64]string{p1: policyName(p1), p2: policyName(p2), p3: policyName(p3)}; !maps.Equal(got, want) {
			t.Errorf("names %v, want %v", got, want)
		}
		withOther := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history"+query+"&top=1&other=true", a.viewer, nil), http.StatusOK)
		if got, want := names(withOther), map[int64]string{p2: policyName(p2), 0: "<none>"}; !maps.Equal(got, want) {
			t.Errorf("names with other %v, want %v", got, want)
		}
		if r := a.do(http.MethodDelete, "/api/v1/policies/"+strconv.FormatInt(p1, 10), a.operator, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete policy: %s", r)
		}
		after := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history"+query, a.viewer, nil), http.StatusOK)
		if got, want := names(after), map[int64]string{p1: "<none>", p2: policyName(p2), p3: policyName(p3)}; !maps.Equal(got, want) {
			t.Errorf("names after deleting policy %d: %v, want %v", p1, got, want)
		}

		empty := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history?from=-5m", a.viewer, nil), http.StatusOK)
		if empty.Series == nil || len(empty.Series) != 0 {
			t.Errorf("an empty range: %s, want series []", a.do(http.MethodGet, "/api/v1/stats/history?from=-5m", a.viewer, nil).Body)
		}
	})
}

// TestHistoryBadParameters checks that every malformed or over-limit range is a 400 naming
// the parameter.
func TestHistoryBadParameters(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) {
		c.History = history.NewSQLHistory(c.DB)
		c.Now = func() time.Time { return historyNow }
	}))
	policy := a.seed().policy.ID
	cases := []struct {
		name, field string
		query       []string
		// detail must appear in the field's message.
		detail string
		// specRejects says the spec's own pattern refuses the value (validated before the
		// handler).
		specRejects bool
	}{
		{"FromGarbage", "from", []string{"from", "yesterday"}, "", true},
		{"FromImpossibleDate", "from", []string{"from", "2025-13-45T00:00:00Z"}, "RFC 3339", false},
		{"FromTooFarBack", "from", []string{"from", "-999999999w"}, "too long", false},
		{"ToPositiveRelative", "to", []string{"to", "+1h"}, "", true},
		{"ToBadUnit", "to", []string{"to", "-5y"}, "", true},
		{"FromAfterTo", "to", []string{"from", "-10m", "to", "-20m"}, "must be after from", false},
		{"FromEqualsTo", "to", []string{"from", "2025-06-01T11:00:00Z", "to", "2025-06-01T11:00:00Z"}, "must be after from", false},
		{"EveryZero", "every", []string{"every", "0s"}, "", true},
		{"EveryNoUnit", "every", []string{"every", "60"}, "", true},
		{"EveryWeeks", "every", []string{"every", "1w"}, "", true},
		{"EveryOverflows", "every", []string{"every", "999999999d"}, "too long", false},
		{"TooManyPoints", "every", []string{"from", "-1d", "every", "1s"}, "86400", false},
		{"JustTooManyPoints", "every", []string{"from", "2025-06-01T00:00:00Z", "to", "2025-06-01T02:46:41Z", "every", "1s"}, "limit of 10000", false},
		{"BadFormat", "format", []string{"format", "xml"}, "", true},
		{"FromWithoutZone", "from", []string{"from", "2026-12-01T18:00:00"}, "RFC 3339 time with a zone", true},
		{"FromUnitSpelledOut", "from", []string{"from", "-5min"}, "relative to now like -30m", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := a.newRequest(http.MethodGet, historyPath(policy, tc.query...), a.viewer, nil)
			p := a.send(req, !tc.specRejects).problem(t, http.StatusBadRequest)
			if !slices.Equal(p.fields(), []string{tc.field}) {
				t.Fatalf("fields %v, want [%s]: %+v", p.fields(), tc.field, p)
			}
			if !strings.Contains(p.Errors[0].Message, tc.detail) {
				t.Errorf("message %q does not say %q", p.Errors[0].Message, tc.detail)
			}
			checkPlainWords(t, p)
		})
	}

	t.Run("ExactlyTheLimit", func(t *testing.T) {
		r := a.do(http.MethodGet, historyPath(policy, "from", "2025-06-01T00:00:00Z", "to", "2025-06-01T02:46:40Z", "every", "1s"), a.viewer, nil)
		if h := decodeAs[apigen.PolicyHistory](t, r, http.StatusOK); len(h.Points) != 10_000 {
			t.Errorf("%d points, want 10000", len(h.Points))
		}
	})

	t.Run("TooManySeries", func(t *testing.T) {
		// 10,000 windows leave room for 100 series in the point limit; 101 policies had
		// traffic, so the answer needs top.
		h := history.NewSQLHistory(a.db)
		deltas := make([]history.PolicyDelta, 101)
		for i := range deltas {
			deltas[i] = history.PolicyDelta{PolicyID: int64(1000 + i), Instance: "a", Time: at("01:00:00"), Packets: 1, Bytes: 1}
		}
		if err := h.WriteDeltas(context.Background(), deltas); err != nil {
			t.Fatal(err)
		}
		r := a.do(http.MethodGet, "/api/v1/stats/history?from=2025-06-01T00:00:00Z&to=2025-06-01T02:46:40Z&every=1s", a.viewer, nil)
		p := r.problem(t, http.StatusBadRequest)
		if !slices.Equal(p.fields(), []string{"top"}) || !strings.Contains(p.Errors[0].Message, "more than 100 policies") {
			t.Errorf("problem %+v", p)
		}
		r = a.do(http.MethodGet, "/api/v1/stats/history?from=2025-06-01T00:00:00Z&to=2025-06-01T02:46:40Z&every=1h&top=3", a.viewer, nil)
		if got := decodeAs[apigen.StatsHistory](t, r, http.StatusOK); len(got.Series) != 3 {
			t.Errorf("top 3: %d series", len(got.Series))
		}
	})

	t.Run("StatsHistory", func(t *testing.T) {
		for _, tc := range []struct {
			query       string
			field       string
			specRejects bool
		}{
			{"?top=0", "top", true},
			{"?top=101", "top", true},
			{"?from=now&to=-1h", "to", false},
			{"?from=-1d&every=1s", "every", false},
			// A day at 10s is 8,640 windows: at most 115 series fit in the point limit.
			{"?from=2025-05-01T00:00:00Z&to=2025-05-02T00:00:00Z&every=10s&top=100", "", false},
		} {
			r := a.send(a.newRequest(http.MethodGet, "/api/v1/stats/history"+tc.query, a.viewer, nil), !tc.specRejects)
			if tc.field == "" {
				if r.Status != http.StatusOK {
					t.Errorf("%s: %s", tc.query, r)
				}
				continue
			}
			if p := r.problem(t, http.StatusBadRequest); !slices.Equal(p.fields(), []string{tc.field}) {
				t.Errorf("%s: fields %v, want [%s]", tc.query, p.fields(), tc.field)
			}
		}
	})
}

// fakePipeline is a flush pipeline with fixed stats.
type fakePipeline collector.PipelineStats

func (f fakePipeline) Stats() collector.PipelineStats { return collector.PipelineStats(f) }

func TestPipelineStats(t *testing.T) {
	t.Run("NothingFlushed", func(t *testing.T) {
		a := newTestAPI(t, storage.DialectSQLite)
		got := decodeAs[apigen.PipelineStats](t, a.do(http.MethodGet, "/api/v1/stats/pipeline", a.viewer, nil), http.StatusOK)
		want := apigen.PipelineStats{Backend: apigen.PipelineStatsBackendSQL}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("Counters", func(t *testing.T) {
		lastErr, lastOK := time.Date(2025, 6, 1, 11, 0, 10, 0, time.UTC), time.Date(2025, 6, 1, 12, 0, 10, 0, time.UTC)
		a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) {
			c.History = openTestInflux(t)
			c.Pipeline = fakePipeline{PointsWritten: 86400, PointsPending: 12, PointsDropped: 3, BatchesFailed: 2,
				LastError: "influxdb: 503 Service Unavailable", LastErrorAt: lastErr, LastSuccessAt: lastOK, FlushesTotal: 9}
		}))
		got := decodeAs[apigen.PipelineStats](t, a.do(http.MethodGet, "/api/v1/stats/pipeline", a.viewer, nil), http.StatusOK)
		if got.Backend != apigen.PipelineStatsBackendInfluxdb || got.PointsWritten != 86400 || got.PointsPending != 12 ||
			got.PointsDropped != 3 || got.BatchesFailed != 2 || deref(got.LastError) != "influxdb: 503 Service Unavailable" ||
			got.LastErrorAt == nil || !got.LastErrorAt.Equal(lastErr) || got.LastSuccessAt == nil || !got.LastSuccessAt.Equal(lastOK) {
			t.Errorf("got %+v", got)
		}
	})
}

func TestHistoryWithoutStoreIsUnavailable(t *testing.T) {
	t.Run("NotConfigured", func(t *testing.T) {
		a := newTestAPI(t, storage.DialectSQLite)
		policy := a.seed().policy.ID
		for _, path := range []string{historyPath(policy), "/api/v1/stats/history"} {
			a.do(http.MethodGet, path, a.viewer, nil).problem(t, http.StatusServiceUnavailable)
		}
	})
	t.Run("NotAnswering", func(t *testing.T) {
		// An InfluxDB nobody listens on: the store's error is logged, not shown.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadURL := "http://" + ln.Addr().String()
		ln.Close()
		h, err := history.NewInfluxHistory(history.InfluxConfig{URL: deadURL, Org: "patronus", Bucket: "patronus/autogen", Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) { c.History = h }))
		policy := a.seed().policy.ID
		for _, path := range []string{historyPath(policy), "/api/v1/stats/history"} {
			p := a.do(http.MethodGet, path, a.viewer, nil).problem(t, http.StatusServiceUnavailable)
			if p.Detail != "the history store is unavailable" || strings.Contains(string(mustJSON(t, p)), deadURL) {
				t.Errorf("%s: problem %+v", path, p)
			}
		}
		if !strings.Contains(a.logs.String(), "history query failed") {
			t.Errorf("the failure was not logged:\n%s", a.logs.String())
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
