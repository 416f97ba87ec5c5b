package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// withCaches gives the test server real caches, registered in its metrics registry, in place
// of the recording invalidator.
func withCaches(t *testing.T) (apiOption, *cache.Caches) {
	t.Helper()
	caches, err := cache.NewCaches(cache.CachesConfig{MaxEntries: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(caches.Close)
	return withConfig(func(cfg *Config) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(caches)
		cfg.Registry, cfg.Caches, cfg.Invalidator = reg, caches, caches
	}), caches
}

// cachedAPI is a test server with caches, on the dialect.
func cachedAPI(t *testing.T, dialect string) (*testAPI, *cache.Caches) {
	t.Helper()
	opt, caches := withCaches(t)
	return newTestAPI(t, dialect, opt), caches
}

// forEachCachedDialect runs fn on every inventory backend with a cached server.
func forEachCachedDialect(t *testing.T, fn func(t *testing.T, a *testAPI, caches *cache.Caches)) {
	t.Helper()
	for _, dialect := range []string{storage.DialectSQLite, storage.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			a, caches := cachedAPI(t, dialect)
			fn(t, a, caches)
		})
	}
}

// metricsBody is a valid PUT body.
func metricsBody(latency, loss float64) map[string]any {
	return map[string]any{"latency_ms": latency, "jitter_ms": 1.5, "packet_loss_pct": loss,
		"bandwidth_mbps": 500, "mtu": 1500, "measured_at": "2025-06-01T12:00:00Z"}
}

func (a *testAPI) putMetrics(pathID int64, body any) apigen.PathMetrics {
	a.t.Helper()
	r := a.do(http.MethodPut, fmt.Sprintf("/api/v1/paths/%d/metrics", pathID), a.operator, body)
	return decodeAs[apigen.PathMetrics](a.t, r, http.StatusOK)
}

// getMetrics reads a path's metrics and checks that X-Cache is want.
func (a *testAPI) getMetrics(pathID int64, want string) apigen.PathMetrics {
	a.t.Helper()
	r := a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/metrics", pathID), a.viewer, nil)
	m := decodeAs[apigen.PathMetrics](a.t, r, http.StatusOK)
	if got := r.Header.Get("X-Cache"); got != want {
		a.t.Fatalf("GET metrics of path %d: X-Cache = %q, want %q", pathID, got, want)
	}
	return m
}

func TestPathMetricsCacheAside(t *testing.T) {
	forEachCachedDialect(t, func(t *testing.T, a *testAPI, caches *cache.Caches) {
		fx := a.seed()
		path := fmt.Sprintf("/api/v1/paths/%d/metrics", fx.path.ID)
		a.do(http.MethodGet, path, a.viewer, nil).problem(t, http.StatusNotFound)
		a.do(http.MethodGet, "/api/v1/paths/999999/metrics", a.viewer, nil).problem(t, http.StatusNotFound)

		put := a.putMetrics(fx.path.ID, metricsBody(20, 0.5))
		want := storage.ScoreMetrics(storage.PathMetrics{LatencyMs: 20, JitterMs: 1.5, PacketLossPct: 0.5, BandwidthMbps: 500})
		if put.Score != int32(want) || put.PathID != fx.path.ID {
			t.Fatalf("PUT answered score %d for path %d, want %d for %d", put.Score, put.PathID, want, fx.path.ID)
		}
		if got := a.getMetrics(fx.path.ID, "hit"); got != put {
			t.Fatalf("GET after PUT = %+v, want %+v", got, put)
		}
		stored, err := a.store.Metrics().Get(context.Background(), fx.path.ID)
		if err != nil || stored.Score != want {
			t.Fatalf("database holds %+v (%v), want score %d", stored, err, want)
		}

		t.Run("ClearAllNeedsAdmin", func(t *testing.T) {
			a.do(http.MethodDelete, "/api/v1/cache", a.operator, nil).problem(t, http.StatusForbidden)
			a.do(http.MethodDelete, "/api/v1/cache/metrics", a.operator, nil).problem(t, http.StatusForbidden)
			a.getMetrics(fx.path.ID, "hit")
		})

		t.Run("ClearAll", func(t *testing.T) {
			a.rec.takeEvents()
			res := decodeAs[apigen.CacheClearResult](t, a.do(http.MethodDelete, "/api/v1/cache", a.admin, nil), http.StatusOK)
			if !res.Success || res.ClearedEntries != 1 {
				t.Fatalf("clear = %+v, want success clearing the 1 metrics entry", res)
			}
			if n := caches.Metrics.Len() + caches.Routing.Len(); n != 0 {
				t.Fatalf("%d entries left after clear", n)
			}
			requireClearRecorded(t, a, "all", 1)
			a.getMetrics(fx.path.ID, "miss")
			if got := a.getMetrics(fx.path.ID, "hit"); got != put {
				t.Fatalf("GET after refill = %+v, want %+v", got, put)
			}
		})

		t.Run("ClearOne", func(t *testing.T) {
			a.rec.takeEvents()
			res := decodeAs[apigen.CacheClearResult](t, a.do(http.MethodDelete, "/api/v1/cache/routing", a.admin, nil), http.StatusOK)
			if res.ClearedEntries != 0 {
				t.Fatalf("clear routing = %+v, want 0 entries", res)
			}
			requireClearRecorded(t, a, "routing", 0)
			a.getMetrics(fx.path.ID, "hit")
			res = decodeAs[apigen.CacheClearResult](t, a.do(http.MethodDelete, "/api/v1/cache/metrics", a.admin, nil), http.StatusOK)
			if res.ClearedEntries != 1 {
				t.Fatalf("clear metrics = %+v, want 1 entry", res)
			}
			requireClearRecorded(t, a, "metrics", 1)
			a.getMetrics(fx.path.ID, "miss")
		})

		t.Run("UnknownCache", func(t *testing.T) {
			p := a.send(a.newRequest(http.MethodDelete, "/api/v1/cache/sessions", a.admin, nil), false).problem(t, http.StatusBadRequest)
			if !slices.Contains(p.fields(), "name") {
				t.Fatalf("problem names %v, want name", p.fields())
			}
		})

		t.Run("Stats", func(t *testing.T) {
			list := decodeAs[apigen.CacheList](t, a.do(http.MethodGet, "/api/v1/cache", a.viewer, nil), http.StatusOK)
			if len(list.Caches) != 2 || list.Caches[0].Name != apigen.CacheNameMetrics || list.Caches[1].Name != apigen.CacheNameRouting {
				t.Fatalf("caches = %+v, want metrics and routing", list.Caches)
			}
			m := list.Caches[0]
			st := caches.Metrics.Stats()
			if m.Entries != 1 || m.Entries != m.Active+m.Expired || m.Hits != int64(st.Hits) || m.Misses != int64(st.Misses) || m.Hits == 0 {
				t.Fatalf("metrics cache stats %+v, cache says %+v", m, st)
			}
			body := string(a.do(http.MethodGet, "/metrics", "", nil).Body)
			for _, line := range []string{
				`patronus_cache_entries{cache="metrics"} 1`,
				fmt.Sprintf(`patronus_cache_hits_total{cache="metrics"} %d`, st.Hits),
				`patronus_cache_evictions_total{cache="routing"} 0`,
			} {
				if !strings.Contains(body, line+"\n") {
					t.Errorf("/metrics lacks %q", line)
				}
			}
		})
	})
}

// requireClearRecorded checks the cache.cleared event and the audit entry of the last clear.
func requireClearRecorded(t *testing.T, a *testAPI, resourceID string, cleared int) {
	t.Helper()
	events := a.rec.takeEvents()
	if len(events) != 1 || events[0].Type != "cache.cleared" || events[0].Data["cleared_entries"] != float64(cleared) {
		t.Fatalf("events = %+v, want one cache.cleared of %d entries", events, cleared)
	}
	page, err := a.store.Audit().List(context.Background(),
		storage.AuditFilter{ResourceKind: "cache", ResourceID: resourceID, Action: "clear"}, storage.ListParams{Limit: 100})
	if err != nil || len(page.Items) == 0 {
		t.Fatalf("audit list: %v %+v", err, page)
	}
	e := page.Items[len(page.Items)-1] // oldest first
	if e.Action != "clear" || e.ResourceKind != "cache" || e.ResourceID != resourceID || e.Actor != "test-admin" ||
		e.Details["cleared_entries"] != float64(cleared) || events[0].Data["audit_id"] != float64(e.ID) {
		t.Fatalf("last audit entry %+v, want admin's clear of %s (%d entries), event %+v", e, resourceID, cleared, events[0])
	}
}

func TestPathMetricsBadInput(t *testing.T) {
	forEachCachedDialect(t, func(t *testing.T, a *testAPI, _ *cache.Caches) {
		fx := a.seed()
		put := a.putMetrics(fx.path.ID, metricsBody(20, 0.5))
		path := fmt.Sprintf("/api/v1/paths/%d/metrics", fx.path.ID)
		with := func(field string, v any) map[string]any {
			b := metricsBody(20, 0.5)
			if v == nil {
				delete(b, field)
			} else {
				b[field] = v
			}
			return b
		}
		for _, tc := range []struct {
			name   string
			body   any
			status int
			field  string
		}{
			{"NegativeLatency", with("latency_ms", -1), http.StatusUnprocessableEntity, "latency_ms"},
			{"HugeJitter", with("jitter_ms", 1e9), http.StatusUnprocessableEntity, "jitter_ms"},
			{"LossOver100", with("packet_loss_pct", 100.5), http.StatusUnprocessableEntity, "packet_loss_pct"},
			{"NegativeBandwidth", with("bandwidth_mbps", -5), http.StatusUnprocessableEntity, "bandwidth_mbps"},
			{"TinyMTU", with("mtu", 20), http.StatusUnprocessableEntity, "mtu"},
			{"FractionalMTU", with("mtu", 1500.5), http.StatusUnprocessableEntity, "mtu"},
			{"MissingLoss", with("packet_loss_pct", nil), http.StatusUnprocessableEntity, "packet_loss_pct"},
			{"LatencyString", with("latency_ms", "fast"), http.StatusUnprocessableEntity, "latency_ms"},
			{"BadTime", with("measured_at", "yesterday"), http.StatusUnprocessableEntity, "measured_at"},
			{"FutureTime", with("measured_at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), http.StatusUnprocessableEntity, "measured_at"},
			{"ScoreNotWritable", with("score", 100), http.StatusUnprocessableEntity, "score"},
			{"Malformed", `{"latency_ms": 1,`, http.StatusBadRequest, "body"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := a.snapshot()
				r := a.send(a.newRequest(http.MethodPut, path, a.operator, tc.body), false)
				p := r.problem(t, tc.status)
				if !slices.Contains(p.fields(), tc.field) {
					t.Fatalf("problem names %v, want %s: %s", p.fields(), tc.field, r)
				}
				if d := diffSnapshots(before, a.snapshot()); d != "" {
					t.Fatalf("a refused PUT changed the database:\n%s", d)
				}
				if got := a.getMetrics(fx.path.ID, "hit"); got != put {
					t.Fatalf("cache holds %+v after a refused PUT, want %+v", got, put)
				}
			})
		}
		t.Run("UnknownPath", func(t *testing.T) {
			before := a.snapshot()
			a.do(http.MethodPut, "/api/v1/paths/999999/metrics", a.operator, metricsBody(1, 0)).problem(t, http.StatusNotFound)
			if d := diffSnapshots(before, a.snapshot()); d != "" {
				t.Fatalf("a refused PUT changed the database:\n%s", d)
			}
		})
		t.Run("ViewerForbidden", func(t *testing.T) {
			a.do(http.MethodPut, path, a.viewer, metricsBody(1, 0)).problem(t, http.StatusForbidden)
			a.getMetrics(fx.path.ID, "hit")
		})
	})
}

// decision asks for the routing decision between the fixture's sites.
func (a *testAPI) decision(fx fixture, policyID *int64) apigen.RoutingDecision {
	a.t.Helper()
	q := fmt.Sprintf("/api/v1/routing/decision?src_site_id=%s&dst_site_id=%s", fx.site.ID, fx.site2.ID)
	if policyID != nil {
		q += fmt.Sprintf("&policy_id=%d", *policyID)
	}
	return decodeAs[apigen.RoutingDecision](a.t, a.do(http.MethodGet, q, a.viewer, nil), http.StatusOK)
}

// requireDecision checks the selected path and whether the decision came from the cache.
func requireDecision(t *testing.T, d apigen.RoutingDecision, pathID int64, cached bool) {
	t.Helper()
	if d.SelectedPathID != pathID || d.Cached != cached {
		t.Fatalf("decision = path %d cached %v (%q), want path %d cached %v", d.SelectedPathID, d.Cached, d.Reason, pathID, cached)
	}
}

// secondPath stores another up path from the fixture's first site to its second, from a second
// endpoint of the first site.
func (a *testAPI) secondPath(fx fixture) storage.Path {
	a.t.Helper()
	e := storage.Endpoint{SiteID: fx.site.ID, Name: a.name("wan"), Interface: "eth2", Address: a.address(), WANKind: "lte"}
	if err := a.store.Endpoints().Create(context.Background(), &e); err != nil {
		a.t.Fatal(err)
	}
	p := storage.Path{Name: a.name("path"), LocalEndpointID: e.ID, RemoteEndpointID: fx.endpoint2.ID, Status: storage.PathUp}
	if err := a.store.Paths().Create(context.Background(), &p); err != nil {
		a.t.Fatal(err)
	}
	return p
}

func TestRoutingDecision(t *testing.T) {
	forEachCachedDialect(t, func(t *testing.T, a *testAPI, caches *cache.Caches) {
		fx := a.seed()
		first, second := fx.path, a.secondPath(fx)
		caches.InvalidateRoutes() // the second path was stored behind the API's back

		// No metrics: the lower id wins among the up paths.
		d := a.decision(fx, nil)
		requireDecision(t, d, first.ID, false)
		if d.Score != nil {
			t.Fatalf("score %d for a path without metrics", *d.Score)
		}

		a.putMetrics(first.ID, metricsBody(10, 0))
		a.putMetrics(second.ID, metricsBody(80, 1))
		d = a.decision(fx, nil)
		requireDecision(t, d, first.ID, false)
		requireDecision(t, a.decision(fx, nil), first.ID, true)

		t.Run("MetricsChangeWinner", func(t *testing.T) {
			a.putMetrics(second.ID, metricsBody(1, 0))
			d := a.decision(fx, nil)
			requireDecision(t, d, second.ID, false)
			if d.Score == nil || *d.Score != int32(a.getMetrics(second.ID, "hit").Score) {
				t.Fatalf("decision score %v, want the second path's", d.Score)
			}
			requireDecision(t, a.decision(fx, nil), second.ID, true)
			// Worsening the loser's metrics changes nothing, but must not serve a stale answer.
			a.putMetrics(first.ID, metricsBody(200, 3))
			requireDecision(t, a.decision(fx, nil), second.ID, false)
			a.putMetrics(first.ID, metricsBody(1, 0)) // equal score: lower latency breaks the tie
			a.putMetrics(second.ID, metricsBody(1.5, 0))
			requireDecision(t, a.decision(fx, nil), first.ID, false)
		})

		t.Run("Policy", func(t *testing.T) {
			pol := fx.policy.ID
			d := a.decision(fx, &pol)
			requireDecision(t, d, first.ID, false)
			if !strings.Contains(d.Reason, "policy") {
				t.Fatalf("reason %q does not mention the policy", d.Reason)
			}
			requireDecision(t, a.decision(fx, &pol), first.ID, true)
			// The preferred path goes down: the policy no longer applies, the best other wins.
			r := a.do(http.MethodPatch, fmt.Sprintf("/api/v1/paths/%d", first.ID), a.operator, map[string]any{"status": "down"})
			decodeAs[apigen.Path](t, r, http.StatusOK)
			requireDecision(t, a.decision(fx, &pol), second.ID, false)
			requireDecision(t, a.decision(fx, nil), second.ID, false)
			r = a.do(http.MethodPatch, fmt.Sprintf("/api/v1/paths/%d", first.ID), a.operator, map[string]any{"status": "up"})
			decodeAs[apigen.Path](t, r, http.StatusOK)
			requireDecision(t, a.decision(fx, &pol), first.ID, false)
			// Disabling the policy drops its decisions.
			r = a.do(http.MethodPatch, fmt.Sprintf("/api/v1/policies/%d", pol), a.operator, map[string]any{"enabled": false})
			decodeAs[apigen.Policy](t, r, http.StatusOK)
			a.putMetrics(second.ID, metricsBody(0.5, 0))
			d = a.decision(fx, &pol)
			requireDecision(t, d, second.ID, false)
			if !strings.Contains(d.Reason, "disabled") {
				t.Fatalf("reason %q does not say the policy is disabled", d.Reason)
			}
		})

		t.Run("DegradedOnlyWhenNoneUp", func(t *testing.T) {
			r := a.do(http.MethodPatch, fmt.Sprintf("/api/v1/paths/%d", second.ID), a.operator, map[string]any{"status": "degraded"})
			decodeAs[apigen.Path](t, r, http.StatusOK)
			requireDecision(t, a.decision(fx, nil), first.ID, false)
		})

		t.Run("PathDeleteInvalidates", func(t *testing.T) {
			requireDecision(t, a.decision(fx, nil), first.ID, true)
			a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/metrics", first.ID), a.viewer, nil) // refill after the status changes
			a.getMetrics(first.ID, "hit")
			if r := a.do(http.MethodDelete, fmt.Sprintf("/api/v1/paths/%d", first.ID), a.operator, nil); r.Status != http.StatusNoContent {
				t.Fatalf("delete path: %s", r)
			}
			a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/metrics", first.ID), a.viewer, nil).problem(t, http.StatusNotFound)
			d := a.decision(fx, nil)
			requireDecision(t, d, second.ID, false)
			if !strings.Contains(d.Reason, "no path is up") {
				t.Fatalf("reason %q does not say a degraded path was chosen for want of an up one", d.Reason)
			}
		})

		t.Run("NoUsablePath", func(t *testing.T) {
			r := a.do(http.MethodPatch, fmt.Sprintf("/api/v1/paths/%d", second.ID), a.operator, map[string]any{"status": "down"})
			decodeAs[apigen.Path](t, r, http.StatusOK)
			q := fmt.Sprintf("/api/v1/routing/decision?src_site_id=%s&dst_site_id=%s", fx.site.ID, fx.site2.ID)
			a.do(http.MethodGet, q, a.viewer, nil).problem(t, http.StatusNotFound)
			// A path created through the API makes the next decision find it.
			r = a.do(http.MethodPost, "/api/v1/paths", a.operator, map[string]any{
				"name": a.name("path"), "local_endpoint_id": fx.endpoint.ID, "remote_endpoint_id": fx.endpoint2.ID,
			})
			created := decodeAs[apigen.Path](t, r, http.StatusCreated)
			requireDecision(t, a.decision(fx, nil), created.ID, false)
		})

		t.Run("UnknownSiteOrPolicy", func(t *testing.T) {
			for _, q := range []string{
				fmt.Sprintf("src_site_id=%s&dst_site_id=0b6e4f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", fx.site.ID),
				fmt.Sprintf("src_site_id=%s&dst_site_id=%s&policy_id=999999", fx.site.ID, fx.site2.ID),
			} {
				a.do(http.MethodGet, "/api/v1/routing/decision?"+q, a.viewer, nil).problem(t, http.StatusNotFound)
			}
			p := a.send(a.newRequest(http.MethodGet, "/api/v1/routing/decision?src_site_id=x&dst_site_id=y", a.viewer, nil), false).
				problem(t, http.StatusBadRequest)
			if !slices.Contains(p.fields(), "src_site_id") {
				t.Fatalf("problem names %v, want src_site_id", p.fields())
			}
		})
	})
}

// TestPathMetricsWithoutCaches: a server without caches answers from the database.
func TestPathMetricsWithoutCaches(t *testing.T) {
	a := newTestAPI(t, storage.DialectSQLite)
	fx := a.seed()
	put := a.putMetrics(fx.path.ID, metricsBody(5, 0))
	if got := a.getMetrics(fx.path.ID, "miss"); got != put {
		t.Fatalf("GET = %+v, want %+v", got, put)
	}
	if ids := a.rec.takeInvalidated(); !slices.Equal(ids, []int64{fx.path.ID}) {
		t.Fatalf("invalidated %v, want the path", ids)
	}
	list := decodeAs[apigen.CacheList](t, a.do(http.MethodGet, "/api/v1/cache", a.viewer, nil), http.StatusOK)
	if len(list.Caches) != 0 {
		t.Fatalf("caches = %+v, want none", list.Caches)
	}
	res := decodeAs[apigen.CacheClearResult](t, a.do(http.MethodDelete, "/api/v1/cache/metrics", a.admin, nil), http.StatusOK)
	if !res.Success || res.ClearedEntries != 0 {
		t.Fatalf("clear without caches = %+v, want success clearing nothing", res)
	}
}

// BenchmarkGetPathMetrics measures GET /api/v1/paths/{id}/metrics through the whole handler
// chain (auth by the configured admin token, spec validation) on SQLite: served from the cache,
// and after dropping the entry so every request reads the database and refills the cache.
func BenchmarkGetPathMetrics(b *testing.B) {
	for _, mode := range []string{"hit", "miss"} {
		b.Run("cache="+mode, func(b *testing.B) {
			srv, caches, pathID := benchServer(b)
			url := fmt.Sprintf("/api/v1/paths/%d/metrics", pathID)
			for b.Loop() {
				if mode == "miss" {
					caches.Metrics.Delete(pathID)
				}
				req := httptest.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+testAdminToken)
				w := httptest.NewRecorder()
				srv.Handler().ServeHTTP(w, req)
				if w.Code != http.StatusOK || w.Header().Get("X-Cache") != mode {
					b.Fatalf("GET %s: %d X-Cache %q: %s", url, w.Code, w.Header().Get("X-Cache"), w.Body)
				}
				_, _ = io.Copy(io.Discard, w.Body)
			}
		})
	}
}

// benchServer is a cached server on a fresh SQLite database holding one path with metrics.
func benchServer(b *testing.B) (*Server, *cache.Caches, int64) {
	b.Helper()
	db := storagetest.Open(b, storage.DialectSQLite)
	caches, err := cache.NewCaches(cache.CachesConfig{MaxEntries: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(caches.Close)
	srv, err := New(Config{DB: db, AdminToken: testAdminToken, Logger: slog.New(slog.DiscardHandler), Caches: caches})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	ctx := context.Background()
	store := storage.NewStore(db)
	sites := []storage.Site{{Name: "bench-a"}, {Name: "bench-b"}}
	ends := make([]storage.Endpoint, 2)
	for i := range sites {
		if err := store.Sites().Create(ctx, &sites[i]); err != nil {
			b.Fatal(err)
		}
		ends[i] = storage.Endpoint{SiteID: sites[i].ID, Name: fmt.Sprintf("wan-%d", i), Interface: "eth0", Address: "203.0.113.1", WANKind: "fiber"}
		if err := store.Endpoints().Create(ctx, &ends[i]); err != nil {
			b.Fatal(err)
		}
	}
	p := storage.Path{Name: "bench", LocalEndpointID: ends[0].ID, RemoteEndpointID: ends[1].ID, Status: storage.PathUp}
	if err := store.Paths().Create(ctx, &p); err != nil {
		b.Fatal(err)
	}
	m := storage.PathMetrics{PathID: p.ID, LatencyMs: 10, MTU: 1500, BandwidthMbps: 100, MeasuredAt: time.Now()}
	if err := store.Metrics().Put(ctx, &m); err != nil {
		b.Fatal(err)
	}
	if _, err := srv.WarmMetricsCache(ctx, 0); err != nil {
		b.Fatal(err)
	}
	return srv, caches, p.ID
}
