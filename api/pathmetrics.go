package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// headerCache says whether the metrics cache answered a read.
const headerCache = "X-Cache"

// maxMeasuredAhead is how far in the future of the server's clock a measured_at may be: probes
// have clocks of their own.
const maxMeasuredAhead = 5 * time.Minute

// historyWriteTimeout bounds the write of a path_metrics point to the history store; the
// database has the metrics by then, so a slow InfluxDB only loses the point.
const historyWriteTimeout = 2 * time.Second

// pathMetricsWriter is the optional part of a history store that records path metrics
// (InfluxDB does; the SQL history does not).
type pathMetricsWriter interface {
	WritePathMetrics(ctx context.Context, m storage.PathMetrics, pathName string) error
}

// GetPathMetrics answers the latest metrics of a path from the metrics cache, or from the
// database on a miss (then filling the cache); X-Cache says which.
func (s *Server) GetPathMetrics(c *gin.Context, pathID apigen.PathID) {
	caches := s.cfg.Caches
	if caches != nil {
		if m, ok := caches.Metrics.Get(pathID); ok {
			c.Header(headerCache, "hit")
			c.JSON(http.StatusOK, pathMetricsOut(m))
			return
		}
	}
	var gen uint64
	if caches != nil {
		gen = caches.MetricsGeneration(pathID)
	}
	ctx := c.Request.Context()
	m, err := s.store.Metrics().Get(ctx, pathID)
	if errors.Is(err, storage.ErrNotFound) {
		if _, perr := s.store.Paths().Get(ctx, pathID); perr != nil {
			err = perr
		} else {
			err = newError(storage.ErrNotFound, "path %d has no metrics yet", pathID)
		}
	}
	if err != nil {
		writeError(c, err)
		return
	}
	if caches != nil {
		caches.FillMetrics(gen, m)
	}
	c.Header(headerCache, "miss")
	c.JSON(http.StatusOK, pathMetricsOut(m))
}

// ReplacePathMetrics stores a path's latest metrics with the score computed here, with its
// audit entry: database first, then the metrics cache (write-through), then a path_metrics
// point in the history store if it records them. Routing decisions among the path are dropped.
func (s *Server) ReplacePathMetrics(c *gin.Context, pathID apigen.PathID) {
	var in apigen.PathMetricsInput
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	now := time.Now()
	if fields := checkPathMetrics(in, now); len(fields) > 0 {
		writeError(c, fieldErrors(errValidation, fields))
		return
	}
	m := storage.PathMetrics{
		PathID: pathID, LatencyMs: in.LatencyMs, JitterMs: in.JitterMs, PacketLossPct: in.PacketLossPct,
		BandwidthMbps: in.BandwidthMbps, MTU: int(in.MTU), MeasuredAt: now.UTC(),
	}
	if in.MeasuredAt != nil {
		m.MeasuredAt = in.MeasuredAt.UTC()
	}
	m.Score = storage.ScoreMetrics(m)

	if s.cfg.Caches != nil {
		// Held until the cache has the value, so concurrent writers of this path leave the
		// cache holding what the database holds.
		defer s.cfg.Caches.LockPathWrites(pathID)()
	}
	ctx := c.Request.Context()
	var seq int64
	var pathName string
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		path, err := tx.Paths().Get(ctx, pathID)
		if err != nil {
			return err
		}
		pathName = path.Name
		if err := tx.Metrics().Put(ctx, &m); err != nil {
			return err
		}
		if m, err = tx.Metrics().Get(ctx, pathID); err != nil { // as stored
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindPathMetricsReplaced, resourceKey(pathID),
			map[string]any{"after": pathMetricsSummary(m)}, storage.Effects{PathIDs: []int64{pathID}})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq) // every replica, this one included, drops the path's cached metrics and decisions
	if s.cfg.Caches != nil {
		s.cfg.Caches.StoreMetrics(m)
	}
	s.writeMetricsHistory(c, m, pathName)
	c.JSON(http.StatusOK, pathMetricsOut(m))
}

// writeMetricsHistory records m as a path_metrics point, tagged with the path's name, when the history store takes them.
// The metrics are stored already, so a failure is logged, not answered.
func (s *Server) writeMetricsHistory(c *gin.Context, m storage.PathMetrics, pathName string) {
	w, ok := s.cfg.History.(pathMetricsWriter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(afterCommit(c), historyWriteTimeout)
	defer cancel()
	if err := w.WritePathMetrics(ctx, m, pathName); err != nil {
		loggerFrom(c).Warn("write path metrics to the history store", "path_id", m.PathID, "err", err,
			"request_id", requestID(c))
	}
}

// checkPathMetrics checks the ranges openapi.yaml declares, as a backstop to the validation
// middleware, and that measured_at is not ahead of now by more than maxMeasuredAhead.
func checkPathMetrics(in apigen.PathMetricsInput, now time.Time) []FieldError {
	var fields []FieldError
	for _, f := range []struct {
		name     string
		v, limit float64
	}{
		{"latency_ms", in.LatencyMs, 600000}, {"jitter_ms", in.JitterMs, 600000},
		{"packet_loss_pct", in.PacketLossPct, 100}, {"bandwidth_mbps", in.BandwidthMbps, 10000000},
	} {
		if !(f.v >= 0 && f.v <= f.limit) { // also refuses NaN
			fields = append(fields, FieldError{Field: f.name, Message: fmt.Sprintf("must be between 0 and %g", f.limit)})
		}
	}
	if in.MTU < 68 || in.MTU > 65535 {
		fields = append(fields, FieldError{Field: "mtu", Message: "must be between 68 and 65535"})
	}
	if in.MeasuredAt != nil && in.MeasuredAt.After(now.Add(maxMeasuredAhead)) {
		fields = append(fields, FieldError{Field: "measured_at", Message: "must not be in the future"})
	}
	return fields
}

func pathMetricsOut(m storage.PathMetrics) apigen.PathMetrics {
	return apigen.PathMetrics{
		PathID: m.PathID, LatencyMs: m.LatencyMs, JitterMs: m.JitterMs, PacketLossPct: m.PacketLossPct,
		BandwidthMbps: m.BandwidthMbps, MTU: int32(m.MTU), Score: int32(m.Score),
		MeasuredAt: m.MeasuredAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
	}
}

// pathMetricsSummary is the audit summary of stored metrics.
func pathMetricsSummary(m storage.PathMetrics) map[string]any {
	return map[string]any{
		"latency_ms": m.LatencyMs, "jitter_ms": m.JitterMs, "packet_loss_pct": m.PacketLossPct,
		"bandwidth_mbps": m.BandwidthMbps, "mtu": m.MTU, "score": m.Score, "measured_at": m.MeasuredAt.UTC(),
	}
}
