package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// eventPathDeleted is broadcast once per removed path, whatever removed it.
const eventPathDeleted = "path.deleted"

// ListSiteEndpoints answers one page of the site's endpoints the filters select, in the order
// asked; 404 if the site does not exist.
func (s *Server) ListSiteEndpoints(c *gin.Context, siteID apigen.SiteID, params apigen.ListSiteEndpointsParams) {
	lp, err := sortedListParamsOf(c, params.Limit, params.Cursor, uuidKey, params.Sort)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := s.store.Sites().Get(ctx, siteID.String()); err != nil {
		writeError(c, err)
		return
	}
	f := storage.EndpointFilter{SiteID: siteID.String(), Name: deref(params.Name), Query: deref(params.Q), WANKind: string(deref(params.WANKind))}
	page, err := s.store.Endpoints().ListFiltered(ctx, f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.EndpointList{Items: make([]apigen.Endpoint, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, e := range page.Items {
		out.Items[i] = endpointOut(e)
	}
	c.JSON(http.StatusOK, out)
}

// ListEndpoints answers one page of the endpoints of every site the filters select, in the
// order asked; a site_id naming no site is a 404.
func (s *Server) ListEndpoints(c *gin.Context, params apigen.ListEndpointsParams) {
	lp, err := sortedListParamsOf(c, params.Limit, params.Cursor, uuidKey, params.Sort)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	f := storage.EndpointFilter{Name: deref(params.Name), Query: deref(params.Q), WANKind: string(deref(params.WANKind))}
	if params.SiteID != nil {
		f.SiteID = params.SiteID.String()
		if _, err := s.store.Sites().Get(ctx, f.SiteID); err != nil {
			writeError(c, err)
			return
		}
	}
	page, err := s.store.Endpoints().ListFiltered(ctx, f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.EndpointList{Items: make([]apigen.Endpoint, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, e := range page.Items {
		out.Items[i] = endpointOut(e)
	}
	c.JSON(http.StatusOK, out)
}

// CreateEndpoint adds an endpoint to a site, with its audit entry; 404 if the site does not
// exist or is deleted meanwhile, 409 naming the endpoint that already has the address.
func (s *Server) CreateEndpoint(c *gin.Context, siteID apigen.SiteID) {
	var in apigen.EndpointCreate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	e := storage.Endpoint{
		SiteID: siteID.String(), Name: in.Name, Interface: deref(in.Interface), Address: in.Address,
		WANKind: string(apigen.WANKindOther),
	}
	if in.WANKind != nil {
		e.WANKind = string(*in.WANKind)
	}
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		if err := tx.Endpoints().Create(ctx, &e); err != nil {
			return err
		}
		var err error
		if e, err = tx.Endpoints().Get(ctx, e.ID); err != nil { // as stored, timestamps included
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindEndpointCreated, e.ID, map[string]any{"after": endpointSummary(e)}, storage.Effects{})
		return err
	})
	if err != nil {
		writeError(c, s.addressTaken(ctx, err, in.Address))
		return
	}
	s.applied(c, seq)
	writeCreated(c, "/api/v1/endpoints/"+e.ID, endpointOut(e))
}

// GetEndpoint answers one endpoint.
func (s *Server) GetEndpoint(c *gin.Context, endpointID apigen.EndpointID) {
	e, err := s.store.Endpoints().Get(c.Request.Context(), endpointID.String())
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, endpointOut(e))
}

// UpdateEndpoint changes the fields present in the body, with its audit entry; 409 naming the
// endpoint that already has a new address.
func (s *Server) UpdateEndpoint(c *gin.Context, endpointID apigen.EndpointID) {
	var in apigen.EndpointUpdate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	var e storage.Endpoint
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := tx.Endpoints().Get(ctx, endpointID.String())
		if err != nil {
			return err
		}
		e = before
		if in.Name != nil {
			e.Name = *in.Name
		}
		if in.Interface != nil {
			e.Interface = *in.Interface
		}
		if in.Address != nil {
			e.Address = *in.Address
		}
		if in.WANKind != nil {
			e.WANKind = string(*in.WANKind)
		}
		if err := tx.Endpoints().Update(ctx, &e); err != nil {
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindEndpointUpdated, e.ID, changeDetails(endpointSummary(before), endpointSummary(e)), storage.Effects{})
		return err
	})
	if err != nil {
		if in.Address != nil {
			err = s.addressTaken(ctx, err, *in.Address)
		}
		writeError(c, err)
		return
	}
	s.applied(c, seq)
	c.JSON(http.StatusOK, endpointOut(e))
}

// DeleteEndpoint removes an endpoint and, by cascade, every path touching it. The paths are
// listed first so the audit entry, the path.deleted events and the cache invalidation name
// each of them.
func (s *Server) DeleteEndpoint(c *gin.Context, endpointID apigen.EndpointID) {
	ctx := c.Request.Context()
	id := endpointID.String()
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := tx.Endpoints().Get(ctx, id)
		if err != nil {
			return err
		}
		pathIDs, err := pathsOfEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		prefs, err := tx.Policies().Preferring(ctx, pathIDs)
		if err != nil {
			return err
		}
		if err := tx.Endpoints().Delete(ctx, id); err != nil {
			return err
		}
		policyEvents, err := tx.Policies().PathsCleared(ctx, prefs)
		if err != nil {
			return err
		}
		policyIDs := policyIDsOf(prefs)
		seq, err = s.record(ctx, tx, c, storage.KindEndpointDeleted, id,
			map[string]any{"before": endpointSummary(before), "paths_deleted": pathIDs, "policies_updated": policyIDs},
			storage.Effects{PathIDs: pathIDs, PolicyIDs: policyIDs, Events: policyEvents})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq)
	c.Status(http.StatusNoContent)
}

// pathsOfEndpoint lists the ids of the paths with either end at the endpoint.
func pathsOfEndpoint(ctx context.Context, tx *storage.Store, endpointID string) ([]int64, error) {
	ids := []int64{}
	err := tx.Gorm().WithContext(ctx).Model(&storage.Path{}).
		Where("local_endpoint_id = ? OR remote_endpoint_id = ?", endpointID, endpointID).
		Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("paths of endpoint %s: %w", endpointID, err)
	}
	return ids, nil
}
