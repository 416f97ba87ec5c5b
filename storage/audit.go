package storage

import (
	"context"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// AuditStore appends and reads audit entries.
type AuditStore struct {
	db *gorm.DB
}

// Record appends an entry, setting its id and, when zero, its time.
func (s *AuditStore) Record(ctx context.Context, e *AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = s.db.NowFunc()
	}
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	return translate(s.db.WithContext(ctx).Create(e).Error, "record audit entry")
}

// AuditFilter narrows an audit listing; zero fields do not filter.
type AuditFilter struct {
	ResourceKind string
	ResourceID   string
	Actor        string
	Action       string
	Since        time.Time
	Until        time.Time
}

// List returns one page of entries matching f, oldest first.
func (s *AuditStore) List(ctx context.Context, f AuditFilter, p ListParams) (Page[AuditEntry], error) {
	q := s.db.Model(&AuditEntry{})
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
	page, err := listPage(ctx, q, p, func(x AuditEntry) string { return strconv.FormatInt(x.ID, 10) }, int64Arg)
	return page, translate(err, "list audit entries")
}

// Get returns one audit entry.
func (s *AuditStore) Get(ctx context.Context, id int64) (AuditEntry, error) {
	var e AuditEntry
	err := s.db.WithContext(ctx).Take(&e, "id = ?", id).Error
	return e, translate(err, "get audit entry "+strconv.FormatInt(id, 10))
}
