package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// prepareDatabase connects, migrates and checks the cascade rules. An unreachable database
// is storage.ErrUnavailable (serve waits for it); anything else stops start-up.
func prepareDatabase(ctx context.Context, db *storage.DB) error {
	// Migrations run on the pool directly, outside the statement deadlines.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := db.Ping(ctx); err != nil {
		return err
	}
	if err := db.Migrate(ctx); err != nil {
		if u, ok := storage.AsUnavailable(err); ok {
			return u
		}
		return fmt.Errorf("%s: %w", envName("database-url"), err)
	}
	if err := db.CheckForeignKeys(ctx); err != nil {
		if u, ok := storage.AsUnavailable(err); ok {
			return u
		}
		return fmt.Errorf("%s: refusing to start: %w", envName("database-url"), err)
	}
	return nil
}

// waitForDatabase retries prepareDatabase with backoff (up to maxBackoff) until it succeeds or
// ctx ends, then runs connected and sets ready. A failure other than unavailability is
// logged at error level and retried all the same: the operator can fix it without a restart.
func waitForDatabase(ctx context.Context, db *storage.DB, log *slog.Logger, ready *atomic.Bool, connected func(context.Context) error) {
	const maxBackoff = 10 * time.Second
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := prepareDatabase(ctx, db)
		if err == nil {
			err = connected(ctx)
		}
		if err == nil {
			ready.Store(true)
			log.Info("database connected", "database", db.Dialect, "attempts", attempt)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("database not ready; retrying in the background", "err", err, "attempt", attempt, "next_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// instanceClaim holds this replica's instance name (a PostgreSQL advisory lock) from the moment
// the database is there: at start-up, or later when serve started without it.
type instanceClaim struct {
	db   *storage.DB
	name string

	mu   sync.Mutex
	lock *storage.InstanceLock
}

// errInstanceTaken is the one-line reason a replica refuses to run under a name another live
// replica holds.
type errInstanceTaken struct{ name string }

func (e errInstanceTaken) Error() string {
	return fmt.Sprintf("%s: %q is the name of another running replica; give each replica its own name", envName("instance"), e.name)
}

func (e errInstanceTaken) Unwrap() error { return storage.ErrInstanceTaken }

// claim takes the name; errInstanceTaken when another live replica holds it.
func (ic *instanceClaim) claim(ctx context.Context) error {
	l, err := ic.db.ClaimInstance(ctx, ic.name)
	if errors.Is(err, storage.ErrInstanceTaken) {
		return errInstanceTaken{name: ic.name}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", envName("instance"), err)
	}
	ic.mu.Lock()
	ic.lock = l
	ic.mu.Unlock()
	return nil
}

func (ic *instanceClaim) held() bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.lock != nil
}

// keep waits for the claim, then re-checks it until ctx ends (see storage.InstanceLock.Keep).
func (ic *instanceClaim) keep(ctx context.Context, log *slog.Logger) {
	for !ic.held() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	ic.mu.Lock()
	l := ic.lock
	ic.mu.Unlock()
	l.Keep(ctx, 10*time.Second, log)
}

func (ic *instanceClaim) release() {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.lock != nil {
		ic.lock.Release()
		ic.lock = nil
	}
}
