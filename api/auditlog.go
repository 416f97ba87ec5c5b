package api

import (
	"reflect"
	"slices"
	"strconv"
)

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
