package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
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

// GetStats answers the collector-wide live totals.
func (s *Server) GetStats(c *gin.Context) {
	var t collector.Totals
	if s.cfg.Collector != nil {
		t = s.cfg.Collector.Totals()
	}
	c.JSON(http.StatusOK, apigen.GlobalStats{
		Packets: counterOut(t.Packets), Bytes: counterOut(t.Bytes), ActiveFlows: t.ActiveFlows,
		UnclassifiedPackets: counterOut(t.UnclassifiedPackets), UnclassifiedBytes: counterOut(t.UnclassifiedBytes),
		UnclassifiedReports: counterOut(t.UnclassifiedReports), TrackedFlows: t.TrackedFlows,
		FlowOverflow: counterOut(t.FlowOverflow), FlowsExpired: counterOut(t.FlowsExpired),
	})
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

// GetPolicyStats answers the live counters of one policy.
func (s *Server) GetPolicyStats(c *gin.Context, policyID apigen.PolicyID) {
	if err := s.knownPolicy(c.Request.Context(), policyID); err != nil {
		writeError(c, err)
		return
	}
	st := s.policyStats(policyID)
	out := apigen.PolicyStats{PolicyID: policyID, PacketsMatched: counterOut(st.PacketsMatched),
		BytesMatched: counterOut(st.BytesMatched), ActiveFlows: st.ActiveFlows}
	if !st.LastSeen.IsZero() {
		last := st.LastSeen
		out.LastSeen = &last
	}
	c.JSON(http.StatusOK, out)
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
	before := s.policyStats(policyID)
	var auditID int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		if _, err := tx.Policies().Get(ctx, policyID); err != nil {
			return err
		}
		var err error
		auditID, err = auditWrite(ctx, tx, c, apigen.AuditActionReset, apigen.AuditResourceKindStats, resourceKey(policyID),
			map[string]any{"policy_id": policyID, "before": map[string]any{
				"packets_matched": counterOut(before.PacketsMatched), "bytes_matched": counterOut(before.BytesMatched),
			}})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	// After the commit, so that no reset goes unaudited. A policy the collector has not
	// loaded yet has nothing to zero.
	if s.cfg.Collector != nil {
		s.cfg.Collector.ResetPolicy(policyID)
	}
	s.publish(eventStatsReset, map[string]any{"policy_id": policyID, "policies_reset": 1, "audit_id": auditID})
	c.JSON(http.StatusOK, apigen.StatsResetResult{
		Success: true, Message: fmt.Sprintf("counters of policy %d reset", policyID), PoliciesReset: 1, AuditID: auditID,
	})
}

// ResetStats zeroes every policy's live counters and the unclassified ones, with an audit
// entry holding the totals it had, and broadcasts stats.reset. History is not touched.
func (s *Server) ResetStats(c *gin.Context) {
	ctx := c.Request.Context()
	var before collector.Totals
	var policies int
	if s.cfg.Collector != nil {
		before = s.cfg.Collector.Totals()
		policies = len(s.cfg.Collector.AllPolicyStats())
	}
	var auditID int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		var err error
		auditID, err = auditWrite(ctx, tx, c, apigen.AuditActionReset, apigen.AuditResourceKindStats, "",
			map[string]any{"policies_reset": policies, "before": map[string]any{
				"packets": counterOut(before.Packets), "bytes": counterOut(before.Bytes),
				"unclassified_packets": counterOut(before.UnclassifiedPackets), "unclassified_bytes": counterOut(before.UnclassifiedBytes),
			}})
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	if s.cfg.Collector != nil {
		s.cfg.Collector.ResetAll()
	}
	s.publish(eventStatsReset, map[string]any{"policy_id": nil, "policies_reset": policies, "audit_id": auditID})
	c.JSON(http.StatusOK, apigen.StatsResetResult{
		Success: true, Message: fmt.Sprintf("counters of all %d policies and of unclassified traffic reset", policies),
		PoliciesReset: int64(policies), AuditID: auditID,
	})
}
