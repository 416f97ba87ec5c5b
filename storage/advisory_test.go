package storage_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// openPool opens another connection pool on url, as another replica would.
func openPool(t *testing.T, url string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestMigrateConcurrentlyOnEmptyDatabase(t *testing.T) {
	// Without the lock, three replicas starting at once failed most tries (duplicate pg_type
	// key, relation already exists).
	for try := range 6 {
		url := storagetest.PostgresSchemaURL(t)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		start := make(chan struct{})
		for i := range errs {
			db := openPool(t, url)
			wg.Go(func() {
				<-start
				errs[i] = db.Migrate(context.Background())
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("try %d, replica %d: %v", try, i, err)
			}
		}
		if err := openPool(t, url).CheckForeignKeys(context.Background()); err != nil {
			t.Errorf("try %d: %v", try, err)
		}
	}
}

func TestClaimInstance(t *testing.T) {
	ctx := context.Background()
	url := storagetest.PostgresSchemaURL(t)
	a, b := openPool(t, url), openPool(t, url)
	lockA, err := a.ClaimInstance(ctx, "east:8080")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimInstance(ctx, "east:8080"); !errors.Is(err, storage.ErrInstanceTaken) {
		t.Fatalf("second claim of a live name = %v, want ErrInstanceTaken", err)
	}
	lockB, err := b.ClaimInstance(ctx, "east:8081")
	if err != nil {
		t.Fatalf("claim of another name: %v", err)
	}
	defer lockB.Release()

	t.Run("OtherSchemaDoesNotContend", func(t *testing.T) {
		other := openPool(t, storagetest.PostgresSchemaURL(t))
		l, err := other.ClaimInstance(ctx, "east:8080")
		if err != nil {
			t.Fatalf("claim in another schema: %v", err)
		}
		l.Release()
	})

	t.Run("KeepReclaimsAfterLostConnection", func(t *testing.T) {
		// End the lock's session: the name is free until Keep claims it again.
		terminateLockHolder(t, b, "instance", "east:8080")
		keepCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); lockA.Keep(keepCtx, 20*time.Millisecond, slog.New(slog.DiscardHandler)) }()
		deadline := time.Now().Add(10 * time.Second)
		for lockHolders(t, b, "instance", "east:8080") == 0 {
			if time.Now().After(deadline) {
				t.Fatal("Keep did not claim the name again")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := b.ClaimInstance(ctx, "east:8080"); !errors.Is(err, storage.ErrInstanceTaken) {
			t.Fatalf("claim after Keep reclaimed the name = %v, want ErrInstanceTaken", err)
		}
		cancel()
		<-done
	})

	t.Run("ReleaseFreesTheName", func(t *testing.T) {
		lockA.Release()
		l, err := b.ClaimInstance(ctx, "east:8080")
		if err != nil {
			t.Fatalf("claim after release: %v", err)
		}
		l.Release()
	})
}

// lockHolders counts the sessions holding the advisory lock of kind and name in db's schema.
func lockHolders(t *testing.T, db *storage.DB, kind, name string) int {
	t.Helper()
	var n int
	err := db.SQL().QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
  AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('patronus:' || $1 || ':' || current_schema() || ':' || $2, 0)`,
		kind, name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// terminateLockHolder ends the database session that holds the advisory lock of kind and name
// in db's schema, as a lost connection would.
func terminateLockHolder(t *testing.T, db *storage.DB, kind, name string) {
	t.Helper()
	var pid int64
	err := db.SQL().QueryRow(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
  AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('patronus:' || $1 || ':' || current_schema() || ':' || $2, 0)`,
		kind, name).Scan(&pid)
	if err != nil {
		t.Fatalf("find the holder of %s %q: %v", kind, name, err)
	}
	// pg_terminate_backend only signals the backend: wait (up to 5 s) until it is gone, so
	// the test does not see the dying session's lock.
	var gone bool
	if err := db.SQL().QueryRow("SELECT pg_terminate_backend($1, 5000)", pid).Scan(&gone); err != nil {
		t.Fatal(err)
	}
	if !gone {
		t.Fatalf("backend %d holding %s %q did not end within 5 s", pid, kind, name)
	}
}

func TestRunSingleton(t *testing.T) {
	url := storagetest.PostgresSchemaURL(t)
	type replica struct {
		db     *storage.DB
		runs   atomic.Int64
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func() *replica {
		r := &replica{db: openPool(t, url), done: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() {
			defer close(r.done)
			storage.RunSingleton(ctx, r.db, storage.SingletonJob{
				Name: "test-job", Interval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
				Run: func(context.Context) error { r.runs.Add(1); return nil },
			})
		}()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	waitRuns := func(r *replica, n int64, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for r.runs.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d runs, want %d", what, r.runs.Load(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a := start()
	waitRuns(a, 3, "first replica")
	b := start()
	time.Sleep(300 * time.Millisecond) // six intervals, and more than b's retry period
	if n := b.runs.Load(); n != 0 {
		t.Fatalf("standby ran the job %d times while the holder lives", n)
	}

	t.Run("TakeoverWhenHolderStops", func(t *testing.T) {
		a.cancel()
		<-a.done
		waitRuns(b, 2, "standby after the holder stopped")
	})

	t.Run("HolderNoticesLostConnection", func(t *testing.T) {
		c := start()
		time.Sleep(200 * time.Millisecond)
		if c.runs.Load() != 0 {
			t.Fatal("third replica ran while b holds the lease")
		}
		// Cut b's lease session: the job goes on under one holder (b claims the lease again at
		// once, or c takes it), and never under two at once.
		bBefore, cBefore := b.runs.Load(), c.runs.Load()
		terminateLockHolder(t, c.db, "singleton", "test-job")
		deadline := time.Now().Add(10 * time.Second)
		for b.runs.Load()+c.runs.Load() < bBefore+cBefore+4 {
			if time.Now().After(deadline) {
				t.Fatalf("after the holder's session ended: %d more runs, want 4", b.runs.Load()+c.runs.Load()-bBefore-cBefore)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := lockHolders(t, c.db, "singleton", "test-job"); n != 1 {
			t.Fatalf("%d sessions hold the lease, want 1", n)
		}
		// Only the holder runs from now on.
		bMid, cMid := b.runs.Load(), c.runs.Load()
		time.Sleep(300 * time.Millisecond)
		if b.runs.Load() > bMid && c.runs.Load() > cMid {
			t.Fatalf("both ran after the lease changed hands: b %d, c %d more runs", b.runs.Load()-bMid, c.runs.Load()-cMid)
		}
	})
}

func TestRunSingletonOnSQLiteJustRuns(t *testing.T) {
	db := storagetest.Open(t, storage.DialectSQLite)
	var runs atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		storage.RunSingleton(ctx, db, storage.SingletonJob{Name: "j", Interval: 10 * time.Millisecond,
			Run: func(context.Context) error { runs.Add(1); return nil }})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if runs.Load() < 3 {
		t.Fatalf("%d runs, want at least 3", runs.Load())
	}
}
