package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrInstanceTaken means another live replica holds the instance name asked for.
var ErrInstanceTaken = errors.New("instance name is held by another running replica")

// advisoryKey is the 64-bit PostgreSQL advisory lock key of a lock of the given kind and name.
// It includes the current schema, so deployments (and tests) sharing one database in
// different schemas never contend.
func (db *DB) advisoryKey(ctx context.Context, kind, name string) (int64, error) {
	var key int64
	err := db.SQL().QueryRowContext(ctx,
		"SELECT hashtextextended('patronus:' || $1 || ':' || current_schema() || ':' || $2, 0)", kind, name).Scan(&key)
	if err != nil {
		return 0, fmt.Errorf("advisory key for %s %q: %w", kind, name, err)
	}
	return key, nil
}

// sessionKeepalives make the server notice a vanished peer (a dead host, a cut network) and
// end its session, which releases its advisory locks, within about 10 s + 3 × 5 s. A process
// that dies on a live host closes its socket and releases them at once.
const sessionKeepalives = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"

// advisoryLock is a session-level advisory lock held on a connection of its own: the lock
// lives exactly as long as that session.
type advisoryLock struct {
	conn *sql.Conn
	key  int64
}

// tryAdvisoryLock takes the lock of key on a dedicated connection without waiting. It returns
// nil and no error when another session holds it.
func (db *DB) tryAdvisoryLock(ctx context.Context, key int64) (*advisoryLock, error) {
	conn, err := db.SQL().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("advisory lock connection: %w", err)
	}
	if _, err := conn.ExecContext(ctx, sessionKeepalives); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("advisory lock keepalives: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("pg_try_advisory_lock: %w", err)
	}
	if !ok {
		_ = conn.Close()
		return nil, nil
	}
	return &advisoryLock{conn: conn, key: key}, nil
}

// held reports whether the session is alive and still holds the lock. Advisory locks vanish
// with their connection, so work guarded by one checks this first.
func (l *advisoryLock) held(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int
	err := l.conn.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
  AND pid = pg_backend_pid() AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, l.key).Scan(&n)
	return err == nil && n > 0
}

// release gives the lock up and returns the connection's session to nobody: the connection
// is closed, not pooled, so no other query ever runs on a session that held a lock.
func (l *advisoryLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", l.key)
	// ErrBadConn makes database/sql drop the session instead of pooling it.
	_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = l.conn.Close()
}

// InstanceLock holds a replica's instance name for the life of the process.
type InstanceLock struct {
	db   *DB
	name string
	key  int64

	mu   sync.Mutex
	lock *advisoryLock
}

// ClaimInstance takes the name of this replica for as long as the returned lock is held, so two
// live replicas never write history or live counters under one name. It fails with
// ErrInstanceTaken when another live replica holds the name. On SQLite, an embedded
// single-process database, there is nothing to share and the claim always succeeds.
func (db *DB) ClaimInstance(ctx context.Context, name string) (*InstanceLock, error) {
	il := &InstanceLock{db: db, name: name}
	if db.Dialect != DialectPostgres {
		return il, nil
	}
	key, err := db.advisoryKey(ctx, "instance", name)
	if err != nil {
		return nil, err
	}
	il.key = key
	l, err := db.tryAdvisoryLock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("claim instance %q: %w", name, err)
	}
	if l == nil {
		return nil, fmt.Errorf("instance %q: %w", name, ErrInstanceTaken)
	}
	il.lock = l
	return il, nil
}

// Keep re-checks the claim every interval until ctx ends, and claims the name again when the
// database connection that held it was lost (a database restart). If another replica took the
// name meanwhile, it logs an error and keeps trying.
func (il *InstanceLock) Keep(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if il.db.Dialect != DialectPostgres {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		// The tick's queries do not take ctx's cancellation: a query cancelled half-way makes
		// the driver drop the connection, and the dying session would hold the name for a
		// moment after Release.
		tickCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		il.mu.Lock()
		if il.lock != nil && !il.lock.held(tickCtx) && ctx.Err() == nil {
			il.lock.release()
			il.lock = nil
			log.Warn("instance lock lost with its database connection; claiming it again", "instance", il.name)
		}
		if il.lock == nil {
			l, err := il.db.tryAdvisoryLock(tickCtx, il.key)
			switch {
			case err != nil:
				log.Warn("instance lock", "instance", il.name, "err", err)
			case l == nil:
				log.Error("instance name taken by another replica while our lock was lost", "instance", il.name)
			default:
				il.lock = l
				log.Info("instance lock claimed again", "instance", il.name)
			}
		}
		il.mu.Unlock()
		cancel()
	}
}

// Release gives the name up.
func (il *InstanceLock) Release() {
	il.mu.Lock()
	defer il.mu.Unlock()
	if il.lock != nil {
		il.lock.release()
		il.lock = nil
	}
}
