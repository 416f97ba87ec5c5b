package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// eventPolicyUpdated is broadcast after every policy create, update and delete.
const eventPolicyUpdated = "policy.updated"

// policyStats returns the live counters of a policy; zeros without a collector or before the
// collector knows the policy.
func (s *Server) policyStats(id int64) collector.PolicyStats {
	if s.cfg.Collector == nil {
		return collector.PolicyStats{PolicyID: id}
	}
	st, _ := s.cfg.Collector.PolicyStats(id)
	return st
}

// policyEffects is what replicas need of a policy write: its id and the policy.updated event
// (the feed adds audit_id).
func policyEffects(id int64, action apigen.AuditAction) storage.Effects {
	return storage.Effects{PolicyIDs: []int64{id}, Events: []storage.ChangeEvent{{Type: eventPolicyUpdated,
		Data: map[string]any{"policy_id": id, "action": string(action)}}}}
}

// ListPolicies answers one page of the policies the filters select, in the order asked, with
// their live counters.
func (s *Server) ListPolicies(c *gin.Context, params apigen.ListPoliciesParams) {
	lp, err := sortedListParamsOf(c, params.Limit, params.Cursor, int64Key, params.Sort)
	if err != nil {
		writeError(c, err)
		return
	}
	f := storage.PolicyFilter{Name: deref(params.Name), Query: deref(params.Q), Enabled: params.Enabled}
	page, err := s.store.Policies().ListFiltered(c.Request.Context(), f, lp)
	if err != nil {
		writeError(c, err)
		return
	}
	ids := make([]int64, len(page.Items))
	for i, p := range page.Items {
		ids[i] = p.ID
	}
	live, err := liveOrLocal(c.Request.Context(), s, apigen.LiveScopeCluster, func(scope apigen.LiveScope) (map[int64]apigen.PolicyStats, error) {
		return s.clusterPolicyStats(c.Request.Context(), ids, scope)
	})
	if err != nil {
		writeError(c, err)
		return
	}
	out := apigen.PolicyList{Items: make([]apigen.Policy, len(page.Items)), NextCursor: nextCursorOf(page.NextCursor)}
	for i, p := range page.Items {
		out.Items[i] = withLive(policyOut(p, s.policyStats(p.ID)), live[p.ID])
	}
	c.JSON(http.StatusOK, out)
}

// CreatePolicy stores a policy with its audit entry, recompiles the classifier and broadcasts
// policy.updated.
func (s *Server) CreatePolicy(c *gin.Context) {
	var in apigen.PolicyCreate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	p := storage.Policy{Name: in.Name, Priority: int(in.Priority), Enabled: in.Enabled == nil || *in.Enabled}
	applyPolicyMatch(&p, in.Match)
	applyPolicyAction(&p, in.Action)
	if fields := append(checkPolicyMatch(in.Match), checkPolicyAction(in.Action)...); len(fields) > 0 {
		writeError(c, fieldErrors(errValidation, fields))
		return
	}
	ctx := c.Request.Context()
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		if err := checkPreferredPath(ctx, tx, p.PathID); err != nil {
			return err
		}
		if err := tx.Policies().Create(ctx, &p); err != nil {
			return policyWriteError(err, p, p.PathID != nil)
		}
		var err error
		if p, err = tx.Policies().Get(ctx, p.ID); err != nil { // as stored, timestamps included
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindPolicyCreated, resourceKey(p.ID), map[string]any{"after": policySummary(p)},
			policyEffects(p.ID, apigen.AuditActionCreate))
		return err
	})
	if err != nil {
		writeError(c, s.policyNameTaken(ctx, err, p.Name))
		return
	}
	s.applied(c, seq)
	writeCreated(c, "/api/v1/policies/"+strconv.FormatInt(p.ID, 10), policyOut(p, s.policyStats(p.ID)))
}

// GetPolicy answers one policy with its live counters.
func (s *Server) GetPolicy(c *gin.Context, policyID apigen.PolicyID) {
	p, err := s.store.Policies().Get(c.Request.Context(), policyID)
	if err != nil {
		writeError(c, err)
		return
	}
	live, err := liveOrLocal(c.Request.Context(), s, apigen.LiveScopeCluster, func(scope apigen.LiveScope) (map[int64]apigen.PolicyStats, error) {
		return s.clusterPolicyStats(c.Request.Context(), []int64{p.ID}, scope)
	})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, withLive(policyOut(p, s.policyStats(p.ID)), live[p.ID]))
}

// UpdatePolicy changes the fields present in the body (match and action replace the whole
// object), with its audit entry; counters are kept. Recompiles the classifier and broadcasts
// policy.updated.
func (s *Server) UpdatePolicy(c *gin.Context, policyID apigen.PolicyID) {
	var in apigen.PolicyUpdate
	if err := decodeBodyStrict(c, &in); err != nil {
		writeError(c, err)
		return
	}
	fields := checkPolicyMatch(in.Match)
	if in.Action != nil {
		fields = append(fields, checkPolicyAction(*in.Action)...)
	}
	if len(fields) > 0 {
		writeError(c, fieldErrors(errValidation, fields))
		return
	}
	ctx := c.Request.Context()
	var p storage.Policy
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := tx.Policies().Get(ctx, policyID)
		if err != nil {
			return err
		}
		p = before
		if in.Name != nil {
			p.Name = *in.Name
		}
		if in.Priority != nil {
			p.Priority = int(*in.Priority)
		}
		if in.Enabled != nil {
			p.Enabled = *in.Enabled
		}
		if in.Match != nil {
			applyPolicyMatch(&p, in.Match)
		}
		var newPath bool
		if in.Action != nil {
			_, pathID := policyActionFields(*in.Action)
			newPath = pathID != nil
		}
		if in.Action != nil {
			applyPolicyAction(&p, *in.Action)
			if err := checkPreferredPath(ctx, tx, p.PathID); err != nil {
				return err
			}
		}
		if err := tx.Policies().Update(ctx, &p); err != nil {
			return policyWriteError(err, p, newPath)
		}
		seq, err = s.record(ctx, tx, c, storage.KindPolicyUpdated, resourceKey(p.ID), changeDetails(policySummary(before), policySummary(p)),
			policyEffects(p.ID, apigen.AuditActionUpdate))
		return err
	})
	if err != nil {
		writeError(c, s.policyNameTaken(ctx, err, p.Name))
		return
	}
	s.applied(c, seq)
	c.JSON(http.StatusOK, policyOut(p, s.policyStats(p.ID)))
}

// DeletePolicy removes a policy with its audit entry; the collector drops its counters and
// flows. Broadcast as policy.updated.
func (s *Server) DeletePolicy(c *gin.Context, policyID apigen.PolicyID) {
	ctx := c.Request.Context()
	var seq int64
	err := s.store.Tx(ctx, func(tx *storage.Store) error {
		before, err := tx.Policies().Get(ctx, policyID)
		if err != nil {
			return err
		}
		if err := tx.Policies().Delete(ctx, policyID); err != nil {
			return err
		}
		seq, err = s.record(ctx, tx, c, storage.KindPolicyDeleted, resourceKey(policyID), map[string]any{"before": policySummary(before)},
			policyEffects(policyID, apigen.AuditActionDelete))
		return err
	})
	if err != nil {
		writeError(c, err)
		return
	}
	s.applied(c, seq)
	c.Status(http.StatusNoContent)
}

// checkPolicyMatch finds the port ranges that end before they start; the schema checks the
// rest of the criteria.
func checkPolicyMatch(m *apigen.PolicyMatch) []FieldError {
	if m == nil {
		return nil
	}
	var fields []FieldError
	// The spec's CIDR pattern checks the form; the address must also parse for its family.
	for _, c := range []struct {
		name string
		cidr *string
	}{{"match.src_cidr", m.SrcCIDR}, {"match.dst_cidr", m.DstCIDR}} {
		if c.cidr == nil {
			continue
		}
		if _, err := netip.ParsePrefix(*c.cidr); err != nil {
			fields = append(fields, FieldError{Field: c.name, Message: "must be an IPv4 or IPv6 prefix in CIDR notation, like 10.0.0.0/8 or 2001:db8::/32"})
		}
	}
	for _, list := range []struct {
		name   string
		ranges *[]apigen.PortRange
	}{{"src_ports", m.SrcPorts}, {"dst_ports", m.DstPorts}} {
		if list.ranges == nil {
			continue
		}
		for i, r := range *list.ranges {
			if r.From > r.To {
				fields = append(fields, FieldError{Field: fmt.Sprintf("match.%s[%d].to", list.name, i),
					Message: fmt.Sprintf("must not be less than from (%d)", r.From)})
			}
		}
	}
	return fields
}

// checkPolicyAction checks that drop names no path. A prefer_path whose path_id is null
// prefers no path (the routing decision chooses): what a policy reads as once its path is
// deleted, so it can be written back as read.
func checkPolicyAction(a apigen.PolicyAction) []FieldError {
	typ, pathID := policyActionFields(a)
	if typ == storage.ActionDrop && pathID != nil {
		return []FieldError{{Field: "action.path_id", Message: "must be absent for drop"}}
	}
	return nil
}

// checkPreferredPath turns a preferred path that does not exist into a 422 on action.path_id.
func checkPreferredPath(ctx context.Context, tx *storage.Store, pathID *int64) error {
	if pathID == nil {
		return nil
	}
	_, err := tx.Paths().Get(ctx, *pathID)
	if errors.Is(err, storage.ErrNotFound) {
		return fieldError("action.path_id", "no path with id %d", *pathID)
	}
	return err
}

// policyWriteError explains a failed policy write: the only unique field is the name, and a
// missing path after checkPreferredPath passed means it was deleted meanwhile.
func policyWriteError(err error, p storage.Policy, wrotePath bool) error {
	switch {
	case duplicateOf(err, ""):
		// The database did not say which key; a named one is left for policyNameTaken.
		return conflictField("name", "already taken", "a policy named %s already exists", p.Name)
	case errors.Is(err, storage.ErrNotFound) && wrotePath:
		return newError(storage.ErrConflict, "path %d was deleted meanwhile", *p.PathID)
	}
	return err
}
