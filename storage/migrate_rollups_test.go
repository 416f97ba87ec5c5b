package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestMigrateClusteredRollupsKeepsRows upgrades a SQLite database with 1m rollup rows from
// version 7 to the clustered 1m table: every row is kept, the table is WITHOUT ROWID, and its
// primary key and bucket index still hold.
func TestMigrateClusteredRollupsKeepsRows(t *testing.T) {
	ctx := context.Background()
	db := storagetest.OpenUnmigrated(t, storage.DialectSQLite)
	if err := db.MigrateUpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	type row struct {
		PolicyID, Bucket, Packets, Bytes int64
		Rates                            string
	}
	rows := []row{{3, 60, 10, 1000, "0:400 10:600"}, {-1, 60, 30, 3000, "0:1400 10:1600"}, {3, 120, 1, 5, "50:5"}}
	for _, r := range rows {
		if err := db.Gorm.Exec(`INSERT INTO policy_stats_1m (policy_id, bucket, packets, bytes, samples, active_flows, max_bytes, last_at, last_bytes, rates)
VALUES (?, ?, ?, ?, 2, 1, 600, ?, 600, ?)`, r.PolicyID, r.Bucket, r.Packets, r.Bytes, r.Bucket+10, r.Rates).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var got []row
	if err := db.Gorm.Raw("SELECT policy_id, bucket, packets, bytes, rates FROM policy_stats_1m ORDER BY bucket, policy_id").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	want := []row{rows[1], rows[0], rows[2]}
	if len(got) != len(want) {
		t.Fatalf("rows after the migration: %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d after the migration: %+v, want %+v", i, got[i], want[i])
		}
	}
	var schema string
	if err := db.Gorm.Raw("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'policy_stats_1m'").Scan(&schema).Error; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(schema, "WITHOUT ROWID") {
		t.Errorf("policy_stats_1m is not clustered: %s", schema)
	}
	if err := db.Gorm.Exec(`INSERT INTO policy_stats_1m (policy_id, bucket, packets, bytes, samples, active_flows, max_bytes, last_at, last_bytes, rates)
VALUES (3, 60, 1, 1, 1, 1, 1, 0, 0, '')`).Error; err == nil {
		t.Error("a second row of policy 3 at bucket 60 was accepted: the primary key is gone")
	}
	var indexes int64
	if err := db.Gorm.Raw("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'policy_stats_1m_bucket_idx'").Scan(&indexes).Error; err != nil || indexes != 1 {
		t.Errorf("bucket index: %d, %v", indexes, err)
	}
}
