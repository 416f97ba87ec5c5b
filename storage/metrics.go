package storage

import (
	"context"
	"fmt"
	"math"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// MetricsStore keeps the latest metrics of each path.
type MetricsStore struct {
	db      *gorm.DB
	dialect string
}

// Put stores m as the latest metrics of its path, replacing the previous ones. A path that does
// not exist is ErrNotFound.
func (s *MetricsStore) Put(ctx context.Context, m *PathMetrics) error {
	m.UpdatedAt = s.db.NowFunc()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "path_id"}},
		UpdateAll: true,
	}).Create(m).Error
	if isForeignKeyError(err) {
		return fmt.Errorf("put metrics of path %d: %w", m.PathID, ErrNotFound)
	}
	return translate(err, fmt.Sprintf("put metrics of path %d", m.PathID))
}

// Get returns the latest metrics of a path; ErrNotFound when none were reported.
func (s *MetricsStore) Get(ctx context.Context, pathID int64) (PathMetrics, error) {
	var m PathMetrics
	err := s.db.WithContext(ctx).Take(&m, "path_id = ?", pathID).Error
	return m, translate(err, fmt.Sprintf("get metrics of path %d", pathID))
}

// ForPaths returns the latest metrics of the given paths that have any, keyed by path id.
func (s *MetricsStore) ForPaths(ctx context.Context, pathIDs []int64) (map[int64]PathMetrics, error) {
	out := make(map[int64]PathMetrics, len(pathIDs))
	if len(pathIDs) == 0 {
		return out, nil
	}
	var ms []PathMetrics
	if err := s.db.WithContext(ctx).Where("path_id IN ?", pathIDs).Find(&ms).Error; err != nil {
		return nil, translate(err, "get metrics of paths")
	}
	for _, m := range ms {
		out[m.PathID] = m
	}
	return out, nil
}

// All returns the latest metrics of every path, newest first, at most limit rows
// (0 means no limit); used to warm the metrics cache.
func (s *MetricsStore) All(ctx context.Context, limit int) ([]PathMetrics, error) {
	var ms []PathMetrics
	q := s.db.WithContext(ctx).Order("updated_at DESC")
	if limit > 0 {
		q = q.Limit(limit)
	}
	err := q.Find(&ms).Error
	return ms, translate(err, "list path metrics")
}

// ScoreMetrics rates a path from 0 (unusable) to 100 (perfect) from its metrics:
//
//	score = 100 - min(latency_ms/4, 40) - min(jitter_ms, 20) - min(packet_loss_pct*8, 40)
//	            - min(max(10-bandwidth_mbps, 0), 10)
//
// clamped to [0, 100] and rounded. Loss weighs most (5% loss costs 40 points) because it hurts
// every application; latency costs a point per 4 ms up to 40; jitter a point per ms up to 20;
// links under 10 Mbps lose up to 10 points.
func ScoreMetrics(m PathMetrics) int {
	penalty := min(max(m.LatencyMs, 0)/4, 40) +
		min(max(m.JitterMs, 0), 20) +
		min(max(m.PacketLossPct, 0)*8, 40) +
		min(max(10-m.BandwidthMbps, 0), 10)
	score := 100 - penalty
	return int(math.Round(min(max(score, 0), 100)))
}
