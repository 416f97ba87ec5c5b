package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditStore reads the change feed as the audit log.
type AuditStore struct {
	store *Store
}

// Record appends an entry as the change of the kind its resource kind and action name, setting
// its id (the change's seq) and, when zero, its time.
func (s *AuditStore) Record(ctx context.Context, e *AuditEntry) error {
	kind := ""
	for k, action := range kindActions {
		if action == e.Action && strings.HasPrefix(k, e.ResourceKind+".") {
			kind = k
			break
		}
	}
	if kind == "" {
		return fmt.Errorf("%w: no change kind for %s of %s", ErrInvalid, e.Action, e.ResourceKind)
	}
	c := Change{Time: e.Time, Kind: kind, Actor: e.Actor, ResourceID: e.ResourceID, Details: e.Details}
	if err := s.store.Changes().Record(ctx, &c); err != nil {
		return err
	}
	e.ID, e.Time, e.Details = c.Seq, c.Time, c.Details
	return nil
}

// AuditFilter narrows an audit listing; zero fields do not filter.
type AuditFilter struct {
	ResourceKind string
	ResourceID   string
	Actor        string
	Action       string
	Since        time.Time
	Until        time.Time
	// Query is a case-insensitive substring of the actor, action, resource kind or resource id.
	Query string
}

// auditList is how audit entries are paged and the orders they can be listed in; an entry's
// id is its sequence number.
var auditList = listSpec[AuditEntry]{
	keyColumn: "seq", keyOf: func(x AuditEntry) string { return strconv.FormatInt(x.ID, 10) }, keyArg: int64Arg,
	sorts: map[string]sortColumn[AuditEntry]{
		"time": {column: "time", kind: kindTime, value: func(x AuditEntry) any { return x.Time }},
	},
}

// List returns one page of entries matching f, oldest first unless p sorts otherwise.
func (s *AuditStore) List(ctx context.Context, f AuditFilter, p ListParams) (Page[AuditEntry], error) {
	q := s.store.db.Model(&AuditEntry{})
	if f.ResourceKind != "" {
		q = q.Where("resource_kind = ?", f.ResourceKind)
	}
	if f.ResourceID != "" {
		q = q.Where("resource_id = ?", f.ResourceID)
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		q = q.Where("time >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("time < ?", f.Until.UTC())
	}
	if f.Query != "" {
		q = containsFold(q, f.Query, "actor", "action", "resource_kind", "resource_id")
	}
	page, err := listSorted(ctx, q, auditList, p)
	return page, translate(err, "list audit entries")
}

// Get returns one audit entry.
func (s *AuditStore) Get(ctx context.Context, id int64) (AuditEntry, error) {
	var e AuditEntry
	err := s.store.db.WithContext(ctx).Take(&e, "seq = ?", id).Error
	return e, translate(err, "get audit entry "+strconv.FormatInt(id, 10))
}
