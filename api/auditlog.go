package api

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// auditWrite records one write in the audit log and returns the entry's id. Call it with the
// transaction of the write itself, so the change and its entry commit or fail together.
func auditWrite(ctx context.Context, tx *storage.Store, c *gin.Context, action apigen.AuditAction,
	kind apigen.AuditResourceKind, resourceID string, details map[string]any) (int64, error) {
	entry := storage.AuditEntry{
		Actor: principalOf(c).Name, Action: string(action), ResourceKind: string(kind),
		ResourceID: resourceID, Details: details,
	}
	if err := tx.Audit().Record(ctx, &entry); err != nil {
		return 0, fmt.Errorf("audit %s of %s %s: %w", action, kind, resourceID, err)
	}
	return entry.ID, nil
}

// changeDetails is the audit summary of an update: the writable fields before and after, and
// the names of those that changed, sorted.
func changeDetails(before, after map[string]any) map[string]any {
	changed := []string{}
	for k, v := range after {
		if !reflect.DeepEqual(before[k], v) {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	return map[string]any{"before": before, "after": after, "changed": changed}
}

// resourceKey is an integer id as the audit log's resource_id.
func resourceKey(id int64) string { return strconv.FormatInt(id, 10) }
