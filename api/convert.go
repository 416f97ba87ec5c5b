package api

import (
	"time"

	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/api/apigen"
	"github.com/patronus-sdwan/patronus/collector"
	"github.com/patronus-sdwan/patronus/storage"
)

// storedUUID parses an id the database holds. Stores only ever write valid UUIDs, so a bad
// one is corrupt data: it shows as the nil UUID rather than failing the whole answer.
func storedUUID(id string) uuid.UUID {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil
	}
	return u
}

func siteOut(s storage.Site) apigen.Site {
	return apigen.Site{
		ID: storedUUID(s.ID), Name: s.Name, Location: s.Location, Description: s.Description,
		Version: s.Version, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

func endpointOut(e storage.Endpoint) apigen.Endpoint {
	return apigen.Endpoint{
		ID: storedUUID(e.ID), SiteID: storedUUID(e.SiteID), Name: e.Name, Interface: e.Interface,
		Address: e.Address, WANKind: apigen.WANKind(e.WANKind), CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
}

func pathOut(p storage.Path) apigen.Path {
	return apigen.Path{
		ID: p.ID, Name: p.Name, LocalEndpointID: storedUUID(p.LocalEndpointID),
		RemoteEndpointID: storedUUID(p.RemoteEndpointID), Status: apigen.PathStatus(p.Status),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// policyMatchOut renders the match criteria; absent criteria stay absent.
func policyMatchOut(p storage.Policy) apigen.PolicyMatch {
	var m apigen.PolicyMatch
	if p.Protocol != nil {
		proto := int32(*p.Protocol)
		m.Protocol = &proto
	}
	if p.SrcCIDR != "" {
		m.SrcCIDR = &p.SrcCIDR
	}
	if p.DstCIDR != "" {
		m.DstCIDR = &p.DstCIDR
	}
	m.SrcPorts = portRangesOut(p.SrcPorts)
	m.DstPorts = portRangesOut(p.DstPorts)
	return m
}

func portRangesOut(rs []storage.PortRange) *[]apigen.PortRange {
	if len(rs) == 0 {
		return nil
	}
	out := make([]apigen.PortRange, len(rs))
	for i, r := range rs {
		out[i] = apigen.PortRange{From: int32(r.From), To: int32(r.To)}
	}
	return &out
}

func portRangesIn(rs *[]apigen.PortRange) []storage.PortRange {
	if rs == nil {
		return []storage.PortRange{}
	}
	out := make([]storage.PortRange, len(*rs))
	for i, r := range *rs {
		// The schema bounds both ends to 0..65535.
		out[i] = storage.PortRange{From: uint16(r.From), To: uint16(r.To)}
	}
	return out
}

// applyPolicyMatch replaces the policy's match criteria with m (nil clears them all).
func applyPolicyMatch(p *storage.Policy, m *apigen.PolicyMatch) {
	var in apigen.PolicyMatch
	if m != nil {
		in = *m
	}
	p.Protocol = nil
	if in.Protocol != nil {
		proto := int(*in.Protocol)
		p.Protocol = &proto
	}
	p.SrcCIDR = deref(in.SrcCIDR)
	p.DstCIDR = deref(in.DstCIDR)
	p.SrcPorts = portRangesIn(in.SrcPorts)
	p.DstPorts = portRangesIn(in.DstPorts)
}

// policyActionFields reads the type and preferred path of an action, the discriminated union
// of prefer_path and drop.
func policyActionFields(a apigen.PolicyAction) (string, *int64) {
	typ, _ := a.Discriminator()
	if typ != storage.ActionPreferPath {
		return typ, nil
	}
	pp, _ := a.AsPreferPathAction()
	return typ, pp.PathID
}

// policyActionOut renders a stored action; a prefer_path whose path was deleted has path_id null.
func policyActionOut(actionType string, pathID *int64) apigen.PolicyAction {
	var a apigen.PolicyAction
	if actionType == storage.ActionDrop {
		_ = a.FromDropAction(apigen.DropAction{Type: apigen.DropActionTypeDrop})
		return a
	}
	_ = a.FromPreferPathAction(apigen.PreferPathAction{Type: apigen.PreferPathActionTypePreferPath, PathID: pathID})
	return a
}

// applyPolicyAction replaces the policy's action with a.
func applyPolicyAction(p *storage.Policy, a apigen.PolicyAction) {
	typ, pathID := policyActionFields(a)
	p.ActionType = typ
	p.PathID = nil
	if pathID != nil {
		id := *pathID
		p.PathID = &id
	}
}

// policyOut renders a policy with its live counters.
func policyOut(p storage.Policy, st collector.PolicyStats) apigen.Policy {
	out := apigen.Policy{
		ID: p.ID, Name: p.Name, Priority: int32(p.Priority), Enabled: p.Enabled,
		Match:          policyMatchOut(p),
		Action:         policyActionOut(p.ActionType, p.PathID),
		PacketsMatched: counterOut(st.PacketsMatched), BytesMatched: counterOut(st.BytesMatched),
		ActiveFlows: st.ActiveFlows, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	if !st.LastSeen.IsZero() {
		last := st.LastSeen
		out.LastSeen = &last
	}
	return out
}

func auditOut(e storage.AuditEntry) apigen.AuditEntry {
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	return apigen.AuditEntry{
		ID: e.ID, Time: e.Time, Actor: e.Actor, Action: apigen.AuditAction(e.Action),
		ResourceKind: apigen.AuditResourceKind(e.ResourceKind), ResourceID: e.ResourceID, Details: details,
	}
}

func tokenOut(t storage.APIToken) apigen.Token {
	var lastUsed *time.Time
	if t.LastUsedAt != nil {
		u := *t.LastUsedAt
		lastUsed = &u
	}
	return apigen.Token{ID: t.ID, Name: t.Name, Role: apigen.Role(t.Role), CreatedAt: t.CreatedAt, LastUsedAt: lastUsed}
}

// Summaries of a resource's writable fields, for audit details: what a reader of the log needs
// to see what changed, without timestamps or live counters.

func siteSummary(s storage.Site) map[string]any {
	return map[string]any{"name": s.Name, "location": s.Location, "description": s.Description, "version": s.Version}
}

func endpointSummary(e storage.Endpoint) map[string]any {
	return map[string]any{"site_id": e.SiteID, "name": e.Name, "interface": e.Interface, "address": e.Address, "wan_kind": e.WANKind}
}

func pathSummary(p storage.Path) map[string]any {
	return map[string]any{"name": p.Name, "local_endpoint_id": p.LocalEndpointID, "remote_endpoint_id": p.RemoteEndpointID, "status": p.Status}
}

func policySummary(p storage.Policy) map[string]any {
	action := map[string]any{"type": p.ActionType}
	if p.PathID != nil {
		action["path_id"] = *p.PathID
	}
	return map[string]any{"name": p.Name, "priority": p.Priority, "enabled": p.Enabled, "match": policyMatchOut(p), "action": action}
}

func tokenSummary(t storage.APIToken) map[string]any {
	return map[string]any{"name": t.Name, "role": t.Role}
}
