package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// requireDuplicate checks that err is a DuplicateError of the key.
func requireDuplicate(t *testing.T, err error, key string) {
	t.Helper()
	var dup *storage.DuplicateError
	if !errors.As(err, &dup) || dup.Key != key || !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("err = %v (%T), want a DuplicateError of %s matching ErrConflict", err, err, key)
	}
	if strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "SQLSTATE") {
		t.Errorf("the message shows the database's words: %v", err)
	}
}

func TestUniqueInventoryKeys(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)
		site := storage.Site{Name: "paris"}
		must(t, s.Sites().Create(ctx, &site))
		requireDuplicate(t, s.Sites().Create(ctx, &storage.Site{Name: "paris"}), storage.UniqueSiteName)

		// Addresses are stored canonical, so two spellings of one address clash.
		a := storage.Endpoint{SiteID: site.ID, Name: "a", Address: "2001:DB8:0::1"}
		must(t, s.Endpoints().Create(ctx, &a))
		if a.Address != "2001:db8::1" {
			t.Errorf("stored address %q, want the canonical 2001:db8::1", a.Address)
		}
		requireDuplicate(t, s.Endpoints().Create(ctx, &storage.Endpoint{SiteID: site.ID, Name: "b", Address: "2001:db8::1"}),
			storage.UniqueEndpointAddress)
		b := storage.Endpoint{SiteID: site.ID, Name: "b", Address: "192.0.2.7"}
		must(t, s.Endpoints().Create(ctx, &b))
		moved := b
		moved.Address = "2001:db8:0:0::1"
		requireDuplicate(t, s.Endpoints().Update(ctx, &moved), storage.UniqueEndpointAddress)
		if got, err := s.Endpoints().ByAddress(ctx, "2001:0DB8::0001"); err != nil || got.ID != a.ID {
			t.Errorf("ByAddress = %+v, %v; want endpoint %s", got, err, a.ID)
		}
		if _, err := s.Endpoints().ByAddress(ctx, "198.51.100.9"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ByAddress of an unused address: %v", err)
		}

		// One path per direction between two endpoints.
		ab := storage.Path{Name: "ab", LocalEndpointID: a.ID, RemoteEndpointID: b.ID}
		must(t, s.Paths().Create(ctx, &ab))
		must(t, s.Paths().Create(ctx, &storage.Path{Name: "ba", LocalEndpointID: b.ID, RemoteEndpointID: a.ID}))
		requireDuplicate(t, s.Paths().Create(ctx, &storage.Path{Name: "ab2", LocalEndpointID: a.ID, RemoteEndpointID: b.ID}),
			storage.UniquePathEnds)
		if got, err := s.Paths().ByEnds(ctx, a.ID, b.ID); err != nil || got.ID != ab.ID {
			t.Errorf("ByEnds = %+v, %v; want path %d", got, err, ab.ID)
		}

		// Token names are unique among live tokens; a revoked token's name is free again.
		tok, _, err := s.Tokens().Create(ctx, "ci", storage.RoleViewer)
		must(t, err)
		_, _, err = s.Tokens().Create(ctx, "ci", storage.RoleAdmin)
		requireDuplicate(t, err, storage.UniqueTokenName)
		if got, err := s.Tokens().LiveByName(ctx, "ci"); err != nil || got.ID != tok.ID {
			t.Errorf("LiveByName = %+v, %v; want token %d", got, err, tok.ID)
		}
		_, err = s.Tokens().Revoke(ctx, tok.ID)
		must(t, err)
		_, _, err = s.Tokens().Create(ctx, "ci", storage.RoleViewer)
		must(t, err)
	})
}

func TestMigrateUniqueInventoryRefusesDuplicates(t *testing.T) {
	for _, dialect := range storagetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storagetest.OpenUnmigrated(t, dialect)
			if err := db.MigrateUpTo(ctx, 3); err != nil {
				t.Fatal(err)
			}
			// Rows as version 3 allowed them: two spellings of one address, two paths between
			// the same endpoints, two live tokens of one name (and a revoked third).
			now := time.Now().UTC()
			site, e1, e2, e3 := "0190f5c4-0000-7000-8000-000000000001", "0190f5c4-0000-7000-8000-00000000000a",
				"0190f5c4-0000-7000-8000-00000000000b", "0190f5c4-0000-7000-8000-00000000000c"
			exec := func(sql string, args ...any) {
				t.Helper()
				if err := db.Gorm.Exec(sql, args...).Error; err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			exec("INSERT INTO sites (id, name, created_at, updated_at) VALUES (?, 'paris', ?, ?)", site, now, now)
			for _, e := range []struct{ id, name, addr string }{{e1, "wan1", "2001:DB8:0::1"}, {e2, "wan2", "2001:db8::1"}, {e3, "wan3", "192.0.2.1"}} {
				exec("INSERT INTO endpoints (id, site_id, name, address, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)", e.id, site, e.name, e.addr, now, now)
			}
			for _, name := range []string{"p1", "p2"} {
				exec("INSERT INTO paths (name, local_endpoint_id, remote_endpoint_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)", name, e1, e3, now, now)
			}
			exec("INSERT INTO paths (name, local_endpoint_id, remote_endpoint_id, created_at, updated_at) VALUES ('back', ?, ?, ?, ?)", e3, e1, now, now)
			for i, revoked := range []any{nil, nil, now} {
				exec("INSERT INTO api_tokens (name, role, hash, created_at, revoked_at) VALUES ('ci', 'viewer', ?, ?, ?)", fmt.Sprint("hash", i), now, revoked)
			}
			before := storagetest.RowCounts(t, db)

			err := db.Migrate(ctx)
			if err == nil {
				t.Fatal("Migrate succeeded over duplicates")
			}
			for _, want := range []string{
				"endpoints " + e1 + " (wan1, site " + site + "), " + e2 + " (wan2, site " + site + ") share address 2001:db8::1",
				"paths 1 (p1), 2 (p2) all run from endpoint " + e1 + " to endpoint " + e3,
				`live tokens 1, 2 are all named "ci"`,
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Migrate error does not say %q:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), "back") || strings.Contains(err.Error(), "tokens 1, 2, 3") {
				t.Errorf("Migrate error names rows that are no duplicates: %v", err)
			}
			// Nothing changed: still version 3, the rows and their spellings as they were.
			if v, err := db.MigrationVersion(ctx); err != nil || v != 3 {
				t.Errorf("version after the refused migration = %d, %v; want 3", v, err)
			}
			if after := storagetest.RowCounts(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("rows changed: before %v, after %v", before, after)
			}
			var addr string
			if err := db.Gorm.Raw("SELECT address FROM endpoints WHERE id = ?", e1).Scan(&addr).Error; err != nil || addr != "2001:DB8:0::1" {
				t.Errorf("address of %s after the refused migration = %q, %v; want it untouched", e1, addr, err)
			}

			// Once the operator resolves them, the migration goes through and canonicalises.
			exec("DELETE FROM endpoints WHERE id = ?", e2)
			exec("DELETE FROM paths WHERE name = 'p2'")
			exec("UPDATE api_tokens SET name = 'ci-old' WHERE id = 2")
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("Migrate after resolving the duplicates: %v", err)
			}
			if v, err := db.MigrationVersion(ctx); err != nil || v < 4 {
				t.Errorf("version = %d, %v; want at least 4", v, err)
			}
			if err := db.Gorm.Raw("SELECT address FROM endpoints WHERE id = ?", e1).Scan(&addr).Error; err != nil || addr != "2001:db8::1" {
				t.Errorf("address of %s = %q, %v; want the canonical 2001:db8::1", e1, addr, err)
			}
			s := storage.NewStore(db)
			err = s.Endpoints().Create(ctx, &storage.Endpoint{SiteID: site, Name: "again", Address: "2001:db8:0:0:0:0:0:1"})
			requireDuplicate(t, err, storage.UniqueEndpointAddress)
		})
	}
}
