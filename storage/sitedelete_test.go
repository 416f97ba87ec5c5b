package storage_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// deletionFixture is a site to delete (target) with three endpoints, paths in both directions
// and one with both ends on it, metrics and two policies preferring its paths, next to two
// other sites with paths, metrics and a policy of their own.
type deletionFixture struct {
	target, other1, other2 storage.Site
	targetEndpoints        []string // t1, t2, t3 (t3 has no paths)
	targetPaths            []int64  // t1->o1a (metrics), o1b->t2 (metrics), t1->t2
	otherPaths             []int64  // o1a->o2 (metrics), o2->o1b
	clearedPolicies        []int64  // prefer t1->o1a, prefer o1b->t2
	keptPolicies           []int64  // prefer o1a->o2, drop
}

func seedDeletion(t *testing.T, s *storage.Store, prefix string) deletionFixture {
	t.Helper()
	ctx := context.Background()
	var f deletionFixture
	f.target = storage.Site{Name: prefix + "-target"}
	f.other1 = storage.Site{Name: prefix + "-other1"}
	f.other2 = storage.Site{Name: prefix + "-other2"}
	for _, site := range []*storage.Site{&f.target, &f.other1, &f.other2} {
		must(t, s.Sites().Create(ctx, site))
	}
	endpoint := func(site storage.Site, name string) string {
		e := storage.Endpoint{SiteID: site.ID, Name: name, Address: testAddress()}
		must(t, s.Endpoints().Create(ctx, &e))
		return e.ID
	}
	t1, t2, t3 := endpoint(f.target, "t1"), endpoint(f.target, "t2"), endpoint(f.target, "t3")
	o1a, o1b, o2 := endpoint(f.other1, "o1a"), endpoint(f.other1, "o1b"), endpoint(f.other2, "o2")
	f.targetEndpoints = []string{t1, t2, t3}
	slices.Sort(f.targetEndpoints)
	path := func(local, remote string, metrics bool) int64 {
		p := storage.Path{Name: local[:8] + "-" + remote[:8], LocalEndpointID: local, RemoteEndpointID: remote}
		must(t, s.Paths().Create(ctx, &p))
		if metrics {
			must(t, s.Metrics().Put(ctx, &storage.PathMetrics{PathID: p.ID, LatencyMs: 20, MTU: 1400, Score: 90, MeasuredAt: time.Now()}))
		}
		return p.ID
	}
	f.targetPaths = []int64{path(t1, o1a, true), path(o1b, t2, true), path(t1, t2, false)}
	f.otherPaths = []int64{path(o1a, o2, true), path(o2, o1b, false)}
	policy := func(name string, pathID *int64) int64 {
		p := storage.Policy{Name: prefix + "-" + name, Priority: 10, Enabled: true, ActionType: storage.ActionPreferPath, PathID: pathID}
		if pathID == nil {
			p.ActionType = storage.ActionDrop
		}
		must(t, s.Policies().Create(ctx, &p))
		return p.ID
	}
	f.clearedPolicies = []int64{policy("local", &f.targetPaths[0]), policy("remote", &f.targetPaths[1])}
	f.keptPolicies = []int64{policy("elsewhere", &f.otherPaths[0]), policy("drop", nil)}
	return f
}

// addressSeq numbers the addresses testAddress hands out.
var addressSeq atomic.Int64

// testAddress returns an endpoint address no other call in this test binary returns:
// endpoint addresses are unique.
func testAddress() string {
	n := addressSeq.Add(1)
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// assertGone checks that no row anywhere references one of the fixture's removed ids.
func assertGone(t *testing.T, db *storage.DB, f deletionFixture) {
	t.Helper()
	for what, q := range map[string]struct {
		query string
		arg   any
	}{
		"sites":                  {"SELECT count(*) FROM sites WHERE id = ?", f.target.ID},
		"endpoints.site_id":      {"SELECT count(*) FROM endpoints WHERE site_id = ?", f.target.ID},
		"endpoints":              {"SELECT count(*) FROM endpoints WHERE id IN ?", f.targetEndpoints},
		"paths.local":            {"SELECT count(*) FROM paths WHERE local_endpoint_id IN ?", f.targetEndpoints},
		"paths.remote":           {"SELECT count(*) FROM paths WHERE remote_endpoint_id IN ?", f.targetEndpoints},
		"paths":                  {"SELECT count(*) FROM paths WHERE id IN ?", f.targetPaths},
		"path_metrics.path_id":   {"SELECT count(*) FROM path_metrics WHERE path_id IN ?", f.targetPaths},
		"policies.path_id":       {"SELECT count(*) FROM policies WHERE path_id IN ?", f.targetPaths},
		"cleared policies exist": {"SELECT 2 - count(*) FROM policies WHERE path_id IS NULL AND id IN ?", f.clearedPolicies},
	} {
		var n int64
		must(t, db.Gorm.Raw(q.query, q.arg).Scan(&n).Error)
		if n != 0 {
			t.Errorf("%s: %d rows still reference removed ids", what, n)
		}
	}
}

// assertOthersIntact checks that the other sites, their paths, metrics and policies survived.
func assertOthersIntact(t *testing.T, s *storage.Store, f deletionFixture) {
	t.Helper()
	ctx := context.Background()
	for _, site := range []storage.Site{f.other1, f.other2} {
		if _, err := s.Sites().Get(ctx, site.ID); err != nil {
			t.Errorf("other site %s: %v", site.Name, err)
		}
	}
	for _, id := range f.otherPaths {
		if _, err := s.Paths().Get(ctx, id); err != nil {
			t.Errorf("path %d between other sites: %v", id, err)
		}
	}
	if _, err := s.Metrics().Get(ctx, f.otherPaths[0]); err != nil {
		t.Errorf("metrics of path %d between other sites: %v", f.otherPaths[0], err)
	}
	pol, err := s.Policies().Get(ctx, f.keptPolicies[0])
	if err != nil || pol.PathID == nil || *pol.PathID != f.otherPaths[0] {
		t.Errorf("policy preferring a path between other sites: %+v, %v", pol, err)
	}
}

func TestSiteDependencies(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)
		f := seedDeletion(t, s, "deps")
		deps, err := s.SiteDependencies(ctx, f.target.ID)
		must(t, err)
		want := storage.SiteDependencies{SiteID: f.target.ID, Endpoints: 3, Paths: 3, PathMetrics: 2, Policies: f.clearedPolicies}
		if !reflect.DeepEqual(deps, want) {
			t.Errorf("dependencies = %+v, want %+v", deps, want)
		}
		other, err := s.SiteDependencies(ctx, f.other2.ID)
		must(t, err)
		want = storage.SiteDependencies{SiteID: f.other2.ID, Endpoints: 1, Paths: 2, PathMetrics: 1, Policies: []int64{f.keptPolicies[0]}}
		if !reflect.DeepEqual(other, want) {
			t.Errorf("dependencies of a site without local paths = %+v, want %+v", other, want)
		}
		for _, id := range []string{"0190c0de-0000-7000-8000-000000000000", "not-a-uuid"} {
			if _, err := s.SiteDependencies(ctx, id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("dependencies of %s: %v", id, err)
			}
		}
	})
}

func TestDeleteSites(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)

		t.Run("DryRunThenDelete", func(t *testing.T) {
			f := seedDeletion(t, s, "main")
			before := storagetest.RowCounts(t, db)
			preview, err := s.DeleteSites(ctx, []string{f.target.ID}, storage.DeleteSitesOptions{DryRun: true})
			must(t, err)
			if after := storagetest.RowCounts(t, db); !reflect.DeepEqual(before, after) {
				t.Fatalf("dry run changed row counts: before %v, after %v", before, after)
			}
			want := storage.SiteRemoval{
				Site:            preview.Sites[0].Site,
				Deleted:         storage.DeletionCounts{Sites: 1, Endpoints: 3, Paths: 3, PathMetrics: 2},
				EndpointIDs:     f.targetEndpoints,
				PathIDs:         f.targetPaths,
				PoliciesUpdated: f.clearedPolicies,
			}
			if !preview.DryRun || len(preview.Sites) != 1 || !reflect.DeepEqual(preview.Sites[0], want) {
				t.Fatalf("dry run = %+v, want one site %+v", preview, want)
			}
			if preview.Sites[0].Site.ID != f.target.ID || preview.Sites[0].Site.Version != 1 {
				t.Errorf("dry run site snapshot = %+v", preview.Sites[0].Site)
			}

			got, err := s.DeleteSites(ctx, []string{f.target.ID}, storage.DeleteSitesOptions{Actor: "alice"})
			must(t, err)
			if got.DryRun || got.Sites[0].AuditID == 0 {
				t.Fatalf("delete = %+v, want a real deletion with an audit id", got)
			}
			// The preview said exactly what the delete then removed.
			real := got
			real.DryRun = true
			real.Sites = slices.Clone(got.Sites)
			real.Sites[0].AuditID = 0
			if !reflect.DeepEqual(real, preview) {
				t.Errorf("delete %+v differs from its preview %+v", got, preview)
			}
			after := storagetest.RowCounts(t, db)
			gone := map[string]int64{
				"sites": got.Deleted.Sites, "endpoints": got.Deleted.Endpoints, "paths": got.Deleted.Paths,
				"path_metrics": got.Deleted.PathMetrics, "policies_pathed": int64(len(got.PoliciesUpdated)),
			}
			for table, n := range gone {
				if before[table]-after[table] != n {
					t.Errorf("%s: %d rows disappeared, the result says %d", table, before[table]-after[table], n)
				}
			}
			if after["policies"] != before["policies"] || after["audit_entries"] != before["audit_entries"]+1 {
				t.Errorf("policies %d -> %d, audit entries %d -> %d", before["policies"], after["policies"], before["audit_entries"], after["audit_entries"])
			}
			storagetest.AssertNoOrphans(t, db)
			assertGone(t, db, f)
			assertOthersIntact(t, s, f)

			entry, err := s.Audit().Get(ctx, got.Sites[0].AuditID)
			must(t, err)
			if entry.Actor != "alice" || entry.Action != "delete" || entry.ResourceKind != "site" || entry.ResourceID != f.target.ID {
				t.Errorf("audit entry = %+v", entry)
			}
			deleted, _ := entry.Details["deleted"].(map[string]any)
			snapshot, _ := entry.Details["snapshot"].(map[string]any)
			site, _ := entry.Details["site"].(map[string]any)
			if deleted["endpoints"] != 3.0 || deleted["paths"] != 3.0 || deleted["path_metrics"] != 2.0 || site["name"] != f.target.Name {
				t.Errorf("audit details = %v", entry.Details)
			}
			if eps, _ := snapshot["endpoints"].([]any); len(eps) != 3 {
				t.Errorf("audit snapshot endpoints = %v", snapshot["endpoints"])
			}
			if ps, _ := snapshot["paths"].([]any); len(ps) != 3 || snapshot["truncated"] != false {
				t.Errorf("audit snapshot paths = %v, truncated %v", snapshot["paths"], snapshot["truncated"])
			}
		})

		t.Run("ErrNotFound", func(t *testing.T) {
			for _, id := range []string{"0190c0de-0000-7000-8000-000000000000", "not-a-uuid"} {
				_, err := s.DeleteSites(ctx, []string{id}, storage.DeleteSitesOptions{Actor: "alice"})
				var nf *storage.SitesNotFoundError
				if !errors.Is(err, storage.ErrNotFound) || !errors.As(err, &nf) || !slices.Equal(nf.IDs, []string{id}) {
					t.Errorf("delete %s: %v", id, err)
				}
			}
		})

		t.Run("StaleIfMatch", func(t *testing.T) {
			f := seedDeletion(t, s, "stale")
			site := f.target
			site.Description = "edited"
			must(t, s.Sites().Update(ctx, &site, nil)) // version 2
			before := storagetest.RowCounts(t, db)
			for _, dryRun := range []bool{true, false} {
				_, err := s.DeleteSites(ctx, []string{site.ID}, storage.DeleteSitesOptions{
					DryRun: dryRun, Actor: "alice", IfMatch: map[string]int64{site.ID: 1},
				})
				var stale *storage.VersionConflictError
				if !errors.Is(err, storage.ErrConflict) || !errors.As(err, &stale) || stale.Current != 2 || stale.Expected != 1 {
					t.Errorf("dry run %v with stale version: %v", dryRun, err)
				}
			}
			if after := storagetest.RowCounts(t, db); !reflect.DeepEqual(before, after) {
				t.Fatalf("stale If-Match changed row counts: before %v, after %v", before, after)
			}
			got, err := s.DeleteSites(ctx, []string{site.ID}, storage.DeleteSitesOptions{Actor: "alice", IfMatch: map[string]int64{site.ID: 2}})
			if err != nil || got.Deleted.Paths != 3 {
				t.Fatalf("delete with current version: %+v, %v", got, err)
			}
		})

		t.Run("BatchWithUnknownID", func(t *testing.T) {
			f := seedDeletion(t, s, "batchbad")
			unknown := "0190c0de-0000-7000-8000-0000000000ff"
			before := storagetest.RowCounts(t, db)
			_, err := s.DeleteSites(ctx, []string{f.target.ID, unknown, f.other1.ID, "junk"}, storage.DeleteSitesOptions{Actor: "alice"})
			var nf *storage.SitesNotFoundError
			if !errors.As(err, &nf) || !slices.Equal(nf.IDs, []string{unknown, "junk"}) {
				t.Fatalf("batch with unknown ids: %v", err)
			}
			if after := storagetest.RowCounts(t, db); !reflect.DeepEqual(before, after) {
				t.Fatalf("failed batch changed row counts: before %v, after %v", before, after)
			}
		})

		t.Run("Batch", func(t *testing.T) {
			f := seedDeletion(t, s, "batch")
			before := storagetest.RowCounts(t, db)
			ids := []string{f.other1.ID, f.target.ID, f.other1.ID}
			preview, err := s.DeleteSites(ctx, ids, storage.DeleteSitesOptions{DryRun: true, IDCap: 1})
			must(t, err)
			got, err := s.DeleteSites(ctx, ids, storage.DeleteSitesOptions{Actor: "bob", IDCap: 1})
			must(t, err)
			after := storagetest.RowCounts(t, db)
			// other1 is listed first, so the paths it shares with the target count against it.
			wantTotals := storage.DeletionCounts{Sites: 2, Endpoints: 5, Paths: 5, PathMetrics: 3}
			if got.Deleted != wantTotals || preview.Deleted != wantTotals {
				t.Errorf("totals = %+v (preview %+v), want %+v", got.Deleted, preview.Deleted, wantTotals)
			}
			if len(got.Sites) != 2 || got.Sites[0].Site.ID != f.other1.ID || got.Sites[1].Site.ID != f.target.ID {
				t.Fatalf("sites = %+v", got.Sites)
			}
			if c := got.Sites[0].Deleted; c != (storage.DeletionCounts{Sites: 1, Endpoints: 2, Paths: 4, PathMetrics: 3}) {
				t.Errorf("other1 counts = %+v", c)
			}
			if c := got.Sites[1].Deleted; c != (storage.DeletionCounts{Sites: 1, Endpoints: 3, Paths: 1, PathMetrics: 0}) {
				t.Errorf("target counts = %+v", c)
			}
			for _, r := range got.Sites {
				if !r.Truncated || len(r.EndpointIDs) != 1 || len(r.PathIDs) != 1 || r.AuditID == 0 {
					t.Errorf("capped site result = %+v", r)
				}
			}
			wantPolicies := slices.Sorted(slices.Values([]int64{f.clearedPolicies[0], f.clearedPolicies[1], f.keptPolicies[0]}))
			if !slices.Equal(got.PoliciesUpdated, wantPolicies) {
				t.Errorf("policies updated = %v, want %v", got.PoliciesUpdated, wantPolicies)
			}
			allPaths := slices.Sorted(slices.Values(append(slices.Clone(f.targetPaths), f.otherPaths...)))
			if !slices.Equal(got.RemovedPathIDs, allPaths) || !slices.Equal(preview.RemovedPathIDs, allPaths) {
				t.Errorf("removed paths = %v (preview %v), want %v", got.RemovedPathIDs, preview.RemovedPathIDs, allPaths)
			}
			for table, n := range map[string]int64{"sites": 2, "endpoints": 5, "paths": 5, "path_metrics": 3, "policies_pathed": 3} {
				if before[table]-after[table] != n {
					t.Errorf("%s: %d rows disappeared, want %d", table, before[table]-after[table], n)
				}
			}
			if after["audit_entries"]-before["audit_entries"] != 2 {
				t.Errorf("audit entries written: %d, want one per site", after["audit_entries"]-before["audit_entries"])
			}
			storagetest.AssertNoOrphans(t, db)
			if _, err := s.Sites().Get(ctx, f.other2.ID); err != nil {
				t.Errorf("site outside the batch: %v", err)
			}
		})

		t.Run("ErrInvalid", func(t *testing.T) {
			f := seedDeletion(t, s, "invalid")
			many := make([]string, storage.MaxDeleteSites+1)
			for i := range many {
				many[i] = fmt.Sprintf("0190c0de-0000-7000-8000-%012d", i)
			}
			for name, call := range map[string]func() error{
				"NoIDs": func() error { _, err := s.DeleteSites(ctx, nil, storage.DeleteSitesOptions{Actor: "a"}); return err },
				"NoActor": func() error {
					_, err := s.DeleteSites(ctx, []string{f.target.ID}, storage.DeleteSitesOptions{})
					return err
				},
				"TooMany": func() error { _, err := s.DeleteSites(ctx, many, storage.DeleteSitesOptions{Actor: "a"}); return err },
				"IfMatchOthers": func() error {
					_, err := s.DeleteSites(ctx, []string{f.target.ID}, storage.DeleteSitesOptions{Actor: "a", IfMatch: map[string]int64{f.other1.ID: 1}})
					return err
				},
			} {
				if err := call(); !errors.Is(err, storage.ErrInvalid) {
					t.Errorf("%s: %v", name, err)
				}
			}
			if _, err := s.Sites().Get(ctx, f.target.ID); err != nil {
				t.Errorf("site after invalid deletes: %v", err)
			}
		})
	})
}

// TestDeleteSitesMissingCascade removes a cascade the deletion relies on: the delete must
// notice the rows the database left behind and roll everything back.
func TestDeleteSitesMissingCascade(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)
		f := seedDeletion(t, s, "nocascade")
		if db.Dialect == storage.DialectPostgres {
			must(t, db.Gorm.Exec("ALTER TABLE path_metrics DROP CONSTRAINT path_metrics_path_fk").Error)
		} else {
			// SQLite enforces no foreign key at all without the pragma; the pool has one connection.
			must(t, db.Gorm.Exec("PRAGMA foreign_keys = OFF").Error)
		}
		before := storagetest.RowCounts(t, db)
		_, err := s.DeleteSites(ctx, []string{f.target.ID}, storage.DeleteSitesOptions{Actor: "alice"})
		if err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete without the cascade: %v, want an internal error", err)
		}
		t.Logf("delete without the cascade: %v", err)
		if after := storagetest.RowCounts(t, db); !reflect.DeepEqual(before, after) {
			t.Fatalf("failed delete changed row counts: before %v, after %v", before, after)
		}
	})
}

// TestDeleteSiteWhilePathsAreAdded deletes a site on PostgreSQL while goroutines keep adding
// paths to its endpoints (from it, to it, and with both ends on it): every add must either
// commit before the delete, and then be removed by it, or fail cleanly; nothing is orphaned.
func TestDeleteSiteWhilePathsAreAdded(t *testing.T) {
	db := storagetest.Open(t, storage.DialectPostgres)
	ctx := context.Background()
	s := storage.NewStore(db)
	const adders = 4
	// Enough endpoints that every add can use a pair of endpoints of its own: one path per
	// direction between two endpoints.
	const ends = 32
	for round := range 3 {
		target := storage.Site{Name: fmt.Sprintf("busy-%d", round)}
		other := storage.Site{Name: fmt.Sprintf("neighbour-%d", round)}
		must(t, s.Sites().Create(ctx, &target))
		must(t, s.Sites().Create(ctx, &other))
		var targetEnds, otherEnds []string
		for i := range ends {
			for _, site := range []storage.Site{target, other} {
				e := storage.Endpoint{SiteID: site.ID, Name: fmt.Sprintf("wan%d", i), Address: testAddress()}
				must(t, s.Endpoints().Create(ctx, &e))
				if site.ID == target.ID {
					targetEnds = append(targetEnds, e.ID)
				} else {
					otherEnds = append(otherEnds, e.ID)
				}
			}
		}
		seeded := map[int64]bool{}
		for i := range 4 {
			p := storage.Path{Name: "seed", LocalEndpointID: targetEnds[i], RemoteEndpointID: otherEnds[i]}
			must(t, s.Paths().Create(ctx, &p))
			seeded[p.ID] = true
		}
		survivor := storage.Path{Name: "neighbours", LocalEndpointID: otherEnds[0], RemoteEndpointID: otherEnds[1]}
		must(t, s.Paths().Create(ctx, &survivor))

		type outcome struct {
			pathID int64
			err    error
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
						stop = true // one more add after the delete, which must fail
					default:
					}
					k := i*adders + g // this add's own pair of endpoints (until ends*ends adds of a kind)
					j := k / 3
					x, y := j%ends, j/ends
					a, b := targetEnds[x], otherEnds[y%ends]
					switch k % 3 {
					case 1:
						a, b = b, a
					case 2:
						b = targetEnds[(x+1+y%(ends-1))%ends]
					}
					p := storage.Path{Name: fmt.Sprintf("add-%d-%d", g, i), LocalEndpointID: a, RemoteEndpointID: b}
					err := s.Paths().Create(ctx, &p)
					results[g] = append(results[g], outcome{p.ID, err})
					if i == 20 {
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
		del, err := s.DeleteSites(ctx, []string{target.ID}, storage.DeleteSitesOptions{Actor: "alice", IDCap: -1})
		close(done)
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: delete under concurrent adds: %v", round, err)
		}

		want := maps.Clone(seeded)
		var added, refused int
		for g, rs := range results {
			for _, r := range rs {
				switch {
				case r.err == nil:
					want[r.pathID] = true
					added++
				case errors.Is(r.err, storage.ErrNotFound), errors.Is(r.err, storage.ErrConflict):
					refused++
				default:
					t.Errorf("round %d: adder %d: %v, want success or ErrNotFound/ErrConflict", round, g, r.err)
				}
			}
			if last := rs[len(rs)-1]; !errors.Is(last.err, storage.ErrNotFound) {
				t.Errorf("round %d: adder %d: add after the delete: %v, want ErrNotFound", round, g, last.err)
			}
		}
		if got := slices.Sorted(maps.Keys(want)); !slices.Equal(del.RemovedPathIDs, got) || del.Deleted.Paths != int64(len(got)) {
			t.Errorf("round %d: delete removed %d paths %v, want the %d seeded or added before it %v",
				round, del.Deleted.Paths, del.RemovedPathIDs, len(got), got)
		}
		var left int64
		must(t, db.Gorm.Raw("SELECT count(*) FROM paths WHERE local_endpoint_id IN ? OR remote_endpoint_id IN ?", targetEnds, targetEnds).Scan(&left).Error)
		if left != 0 {
			t.Errorf("round %d: %d paths still reference the deleted site's endpoints", round, left)
		}
		if _, err := s.Paths().Get(ctx, survivor.ID); err != nil {
			t.Errorf("round %d: path between other endpoints: %v", round, err)
		}
		storagetest.AssertNoOrphans(t, db)
		t.Logf("round %d: %d adds committed before the delete, %d refused", round, added, refused)
	}
}
