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
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
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
	url string
}

// Open connects to the database named by rawURL: a postgres:// or postgresql:// URL selects
// PostgreSQL, anything else is a SQLite file path (optionally prefixed with sqlite: or file:).
// It checks the connection before returning, so a bad URL or an unreachable server fails here.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	dialect, dialector, err := dialectorFor(rawURL)
	if err != nil {
		return nil, err
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		TranslateError: true,
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	db := &DB{Gorm: gdb, Dialect: dialect, url: rawURL}
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
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	return db, nil
}

func dialectorFor(rawURL string) (string, gorm.Dialector, error) {
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
		return DialectPostgres, postgres.Open(rawURL), nil
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
	return DialectSQLite, sqlite.Open(path + "?" + params), nil
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

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return db.SQL().PingContext(ctx)
}

// Close releases the connection pool.
func (db *DB) Close() error {
	return db.SQL().Close()
}

// Migrate applies every pending migration of the database's dialect. Migrations are numbered
// SQL files embedded in the binary, one directory per dialect, tracked by goose in
// goose_db_version, so running Migrate again is a no-op.
func (db *DB) Migrate(ctx context.Context) error {
	provider, err := db.migrationProvider()
	if err != nil {
		return err
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
	provider, err := db.migrationProvider()
	if err != nil {
		return 0, err
	}
	return provider.GetDBVersion(ctx)
}

func (db *DB) migrationProvider() (*goose.Provider, error) {
	dir, err := fs.Sub(migrations, "migrations/"+db.Dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.Dialect, err)
	}
	gooseDialect := goose.DialectSQLite3
	if db.Dialect == DialectPostgres {
		gooseDialect = goose.DialectPostgres
	}
	provider, err := goose.NewProvider(gooseDialect, db.SQL(), dir)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", db.Dialect, err)
	}
	return provider, nil
}
