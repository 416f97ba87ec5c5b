package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// BenchmarkDeleteSite deletes, on PostgreSQL, a site whose four endpoints carry n paths (half
// from the site, half to it, each with metrics, and a policy preferring one of them), in a
// database that also holds 10,000 paths between two other sites. Only DeleteSites is timed;
// the site and its paths are bulk-inserted with the timer stopped.
func BenchmarkDeleteSite(b *testing.B) {
	db := storagetest.Open(b, storage.DialectPostgres)
	ctx := context.Background()
	s := storage.NewStore(db)
	// One path per direction between two endpoints: the peer has an endpoint for every four
	// paths of a target, so the targets keep their four endpoints.
	_, peerEnds := benchSiteOf(b, s, "peer", benchPeerEndpoints)
	_, farEnds := benchSite(b, s, "far")
	bulkPaths(b, db, farEnds, peerEnds, 10_000)
	seq := 0 // names stay unique across the runs of each sub-benchmark
	for _, n := range []int{10, 100, 10_000} {
		for _, dryRun := range []bool{false, true} {
			b.Run(fmt.Sprintf("paths=%d/dry_run=%v", n, dryRun), func(b *testing.B) {
				var site storage.Site
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					if i == 0 || !dryRun {
						var ends []string
						seq++
						site, ends = benchSite(b, s, fmt.Sprintf("target-%d", seq))
						ids := bulkPaths(b, db, ends, peerEnds, n)
						must(b, s.Policies().Create(ctx, &storage.Policy{
							Name: "prefer-" + site.Name, Priority: 1, ActionType: storage.ActionPreferPath, PathID: &ids[0],
						}))
					}
					b.StartTimer()
					res, err := s.DeleteSites(ctx, []string{site.ID}, storage.DeleteSitesOptions{DryRun: dryRun, Actor: "bench", IDCap: 1000})
					if err != nil || res.Deleted.Paths != int64(n) || res.Deleted.PathMetrics != int64(n) {
						b.Fatalf("delete: %+v, %v", res.Deleted, err)
					}
				}
				b.StopTimer()
				if dryRun {
					_, err := s.DeleteSites(ctx, []string{site.ID}, storage.DeleteSitesOptions{Actor: "bench"})
					must(b, err)
				}
			})
		}
	}
}

// benchPeerEndpoints is how many endpoints the peer site of the benchmarks has: one per four
// of the most paths bulkPaths adds, so that every path has its own pair of endpoints.
const benchPeerEndpoints = 2500

// benchSite creates a site with four endpoints.
func benchSite(b *testing.B, s *storage.Store, name string) (storage.Site, []string) {
	return benchSiteOf(b, s, name, 4)
}

// benchSiteOf creates a site with n endpoints.
func benchSiteOf(b *testing.B, s *storage.Store, name string, n int) (storage.Site, []string) {
	b.Helper()
	ctx := context.Background()
	site := storage.Site{Name: name}
	must(b, s.Sites().Create(ctx, &site))
	ends := make([]string, n)
	for i := range ends {
		e := storage.Endpoint{SiteID: site.ID, Name: fmt.Sprintf("wan%d", i), Address: testAddress()}
		must(b, s.Endpoints().Create(ctx, &e))
		ends[i] = e.ID
	}
	return site, ends
}

// bulkPaths inserts n paths between the four endpoints ends and the peer's endpoints,
// alternating direction, each with metrics, in two statements, and returns their ids. Path g
// joins ends[g % 4] and peerEnds[g / 4], so no two share a pair of endpoints.
func bulkPaths(b *testing.B, db *storage.DB, ends, peerEnds []string, n int) []int64 {
	b.Helper()
	var ids []int64
	err := db.Gorm.Raw(`
INSERT INTO paths (name, local_endpoint_id, remote_endpoint_id, status, created_at, updated_at)
SELECT 'bulk-' || g,
       CASE WHEN g % 2 = 0 THEN (?::uuid[])[1 + g % 4] ELSE (?::uuid[])[1 + (g / 4) % ?] END,
       CASE WHEN g % 2 = 0 THEN (?::uuid[])[1 + (g / 4) % ?] ELSE (?::uuid[])[1 + g % 4] END,
       'up', now(), now()
FROM generate_series(1, ?) AS g
RETURNING id`, pgArray(ends), pgArray(peerEnds), len(peerEnds), pgArray(peerEnds), len(peerEnds), pgArray(ends), n).Scan(&ids).Error
	must(b, err)
	err = db.Gorm.Exec(`
INSERT INTO path_metrics (path_id, latency_ms, jitter_ms, packet_loss_pct, bandwidth_mbps, mtu, score, measured_at, updated_at)
SELECT id, 20, 2, 0.1, 100, 1400, 90, now(), now() FROM unnest(?::bigint[]) AS id`, pgInt64Array(ids)).Error
	must(b, err)
	return ids
}

// pgArray writes a PostgreSQL array literal of uuids (which need no quoting).
func pgArray(ids []string) string {
	out := "{"
	for i, id := range ids {
		if i > 0 {
			out += ","
		}
		out += id
	}
	return out + "}"
}

func pgInt64Array(ids []int64) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprint(id)
	}
	return pgArray(out)
}
