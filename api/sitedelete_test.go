package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// deletionSeed is a site to delete (target: three endpoints, one without paths) between two
// other sites: paths from the target, to it and with both ends on it, metrics on two of them
// and a policy preferring one; beside them a path, metrics and a policy between the other
// sites that must survive.
type deletionSeed struct {
	target, other1, other2 storage.Site
	targetEndpoints        []string // ascending
	targetPaths            []int64  // ascending: t1->o1, o1->t2, t1->t2
	otherPath              int64    // o1->o2, with metrics
	clearedPolicy          int64    // prefers targetPaths[0]
	keptPolicy             int64    // prefers otherPath
}

func (a *testAPI) seedDeletion() deletionSeed {
	a.t.Helper()
	ctx := context.Background()
	s := a.store
	var f deletionSeed
	f.target = storage.Site{Name: a.name("target")}
	f.other1 = storage.Site{Name: a.name("other")}
	f.other2 = storage.Site{Name: a.name("other")}
	for _, site := range []*storage.Site{&f.target, &f.other1, &f.other2} {
		if err := s.Sites().Create(ctx, site); err != nil {
			a.t.Fatalf("seed site: %v", err)
		}
	}
	endpoint := func(site storage.Site) string {
		e := storage.Endpoint{SiteID: site.ID, Name: a.name("wan"), Interface: "eth0", Address: a.address(), WANKind: "fiber"}
		if err := s.Endpoints().Create(ctx, &e); err != nil {
			a.t.Fatalf("seed endpoint: %v", err)
		}
		return e.ID
	}
	t1, t2, t3 := endpoint(f.target), endpoint(f.target), endpoint(f.target)
	o1, o2 := endpoint(f.other1), endpoint(f.other2)
	f.targetEndpoints = slices.Sorted(slices.Values([]string{t1, t2, t3}))
	path := func(local, remote string, metrics bool) int64 {
		p := storage.Path{Name: a.name("path"), LocalEndpointID: local, RemoteEndpointID: remote}
		if err := s.Paths().Create(ctx, &p); err != nil {
			a.t.Fatalf("seed path: %v", err)
		}
		if metrics {
			m := storage.PathMetrics{PathID: p.ID, LatencyMs: 20, MTU: 1400, Score: 90, MeasuredAt: time.Now()}
			if err := s.Metrics().Put(ctx, &m); err != nil {
				a.t.Fatalf("seed metrics: %v", err)
			}
		}
		return p.ID
	}
	f.targetPaths = []int64{path(t1, o1, true), path(o1, t2, true), path(t1, t2, false)}
	f.otherPath = path(o1, o2, true)
	policy := func(pathID int64) int64 {
		p := storage.Policy{Name: a.name("policy"), Priority: 10, Enabled: true, ActionType: storage.ActionPreferPath, PathID: &pathID}
		if err := s.Policies().Create(ctx, &p); err != nil {
			a.t.Fatalf("seed policy: %v", err)
		}
		return p.ID
	}
	f.clearedPolicy, f.keptPolicy = policy(f.targetPaths[0]), policy(f.otherPath)
	return f
}

// deleteSite sends DELETE /api/v1/sites/{id} with the query and If-Match (when not empty).
func (a *testAPI) deleteSite(id, query, ifMatch, token string) apiResponse {
	a.t.Helper()
	path := "/api/v1/sites/" + id
	if query != "" {
		path += "?" + query
	}
	req := a.newRequest(http.MethodDelete, path, token, nil)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	return a.send(req, true)
}

func TestDeleteSite(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		f := a.seedDeletion()
		id := f.target.ID
		wantCounts := apigen.DeletionCounts{Endpoints: 3, Paths: 3, PathMetrics: 2}

		deps := decodeAs[apigen.SiteDependencies](t, a.do(http.MethodGet, "/api/v1/sites/"+id+"/dependencies", a.viewer, nil), http.StatusOK)
		if deps.SiteID.String() != id || deps.Endpoints != 3 || deps.Paths != 3 || deps.PathMetrics != 2 || !slices.Equal(deps.Policies, []int64{f.clearedPolicy}) {
			t.Errorf("dependencies = %+v", deps)
		}

		// The dry run changes nothing and says what the delete will remove.
		before, countsBefore := a.snapshot(), storagetest.RowCounts(t, a.db)
		preview := decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(id, "dry_run=true", "", a.admin), http.StatusOK)
		if d := diffSnapshots(before, a.snapshot()); d != "" {
			t.Fatalf("the dry run changed data:\n%s", d)
		}
		if !preview.Success || !preview.DryRun || preview.AuditID != nil || preview.Deleted != wantCounts {
			t.Errorf("dry run = %+v", preview)
		}
		if ev := a.rec.takeEvents(); len(ev) != 0 {
			t.Errorf("the dry run published %v", eventTypes(ev))
		}

		got := decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(id, "", "", a.admin), http.StatusOK)
		if !got.Success || got.DryRun || got.AuditID == nil || got.SiteID.String() != id {
			t.Fatalf("delete = %+v", got)
		}
		real := got
		real.DryRun, real.AuditID, real.Message = true, nil, preview.Message
		if !reflect.DeepEqual(real, preview) {
			t.Errorf("the delete removed %+v, its dry run announced %+v", got, preview)
		}
		var endpointIDs []string
		for _, e := range got.IDs.Endpoints {
			endpointIDs = append(endpointIDs, e.String())
		}
		if !slices.Equal(endpointIDs, f.targetEndpoints) || !slices.Equal(got.IDs.Paths, f.targetPaths) || got.IDs.Truncated ||
			got.IDs.EndpointsTotal != 3 || got.IDs.PathsTotal != 3 || !slices.Equal(got.PoliciesUpdated, []int64{f.clearedPolicy}) {
			t.Errorf("delete ids = %+v, policies %v", got.IDs, got.PoliciesUpdated)
		}

		// The counts are what disappeared; nothing is orphaned; the rest is intact.
		countsAfter := storagetest.RowCounts(t, a.db)
		for table, n := range map[string]int64{
			"sites": 1, "endpoints": got.Deleted.Endpoints, "paths": got.Deleted.Paths, "path_metrics": got.Deleted.PathMetrics,
			"policies_pathed": int64(len(got.PoliciesUpdated)), "policies": 0, "audit_entries": -1,
		} {
			if countsBefore[table]-countsAfter[table] != n {
				t.Errorf("%s: %d rows disappeared, the response implies %d", table, countsBefore[table]-countsAfter[table], n)
			}
		}
		storagetest.AssertNoOrphans(t, a.db)
		for _, other := range []storage.Site{f.other1, f.other2} {
			a.do(http.MethodGet, "/api/v1/sites/"+other.ID, a.viewer, nil).problemUnless(t, http.StatusOK)
		}
		a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d", f.otherPath), a.viewer, nil).problemUnless(t, http.StatusOK)
		kept := decodeAs[apigen.Policy](t, a.do(http.MethodGet, fmt.Sprintf("/api/v1/policies/%d", f.keptPolicy), a.viewer, nil), http.StatusOK)
		cleared := decodeAs[apigen.Policy](t, a.do(http.MethodGet, fmt.Sprintf("/api/v1/policies/%d", f.clearedPolicy), a.viewer, nil), http.StatusOK)
		_, keptPath := policyActionFields(kept.Action)
		_, clearedPath := policyActionFields(cleared.Action)
		if keptPath == nil || *keptPath != f.otherPath || clearedPath != nil {
			t.Errorf("policies after the delete: kept %+v, cleared %+v", kept.Action, cleared.Action)
		}
		for _, p := range f.targetPaths {
			a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d", p), a.viewer, nil).problem(t, http.StatusNotFound)
		}

		// The audit entry is in the log, with the counts and a snapshot of what went.
		entries := a.auditOf("site", id)
		if n := len(entries); n == 0 || entries[n-1].ID != *got.AuditID || entries[n-1].Action != apigen.AuditActionDelete || entries[n-1].Actor != "test-admin" {
			t.Fatalf("audit entries of the site = %+v, want the last to be delete %d by test-admin", entries, *got.AuditID)
		}
		details := entries[len(entries)-1].Details
		deleted, _ := details["deleted"].(map[string]any)
		snapshot, _ := details["snapshot"].(map[string]any)
		if deleted["endpoints"] != 3.0 || deleted["paths"] != 3.0 || deleted["path_metrics"] != 2.0 {
			t.Errorf("audit counts = %v", details["deleted"])
		}
		if paths, _ := snapshot["paths"].([]any); len(paths) != 3 {
			t.Errorf("audit snapshot = %v", snapshot)
		}

		// Announced once it committed: site.deleted with the audit id, the policy that lost
		// its path, then each path; the caches drop the paths.
		events := a.rec.takeEvents()
		wantTypes := []string{"site.deleted", "policy.updated", "path.deleted", "path.deleted", "path.deleted"}
		if !slices.Equal(eventTypes(events), wantTypes) {
			t.Fatalf("events = %v, want %v", eventTypes(events), wantTypes)
		}
		wantDeleted := map[string]any{"endpoints": 3.0, "paths": 3.0, "path_metrics": 2.0}
		if events[0].Data["site_id"] != id || events[0].Data["audit_id"] != float64(*got.AuditID) || !reflect.DeepEqual(events[0].Data["deleted"], wantDeleted) {
			t.Errorf("site.deleted data = %v, want site %s audit %d", events[0].Data, id, *got.AuditID)
		}
		if e := events[1]; e.Data["policy_id"] != float64(f.clearedPolicy) || e.Data["cleared_path_id"] != float64(f.targetPaths[0]) {
			t.Errorf("policy.updated data = %v, want policy %d clearing path %d", e.Data, f.clearedPolicy, f.targetPaths[0])
		}
		for i, e := range events[2:] {
			if e.Data["path_id"] != float64(f.targetPaths[i]) || e.Data["audit_id"] != float64(*got.AuditID) {
				t.Errorf("path.deleted data = %v, want path %d", e.Data, f.targetPaths[i])
			}
		}
		if inv := a.rec.takeInvalidated(); !slices.Equal(inv, f.targetPaths) {
			t.Errorf("invalidated %v, want %v", inv, f.targetPaths)
		}

		// Gone: every later call is a 404.
		a.deleteSite(id, "", "", a.admin).problem(t, http.StatusNotFound)
		a.deleteSite(id, "dry_run=true", "", a.admin).problem(t, http.StatusNotFound)
		a.do(http.MethodGet, "/api/v1/sites/"+id+"/dependencies", a.viewer, nil).problem(t, http.StatusNotFound)
	})
}

// problemUnless fails the test when r does not have the status.
func (r apiResponse) problemUnless(t testing.TB, status int) {
	t.Helper()
	if r.Status != status {
		t.Errorf("status = %s, want %d", r, status)
	}
}

func TestDeleteSiteRefusals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		f := a.seedDeletion()
		id := f.target.ID
		r := a.do(http.MethodPatch, "/api/v1/sites/"+id, a.operator, map[string]any{"description": "edited"})
		if site := decodeAs[apigen.Site](t, r, http.StatusOK); site.Version != 2 {
			t.Fatalf("version after edit = %d", site.Version)
		}
		a.rec.takeEvents()
		before := a.snapshot()

		t.Run("StaleIfMatch", func(t *testing.T) {
			for _, query := range []string{"", "dry_run=true"} {
				p := a.deleteSite(id, query, `"1"`, a.admin).problem(t, http.StatusConflict)
				if !slices.Equal(p.fields(), []string{"If-Match"}) {
					t.Errorf("stale If-Match (%s) names %v", query, p.fields())
				}
			}
		})
		t.Run("UnknownSite", func(t *testing.T) {
			a.deleteSite("0190c0de-0000-7000-8000-000000000000", "", "", a.admin).problem(t, http.StatusNotFound)
			a.do(http.MethodGet, "/api/v1/sites/0190c0de-0000-7000-8000-000000000000/dependencies", a.viewer, nil).problem(t, http.StatusNotFound)
		})
		t.Run("Forbidden", func(t *testing.T) {
			a.deleteSite(id, "", "", a.operator).problem(t, http.StatusForbidden)
			a.deleteSite(id, "dry_run=true", "", a.viewer).problem(t, http.StatusForbidden)
			a.do(http.MethodPost, "/api/v1/sites:batchDelete", a.operator, map[string]any{"ids": []string{id}}).problem(t, http.StatusForbidden)
		})
		t.Run("BadInput", func(t *testing.T) {
			a.send(a.newRequest(http.MethodDelete, "/api/v1/sites/not-a-uuid", a.admin, nil), false).problem(t, http.StatusBadRequest)
			a.send(a.newRequest(http.MethodDelete, "/api/v1/sites/"+id+"?dry_run=maybe", a.admin, nil), false).problem(t, http.StatusBadRequest)
			req := a.newRequest(http.MethodDelete, "/api/v1/sites/"+id, a.admin, nil)
			req.Header.Set("If-Match", "2")
			a.send(req, false).problem(t, http.StatusBadRequest)
			for _, body := range []any{
				map[string]any{"ids": []string{}},
				map[string]any{"ids": []string{id, id}},
				map[string]any{"ids": []string{"junk"}},
				map[string]any{"ids": []string{id}, "force": true},
				`{"ids": [`,
			} {
				r := a.send(a.newRequest(http.MethodPost, "/api/v1/sites:batchDelete", a.admin, body), false)
				if r.Status != http.StatusBadRequest && r.Status != http.StatusUnprocessableEntity {
					t.Errorf("batch delete with %v: %s, want 400 or 422", body, r)
				}
			}
		})
		if d := diffSnapshots(before, a.snapshot()); d != "" {
			t.Fatalf("refused deletes changed data:\n%s", d)
		}
		if ev := a.rec.takeEvents(); len(ev) != 0 {
			t.Errorf("refused deletes published %v", eventTypes(ev))
		}
		for _, match := range []string{`"2"`, "*"} {
			a.deleteSite(id, "dry_run=true", match, a.admin).problemUnless(t, http.StatusOK)
		}
		got := decodeAs[apigen.SiteDeletionResult](t, a.deleteSite(id, "", `"2"`, a.admin), http.StatusOK)
		if got.Deleted.Paths != 3 {
			t.Errorf("delete with the current version = %+v", got)
		}
	})
}

func TestBatchDeleteSites(t *testing.T) {
	forEachDialect(t, func(t *testing.T, a *testAPI) {
		f := a.seedDeletion()
		bystander := a.seedDeletion()
		unknown := "0190c0de-0000-7000-8000-0000000000ff"

		// One unknown id and nothing is deleted; the problem names it by index.
		before := a.snapshot()
		p := a.do(http.MethodPost, "/api/v1/sites:batchDelete", a.admin, map[string]any{"ids": []string{f.target.ID, unknown, f.other1.ID}}).
			problem(t, http.StatusNotFound)
		if !slices.Equal(p.fields(), []string{"ids[1]"}) {
			t.Errorf("unknown id named as %v, want ids[1]", p.fields())
		}
		if d := diffSnapshots(before, a.snapshot()); d != "" {
			t.Fatalf("a refused batch changed data:\n%s", d)
		}

		ids := []string{f.target.ID, f.other1.ID}
		preview := decodeAs[apigen.SiteBatchDeletionResult](t,
			a.do(http.MethodPost, "/api/v1/sites:batchDelete", a.admin, map[string]any{"ids": ids, "dry_run": true}), http.StatusOK)
		if d := diffSnapshots(before, a.snapshot()); d != "" {
			t.Fatalf("a dry-run batch changed data:\n%s", d)
		}
		countsBefore := storagetest.RowCounts(t, a.db)
		got := decodeAs[apigen.SiteBatchDeletionResult](t, a.do(http.MethodPost, "/api/v1/sites:batchDelete", a.admin, map[string]any{"ids": ids}), http.StatusOK)
		// The target's three paths, and other1's path to other2.
		want := apigen.BatchDeletionCounts{Sites: 2, Endpoints: 4, Paths: 4, PathMetrics: 3}
		if !got.Success || got.DryRun || got.Deleted != want || !preview.DryRun || preview.Deleted != want {
			t.Fatalf("batch = %+v, preview %+v, want totals %+v", got, preview, want)
		}
		if len(got.Sites) != 2 || got.Sites[0].SiteID.String() != f.target.ID || got.Sites[1].SiteID.String() != f.other1.ID ||
			got.Sites[0].AuditID == nil || got.Sites[1].AuditID == nil || *got.Sites[0].AuditID == *got.Sites[1].AuditID {
			t.Fatalf("batch sites = %+v", got.Sites)
		}
		if wantPolicies := slices.Sorted(slices.Values([]int64{f.clearedPolicy, f.keptPolicy})); !slices.Equal(got.PoliciesUpdated, wantPolicies) {
			t.Errorf("policies updated = %v, want %v", got.PoliciesUpdated, wantPolicies)
		}
		countsAfter := storagetest.RowCounts(t, a.db)
		for table, n := range map[string]int64{"sites": 2, "endpoints": 4, "paths": 4, "path_metrics": 3, "policies_pathed": 2, "audit_entries": -2} {
			if countsBefore[table]-countsAfter[table] != n {
				t.Errorf("%s: %d rows disappeared, want %d", table, countsBefore[table]-countsAfter[table], n)
			}
		}
		storagetest.AssertNoOrphans(t, a.db)
		for _, site := range []storage.Site{f.other2, bystander.target, bystander.other1, bystander.other2} {
			a.do(http.MethodGet, "/api/v1/sites/"+site.ID, a.viewer, nil).problemUnless(t, http.StatusOK)
		}
		for i, r := range got.Sites {
			if entries := a.auditOf("site", r.SiteID.String()); len(entries) == 0 || entries[len(entries)-1].ID != *r.AuditID {
				t.Errorf("site %d: audit entries %+v, want the last to be %d", i, entries, *r.AuditID)
			}
		}
		var siteDeleted, pathDeleted int
		for _, e := range a.rec.takeEvents() {
			switch e.Type {
			case "site.deleted":
				siteDeleted++
			case "path.deleted":
				pathDeleted++
			}
		}
		if siteDeleted != 2 || pathDeleted != 4 {
			t.Errorf("published %d site.deleted and %d path.deleted, want 2 and 4", siteDeleted, pathDeleted)
		}
	})
}

// TestDeleteSiteWhilePathsArePosted deletes a site over HTTP on PostgreSQL while clients keep
// POSTing paths to its endpoints (from it, to it, and with both ends on it). Every add must
// either be created before the delete, and then be removed by it, or be refused cleanly: 409
// when the endpoint went while the path was being created, 422 when the endpoint id named
// nothing any more by the time the request started. Never a 500, and nothing is orphaned.
func TestDeleteSiteWhilePathsArePosted(t *testing.T) {
	a := newTestAPI(t, storage.DialectPostgres)
	ctx := context.Background()
	const adders = 4
	// Enough endpoints that every add can use a pair of endpoints of its own: one path per
	// direction between two endpoints.
	const ends = 32
	for round := range 3 {
		target := storage.Site{Name: a.name("busy")}
		other := storage.Site{Name: a.name("neighbour")}
		for _, s := range []*storage.Site{&target, &other} {
			if err := a.store.Sites().Create(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		var targetEnds, otherEnds []string
		for range ends {
			for _, site := range []storage.Site{target, other} {
				e := storage.Endpoint{SiteID: site.ID, Name: a.name("wan"), Address: a.address()}
				if err := a.store.Endpoints().Create(ctx, &e); err != nil {
					t.Fatal(err)
				}
				if site.ID == target.ID {
					targetEnds = append(targetEnds, e.ID)
				} else {
					otherEnds = append(otherEnds, e.ID)
				}
			}
		}
		survivor := storage.Path{Name: "neighbours", LocalEndpointID: otherEnds[0], RemoteEndpointID: otherEnds[1]}
		if err := a.store.Paths().Create(ctx, &survivor); err != nil {
			t.Fatal(err)
		}

		type outcome struct {
			status int
			pathID int64
			body   string
		}
		results := make([][]outcome, adders)
		ready := make(chan struct{}, adders)
		done := make(chan struct{})
		var wg sync.WaitGroup
		for g := range adders {
			wg.Go(func() {
				for i := 0; ; i++ {
					stop := false
					select {
					case <-done:
						stop = true // one more add after the delete, which must be refused
					default:
					}
					k := i*adders + g // this add's own pair of endpoints (until ends*ends adds of a kind)
					j := k / 3
					x, y := j%ends, j/ends
					local, remote := targetEnds[x], otherEnds[y%ends]
					switch k % 3 {
					case 1:
						local, remote = remote, local
					case 2:
						remote = targetEnds[(x+1+y%(ends-1))%ends]
					}
					body := map[string]any{"name": fmt.Sprintf("add-%d-%d", g, i), "local_endpoint_id": local, "remote_endpoint_id": remote}
					r, err := a.sendConcurrently(a.newRequest(http.MethodPost, "/api/v1/paths", a.operator, body))
					if err != nil {
						t.Errorf("adder %d: %v", g, err)
						return
					}
					o := outcome{status: r.Status, body: r.String()}
					if r.Status == http.StatusCreated {
						var p apigen.Path
						if err := json.Unmarshal(r.Body, &p); err != nil {
							t.Errorf("adder %d: %v", g, err)
						}
						o.pathID = p.ID
					}
					results[g] = append(results[g], o)
					if i == 10 {
						ready <- struct{}{}
					}
					if stop {
						return
					}
				}
			})
		}
		for range adders {
			<-ready
		}
		var del apigen.SiteDeletionResult
		for attempt := 1; ; attempt++ {
			r := a.deleteSite(target.ID, "", "", a.admin)
			if r.Status == http.StatusConflict && attempt < 5 {
				t.Logf("round %d: delete attempt %d lost to the adders: %s", round, attempt, r)
				continue
			}
			del = decodeAs[apigen.SiteDeletionResult](t, r, http.StatusOK)
			break
		}
		close(done)
		wg.Wait()

		var created []int64
		statuses := map[int]int{}
		for g, rs := range results {
			for _, r := range rs {
				statuses[r.status]++
				switch r.status {
				case http.StatusCreated:
					created = append(created, r.pathID)
				case http.StatusConflict, http.StatusUnprocessableEntity:
				default:
					t.Errorf("round %d: adder %d: %s, want 201, 409 or 422", round, g, r.body)
				}
			}
			if last := rs[len(rs)-1]; last.status != http.StatusUnprocessableEntity {
				t.Errorf("round %d: adder %d: add after the delete: %s, want 422", round, g, last.body)
			}
		}
		// Every path created was created before the delete: it removed exactly those.
		slices.Sort(created)
		if !slices.Equal(del.IDs.Paths, created) || del.Deleted.Paths != int64(len(created)) || del.IDs.Truncated {
			t.Errorf("round %d: the delete removed %d paths %v, the adds created %d: %v",
				round, del.Deleted.Paths, del.IDs.Paths, len(created), created)
		}
		var left int64
		if err := a.store.Gorm().Raw("SELECT count(*) FROM paths WHERE local_endpoint_id IN ? OR remote_endpoint_id IN ?", targetEnds, targetEnds).
			Scan(&left).Error; err != nil || left != 0 {
			t.Errorf("round %d: %d paths still reference the deleted site's endpoints (%v)", round, left, err)
		}
		a.do(http.MethodGet, fmt.Sprintf("/api/v1/paths/%d", survivor.ID), a.viewer, nil).problemUnless(t, http.StatusOK)
		storagetest.AssertNoOrphans(t, a.db)
		t.Logf("round %d: answers by status %v", round, statuses)
	}
}

// sendConcurrently sends req from any goroutine: it reports failures as errors instead of
// stopping the test, and checks the response against the spec like send.
func (a *testAPI) sendConcurrently(req *http.Request) (apiResponse, error) {
	resp, err := a.client.Do(req)
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResponse{}, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
	}
	out := apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
	checkResponse(a.t, req, out)
	return out, nil
}
