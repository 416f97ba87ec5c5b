package storage

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"gorm.io/gorm"
)

// EndpointStore reads and writes endpoints.
type EndpointStore struct {
	db *gorm.DB
}

func validateEndpoint(e *Endpoint) error {
	if strings.TrimSpace(e.Name) == "" {
		return fmt.Errorf("%w: name is required", ErrInvalid)
	}
	a, err := netip.ParseAddr(e.Address)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%w: address %q is not an IP address without zone", ErrInvalid, e.Address)
	}
	e.Address = a.String() // canonical, so the unique key compares addresses, not spellings
	return nil
}

// Create stores a new endpoint of an existing site, assigning its id.
func (s *EndpointStore) Create(ctx context.Context, e *Endpoint) error {
	if err := validateEndpoint(e); err != nil {
		return fmt.Errorf("create endpoint: %w", err)
	}
	if !validUUID(e.SiteID) {
		return fmt.Errorf("create endpoint: site %s: %w", e.SiteID, ErrNotFound)
	}
	if e.ID == "" {
		e.ID = newID()
	}
	err := s.db.WithContext(ctx).Create(e).Error
	if isForeignKeyError(err) {
		return fmt.Errorf("create endpoint: site %s: %w", e.SiteID, ErrNotFound)
	}
	return translate(err, "create endpoint")
}

// Get returns the endpoint with the given id.
func (s *EndpointStore) Get(ctx context.Context, id string) (Endpoint, error) {
	if !validUUID(id) {
		return Endpoint{}, fmt.Errorf("get endpoint %s: %w", id, ErrNotFound)
	}
	var e Endpoint
	err := s.db.WithContext(ctx).Take(&e, "id = ?", id).Error
	return e, translate(err, "get endpoint "+id)
}

// ListBySite returns one page of a site's endpoints.
func (s *EndpointStore) ListBySite(ctx context.Context, siteID string, p ListParams) (Page[Endpoint], error) {
	if !validUUID(siteID) {
		return Page[Endpoint]{}, fmt.Errorf("list endpoints of site %s: %w", siteID, ErrNotFound)
	}
	return s.ListFiltered(ctx, EndpointFilter{SiteID: siteID}, p)
}

// EndpointFilter narrows an endpoint listing; zero fields do not filter.
type EndpointFilter struct {
	// SiteID is the site the endpoints belong to.
	SiteID string
	// Name is an exact name.
	Name string
	// WANKind is one WAN kind.
	WANKind string
	// Query is a case-insensitive substring of the name, interface or address.
	Query string
}

// endpointList is how endpoints are paged and the orders they can be listed in.
var endpointList = listSpec[Endpoint]{
	keyColumn: "id", keyOf: func(x Endpoint) string { return x.ID }, keyArg: uuidArg,
	sorts: map[string]sortColumn[Endpoint]{
		"name":       nameSort(func(x Endpoint) string { return x.Name }),
		"created_at": createdAtSort(func(x Endpoint) time.Time { return x.CreatedAt }),
	},
}

// ListFiltered returns one page of the endpoints f selects, in the order p asks. A SiteID that
// is not a UUID selects nothing.
func (s *EndpointStore) ListFiltered(ctx context.Context, f EndpointFilter, p ListParams) (Page[Endpoint], error) {
	q := s.db.Model(&Endpoint{})
	if f.SiteID != "" {
		if !validUUID(f.SiteID) {
			return Page[Endpoint]{Items: []Endpoint{}}, nil
		}
		q = q.Where("site_id = ?", f.SiteID)
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.WANKind != "" {
		q = q.Where("wan_kind = ?", f.WANKind)
	}
	if f.Query != "" {
		q = containsFold(q, f.Query, "name", "interface", "address")
	}
	page, err := listSorted(ctx, q, endpointList, p)
	return page, translate(err, "list endpoints")
}

// Update saves the endpoint's name, interface, address and WAN kind.
func (s *EndpointStore) Update(ctx context.Context, e *Endpoint) error {
	if err := validateEndpoint(e); err != nil {
		return fmt.Errorf("update endpoint: %w", err)
	}
	res := s.db.WithContext(ctx).Model(&Endpoint{}).Where("id = ?", e.ID).Updates(map[string]any{
		"name":       e.Name,
		"interface":  e.Interface,
		"address":    e.Address,
		"wan_kind":   e.WANKind,
		"updated_at": s.db.NowFunc(),
	})
	if res.Error != nil {
		return translate(res.Error, "update endpoint "+e.ID)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update endpoint %s: %w", e.ID, ErrNotFound)
	}
	updated, err := s.Get(ctx, e.ID)
	*e = updated
	return err
}

// ByAddress returns the endpoint with the address (any spelling of it); ErrNotFound if none.
func (s *EndpointStore) ByAddress(ctx context.Context, address string) (Endpoint, error) {
	var e Endpoint
	err := s.db.WithContext(ctx).Take(&e, "address = ?", CanonicalAddress(address)).Error
	return e, translate(err, "endpoint with address "+address)
}

// Delete removes the endpoint; the database cascades to its paths and their metrics.
func (s *EndpointStore) Delete(ctx context.Context, id string) error {
	if !validUUID(id) {
		return fmt.Errorf("delete endpoint %s: %w", id, ErrNotFound)
	}
	res := s.db.WithContext(ctx).Delete(&Endpoint{}, "id = ?", id)
	if res.Error != nil {
		return translate(res.Error, "delete endpoint "+id)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete endpoint %s: %w", id, ErrNotFound)
	}
	return nil
}
