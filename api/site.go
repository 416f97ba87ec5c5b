package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// Event types of site writes.
const (
	eventSiteCreated = "site.created"
	eventSiteUpdated = "site.updated"
)

// setETag sends a site's version as its strong entity tag.
func setETag(c *gin.Context, version int64) {
	c.Header("ETag", `"`+strconv.FormatInt(version, 10)+`"`)
}

// parseIfMatch returns the version an If-Match header names, or nil for `*` or no header. The
// validation middleware has checked the header's form against the spec.
func parseIfMatch(h *string) (*int64, error) {
	if h == nil || *h == "*" {
		return nil, nil
	}
	v, err := strconv.ParseInt(strings.Trim(*h, `"`), 10, 64)
	if err != nil {
		return nil, fieldErrors(errBadRequest, []FieldError{{Field: "If-Match", Message: `must be "<version>" or *`}})
	}
	return &v, nil
}

// siteEvent is the payload of site.created and site.updated (the feed adds audit_id).
func siteEvent(site apigen.Site) map[string]any {
	return map[string]any{"site_id": site.ID.String(), "site": site}
}

// ListSites answers one page of the sites the filters select, in the order asked.
func (s *Server) ListSites(c *gin.Context, params apigen.ListSitesParams) {
	lp, err := sortedListParamsOf(c, params.Limit, params.Cursor, uuidKey, params.Sort)
	if err != nil {
		writeError(c, err)
		return
	}
	f := storage.SiteFilter{Name: deref(params.Name), Query: deref(params.Q)}
	page, err := s.store.Sites().ListFiltered(c.Request.Context(), f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.SiteList{Items: make([]apigen.Site, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, site := range page.Items {
		out.Items[i] = siteOut(site)
	}
	c.JSON(http.StatusOK, out)
}

// CreateSite stores a new site with its audit entry and broadcasts site.created.
func (s *Server) CreateSite(c *gin.Context) {
	var in apigen.SiteCreate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	site := storage.Site{Name: in.Name, Location: deref(in.Location), Description: deref(in.Description)}
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		if err := tx.Sites().Create(ctx, &site); err != nil {
			return siteWriteError(err, site.Name)
		}
		// Read back what was stored: the database may keep coarser timestamps than Go's.
		var err error
		if site, err = tx.Sites().Get(ctx, site.ID); err != nil {
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindSiteCreated, site.ID, map[string]any{"after": siteSummary(site)},
			storage.Effects{Events: []storage.ChangeEvent{{Type: eventSiteCreated, Data: siteEvent(siteOut(site))}}})
		return err
	})
	if err != nil {
		writeError(c, s.siteNameTaken(ctx, err, site.Name))
		return
	}
	s.applied(c, seq)
	out := siteOut(site)
	setETag(c, site.Version)
	writeCreated(c, "/api/v1/sites/"+site.ID, out)
}

// GetSite answers one site with its version as ETag.
func (s *Server) GetSite(c *gin.Context, siteID apigen.SiteID) {
	site, err := s.store.Sites().Get(c.Request.Context(), siteID.String())
	if err != nil {
		writeError(c, err)
		return
	}
	setETag(c, site.Version)
	c.JSON(http.StatusOK, siteOut(site))
}

// UpdateSite changes the fields present in the body, honouring If-Match, with its audit entry,
// and broadcasts site.updated.
func (s *Server) UpdateSite(c *gin.Context, siteID apigen.SiteID, params apigen.UpdateSiteParams) {
	expected, err := parseIfMatch(params.IfMatch)
	if err != nil {
		writeError(c, err)
		return
	}
	var in apigen.SiteUpdate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	var site storage.Site
	var seq int64
	err = s.store.Tx(ctx, func(tx *storage.Store) error {
		// The row lock makes the version check below authoritative: no writer can slip in
		// between it and the update, so a conflict from Update can only be the name.
		before, err := tx.Sites().GetForUpdate(ctx, siteID.String())
		if err != nil {
			return err
		}
		if expected != nil && *expected != before.Version {
			return &apiError{kind: errPrecondition,
				detail: "the site is at version " + strconv.FormatInt(before.Version, 10) + ", not the one If-Match names",
				fields: []FieldError{{Field: "If-Match", Message: "is not the current version"}}}
		}
		site = before
		if in.Name != nil {
			site.Name = *in.Name
		}
		if in.Location != nil {
			site.Location = *in.Location
		}
		if in.Description != nil {
			site.Description = *in.Description
		}
		if err := tx.Sites().Update(ctx, &site, &before.Version); err != nil {
			return siteWriteError(err, site.Name)
		}
		seq, err = s.record(ctx, tx, c, storage.KindSiteUpdated, site.ID, changeDetails(siteSummary(before), siteSummary(site)),
			storage.Effects{Events: []storage.ChangeEvent{{Type: eventSiteUpdated, Data: siteEvent(siteOut(site))}}})
		return err
	})
	if err != nil {
		writeError(c, s.siteNameTaken(ctx, err, site.Name))
		return
	}
	s.applied(c, seq)
	out := siteOut(site)
	setETag(c, site.Version)
	c.JSON(http.StatusOK, out)
}

// siteWriteError names the field of a site write that collided: the only unique field is the
// name. A collision the database named is left for siteNameTaken, after the transaction.
func siteWriteError(err error, name string) error {
	if duplicateOf(err, "") {
		return conflictField("name", "already taken", "a site named %s already exists", name)
	}
	return err
}
