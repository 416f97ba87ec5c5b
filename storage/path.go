package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// PathStore reads and writes paths.
type PathStore struct {
	db *gorm.DB
}

func validatePath(p *Path) error {
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("%w: name is required", ErrInvalid)
	}
	if p.Status == "" {
		p.Status = PathUp
	}
	switch p.Status {
	case PathUp, PathDegraded, PathDown:
	default:
		return fmt.Errorf("%w: status %q is not up, degraded or down", ErrInvalid, p.Status)
	}
	if p.LocalEndpointID == p.RemoteEndpointID {
		return fmt.Errorf("%w: local and remote endpoint are the same", ErrInvalid)
	}
	return nil
}

// Create stores a new path between two existing endpoints. A missing endpoint, including one
// deleted while the path is being created, is ErrNotFound.
func (s *PathStore) Create(ctx context.Context, p *Path) error {
	if err := validatePath(p); err != nil {
		return fmt.Errorf("create path: %w", err)
	}
	for _, id := range []string{p.LocalEndpointID, p.RemoteEndpointID} {
		if !validUUID(id) {
			return fmt.Errorf("create path: endpoint %s: %w", id, ErrNotFound)
		}
	}
	err := s.db.WithContext(ctx).Create(p).Error
	if isForeignKeyError(err) {
		return fmt.Errorf("create path: endpoint %s or %s: %w", p.LocalEndpointID, p.RemoteEndpointID, ErrNotFound)
	}
	return translate(err, "create path")
}

// Get returns the path with the given id.
func (s *PathStore) Get(ctx context.Context, id int64) (Path, error) {
	var p Path
	err := s.db.WithContext(ctx).Take(&p, "id = ?", id).Error
	return p, translate(err, fmt.Sprintf("get path %d", id))
}

// List returns one page of paths; with a siteID, only paths with either end at that site.
func (s *PathStore) List(ctx context.Context, siteID string, p ListParams) (Page[Path], error) {
	return s.ListFiltered(ctx, PathFilter{SiteID: siteID}, p)
}

// PathFilter narrows a path listing; zero fields do not filter, and the fields given all apply.
type PathFilter struct {
	// SiteID selects paths with either end at an endpoint of this site.
	SiteID string
	// LocalSiteID selects paths whose local endpoint is at this site (the paths leaving it).
	LocalSiteID string
	// RemoteSiteID selects paths whose remote endpoint is at this site (the paths reaching it).
	RemoteSiteID string
	// Name is an exact name.
	Name string
	// Status is one path status.
	Status string
	// Query is a case-insensitive substring of the name.
	Query string
}

// pathList is how paths are paged and the orders they can be listed in.
var pathList = listSpec[Path]{
	keyColumn: "id", keyOf: func(x Path) string { return strconv.FormatInt(x.ID, 10) }, keyArg: int64Arg,
	sorts: map[string]sortColumn[Path]{
		"name":       nameSort(func(x Path) string { return x.Name }),
		"created_at": createdAtSort(func(x Path) time.Time { return x.CreatedAt }),
	},
}

// ListFiltered returns one page of the paths f selects, in the order p asks. A site id that is
// not a UUID selects nothing.
func (s *PathStore) ListFiltered(ctx context.Context, f PathFilter, p ListParams) (Page[Path], error) {
	q := s.db.Model(&Path{})
	for _, id := range []string{f.SiteID, f.LocalSiteID, f.RemoteSiteID} {
		if id != "" && !validUUID(id) {
			return Page[Path]{Items: []Path{}}, nil
		}
	}
	atSite := func(id string) *gorm.DB { return s.db.Model(&Endpoint{}).Select("id").Where("site_id = ?", id) }
	if f.SiteID != "" {
		q = q.Where("(local_endpoint_id IN (?) OR remote_endpoint_id IN (?))", atSite(f.SiteID), atSite(f.SiteID))
	}
	if f.LocalSiteID != "" {
		q = q.Where("local_endpoint_id IN (?)", atSite(f.LocalSiteID))
	}
	if f.RemoteSiteID != "" {
		q = q.Where("remote_endpoint_id IN (?)", atSite(f.RemoteSiteID))
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Query != "" {
		q = containsFold(q, f.Query, "name")
	}
	page, err := listSorted(ctx, q, pathList, p)
	return page, translate(err, "list paths")
}

// BetweenSites returns every path with one end at site a and the other at site b.
func (s *PathStore) BetweenSites(ctx context.Context, a, b string) ([]Path, error) {
	var paths []Path
	if !validUUID(a) || !validUUID(b) {
		return paths, nil
	}
	ends := func(site string) *gorm.DB { return s.db.Model(&Endpoint{}).Select("id").Where("site_id = ?", site) }
	err := s.db.WithContext(ctx).
		Where("(local_endpoint_id IN (?) AND remote_endpoint_id IN (?)) OR (local_endpoint_id IN (?) AND remote_endpoint_id IN (?))",
			ends(a), ends(b), ends(b), ends(a)).
		Order("id").Find(&paths).Error
	return paths, translate(err, "paths between sites")
}

// FromSiteToSite returns the paths that run from site src to site dst: local endpoint at src,
// remote endpoint at dst. A path runs from its local endpoint to its remote one.
func (s *PathStore) FromSiteToSite(ctx context.Context, src, dst string) ([]Path, error) {
	var paths []Path
	if !validUUID(src) || !validUUID(dst) {
		return paths, nil
	}
	ends := func(site string) *gorm.DB { return s.db.Model(&Endpoint{}).Select("id").Where("site_id = ?", site) }
	err := s.db.WithContext(ctx).
		Where("local_endpoint_id IN (?) AND remote_endpoint_id IN (?)", ends(src), ends(dst)).
		Order("id").Find(&paths).Error
	return paths, translate(err, "paths from site to site")
}

// ByEnds returns the path from the local to the remote endpoint; ErrNotFound if none.
func (s *PathStore) ByEnds(ctx context.Context, localEndpointID, remoteEndpointID string) (Path, error) {
	var p Path
	if !validUUID(localEndpointID) || !validUUID(remoteEndpointID) {
		return p, fmt.Errorf("path from %s to %s: %w", localEndpointID, remoteEndpointID, ErrNotFound)
	}
	err := s.db.WithContext(ctx).Take(&p, "local_endpoint_id = ? AND remote_endpoint_id = ?", localEndpointID, remoteEndpointID).Error
	return p, translate(err, fmt.Sprintf("path from %s to %s", localEndpointID, remoteEndpointID))
}

// Update saves the path's name, status and endpoints.
func (s *PathStore) Update(ctx context.Context, p *Path) error {
	if err := validatePath(p); err != nil {
		return fmt.Errorf("update path: %w", err)
	}
	res := s.db.WithContext(ctx).Model(&Path{}).Where("id = ?", p.ID).Updates(map[string]any{
		"name":               p.Name,
		"status":             p.Status,
		"local_endpoint_id":  p.LocalEndpointID,
		"remote_endpoint_id": p.RemoteEndpointID,
		"updated_at":         s.db.NowFunc(),
	})
	if isForeignKeyError(res.Error) {
		return fmt.Errorf("update path %d: endpoint: %w", p.ID, ErrNotFound)
	}
	if res.Error != nil {
		return translate(res.Error, fmt.Sprintf("update path %d", p.ID))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update path %d: %w", p.ID, ErrNotFound)
	}
	updated, err := s.Get(ctx, p.ID)
	*p = updated
	return err
}

// Delete removes the path; its metrics go with it and policies preferring it fall back to none.
func (s *PathStore) Delete(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Delete(&Path{}, "id = ?", id)
	if res.Error != nil {
		return translate(res.Error, fmt.Sprintf("delete path %d", id))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete path %d: %w", id, ErrNotFound)
	}
	return nil
}

func int64Arg(s string) (any, error) {
	return strconv.ParseInt(s, 10, 64)
}

func isForeignKeyError(err error) bool {
	return err != nil && errors.Is(err, gorm.ErrForeignKeyViolated)
}
