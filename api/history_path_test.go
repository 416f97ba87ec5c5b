package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/spool"
)

// TestPathAndUnclassifiedHistoryEndToEnd sends traffic of known, varying rates through
// POST /api/v1/traffic (acknowledged through the spool, as in production), some of it with a
// path_id and some matching no policy, lets the flusher write three flushes to each history
// backend (SQLite, PostgreSQL, the real InfluxDB 1.8), and checks that the path's history
// and the unclassified history show exactly what was sent, with their rates and summary,
// that the all-policies history leaves the unclassified traffic out (so top and other still
// sum to the policies' total), and that a deleted path keeps its history.
func TestPathAndUnclassifiedHistoryEndToEnd(t *testing.T) {
	for _, b := range historyBackends {
		t.Run(b.name, func(t *testing.T) {
			clock := &settableClock{}
			sp, err := spool.Open(spool.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sp.Close() })
			var flusher *collector.Flusher
			a := newTestAPI(t, b.dialect, withConfig(func(c *Config) {
				h := b.open(t, c.DB)
				c.History = h
				c.Now = func() time.Time { return historyNow }
				c.HistoryInterval = 10 * time.Second
				c.Spool = sp
				flusher = collector.NewFlusher(c.Collector, h, collector.FlushConfig{
					Instance: "e2e", Interval: time.Hour, Now: clock.Now, MinBackoff: 10 * time.Millisecond,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Spool: sp,
				})
				c.Pipeline = flusher
			}))
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { flusher.Run(ctx, 10*time.Second); close(done) }()
			defer func() { stop(); <-done }()
			fx, fx2 := a.seed(), a.seed()
			pathID, otherPath := fx.path.ID, fx2.path.ID
			given := fx.policy.ID
			unmatched := flowOf("10.1.0.5", "192.0.2.1", 5353, 53, 17) // no policy matches it

			// Flush k: path pathID carries pathBytes[k] (over two reports, one of them
			// unclassified), the other path 1000, the unclassified traffic unclBytes[k].
			flushAt := []time.Time{at("11:59:10"), at("11:59:20"), at("11:59:30")}
			pathBytes := []uint64{4000, 3000, 9000}
			unclBytes := []uint64{500, 2500, 1500}
			var written int64
			for k, when := range flushAt {
				reports := []collector.Report{
					{PolicyID: &given, PathID: pathID, Flow: flowOf("10.1.0.9", "198.51.100.7", 1000, 80, 6), Packets: 4, Bytes: pathBytes[k] - unclBytes[k]},
					{PathID: pathID, Flow: unmatched, Packets: 2, Bytes: unclBytes[k]},
					{PolicyID: &given, PathID: otherPath, Flow: flowOf("10.1.0.9", "198.51.100.8", 1000, 80, 6), Packets: 1, Bytes: 1000},
				}
				if r := a.ingest(reports); r.Status != http.StatusOK {
					t.Fatalf("ingest: %s", r)
				}
				clock.Set(when)
				flusher.CollectDeltas()
				written += 4 // the policy, unclassified, two paths
				waitWritten(t, flusher, written)
			}

			// The path's history equals what was sent with its path_id, flush by flush.
			h := decodeAs[apigen.PathHistory](t, a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/stats/history?from=2025-06-01T11:59:00Z&to=2025-06-01T12:00:00Z&every=10s", pathID), a.viewer, nil), http.StatusOK)
			want := []apigen.HistoryPoint{point("11:59:00", 0, 0, 0)}
			for k, when := range flushAt {
				want = append(want, apigen.HistoryPoint{Time: when, Packets: 6, Bytes: int64(pathBytes[k])})
			}
			want = append(want, point("11:59:40", 0, 0, 0), point("11:59:50", 0, 0, 0))
			if h.PathID != pathID || !samePoints(h.Points, want) {
				t.Fatalf("path %d history:\n got  %+v\n want %+v", pathID, h.Points, want)
			}
			// Rates per window of 10 s, and the summary over the minute: intervals of
			// 3200, 2400 and 7200 bps.
			if p := h.Points[3]; p.Bps != 7200 || p.Pps != 0.6 || p.PeakBps == nil || *p.PeakBps != 7200 {
				t.Errorf("window 11:59:30: bps %v pps %v peak %v, want 7200, 0.6, 7200", p.Bps, p.Pps, p.PeakBps)
			}
			if s := h.Summary; s.TotalBytes != 16000 || s.TotalPackets != 18 || s.AvgBps != 16000*8/60.0 ||
				s.MaxBps == nil || *s.MaxBps != 7200 || s.P95Bps == nil || *s.P95Bps != 7200 {
				t.Errorf("path summary %+v", s)
			}
			hourly := decodeAs[apigen.PathHistory](t, a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/stats/history?from=-1h&every=1h&compare=previous", otherPath), a.viewer, nil), http.StatusOK)
			if len(hourly.Points) != 1 || hourly.Points[0].Bytes != 3000 || hourly.Previous == nil || hourly.Previous.Summary.TotalBytes != 0 {
				t.Errorf("other path's hour: %+v (previous %+v), want 3000 bytes and an empty previous hour", hourly.Points, hourly.Previous)
			}

			// The unclassified traffic is a series of its own, equal to what matched nothing.
			u := decodeAs[apigen.UnclassifiedHistory](t, a.do(http.MethodGet, "/api/v1/stats/unclassified/history?from=2025-06-01T11:59:00Z&to=2025-06-01T12:00:00Z&every=10s", a.viewer, nil), http.StatusOK)
			wantU := []apigen.HistoryPoint{point("11:59:00", 0, 0, 0)}
			for k, when := range flushAt {
				wantU = append(wantU, apigen.HistoryPoint{Time: when, Packets: 2, Bytes: int64(unclBytes[k]), ActiveFlows: 1})
			}
			wantU = append(wantU, point("11:59:40", 0, 0, 0), point("11:59:50", 0, 0, 0))
			if !samePoints(u.Points, wantU) || u.Summary.TotalBytes != 4500 || u.Summary.P95Bps == nil || *u.Summary.P95Bps != 2000 {
				t.Errorf("unclassified history:\n got  %+v %+v\n want %+v, 4500 bytes, p95 2000 bps", u.Points, u.Summary, wantU)
			}
			if st := a.stats(); st.UnclassifiedBytes != 4500 {
				t.Errorf("live unclassified bytes %d, history says 4500", st.UnclassifiedBytes)
			}
			csvBody := a.do(http.MethodGet, "/api/v1/stats/unclassified/history?from=2025-06-01T11:59:00Z&to=2025-06-01T12:00:00Z&every=10s&format=csv", a.viewer, nil)
			rows, err := csv.NewReader(strings.NewReader(string(csvBody.Body))).ReadAll()
			if err != nil || len(rows) != 7 || rows[2][2] != "500" || rows[2][5] != "400" {
				t.Errorf("unclassified CSV %q (%v), want a header and 6 rows, 11:59:10 with 500 bytes at 400 bps", rows, err)
			}

			// The all-policies history: policies only, and top + other sum to their total.
			all := decodeAs[apigen.StatsHistory](t, a.do(http.MethodGet, "/api/v1/stats/history?from=-1h&every=1h&top=1&other=true", a.viewer, nil), http.StatusOK)
			var sum int64
			for _, s := range all.Series {
				if s.PolicyID == given && (s.Other == nil || !*s.Other) && s.Points[0].Bytes != 14500 {
					t.Errorf("policy %d: %d bytes, want 14500", given, s.Points[0].Bytes)
				}
				sum += s.Points[0].Bytes
			}
			if len(all.Series) != 2 || sum != 14500 {
				t.Errorf("all-policies history %+v: %d bytes in all, want the given policy's 14500 and an empty other", all.Series, sum)
			}

			// Deleted, the path keeps its history; reports naming it are refused.
			a.do(http.MethodDelete, fmt.Sprintf("/api/v1/paths/%d", pathID), a.operator, nil).problemUnless(t, http.StatusNoContent)
			after := decodeAs[apigen.PathHistory](t, a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/stats/history?from=2025-06-01T11:59:00Z&to=2025-06-01T12:00:00Z&every=10s", pathID), a.viewer, nil), http.StatusOK)
			if !samePoints(after.Points, want) {
				t.Errorf("after the path's deletion:\n got  %+v\n want %+v", after.Points, want)
			}
			p := a.ingest([]collector.Report{{PathID: pathID, Flow: unmatched, Packets: 1, Bytes: 1}}).problem(t, http.StatusUnprocessableEntity)
			if len(p.Errors) != 1 || p.Errors[0].Field != "reports[0].path_id" || p.Errors[0].Message != fmt.Sprintf("unknown path %d", pathID) {
				t.Errorf("report on the deleted path: %+v", p.Errors)
			}
		})
	}
}

// TestIngestUnknownPath: an unknown path_id is a 422 naming each bad report with the other
// problems of the batch, and records nothing; a path created through another replica is
// accepted at once (the feed is read again before refusing), and refused once deleted there.
func TestIngestUnknownPath(t *testing.T) {
	rs := newReplicas(t, 2, func(i int, c *Config) {
		if i == 1 {
			c.FeedNoNotify, c.FeedPollInterval = true, time.Minute
		}
	})
	A, C := rs[0], rs[1]
	fx := A.seed()
	if err := C.srv.ReloadPolicies(context.Background()); err != nil {
		t.Fatal(err)
	}
	flow := flowOf("10.1.0.1", "198.51.100.7", 40000, 443, 6)
	before := C.stats()
	p := C.ingest([]collector.Report{
		{PathID: fx.path.ID, Flow: flow, Packets: 1, Bytes: 1},
		{PathID: fx.path.ID + 1000, Flow: flow, Packets: 1, Bytes: 1},
		{PolicyID: ptr(int64(99999)), PathID: fx.path.ID + 1001, Flow: flow, Packets: 1, Bytes: 1},
	}).problem(t, http.StatusUnprocessableEntity)
	wantErrs := []FieldError{
		{Field: "reports[1].path_id", Message: fmt.Sprintf("unknown path %d", fx.path.ID+1000)},
		{Field: "reports[2].policy_id", Message: "unknown policy 99999"},
		{Field: "reports[2].path_id", Message: fmt.Sprintf("unknown path %d", fx.path.ID+1001)},
	}
	if fmt.Sprint(p.Errors) != fmt.Sprint(wantErrs) {
		t.Errorf("errors %+v, want %+v", p.Errors, wantErrs)
	}
	if after := C.stats(); after.Packets != before.Packets {
		t.Errorf("a refused batch was counted: %d packets, then %d", before.Packets, after.Packets)
	}

	created := decodeAs[apigen.Path](t, A.do(http.MethodPost, "/api/v1/paths", A.operator, map[string]any{
		"name": "replicated-path", "local_endpoint_id": fx.endpoint2.ID, "remote_endpoint_id": fx.endpoint.ID,
	}), http.StatusCreated)
	if r := C.ingest([]collector.Report{{PathID: created.ID, Flow: flow, Packets: 1, Bytes: 100}}); r.Status != http.StatusOK {
		t.Fatalf("ingest on C naming the path just created on A: %s", r)
	}
	A.do(http.MethodDelete, fmt.Sprintf("/api/v1/paths/%d", created.ID), A.operator, nil).problemUnless(t, http.StatusNoContent)
	syncReplicas(t, rs)
	C.ingest([]collector.Report{{PathID: created.ID, Flow: flow, Packets: 1, Bytes: 1}}).problem(t, http.StatusUnprocessableEntity)
}
