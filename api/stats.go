package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/storage"
)

// eventStatsReset is broadcast after a reset of one policy's counters or of all of them.
const eventStatsReset = "stats.reset"

// defaultFlowLimit is how many top flows a list answers without a limit, as for other lists.
const defaultFlowLimit = 50

// counterOut is a collector counter as the API's int64. A report may carry up to 2^64-1
// bytes, so a sum can pass 2^63; it saturates rather than turn negative.
func counterOut(n uint64) int64 {
	return int64(min(n, math.MaxInt64))
}

// GetStats answers the live totals, cluster-wide unless the local scope is asked for.
func (s *Server) GetStats(c *gin.Context, params apigen.GetStatsParams) {
	ctx := c.Request.Context()
	out, err := liveOrLocal(ctx, s, scopeParam(params.Scope), func(scope apigen.LiveScope) (apigen.GlobalStats, error) {
		return s.clusterTotals(ctx, scope)
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// knownPolicy checks that a policy exists: the collector's set first, which costs no query,
// then the database for a policy written but not yet handed to the collector.
func (s *Server) knownPolicy(ctx context.Context, id int64) error {
	if s.cfg.Collector != nil {
		if _, ok := s.cfg.Collector.PolicyStats(id); ok {
			return nil
		}
	}
	_, err := s.store.Policies().Get(ctx, id)
	return err
}

// GetPolicyStats answers the live counters of one policy, cluster-wide unless the local
// scope is asked for, with each replica's share.
func (s *Server) GetPolicyStats(c *gin.Context, policyID apigen.PolicyID, params apigen.GetPolicyStatsParams) {
	if err := s.knownPolicy(c.Request.Context(), policyID); err != nil {
		writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	stats, err := liveOrLocal(ctx, s, scopeParam(params.Scope), func(scope apigen.LiveScope) (map[int64]apigen.PolicyStats, error) {
		return s.clusterPolicyStats(ctx, []int64{policyID}, scope)
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, stats[policyID])
}

// ListPolicyFlows answers the top tracked flows of a policy.
func (s *Server) ListPolicyFlows(c *gin.Context, policyID apigen.PolicyID, params apigen.ListPolicyFlowsParams) {
	limit := defaultFlowLimit
	if params.Limit != nil {
		limit = int(*params.Limit)
	}
	if limit < 1 || limit > storage.MaxPageLimit {
		writeError(c, fieldErrors(errBadRequest, []FieldError{{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", storage.MaxPageLimit)}}))
		return
	}
	sort := apigen.FlowSortBytes
	if params.Sort != nil {
		sort = *params.Sort
	}
	if !sort.Valid() {
		writeError(c, fieldErrors(errBadRequest, []FieldError{{Field: "sort", Message: "must be bytes, packets or last_seen"}}))
		return
	}
	// The cursor of a live top list is the offset of the next page in it.
	offset := 0
	if params.Cursor != nil {
		key, err := storage.DecodeCursor(*params.Cursor)
		n, convErr := strconv.Atoi(key)
		if err != nil || convErr != nil || !int64Key(key) || n > maxFlowOffset {
			writeError(c, fieldErrors(errBadRequest, []FieldError{{Field: "cursor", Message: "is not a cursor this API returned"}}))
			return
		}
		offset = n
	}
	if err := s.knownPolicy(c.Request.Context(), policyID); err != nil {
		writeError(c, err)
		return
	}
	out := apigen.FlowList{PolicyID: policyID, Sort: sort, Items: []apigen.Flow{}}
	if s.cfg.Collector != nil {
		top := s.cfg.Collector.TopFlows(policyID, offset+limit+1, string(sort))
		if len(top) > offset+limit {
			out.NextCursor = nextCursorOf(storage.EncodeCursor(strconv.Itoa(offset + limit)))
			top = top[:offset+limit]
		}
		for _, f := range top[min(offset, len(top)):] {
			out.Items = append(out.Items, apigen.Flow{
				Flow: apigen.FlowKey{
					SrcIP: f.Flow.SrcIP.String(), DstIP: f.Flow.DstIP.String(),
					SrcPort: int32(f.Flow.SrcPort), DstPort: int32(f.Flow.DstPort), Protocol: int32(f.Flow.Protocol),
				},
				Packets: counterOut(f.Packets), Bytes: counterOut(f.Bytes), FirstSeen: f.FirstSeen, LastSeen: f.LastSeen,
			})
		}
	}
	c.JSON(http.StatusOK, out)
}

// maxFlowOffset bounds how deep the flow list pages: each page ranks every flow above it.
const maxFlowOffset = 100_000

// ResetPolicyStats zeroes one policy's live counters, with an audit entry holding the counts
// it had, and broadcasts stats.reset. History is not touched.
func (s *Server) ResetPolicyStats(c *gin.Context, policyID apigen.PolicyID) {
	ctx := c.Request.Context()
	// "before" is the cluster's total: this replica's counters and the other live replicas'
	// latest snapshots (up to one flush interval old).
	stats, err := s.clusterPolicyStats(ctx, []int64{policyID}, apigen.LiveScopeCluster)
	if err != nil {
		writeError(c, err)
		return
	}
	before := stats[policyID]
	var auditID int64 // the change's seq
	err = s.store.Tx(ctx, func(tx *storage.Store) error {
		if _, err := tx.Policies().Get(ctx, policyID); err != nil {
			return err
		}
		var err error
		auditID, err = s.record(ctx, tx, c, storage.KindStatsReset, resourceKey(policyID),
			map[string]any{"policy_id": policyID, "before": map[string]any{
				"packets_matched": before.PacketsMatched, "bytes_matched": before.BytesMatched,
			}},
			storage.Effects{PolicyIDs: []int64{policyID}, Events: []storage.ChangeEvent{{Type: eventStatsReset,
				Data: map[string]any{"policy_id": policyID, "policies_reset": 1}}}})
		if err != nil {
			return err
		}
		// Snapshots that predate this reset no longer count in cluster totals.
		return tx.LiveStats().Reset(ctx, policyID, auditID)
	})
	if err != nil {
		writeError(c, err)
		return
	}
	// Every replica zeroes the counters when it applies the change, after the commit, so that
	// no reset goes unaudited. A policy the collector has not loaded yet has nothing to zero.
	s.applied(c, auditID)
	c.JSON(http.StatusOK, apigen.StatsResetResult{
		Success: true, Message: fmt.Sprintf("counters of policy %d reset", policyID), PoliciesReset: 1, AuditID: auditID,
	})
}

// ResetStats zeroes every policy's live counters and the unclassified ones, with an audit
// entry holding the totals it had, and broadcasts stats.reset. History is not touched.
func (s *Server) ResetStats(c *gin.Context) {
	ctx := c.Request.Context()
	// "before" is the cluster's total: this replica's counters and the other live replicas'
	// latest snapshots (up to one flush interval old).
	before, err := s.clusterTotals(ctx, apigen.LiveScopeCluster)
	if err != nil {
		writeError(c, err)
		return
	}
	policies := s.localPolicyCount()
	var auditID int64 // the change's seq
	err = s.store.Tx(ctx, func(tx *storage.Store) error {
		var err error
		auditID, err = s.record(ctx, tx, c, storage.KindStatsReset, "",
			map[string]any{"policies_reset": policies, "before": map[string]any{
				"packets": before.Packets, "bytes": before.Bytes,
				"unclassified_packets": before.UnclassifiedPackets, "unclassified_bytes": before.UnclassifiedBytes,
			}},
			storage.Effects{Events: []storage.ChangeEvent{{Type: eventStatsReset,
				Data: map[string]any{"policy_id": nil, "policies_reset": policies}}}})
		if err != nil {
			return err
		}
		return tx.LiveStats().Reset(ctx, 0, auditID)
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, auditID) // every replica zeroes its counters when it applies the reset
	c.JSON(http.StatusOK, apigen.StatsResetResult{
		Success: true, Message: fmt.Sprintf("counters of all %d policies and of unclassified traffic reset", policies),
		PoliciesReset: int64(policies), AuditID: auditID,
	})
}

// localPolicyCount is how many policies have counters on this replica: what a reset of
// every counter reports as reset.
func (s *Server) localPolicyCount() int {
	if s.cfg.Collector == nil {
		return 0
	}
	return len(s.cfg.Collector.AllPolicyStats())
}
