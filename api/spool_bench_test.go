package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// BenchmarkIngestDurability measures HTTP ingest of 1,000-report batches through the whole
// router with the durable spool (strict: answered after the group-committed fsync; relaxed:
// before it) against the in-memory path of before the spool, at 1, 4 and 16 concurrent
// clients. It reports reports/s, the 99th percentile of one batch's latency, and for the
// spool the bytes it wrote per million reports. The spool lives on the machine's disk
// (t.TempDir), not on a tmpfs, so fsyncs are real.
func BenchmarkIngestDurability(b *testing.B) {
	db := storagetest.Open(b, storage.DialectSQLite)
	store := storage.NewStore(db)
	ctx := context.Background()
	var policies []int64
	for i := range 8 {
		proto := []int{6, 17}[i%2]
		p := storage.Policy{Name: fmt.Sprintf("bench-%d", i), Priority: i, Enabled: true, Protocol: &proto,
			DstCIDR: fmt.Sprintf("10.20.%d.0/24", i), ActionType: storage.ActionDrop}
		if err := store.Policies().Create(ctx, &p); err != nil {
			b.Fatal(err)
		}
		policies = append(policies, p.ID)
	}
	const reports = 1000
	body := benchIngestBody(reports, policies)

	for _, conc := range []int{1, 4, 16} {
		for _, path := range []string{"memory", spool.SyncStrict, spool.SyncRelaxed} {
			b.Run(fmt.Sprintf("conc=%d/path=%s", conc, path), func(b *testing.B) {
				coll := collector.New(collector.Config{Logger: slog.New(slog.DiscardHandler)})
				runCtx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { coll.Run(runCtx); close(done) }()
				defer func() { cancel(); <-done }()
				cfg := Config{DB: db, AdminToken: testAdminToken, Collector: coll, Logger: slog.New(slog.DiscardHandler)}
				var sp *spool.Spool
				if path != "memory" {
					var err error
					sp, err = spool.Open(spool.Config{Dir: b.TempDir(), Sync: path, Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					defer sp.Close()
					cfg.Spool = sp
				}
				srv, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.ReloadPolicies(ctx); err != nil {
					b.Fatal(err)
				}
				handler := srv.Handler()
				warm := httptestRequest(body)
				handler.ServeHTTP(&discardWriter{header: http.Header{}}, warm) // the flows exist from here on
				var next atomic.Int64
				lat := make([][]time.Duration, conc)
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range conc {
					wg.Go(func() {
						rd := bytes.NewReader(body)
						req, _ := http.NewRequest(http.MethodPost, "/api/v1/traffic", io.NopCloser(rd))
						req.Header.Set("Content-Type", "application/json")
						req.Header.Set("Authorization", "Bearer "+testAdminToken)
						req.ContentLength = int64(len(body))
						dw := &discardWriter{header: http.Header{}}
						for next.Add(1) <= int64(b.N) {
							rd.Reset(body)
							r := req.Clone(ctx)
							r.Body = io.NopCloser(rd)
							clear(dw.header)
							dw.status = 0
							start := time.Now()
							handler.ServeHTTP(dw, r)
							lat[w] = append(lat[w], time.Since(start))
							if dw.status != http.StatusOK {
								b.Errorf("status %d", dw.status)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				all := slices.Concat(lat...)
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
				}
				b.ReportMetric(float64(b.N)*reports/b.Elapsed().Seconds(), "reports/s")
				if sp != nil {
					st := sp.Stats()
					b.ReportMetric(float64(st.BytesWritten)/(float64(b.N)*reports)*1e6, "spool-B/Mreports")
					b.ReportMetric(float64(st.Appends)/float64(max(st.Syncs, 1)), "appends/fsync")
				}
			})
		}
	}
}

// httptestRequest is one ingest request of body with the admin token.
func httptestRequest(body []byte) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, "/api/v1/traffic", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	return req
}
