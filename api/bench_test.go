package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"

	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// discardWriter is a ResponseWriter that keeps the status and drops the body, so that the
// benchmark measures the server, not a recorder.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// benchIngestBody is a batch of n reports over n distinct flows: three in four name one of
// policies, the fourth is left to the classifier (half of those match nothing).
func benchIngestBody(n int, policies []int64) []byte {
	reports := make([]collector.Report, n)
	for i := range reports {
		r := &reports[i]
		r.Flow = collector.FlowKey{
			SrcIP:   netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
			DstIP:   netip.AddrFrom4([4]byte{10, 20, byte(i % 16), 1}),
			SrcPort: uint16(20000 + i%40000), DstPort: []uint16{443, 5060}[i%2], Protocol: []uint8{6, 17}[i%2],
		}
		if i%4 != 0 {
			r.PolicyID = &policies[i%len(policies)]
		}
		r.Packets = uint64(1 + i%20)
		r.Bytes = r.Packets * 700
	}
	return collector.AppendBatchJSON(nil, reports)
}

// BenchmarkIngestTraffic posts pre-encoded batches through the whole router (request id,
// recovery, logging, metrics, body limit, auth, spec validation of the parameters, the
// handler) with ServeHTTP, from b.RunParallel goroutines. The flows exist after the first
// batch, as with a router fleet reporting the same flows every few seconds.
func BenchmarkIngestTraffic(b *testing.B) {
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
	coll := collector.New(collector.Config{Logger: slog.New(slog.DiscardHandler)})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { coll.Run(runCtx); close(done) }() // the cached clock, as in production
	b.Cleanup(func() { cancel(); <-done })
	srv, err := New(Config{DB: db, AdminToken: testAdminToken, Collector: coll, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	handler := srv.Handler()

	for _, bc := range []struct {
		reports int
		gzip    bool
	}{{1000, false}, {10000, false}, {10000, true}} {
		body := benchIngestBody(bc.reports, policies)
		name := fmt.Sprintf("reports=%d", bc.reports)
		if bc.gzip {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = buf.Bytes()
			name += "/gzip"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rd := bytes.NewReader(body)
				req, err := http.NewRequest(http.MethodPost, "/api/v1/traffic", io.NopCloser(rd))
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+testAdminToken)
				if bc.gzip {
					req.Header.Set("Content-Encoding", "gzip")
				}
				req.ContentLength = int64(len(body))
				w := &discardWriter{header: http.Header{}}
				for pb.Next() {
					rd.Reset(body)
					r := req.Clone(ctx) // the router sets per-request state on the request
					r.Body = io.NopCloser(rd)
					clear(w.header)
					w.status = 0
					handler.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Errorf("status %d", w.status)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)*float64(bc.reports)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}
