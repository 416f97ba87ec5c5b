package collector

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/spool"
)

// namesOf returns the names of the written points by policy id and time.
func namesOf(s *idempotentStore) map[int64]map[time.Time]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]map[time.Time]string{}
	for _, d := range s.points {
		if out[d.PolicyID] == nil {
			out[d.PolicyID] = map[time.Time]string{}
		}
		out[d.PolicyID][d.Time] = d.PolicyName
	}
	return out
}

// TestFlusherNamesPoints checks that points carry the policy's name when they were taken: a
// renamed policy's next points carry the new name, a removed policy's last delta the name it
// had, and a retry re-sends the name it was queued with.
func TestFlusherNamesPoints(t *testing.T) {
	c, _ := newTestCollector(t, Config{}, policy(1, 1, named("web")), policy(2, 2, named("voip")))
	store := newStore()
	store.failures = []error{retryable(503)}
	f := newTestFlusher(c, store, 100)
	ctx := context.Background()
	k := flow(t, "10.0.0.1", "10.0.0.2", 1, 2, 6)

	c.Record(1, k, 1, 100)
	c.Record(2, k, 1, 100)
	f.CollectDeltas()
	if _, _, err := f.writeOnce(ctx); err == nil { // 503: stays queued with its names
		t.Fatal("the first write did not fail")
	}
	// Renamed while the first flush waits; policy 2 removed with traffic not yet taken.
	c.Record(2, k, 1, 100)
	if err := c.SetPolicies([]Policy{policy(1, 1, named("web v2"))}); err != nil {
		t.Fatal(err)
	}
	c.Record(1, k, 1, 100)
	f.CollectDeltas()
	for range 5 {
		f.writeOnce(ctx)
	}
	got := namesOf(store)
	if len(got[1]) != 2 || len(got[2]) != 2 {
		t.Fatalf("points written %v, want two of each policy", got)
	}
	var times []time.Time
	for at := range got[2] {
		times = append(times, at)
	}
	slices.SortFunc(times, time.Time.Compare)
	first, second := times[0], times[1]
	if got[1][first] != "web" || got[1][second] != "web v2" {
		t.Errorf("policy 1 names %v, want web then web v2", got[1])
	}
	if got[2][first] != "voip" || got[2][second] != "voip" {
		t.Errorf("policy 2 names %v, want voip on both, the last after its removal", got[2])
	}
	// Two flushes later the removed policy's name is forgotten.
	f.CollectDeltas()
	f.CollectDeltas()
	if n := c.PolicyName(2); n != "" {
		t.Errorf("name of policy 2 kept two flushes after its removal: %q", n)
	}
	if n := c.PolicyName(Unclassified); n != UnclassifiedName {
		t.Errorf("PolicyName(Unclassified) = %q", n)
	}
}

// TestFlusherNamesSpooledPoints checks the names of points read back from the spool.
func TestFlusherNamesSpooledPoints(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	c, _ := newTestCollector(t, Config{}, policy(1, 1, named("web, \"tls\"")))
	store := newStore()
	clock := &stepClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := NewFlusher(c, store, FlushConfig{Instance: "test", Interval: time.Hour, Now: clock.Now, Logger: logger, Spool: sp})
	if err := sp.Append(context.Background(), []spool.Delta{{PolicyID: 1, Packets: 2, Bytes: 200}}); err != nil {
		t.Fatal(err)
	}
	f.CollectDeltas()
	f.writeOnce(context.Background())
	for _, names := range namesOf(store) {
		for _, n := range names {
			if n != "web, \"tls\"" {
				t.Errorf("spooled point named %q", n)
			}
		}
	}
	if len(namesOf(store)[1]) != 1 {
		t.Errorf("points %v, want one of policy 1", namesOf(store))
	}
}
