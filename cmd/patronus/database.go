package main

import (
	"context"
	"fmt"
	"log/slog"
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
