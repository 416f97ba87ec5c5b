package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/spool"
	"github.com/patronus-sdwan/patronus/storage"
)

// failingSpool refuses every append, as a full disk does.
type failingSpool struct{}

func (failingSpool) Append(context.Context, []spool.Delta) error {
	return errors.New("write patronus.db-spool/0000000000000000.seg: no space left on device")
}

// TestIngestTrafficSpool checks the durable path: an acknowledged batch's per-policy sums are
// in the spool (read back after the spool is closed and reopened), and a batch the spool
// cannot take is a 503 that records nothing.
func TestIngestTrafficSpool(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) { c.Spool = sp }))
	fx := a.seed()
	https, _ := a.trafficPolicies(fx)
	batch := trafficBatch(fx)
	res := a.ingest(batch)
	if res.Status != http.StatusOK {
		t.Fatalf("ingest = %s", res)
	}
	want := map[int64][2]int64{}
	for _, r := range batch {
		if r.PolicyID != nil {
			w := want[*r.PolicyID]
			want[*r.PolicyID] = [2]int64{w[0] + int64(r.Packets), w[1] + int64(r.Bytes)}
		}
	}
	if err := sp.Cut(context.Background(), time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	sp, err = spool.Open(spool.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	flushes, err := sp.ReadFlushes()
	if err != nil || len(flushes) != 1 {
		t.Fatalf("spool holds %d flushes, %v", len(flushes), err)
	}
	got := map[int64][2]int64{}
	for _, p := range flushes[0].Points {
		got[p.PolicyID] = [2]int64{p.Packets, p.Bytes}
	}
	// Reports without a policy id were classified: count them against what they matched.
	if got[https.ID][0] < want[https.ID][0] || len(got) == 0 {
		t.Fatalf("spool holds %v, the batch named %v", got, want)
	}
	var total, sent int64
	for id, v := range got {
		if id != 0 {
			total += v[0]
		}
	}
	for _, r := range batch {
		sent += int64(r.Packets)
	}
	// The unclassified traffic is in the spool too, as policy 0.
	unclassified := a.stats().UnclassifiedPackets
	if total+unclassified != sent || got[0][0] != unclassified {
		t.Errorf("spool holds %d packets + %d unclassified (live %d), the batch had %d", total, got[0][0], unclassified, sent)
	}

	t.Run("SpoolFailing", func(t *testing.T) {
		b := newTestAPI(t, storage.DialectSQLite, withConfig(func(c *Config) { c.Spool = failingSpool{} }))
		fx := b.seed()
		b.trafficPolicies(fx)
		before := b.stats()
		p := b.ingest(trafficBatch(fx)).problem(t, http.StatusServiceUnavailable)
		if p.Detail == "" && p.Title == "" {
			t.Errorf("problem %+v says nothing", p)
		}
		if after := b.stats(); !reflect.DeepEqual(after, before) {
			t.Errorf("a batch the spool refused changed the counters: %+v, then %+v", before, after)
		}
	})

}
