package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// maxListedIDs is how many endpoint and path ids a deletion result lists per site (the
// maxItems of DeletedIDs); the totals count them all.
const maxListedIDs = 1000

// GetSiteDependencies answers what deleting the site would affect.
func (s *Server) GetSiteDependencies(c *gin.Context, siteID apigen.SiteID) {
	deps, err := s.store.SiteDependencies(c.Request.Context(), siteID.String())
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, apigen.SiteDependencies{
		SiteID: siteID, Endpoints: deps.Endpoints, Paths: deps.Paths, PathMetrics: deps.PathMetrics,
		Policies: deps.Policies,
	})
}

// DeleteSite deletes a site with everything on it, or with dry_run reports what that would
// remove. If-Match guards against deleting a site that changed since the caller read it.
func (s *Server) DeleteSite(c *gin.Context, siteID apigen.SiteID, params apigen.DeleteSiteParams) {
	expected, err := parseIfMatch(params.IfMatch)
	if err != nil {
		writeError(c, err)
		return
	}
	id := siteID.String()
	opts := storage.DeleteSitesOptions{DryRun: deref(params.DryRun)}
	if expected != nil {
		opts.IfMatch = map[string]int64{id: *expected}
	}
	res, err := s.deleteSites(c, []string{id}, opts)
	if err != nil {
		writeError(c, deleteError(err, nil))
		return
	}
	c.JSON(http.StatusOK, siteDeletionOut(res.Sites[0], res.DryRun))
}

// BatchDeleteSites deletes several sites in one transaction, all or nothing, or with dry_run
// reports what that would remove.
func (s *Server) BatchDeleteSites(c *gin.Context) {
	var in apigen.SiteBatchDelete
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ids := make([]string, len(in.IDs))
	for i, id := range in.IDs {
		ids[i] = id.String()
	}
	res, err := s.deleteSites(c, ids, storage.DeleteSitesOptions{DryRun: deref(in.DryRun)})
	if err != nil {
		writeError(c, deleteError(err, ids))
		return
	}
	out := apigen.SiteBatchDeletionResult{
		Success: true, DryRun: res.DryRun, PoliciesUpdated: res.PoliciesUpdated,
		Deleted: apigen.BatchDeletionCounts{
			Sites: res.Deleted.Sites, Endpoints: res.Deleted.Endpoints, Paths: res.Deleted.Paths, PathMetrics: res.Deleted.PathMetrics,
		},
		Sites: make([]apigen.SiteDeletionResult, len(res.Sites)),
	}
	for i, r := range res.Sites {
		out.Sites[i] = siteDeletionOut(r, res.DryRun)
	}
	verb := "deleted"
	if res.DryRun {
		verb = "would be deleted"
	}
	out.Message = fmt.Sprintf("%d sites %s with %d endpoints and %d paths", res.Deleted.Sites, verb, res.Deleted.Endpoints, res.Deleted.Paths)
	c.JSON(http.StatusOK, out)
}

// deleteSites runs the deletion as the request's principal; storage records one site.deleted
// change per site in the deletion's transaction, and this waits until the local tailer has
// applied them (as every replica does): caches drop the removed paths, each site is broadcast
// as site.deleted and each path as path.deleted (with its site's audit id), and the collector
// recompiles the policies that lost their path.
func (s *Server) deleteSites(c *gin.Context, ids []string, opts storage.DeleteSitesOptions) (storage.SiteDeletion, error) {
	opts.Actor = principalOf(c).Name
	opts.IDCap = -1
	res, err := s.store.DeleteSites(c.Request.Context(), ids, opts)
	if err != nil || res.DryRun {
		return res, err
	}
	var seq int64
	for _, r := range res.Sites {
		seq = max(seq, r.AuditID)
	}
	s.applied(c, seq)
	return res, nil
}

// deleteError words the deletion's refusals for the client: a stale If-Match names the
// header, and the unknown sites of a batch are named by their index in ids.
func deleteError(err error, ids []string) error {
	var stale *storage.VersionConflictError
	if errors.As(err, &stale) {
		return &apiError{kind: errPrecondition,
			detail: fmt.Sprintf("the site is at version %d, not the one If-Match names; nothing was deleted", stale.Current),
			fields: []FieldError{{Field: "If-Match", Message: "is not the current version"}}}
	}
	var missing *storage.SitesNotFoundError
	if !errors.As(err, &missing) {
		return err
	}
	if ids == nil {
		return newError(storage.ErrNotFound, "no site with id %s", missing.IDs[0])
	}
	unknown := make(map[string]bool, len(missing.IDs))
	for _, id := range missing.IDs {
		unknown[id] = true
	}
	var fields []FieldError
	for i, id := range ids {
		if unknown[id] {
			fields = append(fields, FieldError{Field: "ids[" + strconv.Itoa(i) + "]", Message: "no site with id " + id})
			delete(unknown, id) // a repeated id is named once
		}
	}
	return &apiError{kind: storage.ErrNotFound,
		detail: fmt.Sprintf("%d of the sites do not exist; nothing was deleted", len(missing.IDs)), fields: fields}
}

// siteDeletionOut is one site's part of a deletion result, its id lists capped at
// maxListedIDs.
func siteDeletionOut(r storage.SiteRemoval, dryRun bool) apigen.SiteDeletionResult {
	out := apigen.SiteDeletionResult{
		Success: true, DryRun: dryRun, SiteID: storedUUID(r.Site.ID), PoliciesUpdated: r.PoliciesUpdated,
		Deleted: apigen.DeletionCounts{Endpoints: r.Deleted.Endpoints, Paths: r.Deleted.Paths, PathMetrics: r.Deleted.PathMetrics},
		IDs: apigen.DeletedIDs{
			Endpoints: []uuid.UUID{}, Paths: r.PathIDs[:min(len(r.PathIDs), maxListedIDs)],
			EndpointsTotal: r.Deleted.Endpoints, PathsTotal: r.Deleted.Paths,
		},
	}
	for _, id := range r.EndpointIDs[:min(len(r.EndpointIDs), maxListedIDs)] {
		out.IDs.Endpoints = append(out.IDs.Endpoints, storedUUID(id))
	}
	out.IDs.Truncated = r.Truncated || int64(len(out.IDs.Endpoints)) < r.Deleted.Endpoints || int64(len(out.IDs.Paths)) < r.Deleted.Paths
	if !dryRun {
		out.AuditID = &r.AuditID
	}
	verb := "deleted"
	if dryRun {
		verb = "would be deleted"
	}
	out.Message = fmt.Sprintf("site %s %s with %d endpoints and %d paths", r.Site.Name, verb, r.Deleted.Endpoints, r.Deleted.Paths)
	return out
}
