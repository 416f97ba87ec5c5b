package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/api/events"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// BenchmarkDeleteSiteHTTP is storage's BenchmarkDeleteSite seen by a client, on PostgreSQL:
// DELETE /api/v1/sites/{id} of a site whose four endpoints carry n paths, each with metrics,
// with its events (one site.deleted, one path.deleted per path) going to a broker that has
// one subscriber reading. Only the request is timed; the site is bulk-inserted meanwhile.
func BenchmarkDeleteSiteHTTP(b *testing.B) {
	db := storagetest.Open(b, storage.DialectPostgres)
	ctx := context.Background()
	store := storage.NewStore(db)
	broker := events.NewBroker(events.DefaultBufferSize)
	srv, err := New(Config{DB: db, AdminToken: testAdminToken, Logger: slog.New(slog.DiscardHandler), Events: broker})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	sub := broker.Subscribe(0, false)
	go func() {
		for range sub.C { // the subscriber keeps up or is cut loose, as a slow client would be
		}
	}()
	b.Cleanup(sub.Cancel)

	seq, addresses := 0, 0
	// Endpoint addresses are unique, and so is each path's pair of endpoints: the peer has an
	// endpoint for every four paths of a target, whose four endpoints stay as they were.
	const peerEndpoints = 2500
	site := func(endpoints int) (string, []string) {
		seq++
		s := storage.Site{Name: fmt.Sprintf("bench-%d", seq)}
		if err := store.Sites().Create(ctx, &s); err != nil {
			b.Fatal(err)
		}
		ends := make([]string, endpoints)
		for i := range ends {
			addresses++
			addr := fmt.Sprintf("10.%d.%d.%d", addresses>>16&255, addresses>>8&255, addresses&255)
			e := storage.Endpoint{SiteID: s.ID, Name: fmt.Sprintf("wan%d", i), Address: addr}
			if err := store.Endpoints().Create(ctx, &e); err != nil {
				b.Fatal(err)
			}
			ends[i] = e.ID
		}
		return s.ID, ends
	}
	_, peerEnds := site(peerEndpoints)
	for _, n := range []int{10, 100, 10_000} {
		b.Run("paths="+strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				id, ends := site(4)
				err := db.Gorm.Exec(`
WITH p AS (
  INSERT INTO paths (name, local_endpoint_id, remote_endpoint_id, status, created_at, updated_at)
  SELECT 'bulk-' || g, (?::uuid[])[1 + g % 4], (?::uuid[])[1 + (g / 4) % ?], 'up', now(), now()
  FROM generate_series(1, ?) AS g RETURNING id)
INSERT INTO path_metrics (path_id, latency_ms, jitter_ms, packet_loss_pct, bandwidth_mbps, mtu, score, measured_at, updated_at)
SELECT id, 20, 2, 0.1, 100, 1400, 90, now(), now() FROM p`,
					"{"+strings.Join(ends, ",")+"}", "{"+strings.Join(peerEnds, ",")+"}", peerEndpoints, n).Error
				if err != nil {
					b.Fatal(err)
				}
				req, _ := http.NewRequest(http.MethodDelete, hs.URL+"/api/v1/sites/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+testAdminToken)
				b.StartTimer()
				resp, err := hs.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				b.StopTimer()
				var got apigen.SiteDeletionResult
				if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusOK || got.Deleted.Paths != int64(n) {
					b.Fatalf("DELETE = %d %s", resp.StatusCode, body)
				}
				b.StartTimer()
			}
		})
	}
}
