package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// ListPaths answers one page of the paths the filters select, in the order asked; a site
// filter naming a site that does not exist is a 404.
func (s *Server) ListPaths(c *gin.Context, params apigen.ListPathsParams) {
	lp, err := sortedListParamsOf(c, params.Limit, params.Cursor, int64Key, params.Sort)
	if err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	f := storage.PathFilter{Name: deref(params.Name), Query: deref(params.Q), Status: string(deref(params.Status))}
	for _, site := range []struct {
		param *apigen.SiteID
		into  *string
	}{{params.SiteID, &f.SiteID}, {params.LocalSiteID, &f.LocalSiteID}, {params.RemoteSiteID, &f.RemoteSiteID}} {
		if site.param == nil {
			continue
		}
		*site.into = site.param.String()
		if _, err := s.store.Sites().Get(ctx, *site.into); err != nil {
			writeError(c, err)
			return
		}
	}
	page, err := s.store.Paths().ListFiltered(ctx, f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.PathList{Items: make([]apigen.Path, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, p := range page.Items {
		out.Items[i] = pathOut(p)
	}
	c.JSON(http.StatusOK, out)
}

// CreatePath stores a path between two existing endpoints, with its audit entry. An endpoint
// id that names nothing is a 422 on its field; one deleted while the path is created is a 409,
// and so is a second path from the same local to the same remote endpoint (naming the first).
func (s *Server) CreatePath(c *gin.Context) {
	var in apigen.PathCreate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	if in.LocalEndpointID == in.RemoteEndpointID {
		writeError(c, fieldError("remote_endpoint_id", "must differ from local_endpoint_id"))
		return
	}
	ctx := c.Request.Context()
	p := storage.Path{
		Name: in.Name, LocalEndpointID: in.LocalEndpointID.String(), RemoteEndpointID: in.RemoteEndpointID.String(),
		Status: string(apigen.PathStatusUp),
	}
	if in.Status != nil {
		p.Status = string(*in.Status)
	}
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		var missing []FieldError
		for _, end := range []struct{ field, id string }{
			{"local_endpoint_id", p.LocalEndpointID}, {"remote_endpoint_id", p.RemoteEndpointID},
		} {
			_, err := tx.Endpoints().Get(ctx, end.id)
			if errors.Is(err, storage.ErrNotFound) {
				missing = append(missing, FieldError{Field: end.field, Message: "no endpoint with id " + end.id})
			} else if err != nil {
				return err
			}
		}
		if len(missing) > 0 {
			return fieldErrors(errValidation, missing)
		}
		if err := tx.Paths().Create(ctx, &p); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return newError(storage.ErrConflict, "an endpoint of the path was deleted meanwhile")
			}
			return err
		}
		var err error
		if p, err = tx.Paths().Get(ctx, p.ID); err != nil { // as stored, timestamps included
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindPathCreated, resourceKey(p.ID), map[string]any{"after": pathSummary(p)},
			storage.Effects{PathIDs: []int64{p.ID}})
		return err
	})
	if err != nil {
		writeError(c, s.pathEndsTaken(ctx, err, in.LocalEndpointID.String(), in.RemoteEndpointID.String()))
		return
	}
	s.applied(c, seq)
	writeCreated(c, "/api/v1/paths/"+strconv.FormatInt(p.ID, 10), pathOut(p))
}

// GetPath answers one path.
func (s *Server) GetPath(c *gin.Context, pathID apigen.PathID) {
	p, err := s.store.Paths().Get(c.Request.Context(), pathID)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, pathOut(p))
}

// UpdatePath changes a path's name and/or status, with its audit entry, and drops what the
// caches hold about it.
func (s *Server) UpdatePath(c *gin.Context, pathID apigen.PathID) {
	var in apigen.PathUpdate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	var p storage.Path
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := tx.Paths().Get(ctx, pathID)
		if err != nil {
			return err
		}
		p = before
		if in.Name != nil {
			p.Name = *in.Name
		}
		if in.Status != nil {
			p.Status = string(*in.Status)
		}
		if err := tx.Paths().Update(ctx, &p); err != nil {
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindPathUpdated, resourceKey(p.ID), changeDetails(pathSummary(before), pathSummary(p)),
			storage.Effects{PathIDs: []int64{p.ID}})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq)
	c.JSON(http.StatusOK, pathOut(p))
}

// DeletePath removes a path and its metrics, with its audit entry; policies preferring it lose
// their path (updated_at moves, one policy.updated each). Broadcast as path.deleted.
func (s *Server) DeletePath(c *gin.Context, pathID apigen.PathID) {
	ctx := c.Request.Context()
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := tx.Paths().Get(ctx, pathID)
		if err != nil {
			return err
		}
		prefs, err := tx.Policies().Preferring(ctx, []int64{pathID})
		if err != nil {
			return err
		}
		if err := tx.Paths().Delete(ctx, pathID); err != nil {
			return err
		}
		policyEvents, err := tx.Policies().PathsCleared(ctx, prefs)
		if err != nil {
			return err
		}
		policyIDs := policyIDsOf(prefs)
		seq, err = s.record(ctx, tx, c, storage.KindPathDeleted, resourceKey(pathID),
			map[string]any{"before": pathSummary(before), "policies_updated": policyIDs},
			storage.Effects{PathIDs: []int64{pathID}, PolicyIDs: policyIDs, Events: policyEvents})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq)
	c.Status(http.StatusNoContent)
}

// policyIDsOf lists the policies of prefs, in their order.
func policyIDsOf(prefs []storage.PathPreference) []int64 {
	ids := make([]int64, len(prefs))
	for i, p := range prefs {
		ids[i] = p.PolicyID
	}
	return ids
}
