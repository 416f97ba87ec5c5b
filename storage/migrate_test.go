package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

func TestMigrateCreatesCascadeRules(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storagetest.OpenUnmigrated(t, dialect)
			if err := db.CheckForeignKeys(ctx); err == nil {
				t.Fatal("CheckForeignKeys passed on an empty database")
			}
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			// Replaying is a no-op.
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if v, err := db.MigrationVersion(ctx); err != nil || v < 1 {
				t.Fatalf("MigrationVersion = %d, %v", v, err)
			}
			fks, err := db.ForeignKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range storage.RequiredForeignKeys {
				found := false
				for _, fk := range fks {
					if fk.Table == want.Table && fk.Column == want.Column && fk.RefTable == want.RefTable {
						found = true
						if !strings.EqualFold(fk.OnDelete, want.OnDelete) {
							t.Errorf("%s.%s -> %s: ON DELETE %s, want %s", fk.Table, fk.Column, fk.RefTable, fk.OnDelete, want.OnDelete)
						}
					}
				}
				if !found {
					t.Errorf("catalog has no foreign key %s.%s -> %s", want.Table, want.Column, want.RefTable)
				}
			}
			if err := db.CheckForeignKeys(ctx); err != nil {
				t.Errorf("CheckForeignKeys: %v", err)
			}
		})
	}
}

func TestCheckForeignKeysDetectsMissingRule(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		// Rebuild path_metrics without its cascade, as a broken migration might leave it.
		stmts := []string{
			"DROP TABLE path_metrics",
			"CREATE TABLE path_metrics (path_id BIGINT PRIMARY KEY REFERENCES paths (id), latency_ms REAL)",
		}
		for _, s := range stmts {
			if err := db.Gorm.Exec(s).Error; err != nil {
				t.Fatal(err)
			}
		}
		err := db.CheckForeignKeys(ctx)
		if err == nil || !strings.Contains(err.Error(), "path_metrics.path_id") {
			t.Fatalf("CheckForeignKeys = %v, want it to name path_metrics.path_id", err)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{"mysql://localhost/x", "postgres://", "sqlite:"} {
		if db, err := storage.Open(ctx, url); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", url)
		}
	}
	// A server that is not there fails at Open, not later.
	if db, err := storage.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"); err == nil {
		db.Close()
		t.Error("Open of an unreachable PostgreSQL succeeded")
	}
}

func TestSQLiteEnforcesForeignKeysAndWAL(t *testing.T) {
	db := storagetest.Open(t, storage.DialectSQLite)
	var mode string
	if err := db.SQL().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var timeout int
	if err := db.SQL().QueryRow("PRAGMA busy_timeout").Scan(&timeout); err != nil || timeout < 1000 {
		t.Errorf("busy_timeout = %d, %v", timeout, err)
	}
	err := db.Gorm.Exec("INSERT INTO endpoints (id, site_id, name, address, created_at, updated_at) VALUES ('e', 'no-such-site', 'x', '10.0.0.1', 0, 0)").Error
	if err == nil {
		t.Error("insert of an endpoint of a missing site succeeded")
	}
}
