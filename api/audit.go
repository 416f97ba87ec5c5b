package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// ListAuditEntries answers one page of the audit log, oldest first, narrowed by every filter
// given.
func (s *Server) ListAuditEntries(c *gin.Context, params apigen.ListAuditEntriesParams) {
	lp, err := listParamsOf(params.Limit, params.Cursor, int64Key)
	if err != nil {
		writeError(c, err)
		return
	}
	f := storage.AuditFilter{ResourceID: deref(params.ResourceID), Actor: deref(params.Actor)}
	if params.ResourceKind != nil {
		f.ResourceKind = string(*params.ResourceKind)
	}
	if params.Since != nil {
		f.Since = *params.Since
	}
	if params.Until != nil {
		f.Until = *params.Until
	}
	page, err := s.store.Audit().List(c.Request.Context(), f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.AuditList{Items: make([]apigen.AuditEntry, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, e := range page.Items {
		out.Items[i] = auditOut(e)
	}
	c.JSON(http.StatusOK, out)
}
