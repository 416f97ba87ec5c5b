package storage

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// PolicyStore reads and writes routing policies.
type PolicyStore struct {
	db *gorm.DB
}

// ValidatePolicy checks the policy's fields and normalises its CIDRs; the error names the field.
func ValidatePolicy(p *Policy) error {
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("%w: name is required", ErrInvalid)
	}
	if p.Protocol != nil && (*p.Protocol < 0 || *p.Protocol > 255) {
		return fmt.Errorf("%w: match.protocol must be between 0 and 255", ErrInvalid)
	}
	for _, c := range []struct {
		field string
		value *string
	}{{"match.src_cidr", &p.SrcCIDR}, {"match.dst_cidr", &p.DstCIDR}} {
		if *c.value == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(*c.value)
		if err != nil {
			return fmt.Errorf("%w: %s %q is not a CIDR prefix", ErrInvalid, c.field, *c.value)
		}
		*c.value = prefix.Masked().String()
	}
	for _, r := range append(append([]PortRange{}, p.SrcPorts...), p.DstPorts...) {
		if r.From > r.To {
			return fmt.Errorf("%w: port range %d-%d has from > to", ErrInvalid, r.From, r.To)
		}
	}
	switch p.ActionType {
	case ActionPreferPath:
		// A nil PathID prefers no path: the routing decision chooses, as after the preferred
		// path is deleted.
	case ActionDrop:
		if p.PathID != nil {
			return fmt.Errorf("%w: action.path_id must be empty for drop", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: action.type %q is not prefer_path or drop", ErrInvalid, p.ActionType)
	}
	if p.SrcPorts == nil {
		p.SrcPorts = []PortRange{}
	}
	if p.DstPorts == nil {
		p.DstPorts = []PortRange{}
	}
	return nil
}

// Create stores a new policy. A preferred path that does not exist is ErrNotFound.
func (s *PolicyStore) Create(ctx context.Context, p *Policy) error {
	if err := ValidatePolicy(p); err != nil {
		return fmt.Errorf("create policy: %w", err)
	}
	err := s.db.WithContext(ctx).Create(p).Error
	if isForeignKeyError(err) {
		return fmt.Errorf("create policy: path %d: %w", *p.PathID, ErrNotFound)
	}
	return translate(err, "create policy")
}

// Get returns the policy with the given id.
func (s *PolicyStore) Get(ctx context.Context, id int64) (Policy, error) {
	var p Policy
	err := s.db.WithContext(ctx).Take(&p, "id = ?", id).Error
	return p, translate(err, fmt.Sprintf("get policy %d", id))
}

// ByName returns the policy named name (names are unique), or ErrNotFound.
func (s *PolicyStore) ByName(ctx context.Context, name string) (Policy, error) {
	var p Policy
	err := s.db.WithContext(ctx).Take(&p, "name = ?", name).Error
	return p, translate(err, "get policy named "+name)
}

// List returns one page of policies in id order.
func (s *PolicyStore) List(ctx context.Context, p ListParams) (Page[Policy], error) {
	return s.ListFiltered(ctx, PolicyFilter{}, p)
}

// PolicyFilter narrows a policy listing; zero fields do not filter.
type PolicyFilter struct {
	// Name is an exact name.
	Name string
	// Enabled selects enabled (true) or disabled (false) policies.
	Enabled *bool
	// ActionType is one action type.
	ActionType string
	// Query is a case-insensitive substring of the name or either CIDR.
	Query string
}

// policyList is how policies are paged and the orders they can be listed in. Among equal
// priorities the lower id comes first, as in the classifier.
var policyList = listSpec[Policy]{
	keyColumn: "id", keyOf: func(x Policy) string { return strconv.FormatInt(x.ID, 10) }, keyArg: int64Arg,
	sorts: map[string]sortColumn[Policy]{
		"name":       nameSort(func(x Policy) string { return x.Name }),
		"created_at": createdAtSort(func(x Policy) time.Time { return x.CreatedAt }),
		"priority":   {column: "priority", kind: kindInt, value: func(x Policy) any { return int64(x.Priority) }},
	},
}

// ListFiltered returns one page of the policies f selects, in the order p asks.
func (s *PolicyStore) ListFiltered(ctx context.Context, f PolicyFilter, p ListParams) (Page[Policy], error) {
	q := s.db.Model(&Policy{})
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.Enabled != nil {
		q = q.Where("enabled = ?", *f.Enabled)
	}
	if f.ActionType != "" {
		q = q.Where("action_type = ?", f.ActionType)
	}
	if f.Query != "" {
		q = containsFold(q, f.Query, "name", "src_cidr", "dst_cidr")
	}
	page, err := listSorted(ctx, q, policyList, p)
	return page, translate(err, "list policies")
}

// All returns every policy, for compiling the classifier.
func (s *PolicyStore) All(ctx context.Context) ([]Policy, error) {
	var ps []Policy
	err := s.db.WithContext(ctx).Order("id").Find(&ps).Error
	return ps, translate(err, "list all policies")
}

// PathPreference is a policy and the path it prefers.
type PathPreference struct {
	PolicyID int64 `gorm:"column:id"`
	PathID   int64
}

// Preferring returns the policies that prefer any of the given paths, by policy id: those a
// deletion of the paths clears. Call it before the deletion, in its transaction.
func (s *PolicyStore) Preferring(ctx context.Context, pathIDs []int64) ([]PathPreference, error) {
	prefs := []PathPreference{}
	if len(pathIDs) == 0 {
		return prefs, nil
	}
	err := s.db.WithContext(ctx).Model(&Policy{}).Select("id", "path_id").Where("path_id IN ?", pathIDs).
		Order("id").Scan(&prefs).Error
	return prefs, translate(err, "policies by path")
}

// PathsCleared records that a deletion (whose ON DELETE SET NULL cleared the preferred paths)
// changed these policies: it moves their updated_at to now and returns their policy.updated
// events, for the deletion's change record. Call it after the deletion, in its transaction.
func (s *PolicyStore) PathsCleared(ctx context.Context, prefs []PathPreference) ([]ChangeEvent, error) {
	if len(prefs) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(prefs))
	events := make([]ChangeEvent, len(prefs))
	for i, p := range prefs {
		ids[i] = p.PolicyID
		events[i] = ChangeEvent{Type: KindPolicyUpdated, Data: map[string]any{
			"policy_id": p.PolicyID, "action": "update", "cleared_path_id": p.PathID,
		}}
	}
	// In batches: a site deletion can clear many policies, and drivers bound the parameters.
	for start := 0; start < len(ids); start += 1000 {
		batch := ids[start:min(start+1000, len(ids))]
		err := s.db.WithContext(ctx).Model(&Policy{}).Where("id IN ?", batch).Update("updated_at", s.db.NowFunc()).Error
		if err != nil {
			return nil, translate(err, "mark policies whose path was deleted")
		}
	}
	return events, nil
}

// Update saves every field of the policy.
func (s *PolicyStore) Update(ctx context.Context, p *Policy) error {
	if err := ValidatePolicy(p); err != nil {
		return fmt.Errorf("update policy: %w", err)
	}
	res := s.db.WithContext(ctx).Model(&Policy{}).Where("id = ?", p.ID).
		Select("name", "priority", "enabled", "protocol", "src_cidr", "dst_cidr", "src_ports", "dst_ports", "action_type", "path_id", "updated_at").
		Updates(p)
	if isForeignKeyError(res.Error) {
		return fmt.Errorf("update policy %d: path: %w", p.ID, ErrNotFound)
	}
	if res.Error != nil {
		return translate(res.Error, fmt.Sprintf("update policy %d", p.ID))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("update policy %d: %w", p.ID, ErrNotFound)
	}
	updated, err := s.Get(ctx, p.ID)
	*p = updated
	return err
}

// Delete removes the policy. Its history stays.
func (s *PolicyStore) Delete(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Delete(&Policy{}, "id = ?", id)
	if res.Error != nil {
		return translate(res.Error, fmt.Sprintf("delete policy %d", id))
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete policy %d: %w", id, ErrNotFound)
	}
	return nil
}
