package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/patronus-sdwan/patronus/storage"
	"github.com/patronus-sdwan/patronus/storage/storagetest"
)

// inventory is a small fixture: two sites, an endpoint each, a path between them.
type inventory struct {
	a, b   storage.Site
	ea, eb storage.Endpoint
	path   storage.Path
}

func seed(t *testing.T, s *storage.Store) inventory {
	t.Helper()
	ctx := context.Background()
	var inv inventory
	inv.a = storage.Site{Name: "paris", Location: "FR"}
	inv.b = storage.Site{Name: "berlin", Location: "DE"}
	for _, site := range []*storage.Site{&inv.a, &inv.b} {
		if err := s.Sites().Create(ctx, site); err != nil {
			t.Fatal(err)
		}
	}
	inv.ea = storage.Endpoint{SiteID: inv.a.ID, Name: "wan0", Interface: "eth0", Address: "192.0.2.1", WANKind: "fiber"}
	inv.eb = storage.Endpoint{SiteID: inv.b.ID, Name: "wan0", Interface: "eth0", Address: "2001:db8::1", WANKind: "lte"}
	for _, e := range []*storage.Endpoint{&inv.ea, &inv.eb} {
		if err := s.Endpoints().Create(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	inv.path = storage.Path{Name: "paris-berlin", LocalEndpointID: inv.ea.ID, RemoteEndpointID: inv.eb.ID}
	if err := s.Paths().Create(ctx, &inv.path); err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestSiteStore(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		sites := storage.NewStore(db).Sites()
		site := storage.Site{Name: "lyon", Location: "FR", Description: "branch"}
		if err := sites.Create(ctx, &site); err != nil {
			t.Fatal(err)
		}
		if site.ID == "" || site.Version != 1 {
			t.Fatalf("created site %+v", site)
		}
		got, err := sites.Get(ctx, site.ID)
		if err != nil || got.Name != "lyon" || got.Description != "branch" || got.CreatedAt.IsZero() {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		t.Run("ErrConflict", func(t *testing.T) {
			dup := storage.Site{Name: "lyon"}
			if err := sites.Create(ctx, &dup); !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("duplicate name: %v", err)
			}
		})
		t.Run("ErrInvalid", func(t *testing.T) {
			if err := sites.Create(ctx, &storage.Site{Name: " "}); !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("blank name: %v", err)
			}
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			for _, id := range []string{"0190c0de-0000-7000-8000-000000000000", "not-a-uuid"} {
				if _, err := sites.Get(ctx, id); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Get(%s): %v", id, err)
				}
				if err := sites.Delete(ctx, id); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Delete(%s): %v", id, err)
				}
			}
		})
		t.Run("UpdateBumpsVersion", func(t *testing.T) {
			s := got
			s.Location = "Lyon, FR"
			v := int64(1)
			if err := sites.Update(ctx, &s, &v); err != nil {
				t.Fatal(err)
			}
			if s.Version != 2 || s.Location != "Lyon, FR" {
				t.Fatalf("after update %+v", s)
			}
			stale := int64(1)
			s.Location = "stale"
			if err := sites.Update(ctx, &s, &stale); !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("stale version: %v", err)
			}
			if again, _ := sites.Get(ctx, s.ID); again.Location != "Lyon, FR" {
				t.Fatalf("stale update changed the row: %+v", again)
			}
		})
		t.Run("Delete", func(t *testing.T) {
			if err := sites.Delete(ctx, site.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := sites.Get(ctx, site.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("after delete: %v", err)
			}
		})
	})
}

func TestListPagination(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		sites := storage.NewStore(db).Sites()
		want := map[string]bool{}
		for i := range 7 {
			s := storage.Site{Name: fmt.Sprintf("site-%d", i)}
			if err := sites.Create(ctx, &s); err != nil {
				t.Fatal(err)
			}
			want[s.ID] = true
		}
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			page, err := sites.List(ctx, storage.ListParams{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, s := range page.Items {
				if seen[s.ID] {
					t.Fatalf("site %s on two pages", s.ID)
				}
				seen[s.ID] = true
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		if pages != 3 || len(seen) != len(want) {
			t.Fatalf("pages=%d seen=%d, want 3 pages and %d sites", pages, len(seen), len(want))
		}
		for _, bad := range []storage.ListParams{{Limit: -1}, {Limit: 1001}, {Cursor: "!!"}, {Cursor: storage.EncodeCursor("x")}} {
			if _, err := sites.List(ctx, bad); !errors.Is(err, storage.ErrInvalid) {
				t.Errorf("List(%+v): %v, want ErrInvalid", bad, err)
			}
		}
	})
}

func TestEndpointAndPathStores(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)
		inv := seed(t, s)
		t.Run("EndpointOfMissingSite", func(t *testing.T) {
			e := storage.Endpoint{SiteID: "0190c0de-0000-7000-8000-000000000000", Name: "x", Address: "10.0.0.1"}
			if err := s.Endpoints().Create(ctx, &e); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("create: %v", err)
			}
		})
		t.Run("EndpointBadAddress", func(t *testing.T) {
			e := storage.Endpoint{SiteID: inv.a.ID, Name: "x", Address: "300.1.1.1"}
			if err := s.Endpoints().Create(ctx, &e); !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("create: %v", err)
			}
		})
		t.Run("EndpointUpdate", func(t *testing.T) {
			e := inv.ea
			e.Address = "198.51.100.7"
			if err := s.Endpoints().Update(ctx, &e); err != nil || e.Address != "198.51.100.7" {
				t.Fatalf("update: %+v %v", e, err)
			}
			page, err := s.Endpoints().ListBySite(ctx, inv.a.ID, storage.ListParams{})
			if err != nil || len(page.Items) != 1 || page.Items[0].ID != e.ID {
				t.Fatalf("ListBySite = %+v, %v", page, err)
			}
		})
		t.Run("PathToMissingEndpoint", func(t *testing.T) {
			p := storage.Path{Name: "x", LocalEndpointID: inv.ea.ID, RemoteEndpointID: "0190c0de-0000-7000-8000-000000000000"}
			if err := s.Paths().Create(ctx, &p); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("create: %v", err)
			}
		})
		t.Run("PathBadStatus", func(t *testing.T) {
			p := storage.Path{Name: "x", LocalEndpointID: inv.ea.ID, RemoteEndpointID: inv.eb.ID, Status: "sideways"}
			if err := s.Paths().Create(ctx, &p); !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("create: %v", err)
			}
		})
		t.Run("PathListAndUpdate", func(t *testing.T) {
			for _, site := range []string{inv.a.ID, inv.b.ID, ""} {
				page, err := s.Paths().List(ctx, site, storage.ListParams{})
				if err != nil || len(page.Items) != 1 || page.Items[0].ID != inv.path.ID {
					t.Fatalf("List(site=%q) = %+v, %v", site, page, err)
				}
			}
			between, err := s.Paths().BetweenSites(ctx, inv.b.ID, inv.a.ID)
			if err != nil || len(between) != 1 {
				t.Fatalf("BetweenSites = %v, %v", between, err)
			}
			p := inv.path
			p.Status = storage.PathDegraded
			if err := s.Paths().Update(ctx, &p); err != nil || p.Status != storage.PathDegraded {
				t.Fatalf("update: %+v %v", p, err)
			}
		})
		t.Run("MetricsUpsertAndCascade", func(t *testing.T) {
			m := storage.PathMetrics{PathID: inv.path.ID, LatencyMs: 12.5, MTU: 1500, Score: 90, MeasuredAt: time.Now().UTC()}
			if err := s.Metrics().Put(ctx, &m); err != nil {
				t.Fatal(err)
			}
			m.LatencyMs = 20
			if err := s.Metrics().Put(ctx, &m); err != nil {
				t.Fatal(err)
			}
			got, err := s.Metrics().Get(ctx, inv.path.ID)
			if err != nil || got.LatencyMs != 20 {
				t.Fatalf("Get = %+v, %v", got, err)
			}
			if err := s.Metrics().Put(ctx, &storage.PathMetrics{PathID: 999999, MeasuredAt: time.Now()}); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("metrics of missing path: %v", err)
			}
		})
		t.Run("DeleteSiteCascades", func(t *testing.T) {
			pathID := inv.path.ID
			pol := storage.Policy{Name: "voice", Priority: 10, Enabled: true, ActionType: storage.ActionPreferPath, PathID: &pathID}
			if err := s.Policies().Create(ctx, &pol); err != nil {
				t.Fatal(err)
			}
			if err := s.Sites().Delete(ctx, inv.b.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Endpoints().Get(ctx, inv.eb.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("endpoint of deleted site: %v", err)
			}
			if _, err := s.Paths().Get(ctx, inv.path.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("path to deleted site: %v", err)
			}
			if _, err := s.Metrics().Get(ctx, inv.path.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("metrics of deleted path: %v", err)
			}
			got, err := s.Policies().Get(ctx, pol.ID)
			if err != nil || got.PathID != nil {
				t.Errorf("policy after its path was deleted: %+v, %v", got, err)
			}
			if _, err := s.Endpoints().Get(ctx, inv.ea.ID); err != nil {
				t.Errorf("endpoint of the other site: %v", err)
			}
		})
	})
}

func TestPolicyStore(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)
		inv := seed(t, s)
		proto := 17
		pathID := inv.path.ID
		p := storage.Policy{
			Name: "voip", Priority: 5, Enabled: true, Protocol: &proto,
			SrcCIDR: "10.1.2.3/16", DstCIDR: "2001:db8::/32",
			DstPorts:   []storage.PortRange{{From: 5060, To: 5061}, {From: 10000, To: 20000}},
			ActionType: storage.ActionPreferPath, PathID: &pathID,
		}
		if err := s.Policies().Create(ctx, &p); err != nil {
			t.Fatal(err)
		}
		got, err := s.Policies().Get(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SrcCIDR != "10.1.0.0/16" || *got.Protocol != 17 || len(got.DstPorts) != 2 || got.DstPorts[1].To != 20000 || *got.PathID != pathID {
			t.Fatalf("Get = %+v", got)
		}
		t.Run("ErrConflict", func(t *testing.T) {
			dup := storage.Policy{Name: "voip", ActionType: storage.ActionDrop}
			if err := s.Policies().Create(ctx, &dup); !errors.Is(err, storage.ErrConflict) {
				t.Fatalf("duplicate: %v", err)
			}
		})
		t.Run("ErrInvalid", func(t *testing.T) {
			bad := []storage.Policy{
				{Name: "a", ActionType: "teleport"},
				{Name: "b", ActionType: storage.ActionDrop, PathID: new(int64)},
				{Name: "c", ActionType: storage.ActionDrop, SrcCIDR: "10.0.0.0/33"},
				{Name: "d", ActionType: storage.ActionDrop, DstPorts: []storage.PortRange{{From: 9, To: 1}}},
			}
			for _, b := range bad {
				if err := s.Policies().Create(ctx, &b); !errors.Is(err, storage.ErrInvalid) {
					t.Errorf("Create(%s): %v", b.Name, err)
				}
			}
			missing := int64(424242)
			if err := s.Policies().Create(ctx, &storage.Policy{Name: "e", ActionType: storage.ActionPreferPath, PathID: &missing}); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("missing path: %v", err)
			}
		})
		t.Run("Update", func(t *testing.T) {
			u := got
			u.Protocol = nil
			u.Enabled = false
			u.ActionType = storage.ActionDrop
			u.PathID = nil
			if err := s.Policies().Update(ctx, &u); err != nil {
				t.Fatal(err)
			}
			if u.Protocol != nil || u.Enabled || u.PathID != nil || u.ActionType != storage.ActionDrop {
				t.Fatalf("after update %+v", u)
			}
			prefs, err := s.Policies().Preferring(ctx, []int64{pathID})
			if err != nil || len(prefs) != 0 {
				t.Fatalf("Preferring = %v, %v", prefs, err)
			}
		})
		t.Run("Delete", func(t *testing.T) {
			if err := s.Policies().Delete(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			if err := s.Policies().Delete(ctx, p.ID); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
		})
	})
}

func TestTokensAndAudit(t *testing.T) {
	storagetest.ForEachDialect(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.NewStore(db)
		tok, secret, err := s.Tokens().Create(ctx, "ci", storage.RoleOperator)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Hash == secret || tok.Hash != storage.HashToken(secret) {
			t.Fatal("token stored in clear or with the wrong hash")
		}
		var stored string
		if err := db.SQL().QueryRow("SELECT hash FROM api_tokens WHERE id = $1", tok.ID).Scan(&stored); err != nil || stored == secret {
			t.Fatalf("stored = %q, %v", stored, err)
		}
		if got, err := s.Tokens().Authenticate(ctx, secret); err != nil || got.Role != storage.RoleOperator {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
		if _, err := s.Tokens().Authenticate(ctx, secret+"x"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("wrong secret: %v", err)
		}
		if _, _, err := s.Tokens().Create(ctx, "x", "root"); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("bad role: %v", err)
		}
		if _, err := s.Tokens().Revoke(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Tokens().Authenticate(ctx, secret); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("revoked token still works: %v", err)
		}

		start := time.Now().UTC().Add(-time.Second)
		for i, kind := range []string{"site", "site", "policy"} {
			e := storage.AuditEntry{Actor: "ci", Action: "create", ResourceKind: kind, ResourceID: fmt.Sprint(i), Details: map[string]any{"n": i}}
			if err := s.Audit().Record(ctx, &e); err != nil {
				t.Fatal(err)
			}
		}
		page, err := s.Audit().List(ctx, storage.AuditFilter{ResourceKind: "site", Since: start}, storage.ListParams{})
		if err != nil || len(page.Items) != 2 || page.Items[1].Details["n"] != float64(1) {
			t.Fatalf("List = %+v, %v", page, err)
		}
		page, err = s.Audit().List(ctx, storage.AuditFilter{Until: start}, storage.ListParams{})
		if err != nil || len(page.Items) != 0 {
			t.Fatalf("List until start = %+v, %v", page, err)
		}
	})
}

func TestScoreMetrics(t *testing.T) {
	cases := []struct {
		m    storage.PathMetrics
		want int
	}{
		{storage.PathMetrics{BandwidthMbps: 1000}, 100},
		{storage.PathMetrics{LatencyMs: 20, JitterMs: 2, PacketLossPct: 0.5, BandwidthMbps: 100}, 89},
		{storage.PathMetrics{LatencyMs: 400, JitterMs: 50, PacketLossPct: 50, BandwidthMbps: 0}, 0},
		{storage.PathMetrics{LatencyMs: 40, BandwidthMbps: 5}, 85},
		{storage.PathMetrics{LatencyMs: -5, PacketLossPct: -1, BandwidthMbps: 50}, 100},
	}
	for _, c := range cases {
		if got := storage.ScoreMetrics(c.m); got != c.want {
			t.Errorf("ScoreMetrics(%+v) = %d, want %d", c.m, got, c.want)
		}
	}
	// Worse metrics never score higher.
	base := storage.PathMetrics{LatencyMs: 30, JitterMs: 3, PacketLossPct: 1, BandwidthMbps: 50}
	worse := base
	worse.PacketLossPct = 2
	if storage.ScoreMetrics(worse) >= storage.ScoreMetrics(base) {
		t.Error("more loss did not lower the score")
	}
}
