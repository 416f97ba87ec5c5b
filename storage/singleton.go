package storage

import (
	"context"
	"log/slog"
	"time"
)

// SingletonRetry is how often a replica that does not hold a job's lease tries to take it: the
// bound on a takeover after the holder's database session ends (at once when its process dies,
// within the session keepalives, about 25 s, when its host or network does).
const SingletonRetry = 5 * time.Second

// SingletonJob is work that must run on one replica of the cluster at a time.
type SingletonJob struct {
	// Name identifies the job across replicas; every replica running it must use the same name.
	Name string
	// Interval is the time between runs on the lease holder.
	Interval time.Duration
	// Run does the work once. An error is logged and the job runs again at the next interval.
	Run func(ctx context.Context) error
	// Logger receives lease changes and job errors; nil means slog.Default().
	Logger *slog.Logger
}

// RunSingleton runs job.Run every job.Interval, until ctx ends, on whichever replica holds the
// job's lease: a PostgreSQL session-level advisory lock on a connection of its own. The others
// try to take it every min(Interval, SingletonRetry); the new holder runs the job at once. The
// holder checks the lease is still held before each run, because an advisory lock vanishes
// with its connection. When ctx ends the lease is released, so a standby takes over at its
// next try. On SQLite (one embedded process) the job simply runs every interval.
func RunSingleton(ctx context.Context, db *DB, job SingletonJob) {
	log := job.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("job", job.Name)
	run := func() {
		if err := job.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("singleton job failed", "err", err)
		}
	}
	if db.Dialect != DialectPostgres {
		ticker := time.NewTicker(job.Interval)
		defer ticker.Stop()
		for {
			run()
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}

	retry := min(job.Interval, SingletonRetry)
	var lease *advisoryLock
	defer func() {
		if lease != nil {
			lease.release()
		}
	}()
	var key int64
	keyed := false
	var due time.Time
	for {
		wait := retry
		switch {
		case !keyed:
			k, err := db.advisoryKey(ctx, "singleton", job.Name)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("singleton lease", "err", err)
				}
				break
			}
			key, keyed = k, true
			wait = 0
		case lease == nil:
			l, err := db.tryAdvisoryLock(ctx, key)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("singleton lease", "err", err)
				}
				break
			}
			if l == nil {
				break // another replica holds it
			}
			lease, due = l, time.Now()
			log.Info("singleton lease acquired")
			wait = 0
		case !lease.held(ctx):
			lease.release()
			lease = nil
			if ctx.Err() == nil {
				log.Warn("singleton lease lost with its database connection")
			}
			wait = 0
		default:
			if now := time.Now(); !now.Before(due) {
				run()
				due = now.Add(job.Interval)
			}
			// Wake at the next run, or sooner to notice a lost lease before the retry bound.
			wait = min(time.Until(due), retry)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
