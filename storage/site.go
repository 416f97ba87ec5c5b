package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SiteStore reads and writes sites.
type SiteStore struct {
	db      *gorm.DB
	dialect string
}

// Create stores a new site, assigning its id (a time-ordered UUIDv7) and version 1.
func (s *SiteStore) Create(ctx context.Context, site *Site) error {
	if strings.TrimSpace(site.Name) == "" {
		return fmt.Errorf("create site: %w: name is required", ErrInvalid)
	}
	if site.ID == "" {
		site.ID = newID()
	}
	site.Version = 1
	return translate(s.db.WithContext(ctx).Create(site).Error, "create site")
}

// Get returns the site with the given id.
func (s *SiteStore) Get(ctx context.Context, id string) (Site, error) {
	if !validUUID(id) {
		return Site{}, fmt.Errorf("get site %s: %w", id, ErrNotFound)
	}
	var site Site
	err := s.db.WithContext(ctx).Take(&site, "id = ?", id).Error
	return site, translate(err, "get site "+id)
}

// ByName returns the site named name (names are unique), or ErrNotFound.
func (s *SiteStore) ByName(ctx context.Context, name string) (Site, error) {
	var site Site
	err := s.db.WithContext(ctx).Take(&site, "name = ?", name).Error
	return site, translate(err, "get site named "+name)
}

// GetForUpdate returns the site and, inside a transaction on PostgreSQL, locks its row until
// the transaction ends, so concurrent writers that reference it wait. SQLite transactions
// opened by this package already hold the database's write lock.
func (s *SiteStore) GetForUpdate(ctx context.Context, id string) (Site, error) {
	if !validUUID(id) {
		return Site{}, fmt.Errorf("lock site %s: %w", id, ErrNotFound)
	}
	q := s.db.WithContext(ctx)
	if s.dialect == DialectPostgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var site Site
	err := q.Take(&site, "id = ?", id).Error
	return site, translate(err, "lock site "+id)
}

// List returns one page of sites in creation order.
func (s *SiteStore) List(ctx context.Context, p ListParams) (Page[Site], error) {
	return s.ListFiltered(ctx, SiteFilter{}, p)
}

// SiteFilter narrows a site listing; zero fields do not filter.
type SiteFilter struct {
	// Name is an exact name.
	Name string
	// Query is a case-insensitive substring of the name, location or description.
	Query string
}

// siteList is how sites are paged and the orders they can be listed in.
var siteList = listSpec[Site]{
	keyColumn: "id", keyOf: func(x Site) string { return x.ID }, keyArg: uuidArg,
	sorts: map[string]sortColumn[Site]{
		"name":       nameSort(func(x Site) string { return x.Name }),
		"created_at": createdAtSort(func(x Site) time.Time { return x.CreatedAt }),
	},
}

// ListFiltered returns one page of the sites f selects, in the order p asks.
func (s *SiteStore) ListFiltered(ctx context.Context, f SiteFilter, p ListParams) (Page[Site], error) {
	q := s.db.Model(&Site{})
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.Query != "" {
		q = containsFold(q, f.Query, "name", "location", "description")
	}
	page, err := listSorted(ctx, q, siteList, p)
	return page, translate(err, "list sites")
}

// Update saves the site's name, location and description and bumps its version. When
// expectedVersion is not nil the update only happens if the stored version still equals it;
// otherwise it fails with ErrConflict.
func (s *SiteStore) Update(ctx context.Context, site *Site, expectedVersion *int64) error {
	if strings.TrimSpace(site.Name) == "" {
		return fmt.Errorf("update site: %w: name is required", ErrInvalid)
	}
	q := s.db.WithContext(ctx).Model(&Site{}).Where("id = ?", site.ID)
	if expectedVersion != nil {
		q = q.Where("version = ?", *expectedVersion)
	}
	res := q.Updates(map[string]any{
		"name":        site.Name,
		"location":    site.Location,
		"description": site.Description,
		"version":     gorm.Expr("version + 1"),
		"updated_at":  s.db.NowFunc(),
	})
	if res.Error != nil {
		return translate(res.Error, "update site "+site.ID)
	}
	if res.RowsAffected == 0 {
		if _, err := s.Get(ctx, site.ID); err != nil {
			return err
		}
		return fmt.Errorf("update site %s: %w: version changed", site.ID, ErrConflict)
	}
	updated, err := s.Get(ctx, site.ID)
	if err != nil {
		return err
	}
	*site = updated
	return nil
}

// Delete removes the site; the database cascades to its endpoints, their paths and metrics.
func (s *SiteStore) Delete(ctx context.Context, id string) error {
	if !validUUID(id) {
		return fmt.Errorf("delete site %s: %w", id, ErrNotFound)
	}
	res := s.db.WithContext(ctx).Delete(&Site{}, "id = ?", id)
	if res.Error != nil {
		return translate(res.Error, "delete site "+id)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete site %s: %w", id, ErrNotFound)
	}
	return nil
}

func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}

func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}

func uuidArg(s string) (any, error) {
	if !validUUID(s) {
		return nil, ErrInvalid
	}
	return s, nil
}
