package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialects this package runs on.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// DefaultDatabaseURL is the embedded default: a SQLite file in the working directory.
const DefaultDatabaseURL = "patronus.db"

//go:embed migrations
var migrations embed.FS

// DB is an open inventory database with the dialect it speaks.
type DB struct {
	Gorm    *gorm.DB
	Dialect string
	// url is what Open was given; the feed listener opens its own connection with it.
	url     string
	timeout time.Duration
	// migrations is the pool migrations run on: on PostgreSQL a second one without the
	// statement_timeout, which a long migration must not meet; opened on first use.
	migrations migrationPool
}

// DefaultTimeout is the deadline of each statement when Options leave it 0.
const DefaultTimeout = 5 * time.Second

// Options tune how the database is opened.
type Options struct {
	// Timeout is the deadline of each statement (a context deadline, and PostgreSQL's
	// statement_timeout); a transaction as a whole gets four times this. DefaultTimeout
	// when 0. A statement past it fails with ErrUnavailable.
	Timeout time.Duration
	// Lazy skips the connection check: Open succeeds while the server is down, and the
	// first statement connects. A bad URL still fails.
	Lazy bool
}

// Open connects to the database named by rawURL: a postgres:// or postgresql:// URL selects
// PostgreSQL, anything else is a SQLite file path (optionally prefixed with sqlite: or file:).
// It checks the connection before returning, so a bad URL or an unreachable server fails here.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith is Open with options. An unreachable server is ErrUnavailable.
func OpenWith(ctx context.Context, rawURL string, o Options) (*DB, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	dialect, dialector, err := dialectorFor(rawURL, o.Timeout)
	if err != nil {
		return nil, err
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		TranslateError:       true,
		Logger:               logger.Discard,
		NowFunc:              func() time.Time { return time.Now().UTC() },
		DisableAutomaticPing: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	db := &DB{Gorm: gdb, Dialect: dialect, timeout: o.Timeout, url: rawURL}
	if dialect == DialectPostgres {
		db.migrations.dsn = rawURL
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == DialectSQLite {
		// One writer at a time is what SQLite allows; more connections only queue on the lock.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(10)
	}
	if err := withDeadlines(gdb, sqlDB, o.Timeout); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if o.Lazy {
		return db, nil
	}
	if err := db.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return db, nil
}

func dialectorFor(rawURL string, timeout time.Duration) (string, gorm.Dialector, error) {
	if rawURL == "" {
		rawURL = DefaultDatabaseURL
	}
	if strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://") {
		u, err := url.Parse(rawURL)
		if err != nil {
			return "", nil, fmt.Errorf("%w: parse postgres url: %v", ErrInvalid, redactURLError(err))
		}
		if u.Host == "" {
			return "", nil, fmt.Errorf("%w: postgres url has no host", ErrInvalid)
		}
		return DialectPostgres, postgres.Open(withServerTimeouts(u, timeout)), nil
	}
	if strings.Contains(rawURL, "://") {
		scheme, _, _ := strings.Cut(rawURL, "://")
		return "", nil, fmt.Errorf("%w: unsupported database url scheme %q (want postgres:// or a SQLite file path)", ErrInvalid, scheme)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "file:")
	path, query, _ := strings.Cut(path, "?")
	if path == "" {
		return "", nil, fmt.Errorf("%w: empty SQLite path", ErrInvalid)
	}
	// Foreign keys are enforced per connection only when asked; WAL and a busy timeout keep
	// readers and the single writer from failing on each other; immediate transactions take
	// the write lock up front instead of failing on upgrade.
	params := "_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_txlock=immediate&_time_format=sqlite"
	if query != "" {
		params = query + "&" + params
	}
	return DialectSQLite, sqliteDialector{sqlite.Open(path + "?" + params).(*sqlite.Dialector)}, nil
}

// sqliteDialector is the SQLite dialector whose error translation keeps the driver's error
// behind GORM's sentinel: the SQLite one replaces it, losing which unique key a duplicate
// broke and the result codes that tell contention apart.
type sqliteDialector struct{ *sqlite.Dialector }

// Translate maps the driver error to GORM's sentinel, keeping the driver error in the chain.
func (d sqliteDialector) Translate(err error) error {
	if translated := d.Dialector.Translate(err); translated != err {
		return fmt.Errorf("%w: %w", translated, err)
	}
	return err
}

// redactURLError drops the URL (and any password in it) from a url.Parse error.
func redactURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// SQL returns the underlying database/sql handle.
func (db *DB) SQL() *sql.DB {
	sqlDB, err := db.Gorm.DB()
	if err != nil {
		// Only a gorm.DB built on a non-sql.DB pool fails here; Open never makes one.
		panic(fmt.Sprintf("storage: gorm without database/sql pool: %v", err))
	}
	return sqlDB
}

// Ping checks that the database answers, within the statement deadline; a database that
// does not is ErrUnavailable.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, db.StatementTimeout())
	defer cancel()
	if err := db.SQL().PingContext(ctx); err != nil {
		return &unavailableError{what: "ping " + db.Dialect + " database", cause: err}
	}
	return nil
}

// StatementTimeout is the deadline of one statement on this database (DefaultTimeout unless
// configured), for stores that use the pool directly, outside the GORM callbacks.
func (db *DB) StatementTimeout() time.Duration {
	if db.timeout <= 0 {
		return DefaultTimeout
	}
	return db.timeout
}

// Close releases the connection pool.
func (db *DB) Close() error {
	db.migrations.close()
	return db.SQL().Close()
}

// Migrate applies every pending migration of the database's dialect. Migrations are numbered
// SQL files embedded in the binary, one directory per dialect, tracked by goose in
// goose_db_version, so running Migrate again is a no-op.
func (db *DB) Migrate(ctx context.Context) error {
	provider, err := db.migrationProvider(ctx)
	if err != nil {
		return err
	}
	current, err := provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", db.Dialect, err)
	}
	if current > 0 && current < uniqueInventoryVersion {
		if err := db.prepareUniqueInventory(ctx); err != nil {
			return err
		}
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", db.Dialect, err)
	}
	for _, r := range results {
		slog.Debug("migration applied", "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

// MigrationVersion returns the newest applied migration version.
func (db *DB) MigrationVersion(ctx context.Context) (int64, error) {
	provider, err := db.migrationProvider(ctx)
	if err != nil {
		return 0, err
	}
	return provider.GetDBVersion(ctx)
}

func (db *DB) migrationProvider(ctx context.Context) (*goose.Provider, error) {
	dir, err := fs.Sub(migrations, "migrations/"+db.Dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.Dialect, err)
	}
	gooseDialect := goose.DialectSQLite3
	if db.Dialect == DialectPostgres {
		gooseDialect = goose.DialectPostgres
	}
	pool, err := db.migrationSQL()
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.Dialect, err)
	}
	var opts []goose.ProviderOption
	if db.Dialect == DialectPostgres {
		// Replicas starting at once on an empty database race on CREATE TABLE without a lock.
		locker, err := db.migrationLocker(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, pool, dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.Dialect, err)
	}
	return provider, nil
}

// migrationLocker is goose's session-level advisory lock, keyed by the schema so that
// deployments (and tests) in different schemas of one database do not wait on each other.
// Waiters probe every second for up to five minutes.
func (db *DB) migrationLocker(ctx context.Context) (lock.SessionLocker, error) {
	id, err := db.advisoryKey(ctx, "migrate", "")
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(id), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	return locker, nil
}

// minFreeBytes is the free space below which a SQLite database counts as unable to write.
var minFreeBytes uint64 = 16 << 20

// CheckWritable checks that the database answers and, for SQLite, that the file system it
// lives on is writable and has room: a full disk fails writes while reads still work, and
// readiness must say so. Failures are ErrUnavailable.
func (db *DB) CheckWritable(ctx context.Context) error {
	if err := db.Ping(ctx); err != nil {
		return err
	}
	if db.Dialect != DialectSQLite {
		return nil
	}
	var file string
	if err := db.SQL().QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		return &unavailableError{what: "find the SQLite file", cause: err}
	}
	if file == "" {
		return nil // in memory
	}
	free, readOnly, err := diskSpace(filepath.Dir(file))
	switch {
	case err != nil:
		return &unavailableError{what: "check the SQLite disk", cause: err}
	case readOnly:
		return &unavailableError{what: "check the SQLite disk", cause: fmt.Errorf("%s is on a read-only file system", file)}
	case free < minFreeBytes:
		return &unavailableError{what: "check the SQLite disk", cause: fmt.Errorf("%d bytes free for %s, under %d", free, file, minFreeBytes)}
	}
	return nil
}
