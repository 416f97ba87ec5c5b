// Package storagetest opens real databases and services for tests: a fresh SQLite file or a
// fresh PostgreSQL schema per test, and the InfluxDB that `make test` starts.
//
// The URLs come from the environment that `make test` exports (PATRONUS_TEST_POSTGRES_URL,
// PATRONUS_TEST_INFLUX_URL). When one is missing a test skips with a message saying how to
// get it, except under CI=true, where a missing service fails the test.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
)

// Environment variables that carry the test services' addresses.
const (
	EnvPostgresURL = "PATRONUS_TEST_POSTGRES_URL"
	EnvInfluxURL   = "PATRONUS_TEST_INFLUX_URL"
)

// Dialects lists the inventory backends every store test runs on.
var Dialects = []string{storage.DialectSQLite, storage.DialectPostgres}

// Require returns the value of the environment variable env, or stops the test: a skip on a
// developer machine, a failure under CI=true, with the same instruction either way.
func Require(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		// .ci/testsummary counts the tests that log this line.
		t.Logf("storagetest: using %s", what)
		return v
	}
	msg := fmt.Sprintf("%s is not set: %s is needed; run the tests with `make test`, which starts it", env, what)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// PostgresURL returns the URL of the test PostgreSQL database, or stops the test.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return Require(t, EnvPostgresURL, "PostgreSQL")
}

// InfluxURL returns the URL of the test InfluxDB, or stops the test.
func InfluxURL(t testing.TB) string {
	t.Helper()
	return Require(t, EnvInfluxURL, "InfluxDB")
}

// Open returns a migrated, empty database of the given dialect that lives as long as the test.
func Open(t testing.TB, dialect string) *storage.DB {
	t.Helper()
	db := OpenUnmigrated(t, dialect)
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return db
}

// OpenUnmigrated returns an empty database of the given dialect with no tables.
func OpenUnmigrated(t testing.TB, dialect string) *storage.DB {
	t.Helper()
	ctx := context.Background()
	var dsn string
	switch dialect {
	case storage.DialectSQLite:
		dsn = filepath.Join(t.TempDir(), "patronus.db")
	case storage.DialectPostgres:
		dsn = PostgresSchemaURL(t)
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	db, err := storage.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresSchemaURL creates a schema of its own for this test in the test database and returns a
// URL whose connections use it; the schema is dropped when the test ends.
func PostgresSchemaURL(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	schema := "t_" + randomHex(t, 8)
	admin, err := storage.Open(context.Background(), base)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL (%s): %v", EnvPostgresURL, err)
	}
	if err := admin.Gorm.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		_ = admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = admin.Gorm.WithContext(ctx).Exec("DROP SCHEMA " + schema + " CASCADE").Error
		_ = admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgresURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// ForEachDialect runs fn as a subtest on every inventory backend with a fresh migrated database.
func ForEachDialect(t *testing.T, fn func(t *testing.T, db *storage.DB)) {
	t.Helper()
	for _, dialect := range Dialects {
		t.Run(dialect, func(t *testing.T) {
			fn(t, Open(t, dialect))
		})
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(hex.EncodeToString(b))
}

// RowCounts counts the rows of every inventory table, the policies that prefer a path and the
// sum of the sites' versions, so a test can tell that a request changed nothing, or that what
// a deletion reports is what disappeared.
func RowCounts(t testing.TB, db *storage.DB) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, query := range map[string]string{
		"sites":             "SELECT count(*) FROM sites",
		"endpoints":         "SELECT count(*) FROM endpoints",
		"paths":             "SELECT count(*) FROM paths",
		"path_metrics":      "SELECT count(*) FROM path_metrics",
		"policies":          "SELECT count(*) FROM policies",
		"policies_pathed":   "SELECT count(*) FROM policies WHERE path_id IS NOT NULL",
		"audit_entries":     "SELECT count(*) FROM changes",
		"policy_stats":      "SELECT count(*) FROM policy_stats",
		"api_tokens":        "SELECT count(*) FROM api_tokens",
		"sites_version_sum": "SELECT coalesce(sum(version), 0) FROM sites",
	} {
		var n int64
		if err := db.SQL().QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", name, err)
		}
		out[name] = n
	}
	return out
}

// AssertNoOrphans checks every rule of storage.RequiredForeignKeys by query: no row may
// reference a row that is gone.
func AssertNoOrphans(t testing.TB, db *storage.DB) {
	t.Helper()
	for _, fk := range storage.RequiredForeignKeys {
		query := fmt.Sprintf("SELECT count(*) FROM %s x WHERE x.%s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s r WHERE r.%s = x.%s)",
			fk.Table, fk.Column, fk.RefTable, fk.RefColumn, fk.Column)
		var n int64
		if err := db.SQL().QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("check %s.%s: %v", fk.Table, fk.Column, err)
		}
		if n != 0 {
			t.Errorf("%d rows of %s.%s reference a missing %s row", n, fk.Table, fk.Column, fk.RefTable)
		}
	}
}
