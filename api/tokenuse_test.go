package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// countTokenWrites counts the UPDATEs of api_tokens on db.
func countTokenWrites(t *testing.T, db *gorm.DB) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	if err := db.Callback().Update().Before("gorm:update").Register("test:count-token-writes", func(q *gorm.DB) {
		if q.Statement.Table == "api_tokens" {
			n.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return &n
}

// tokenListed returns the token of the list with this id.
func (a *testAPI) tokenListed(t *testing.T, id int64) apigen.Token {
	t.Helper()
	list := decodeAs[apigen.TokenList](t, a.do(http.MethodGet, "/api/v1/tokens?limit=100", testAdminToken, nil), http.StatusOK)
	for _, tok := range list.Items {
		if tok.ID == id {
			return tok
		}
	}
	t.Fatalf("token %d is not listed: %+v", id, list.Items)
	return apigen.Token{}
}

// moveUseClock sets the clock of the token-use window.
func (a *testAPI) moveUseClock(now time.Time) {
	u := a.srv.auth.uses
	u.mu.Lock()
	u.now = func() time.Time { return now }
	u.mu.Unlock()
}

// TestTokenLastUsedAtIsRecordedCoalesced: a token's first use shows in last_used_at soon
// after; 50 more uses within the minute cost no write at all; a use past the minute moves it
// on with one more write. The configured admin token (not stored) writes nothing.
func TestTokenLastUsedAtIsRecordedCoalesced(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) { lastUsedCoalesced(t, dialect) })
	}
}

func lastUsedCoalesced(t *testing.T, dialect string) {
	// The counter is in place before the server runs: registering a GORM callback races
	// with the queries of the server's goroutines.
	db := storagetest.Open(t, dialect)
	writes := countTokenWrites(t, db.Gorm)
	a := newTestAPIOn(t, db)
	created := decodeAs[apigen.TokenCreated](t, a.do(http.MethodPost, "/api/v1/tokens", testAdminToken,
		map[string]any{"name": a.name("reader"), "role": "viewer"}), http.StatusCreated)
	if tok := a.tokenListed(t, created.ID); tok.LastUsedAt != nil {
		t.Fatalf("a token never used has last_used_at %s", tok.LastUsedAt)
	}
	if n := writes.Load(); n != 0 {
		t.Fatalf("%d writes of api_tokens before any use", n)
	}
	start := time.Now()
	a.moveUseClock(start)
	if r := a.do(http.MethodGet, "/api/v1/sites", created.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("first use: %s", r)
	}
	first := waitLastUsed(t, a, created.ID, nil)
	if first.Before(start.Add(-time.Second)) || first.After(time.Now().Add(time.Second)) {
		t.Fatalf("last_used_at %s is not the time of the use (between %s and now)", first, start)
	}
	for range 50 {
		if r := a.do(http.MethodGet, "/api/v1/sites", created.Token, nil); r.Status != http.StatusOK {
			t.Fatalf("use: %s", r)
		}
	}
	if n := writes.Load(); n != 1 {
		t.Fatalf("%d writes of api_tokens for 51 uses within a minute, want 1", n)
	}
	if tok := a.tokenListed(t, created.ID); !tok.LastUsedAt.Equal(first) {
		t.Fatalf("last_used_at moved within the minute: %s, was %s", tok.LastUsedAt, first)
	}

	// A minute on (by the recorder's clock) the next use is written again.
	a.moveUseClock(start.Add(tokenUseWindow + time.Second))
	if r := a.do(http.MethodGet, "/api/v1/sites", created.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("use after the minute: %s", r)
	}
	waitLastUsed(t, a, created.ID, &first)
	if n := writes.Load(); n != 2 {
		t.Fatalf("%d writes of api_tokens after a use past the minute, want 2", n)
	}
}

// waitLastUsed waits until the token's last_used_at is set and after not (when given).
func waitLastUsed(t *testing.T, a *testAPI, id int64, not *time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok := a.tokenListed(t, id)
		if tok.LastUsedAt != nil && (not == nil || tok.LastUsedAt.After(*not)) {
			return *tok.LastUsedAt
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_used_at of token %d is %v, want a use recorded (after %v)", id, tok.LastUsedAt, not)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTokenUseNeverWaitsForTheDatabase: on PostgreSQL, with api_tokens locked against
// writes (reads still pass) by another transaction, requests with a token still answer at
// once; its use is written once the lock goes.
func TestTokenUseNeverWaitsForTheDatabase(t *testing.T) {
	a := newTestAPI(t, storage.DialectPostgres)
	_, secret, err := a.store.Tokens().Create(t.Context(), a.name("router"), storage.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.store.Tokens().Authenticate(t.Context(), secret)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := a.db.SQL().BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec("LOCK TABLE api_tokens IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 3 * time.Second} // far below a stuck write (the statement deadline)
	for i := range 5 {
		resp, err := client.Do(a.newRequest(http.MethodGet, "/api/v1/sites", secret, nil))
		if err != nil {
			t.Fatalf("request %d while api_tokens is locked: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d while api_tokens is locked: %d", i, resp.StatusCode)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitLastUsed(t, a, tok.ID, nil)
}

// TestTokenUseRecorderIsBounded: while the database does not answer, uses of ever new tokens
// are noted without waiting, the waiting uses stay bounded, and the writer catches up once the
// database answers.
func TestTokenUseRecorderIsBounded(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	written := map[int64]time.Time{}
	calls := 0
	r := newTokenUseRecorder(func(ctx context.Context, id int64, at time.Time) error {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			select { // a database that does not answer, until released
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return errors.New("statement timeout")
		}
		mu.Lock()
		written[id] = at
		mu.Unlock()
		return nil
	}, slog.New(slog.DiscardHandler))
	r.start()
	defer r.close()
	noted := make(chan struct{})
	go func() {
		defer close(noted)
		for id := int64(1); id <= 3*maxAuthEntries; id++ {
			r.used(id)
		}
	}()
	select {
	case <-noted:
	case <-time.After(30 * time.Second):
		t.Fatal("noting token uses waited for the database")
	}
	r.mu.Lock()
	pending, dropped := len(r.pending), r.dropped
	r.mu.Unlock()
	if pending > maxAuthEntries || dropped < maxAuthEntries {
		t.Fatalf("%d uses waiting, %d dropped; want at most %d waiting and the rest dropped", pending, dropped, maxAuthEntries)
	}
	close(release)
	// The failed write waits tokenUseRetry before the next; close writes what waits.
	r.close()
	mu.Lock()
	defer mu.Unlock()
	if len(written) < maxAuthEntries-1 {
		t.Fatalf("%d uses written after the database answered, want about %d", len(written), maxAuthEntries)
	}
}
