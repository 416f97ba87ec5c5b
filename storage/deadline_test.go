package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// TestStatementDeadlineIsUnavailableButMigrationsAreExempt on PostgreSQL: a statement slower
// than the deadline fails as ErrUnavailable soon after the deadline (a 503, not a hang), and
// the pool is usable afterwards; migrations run on their own pool.
func TestStatementDeadlineIsUnavailableButMigrationsAreExempt(t *testing.T) {
	ctx := context.Background()
	db, err := storage.OpenWith(ctx, storagetest.PostgresSchemaURL(t), storage.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	var n int
	err = db.Gorm.WithContext(ctx).Raw("SELECT 1 FROM pg_sleep(3)").Scan(&n).Error
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a 3 s statement took %s with a 300 ms deadline", took)
	}
	if _, ok := storage.AsUnavailable(err); !ok {
		t.Fatalf("slow statement: %v, want it unavailable", err)
	}
	err = db.Gorm.WithContext(ctx).Exec("SELECT pg_sleep(3)").Error
	if _, ok := storage.AsUnavailable(err); !ok {
		t.Fatalf("slow exec: %v, want it unavailable", err)
	}
	// Migrations run on their own pool, without statement_timeout or the deadlines.
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate with a short statement deadline: %v", err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := db.Gorm.WithContext(ctx).Raw("SELECT 1").Scan(&n).Error; err != nil || n != 1 {
		t.Fatalf("a fast statement after the slow ones: %v %d", err, n)
	}
}
