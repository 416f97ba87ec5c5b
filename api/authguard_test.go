package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gorm.io/gorm"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// countQueries counts the token lookups (SELECTs of the token table) the database runs from now
// on; the change-feed tailer's polls are not the flood's doing.
func countQueries(t *testing.T, db *gorm.DB) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	if err := db.Callback().Query().Before("gorm:query").Register("test:count", func(q *gorm.DB) {
		if q.Statement.Table == "api_tokens" {
			n.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return &n
}

// TestBadTokenFloodIsLimitedCountedAndLoggedOnce: 5,000 requests with distinct unknown tokens
// from one address cost at most the address's allowance of database lookups; the rest are
// 429 with Retry-After, every one is counted in /metrics, and the log gets one line for the
// interval. A token verified before keeps working from that address.
func TestBadTokenFloodIsLimitedCountedAndLoggedOnce(t *testing.T) {
	const allowance = 20
	// The counter is in place before the server runs: registering a GORM callback races with
	// the queries of the server's goroutines (the feed tailer).
	db := storagetest.Open(t, storagetest.Dialects[0])
	queries := countQueries(t, db.Gorm)
	a := newTestAPIOn(t, db, withConfig(func(c *Config) {
		c.Auth = AuthLimits{FailuresPerMinute: allowance, LogEvery: time.Hour}
	}))
	if r := a.do(http.MethodGet, "/api/v1/sites", a.viewer, nil); r.Status != http.StatusOK {
		t.Fatalf("viewer before the flood: %s", r)
	}
	// A frozen clock: the allowance must not refill while a loaded machine runs the flood.
	frozen := time.Now()
	a.srv.auth.guard.now = func() time.Time { return frozen }
	queries.Store(0)
	start := time.Now()
	const flood = 5000
	var statuses sync.Map
	var retryAfterMissing atomic.Int64
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := range work {
				req := a.newRequest(http.MethodPost, "/api/v1/traffic", fmt.Sprintf("ptr_bad-token-%d", i), `{"reports":[]}`)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					retryAfterMissing.Add(1)
				}
			}
		})
	}
	for i := range flood {
		work <- i
	}
	close(work)
	wg.Wait()
	count := func(status int) int64 {
		if n, ok := statuses.Load(status); ok {
			return n.(*atomic.Int64).Load()
		}
		return 0
	}
	// The allowance refills at allowance per minute while the flood runs.
	most := int64(allowance + int(time.Since(start).Minutes()*allowance) + 1)
	t.Logf("401: %d, 429: %d, database queries: %d, in %s", count(401), count(429), queries.Load(), time.Since(start))
	if count(401) > most || count(401) < allowance {
		t.Errorf("%d answers were 401; the allowance is %d (with its refill, at most %d)", count(401), allowance, most)
	}
	if count(401)+count(429) != flood {
		t.Errorf("401 + 429 = %d of %d", count(401)+count(429), flood)
	}
	if q := queries.Load(); q > most {
		t.Errorf("%d database queries for %d bad tokens", q, flood)
	}
	if retryAfterMissing.Load() > 0 {
		t.Errorf("%d 429s without Retry-After", retryAfterMissing.Load())
	}
	if lines := strings.Count(a.logs.String(), "failed authentications"); lines != 1 {
		t.Errorf("%d log lines about failed authentications, want 1:\n%s", lines, a.logs.String())
	}
	if !strings.Contains(a.logs.String(), "127.0.0.1") {
		t.Errorf("the log line does not name the client address:\n%s", a.logs.String())
	}
	unknown := testutil.ToFloat64(a.srv.auth.guard.failures.WithLabelValues("unknown"))
	limited := testutil.ToFloat64(a.srv.auth.guard.failures.WithLabelValues("limited"))
	if int64(unknown) != count(401) || int64(limited) != count(429) {
		t.Errorf("metrics: unknown %v limited %v; answers 401 %d 429 %d", unknown, limited, count(401), count(429))
	}
	// One 429 checked against the spec.
	r := a.send(a.newRequest(http.MethodPost, "/api/v1/traffic", "ptr_one-more", `{"reports":[]}`), false)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("after the flood: %s", r)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if r := a.do(http.MethodGet, "/api/v1/sites", a.viewer, nil); r.Status != http.StatusOK {
		t.Fatalf("viewer during the flood: %s", r)
	}
}

// TestUnknownTokenIsCachedNegatively: the same unknown token again costs no second lookup.
func TestUnknownTokenIsCachedNegatively(t *testing.T) {
	db := storagetest.Open(t, storagetest.Dialects[0])
	queries := countQueries(t, db.Gorm) // before the server runs, as above
	a := newTestAPIOn(t, db)
	// A frozen clock: the allowance must not refill while a loaded machine runs the flood.
	frozen := time.Now()
	a.srv.auth.guard.now = func() time.Time { return frozen }
	queries.Store(0)
	for range 50 {
		if r := a.do(http.MethodGet, "/api/v1/sites", "ptr_unknown-token", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("unknown token: %s", r)
		}
	}
	if q := queries.Load(); q != 1 {
		t.Fatalf("%d database queries for 50 tries of one unknown token, want 1", q)
	}
	// A token created in the database meanwhile is not hidden by the negative entries of
	// other tokens.
	_, secret, err := a.store.Tokens().Create(t.Context(), "late", storage.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.do(http.MethodGet, "/api/v1/sites", secret, nil); r.Status != http.StatusOK {
		t.Fatalf("new token: %s", r)
	}
}
