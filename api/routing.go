package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/cache"
	"github.com/patronus-sdwan/patronus/storage"
)

// GetRoutingDecision answers the best path between two sites, from the routing cache when it
// holds a decision, else decided from the database and cached.
func (s *Server) GetRoutingDecision(c *gin.Context, params apigen.GetRoutingDecisionParams) {
	src, dst := params.SrcSiteID.String(), params.DstSiteID.String()
	key := cache.RoutingKey(src, dst, params.PolicyID)
	caches := s.cfg.Caches
	if caches != nil {
		if d, ok := caches.Routing.Get(key); ok {
			c.JSON(http.StatusOK, routingDecisionOut(d, true))
			return
		}
	}
	var gen uint64
	if caches != nil {
		gen = caches.RoutingGeneration()
	}
	d, err := s.decideRoute(c.Request.Context(), src, dst, params.PolicyID)
	if err != nil {
		writeError(c, err)
		return
	}
	if caches != nil {
		caches.FillRouting(gen, key, d)
	}
	c.JSON(http.StatusOK, routingDecisionOut(d, false))
}

// routeCandidate is a path between the two sites with its metrics, if any.
type routeCandidate struct {
	path    storage.Path
	metrics storage.PathMetrics
	scored  bool
}

// decideRoute picks the path for traffic from src to dst:
//
//  1. the policy's preferred path, if a policy is given, is enabled, prefers a path, and that
//     path runs from src to dst and is up;
//  2. else, among the paths that are up (or, when none is up, those that are degraded), the
//     one with the highest score, paths without metrics last, ties broken by lower latency
//     and then by lower id.
//
// Down paths are never chosen. No usable path, or a site or policy that does not exist, is
// ErrNotFound; such answers are not cached.
func (s *Server) decideRoute(ctx context.Context, src, dst string, policyID *int64) (cache.RoutingDecision, error) {
	var d cache.RoutingDecision
	for _, site := range []string{src, dst} {
		if _, err := s.store.Sites().Get(ctx, site); err != nil {
			return d, err
		}
	}
	var policy *storage.Policy
	if policyID != nil {
		p, err := s.store.Policies().Get(ctx, *policyID)
		if err != nil {
			return d, err
		}
		policy = &p
	}
	// A path runs from its local endpoint to its remote one: only those from src to dst count.
	paths, err := s.store.Paths().FromSiteToSite(ctx, src, dst)
	if err != nil {
		return d, err
	}
	ids := make([]int64, len(paths))
	for i, p := range paths {
		ids[i] = p.ID
	}
	metrics, err := s.store.Metrics().ForPaths(ctx, ids)
	if err != nil {
		return d, err
	}
	candidates := make([]routeCandidate, len(paths))
	for i, p := range paths {
		m, ok := metrics[p.ID]
		candidates[i] = routeCandidate{path: p, metrics: m, scored: ok}
	}
	d, ok := chooseRoute(candidates, policy)
	if !ok {
		return d, newError(storage.ErrNotFound, "no usable path runs from site %s to site %s (%d paths, none up or degraded)",
			src, dst, len(paths))
	}
	d.PathIDs = ids
	d.DecidedAt = time.Now().UTC()
	return d, nil
}

// chooseRoute applies decideRoute's rules to the candidates; ok is false when none is usable.
func chooseRoute(candidates []routeCandidate, policy *storage.Policy) (d cache.RoutingDecision, ok bool) {
	var policyNote string
	if policy != nil {
		switch {
		case !policy.Enabled:
			policyNote = fmt.Sprintf("policy %d is disabled; ", policy.ID)
		case policy.ActionType != storage.ActionPreferPath || policy.PathID == nil:
			policyNote = fmt.Sprintf("policy %d prefers no path; ", policy.ID)
		default:
			i := slices.IndexFunc(candidates, func(rc routeCandidate) bool { return rc.path.ID == *policy.PathID })
			switch {
			case i < 0:
				policyNote = fmt.Sprintf("policy %d prefers path %d, which does not run from this source to this destination; ", policy.ID, *policy.PathID)
			case candidates[i].path.Status != storage.PathUp:
				policyNote = fmt.Sprintf("policy %d prefers path %d but it is %s; ", policy.ID, *policy.PathID, candidates[i].path.Status)
			default:
				return decisionFor(candidates[i], fmt.Sprintf("policy %d prefers path %d and it is up", policy.ID, *policy.PathID)), true
			}
		}
	}
	for _, status := range []string{storage.PathUp, storage.PathDegraded} {
		var usable []routeCandidate
		for _, rc := range candidates {
			if rc.path.Status == status {
				usable = append(usable, rc)
			}
		}
		if len(usable) == 0 {
			continue
		}
		best := slices.MinFunc(usable, compareRoutes)
		var reason string
		if best.scored {
			reason = fmt.Sprintf("highest score (%d) among %d %s paths", best.metrics.Score, len(usable), status)
		} else {
			reason = fmt.Sprintf("none of %d %s paths has metrics; lowest id", len(usable), status)
		}
		if status == storage.PathDegraded {
			reason += ", as no path is up"
		}
		return decisionFor(best, policyNote+reason), true
	}
	return d, false
}

// compareRoutes orders the better route first: scored before unscored, higher score, lower
// latency, lower id.
func compareRoutes(a, b routeCandidate) int {
	if a.scored != b.scored {
		if a.scored {
			return -1
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(b.metrics.Score, a.metrics.Score),
		cmp.Compare(a.metrics.LatencyMs, b.metrics.LatencyMs),
		cmp.Compare(a.path.ID, b.path.ID),
	)
}

func decisionFor(rc routeCandidate, reason string) cache.RoutingDecision {
	d := cache.RoutingDecision{SelectedPathID: rc.path.ID, Reason: reason}
	if rc.scored {
		score := rc.metrics.Score
		d.Score = &score
	}
	return d
}

func routingDecisionOut(d cache.RoutingDecision, cached bool) apigen.RoutingDecision {
	out := apigen.RoutingDecision{SelectedPathID: d.SelectedPathID, Reason: d.Reason, DecidedAt: d.DecidedAt, Cached: cached}
	if d.Score != nil {
		score := int32(*d.Score)
		out.Score = &score
	}
	return out
}
