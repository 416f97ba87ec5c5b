package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// replica is one in-process Patronus on the shared database: its own connection pool,
// collector, caches, broker and feed tailer.
type replica struct {
	*testAPI
	caches *cache.Caches
	broker *events.Broker
}

// newReplicas starts n servers on one fresh PostgreSQL schema. Each runs with SSE going to its
// broker and real caches; cfg adjusts replica i.
func newReplicas(t *testing.T, n int, cfg func(i int, c *Config)) []*replica {
	t.Helper()
	url := storagetest.PostgresSchemaURL(t)
	var out []*replica
	for i := range n {
		db, err := storage.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if i == 0 {
			if err := db.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		opt, caches := withCaches(t)
		broker := events.NewBroker(events.DefaultBufferSize)
		a := newTestAPIOn(t, db, opt, withConfig(func(c *Config) {
			c.Publish, c.Events, c.FeedPollInterval = nil, broker, 200*time.Millisecond
			if cfg != nil {
				cfg(i, c)
			}
		}))
		out = append(out, &replica{testAPI: a, caches: caches, broker: broker})
	}
	return out
}

// syncReplicas waits until every replica has applied every change recorded so far.
func syncReplicas(t *testing.T, rs []*replica) {
	t.Helper()
	head, _, err := rs[0].store.Changes().Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, r := range rs {
		if err := r.srv.Tailer().WaitApplied(ctx, head); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
}

func TestReplicasApplyTheFeed(t *testing.T) {
	// C listens to nothing and polls once a minute: what reaches it before then came through
	// the 422 recheck or the test's explicit sync (which asks its tailer to catch up).
	rs := newReplicas(t, 3, func(i int, c *Config) {
		if i == 2 {
			c.FeedNoNotify, c.FeedPollInterval = true, time.Minute
		}
	})
	A, B, C := rs[0], rs[1], rs[2]
	fx := A.seed()
	for _, r := range rs[1:] {
		if err := r.srv.ReloadPolicies(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	flow := flowOf("10.1.0.1", "198.51.100.7", 40000, 443, 6)

	// A policy created on A: C (which has not polled) accepts its id at once, B classifies to it.
	pol := decodeAs[apigen.Policy](t, A.do(http.MethodPost, "/api/v1/policies", A.operator, map[string]any{
		"name": "replicated", "priority": 1, "match": map[string]any{"protocol": 6, "dst_cidr": "198.51.100.0/24"},
		"action": map[string]any{"type": "drop"},
	}), http.StatusCreated)
	if r := C.ingest([]collector.Report{{PolicyID: &pol.ID, Flow: flow, Packets: 1, Bytes: 100}}); r.Status != http.StatusOK {
		t.Fatalf("ingest on C naming the policy just created on A: %s", r)
	}
	syncReplicas(t, rs)
	if r := B.ingest([]collector.Report{{Flow: flow, Packets: 2, Bytes: 200}}); r.Status != http.StatusOK {
		t.Fatalf("ingest on B: %s", r)
	}
	if st := B.policyStatsOf(pol.ID); st.PacketsMatched != 2 {
		t.Fatalf("B classified %d packets to the policy made on A, want 2", st.PacketsMatched)
	}

	// Updated (disabled) on A: B stops classifying to it.
	A.do(http.MethodPatch, fmt.Sprintf("/api/v1/policies/%d", pol.ID), A.operator, map[string]any{"enabled": false}).problemUnless(t, http.StatusOK)
	syncReplicas(t, rs)
	B.ingest([]collector.Report{{Flow: flow, Packets: 3, Bytes: 300}}).problemUnless(t, http.StatusOK)
	if st := B.policyStatsOf(pol.ID); st.PacketsMatched != 2 {
		t.Errorf("B classified to the policy A disabled: %d packets, want still 2", st.PacketsMatched)
	}

	// Deleted on A: B and C refuse its id with 422.
	A.do(http.MethodDelete, fmt.Sprintf("/api/v1/policies/%d", pol.ID), A.operator, nil).problemUnless(t, http.StatusNoContent)
	syncReplicas(t, rs)
	for _, r := range []*replica{B, C} {
		r.ingest([]collector.Report{{PolicyID: &pol.ID, Flow: flow, Packets: 1, Bytes: 1}}).problem(t, http.StatusUnprocessableEntity)
	}

	// Path metrics replaced on A: B's cached metrics and decisions go.
	A.putMetrics(fx.path.ID, metricsBody(10, 0))
	syncReplicas(t, rs)
	B.getMetrics(fx.path.ID, "miss")
	B.getMetrics(fx.path.ID, "hit")
	requireDecision(t, B.decision(fx, nil), fx.path.ID, false)
	requireDecision(t, B.decision(fx, nil), fx.path.ID, true)
	if m := A.putMetrics(fx.path.ID, metricsBody(99, 5)); m.LatencyMs != 99 {
		t.Fatalf("put metrics: %+v", m)
	}
	syncReplicas(t, rs)
	if m := B.getMetrics(fx.path.ID, "miss"); m.LatencyMs != 99 {
		t.Errorf("B serves latency %v after A stored 99", m.LatencyMs)
	}
	requireDecision(t, B.decision(fx, nil), fx.path.ID, false)

	// A token revoked on A is refused by B, which had it cached.
	tok := decodeAs[apigen.TokenCreated](t, A.do(http.MethodPost, "/api/v1/tokens", A.admin, map[string]any{"name": "shared", "role": "viewer"}), http.StatusCreated)
	B.do(http.MethodGet, "/api/v1/sites", tok.Token, nil).problemUnless(t, http.StatusOK)
	A.do(http.MethodDelete, fmt.Sprintf("/api/v1/tokens/%d", tok.ID), A.admin, nil).problemUnless(t, http.StatusNoContent)
	syncReplicas(t, rs)
	B.do(http.MethodGet, "/api/v1/sites", tok.Token, nil).problem(t, http.StatusUnauthorized)

	// A reset on A zeroes every replica.
	for _, r := range rs {
		r.ingest([]collector.Report{{Flow: flow, Packets: 5, Bytes: 500}}).problemUnless(t, http.StatusOK)
	}
	A.do(http.MethodPost, "/api/v1/stats/reset", A.admin, nil).problemUnless(t, http.StatusOK)
	syncReplicas(t, rs)
	for i, r := range rs {
		if st := r.stats(); st.Packets != 0 || st.Bytes != 0 {
			t.Errorf("replica %d after a reset on A: %d packets, %d bytes", i, st.Packets, st.Bytes)
		}
	}

	// A site deleted on A: B's caches drop its path, an SSE client on C sees it.
	stream := C.openStream("")
	B.getMetrics(fx.path.ID, "hit") // cached since the last replace
	del := decodeAs[apigen.SiteDeletionResult](t, A.deleteSite(fx.site.ID, "", "", A.admin), http.StatusOK)
	syncReplicas(t, rs)
	B.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d/metrics", fx.path.ID), B.viewer, nil).problem(t, http.StatusNotFound)
	if ev := stream.next(); ev.Type != "site.deleted" || ev.ID != uint64(*del.AuditID) || ev.Data.Data["site_id"] != fx.site.ID {
		t.Errorf("C's client got %+v, want site.deleted %d of %s", ev, *del.AuditID, fx.site.ID)
	}
	if ev := stream.next(); ev.Type != "policy.updated" || ev.Data.Data["policy_id"] != float64(fx.policy.ID) {
		t.Errorf("C's client got %+v, want policy.updated of %d, whose path went", ev, fx.policy.ID)
	}
	if ev := stream.next(); ev.Type != "path.deleted" || ev.Data.Data["path_id"] != float64(fx.path.ID) {
		t.Errorf("C's client got %+v, want path.deleted of %d", ev, fx.path.ID)
	}
	stream.close()
}

func TestReplicasResumeEventsAnywhere(t *testing.T) {
	rs := newReplicas(t, 3, nil)
	A, B, C := rs[0], rs[1], rs[2]
	stream := B.openStream("")
	first := decodeAs[apigen.Site](t, A.do(http.MethodPost, "/api/v1/sites", A.operator, map[string]any{"name": "first"}), http.StatusCreated)
	ev := stream.next()
	if ev.Type != "site.created" || ev.Data.Data["site_id"] != first.ID.String() {
		t.Fatalf("B's client got %+v", ev)
	}
	stream.close()

	// Missed while away: three changes made on A and C.
	var missed []string
	for i, r := range []*replica{A, C, A} {
		s := decodeAs[apigen.Site](t, r.do(http.MethodPost, "/api/v1/sites", r.operator, map[string]any{"name": "missed-" + strconv.Itoa(i)}), http.StatusCreated)
		missed = append(missed, s.ID.String())
	}
	syncReplicas(t, rs)

	// Reconnecting to C with the last id gets exactly those, in order, then live ones.
	again := C.openStream(strconv.FormatUint(ev.ID, 10))
	prev := ev.ID
	for _, id := range missed {
		got := again.next()
		if got.Type != "site.created" || got.Data.Data["site_id"] != id || got.ID <= prev {
			t.Errorf("replayed %+v, want site.created of %s after id %d", got, id, prev)
		}
		prev = got.ID
	}
	live := decodeAs[apigen.Site](t, B.do(http.MethodPost, "/api/v1/sites", B.operator, map[string]any{"name": "live"}), http.StatusCreated)
	if got := again.next(); got.Data.Data["site_id"] != live.ID.String() {
		t.Errorf("live event after the replay = %+v", got)
	}
	again.close()

	// A client behind the retained feed gets a reset.
	if _, err := A.store.Changes().Prune(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	behind := A.openStream(strconv.FormatUint(ev.ID-1, 10))
	if got := behind.next(); got.Type != "reset" {
		t.Errorf("client behind the retained feed got %+v, want reset", got)
	}
	behind.close()
}
