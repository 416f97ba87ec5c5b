package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// BenchmarkCreateSiteHTTP is POST /api/v1/sites on PostgreSQL, the cost of the simplest write
// with its change record (and, since the feed, the wait for its local application).
func BenchmarkCreateSiteHTTP(b *testing.B) {
	db := storagetest.Open(b, storage.DialectPostgres)
	srv, err := New(Config{DB: db, AdminToken: testAdminToken, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := any(srv).(interface{ Close() }); ok { // the same file benchmarks the code before the feed
		b.Cleanup(c.Close)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	client := hs.Client()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/v1/sites", strings.NewReader(fmt.Sprintf(`{"name":"bench-%d"}`, i)))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
