package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// ListAuditEntries answers one page of the audit log, oldest first unless sorted otherwise,
// narrowed by every filter given.
func (s *Server) ListAuditEntries(c *gin.Context, params apigen.ListAuditEntriesParams) {
	// Bad paging and bad times are named in one answer.
	lp, lpErr := sortedListParamsOf(c, params.Limit, params.Cursor, int64Key, params.Sort)
	f := storage.AuditFilter{ResourceID: deref(params.ResourceID), Actor: deref(params.Actor), Query: deref(params.Q)}
	if params.ResourceKind != nil {
		f.ResourceKind = string(*params.ResourceKind)
	}
	// The same time forms as history's from and to: RFC 3339, now, or relative like -5m.
	var fields []FieldError
	for _, t := range []struct {
		name  string
		value *string
		into  *time.Time
	}{{"since", params.Since, &f.Since}, {"until", params.Until, &f.Until}} {
		if t.value == nil {
			continue
		}
		at, err := parseHistoryTime(*t.value, s.now().UTC())
		if err != nil {
			fields = append(fields, FieldError{Field: t.name, Message: err.Error()})
		}
		*t.into = at
	}
	var errs []error
	if lpErr != nil {
		errs = append(errs, lpErr)
	}
	if len(fields) > 0 {
		errs = append(errs, fieldErrors(errBadRequest, fields))
	}
	if len(errs) > 0 {
		writeError(c, mergeInputErrors(errs))
		return
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
