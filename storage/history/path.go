package history

import (
	"context"
	"time"
)

// Path traffic history: the points of deltas with a PathID, in their own series
// (PathTraffic: measurement path_traffic, table path_stats), read with the same machinery
// and semantics as a policy's (see the package documentation). A path's history is kept however the path
// changes or is deleted, until the history retention removes it; ActiveFlows is always 0.

// QueryPath returns one path's windows over [from, to), as QueryPolicy does for a policy.
func (s *SQLHistory) QueryPath(ctx context.Context, pathID int64, from, to time.Time, every time.Duration) ([]HistoryPoint, error) {
	return s.querySeries(ctx, PathTraffic, pathID, from, to, every)
}

// QueryPathIntervals returns per path (the given ones, all for none) the bytes of each
// interval of [from, to) with traffic, as QueryIntervals does for policies.
func (s *SQLHistory) QueryPathIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	return s.queryIntervals(ctx, PathTraffic, ids, from, to, interval)
}

// QueryPath returns one path's windows over [from, to), as QueryPolicy does for a policy.
func (h *InfluxHistory) QueryPath(ctx context.Context, pathID int64, from, to time.Time, every time.Duration) ([]HistoryPoint, error) {
	return h.querySeries(ctx, PathTraffic, pathID, from, to, every)
}

// QueryPathIntervals returns per path (the given ones, all for none) the bytes of each
// interval of [from, to) with traffic, as QueryIntervals does for policies.
func (h *InfluxHistory) QueryPathIntervals(ctx context.Context, ids []int64, from, to time.Time, interval time.Duration) (map[int64][]IntervalBytes, error) {
	return h.queryIntervals(ctx, PathTraffic, ids, from, to, interval)
}
