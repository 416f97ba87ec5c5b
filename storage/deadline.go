package storage

import (
	"context"
	"database/sql"
	"net/url"
	"strconv"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver of the migration pool
	"gorm.io/gorm"
)

// withServerTimeouts adds PostgreSQL's statement_timeout (so the server gives up on a slow
// statement and releases its locks) and a connect timeout to a postgres URL, unless the URL
// sets them itself.
func withServerTimeouts(u *url.URL, timeout time.Duration) string {
	q := u.Query()
	if !q.Has("statement_timeout") {
		q.Set("statement_timeout", strconv.FormatInt(timeout.Milliseconds(), 10))
	}
	if !q.Has("connect_timeout") {
		q.Set("connect_timeout", strconv.Itoa(max(1, int(timeout.Seconds()))))
	}
	v := *u
	v.RawQuery = q.Encode()
	return v.String()
}

// cancelKey holds a statement's cancel function between the deadline callbacks.
const cancelKey = "patronus:cancel_deadline"

// withDeadlines gives every statement GORM runs a context deadline of timeout, and every
// transaction one of four times that, so a database that stops answering (a dropped
// network, a stalled server) fails requests with ErrUnavailable instead of holding them.
// A shorter deadline the caller set is kept.
func withDeadlines(gdb *gorm.DB, sqlDB *sql.DB, timeout time.Duration) error {
	set := func(cancelAfter bool) func(*gorm.DB) {
		return func(db *gorm.DB) {
			ctx := db.Statement.Context
			if ctx == nil {
				ctx = context.Background()
			}
			if d, ok := ctx.Deadline(); ok && time.Until(d) <= timeout {
				return
			}
			parent := ctx
			ctx, cancel := context.WithTimeout(ctx, timeout)
			db.Statement.Context = ctx
			if cancelAfter {
				db.InstanceSet(cancelKey, func() {
					cancel()
					// A chain may run another statement on this instance: give it the
					// caller's context back, not the ended one.
					db.Statement.Context = parent
				})
			} else {
				// Row and Rows hand the rows to the caller, who reads them under this
				// context after the callbacks: it ends with its timer (released a little
				// later, so that the error is always the deadline, not a cancellation).
				time.AfterFunc(timeout+time.Second, cancel)
			}
		}
	}
	release := func(db *gorm.DB) {
		if c, ok := db.InstanceGet(cancelKey); ok {
			c.(func())()
			db.InstanceSet(cancelKey, func() {})
		}
	}
	cb := gdb.Callback()
	regs := []error{
		cb.Create().Before("gorm:create").Register("patronus:deadline", set(true)),
		cb.Create().After("gorm:create").Register("patronus:deadline_release", release),
		cb.Query().Before("gorm:query").Register("patronus:deadline", set(true)),
		cb.Query().After("gorm:query").Register("patronus:deadline_release", release),
		cb.Update().Before("gorm:update").Register("patronus:deadline", set(true)),
		cb.Update().After("gorm:update").Register("patronus:deadline_release", release),
		cb.Delete().Before("gorm:delete").Register("patronus:deadline", set(true)),
		cb.Delete().After("gorm:delete").Register("patronus:deadline_release", release),
		cb.Raw().Before("gorm:raw").Register("patronus:deadline", set(true)),
		cb.Raw().After("gorm:raw").Register("patronus:deadline_release", release),
		cb.Row().Before("gorm:row").Register("patronus:deadline", set(false)),
	}
	for _, err := range regs {
		if err != nil {
			return err
		}
	}
	pool := &deadlinePool{DB: sqlDB, timeout: 4 * timeout}
	gdb.ConnPool = pool
	gdb.Statement.ConnPool = pool
	return nil
}

// deadlinePool is the database/sql pool with a deadline on each transaction: BEGIN on a
// connection whose peer went silent would otherwise wait for good, and database/sql rolls a
// transaction back when its context ends.
type deadlinePool struct {
	*sql.DB
	timeout time.Duration
}

// BeginTx starts a transaction bound to ctx, given a deadline if it has none as short.
func (p *deadlinePool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > p.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		time.AfterFunc(p.timeout+time.Second, cancel) // after the deadline, which must be the error
	}
	return p.DB.BeginTx(ctx, opts)
}

// GetDBConn returns the pool, for gorm.DB.DB.
func (p *deadlinePool) GetDBConn() (*sql.DB, error) { return p.DB, nil }

// migrationPool is the lazily opened pool of DB.migrations.
type migrationPool struct {
	dsn  string // "" runs migrations on the main pool
	once sync.Once
	db   *sql.DB
	err  error
}

// migrationSQL returns the pool migrations run on.
func (db *DB) migrationSQL() (*sql.DB, error) {
	m := &db.migrations
	if m.dsn == "" {
		return db.SQL(), nil
	}
	m.once.Do(func() {
		m.db, m.err = sql.Open("pgx", m.dsn)
		if m.err == nil {
			m.db.SetMaxOpenConns(2)
		}
	})
	return m.db, m.err
}

func (m *migrationPool) close() {
	if m.db != nil {
		_ = m.db.Close()
	}
}
