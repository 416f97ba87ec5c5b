package storage

import "context"

// IDs returns the id of every path, in order: the set the collector checks the path_id of
// traffic reports against.
func (s *PathStore) IDs(ctx context.Context) ([]int64, error) {
	ids := []int64{}
	err := s.db.WithContext(ctx).Model(&Path{}).Order("id").Pluck("id", &ids).Error
	return ids, translate(err, "list path ids")
}
