package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/storage"
)

// eventCacheCleared is broadcast when an admin clears caches.
const eventCacheCleared = "cache.cleared"

// cacheAuditAll is the audit resource_id of a clear of every cache.
const cacheAuditAll = "all"

// routesChanged drops every cached routing decision, for writes that can change decisions
// without touching a path they chose among.
func (s *Server) routesChanged() {
	if s.cfg.Caches != nil {
		s.cfg.Caches.InvalidateRoutes()
	}
}

// ListCaches answers the statistics of every cache; none when the server has no caches.
func (s *Server) ListCaches(c *gin.Context) {
	out := apigen.CacheList{Caches: []apigen.CacheStats{}}
	if s.cfg.Caches != nil {
		for _, st := range s.cfg.Caches.Stats() {
			out.Caches = append(out.Caches, apigen.CacheStats{
				Name: apigen.CacheName(st.Name), Entries: int64(st.Entries), Active: int64(st.Active),
				Expired: int64(st.Expired), Hits: int64(st.Hits), Misses: int64(st.Misses), HitRatio: st.HitRatio,
				Evictions: int64(st.Evictions), RejectedSets: int64(st.RejectedSets),
			})
		}
	}
	c.JSON(http.StatusOK, out)
}

// ClearCaches empties every cache, with its audit entry, and broadcasts cache.cleared.
func (s *Server) ClearCaches(c *gin.Context) {
	s.clearCaches(c, cacheAuditAll, cache.Names())
}

// ClearCache empties one cache, with its audit entry, and broadcasts cache.cleared. The spec's
// enum refuses unknown names with a 400.
func (s *Server) ClearCache(c *gin.Context, name apigen.CacheName) {
	s.clearCaches(c, string(name), []string{string(name)})
}

// clearCaches clears the named caches inside the transaction of the audit entry, so the entry
// records the exact counts, and answers the total. A server without caches clears nothing and
// says so.
func (s *Server) clearCaches(c *gin.Context, resourceID string, names []string) {
	ctx := c.Request.Context()
	perCache := map[string]int{}
	total := 0
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		for _, name := range names {
			n, ok := 0, true
			if s.cfg.Caches != nil {
				n, ok = s.cfg.Caches.Clear(name)
			}
			if !ok { // the spec's enum and cache.Names disagree
				return fmt.Errorf("no cache named %s", name)
			}
			perCache[name] = n
			total += n
		}
		var err error
		seq, err = s.record(ctx, tx, c, storage.KindCacheCleared, resourceID,
			map[string]any{"cleared": perCache, "cleared_entries": total},
			storage.Effects{Caches: names, Events: []storage.ChangeEvent{{Type: eventCacheCleared,
				Data: map[string]any{"caches": names, "cleared_entries": total}}}})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq)
	c.JSON(http.StatusOK, apigen.CacheClearResult{
		Success: true, ClearedEntries: int64(total),
		Message: fmt.Sprintf("cleared %d entries from %d %s", total, len(names), plural(len(names), "cache", "caches")),
	})
}

// plural picks the word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// WarmMetricsCache fills the metrics cache with the latest metrics of up to limit paths from
// the database, newest first, and returns how many it stored; 0 without caches.
func (s *Server) WarmMetricsCache(ctx context.Context, limit int) (int, error) {
	if s.cfg.Caches == nil {
		return 0, nil
	}
	ms, err := s.store.Metrics().All(ctx, limit)
	if err != nil {
		return 0, fmt.Errorf("warm the metrics cache: %w", err)
	}
	return s.cfg.Caches.Warm(ms), nil
}
