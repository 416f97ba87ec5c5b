package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Kinds of change: the one vocabulary of writes. Each names the resource kind before the dot
// (which is the audit log's resource_kind) and what happened after it.
const (
	KindSiteCreated         = "site.created"
	KindSiteUpdated         = "site.updated"
	KindSiteDeleted         = "site.deleted"
	KindEndpointCreated     = "endpoint.created"
	KindEndpointUpdated     = "endpoint.updated"
	KindEndpointDeleted     = "endpoint.deleted"
	KindPathCreated         = "path.created"
	KindPathUpdated         = "path.updated"
	KindPathDeleted         = "path.deleted"
	KindPathMetricsReplaced = "path_metrics.replaced"
	KindPolicyCreated       = "policy.created"
	KindPolicyUpdated       = "policy.updated"
	KindPolicyDeleted       = "policy.deleted"
	KindStatsReset          = "stats.reset"
	KindCacheCleared        = "cache.cleared"
	KindTokenCreated        = "token.created"
	KindTokenRevoked        = "token.revoked"
)

// kindActions maps each kind to the audit action it is listed under.
var kindActions = map[string]string{
	KindSiteCreated: "create", KindSiteUpdated: "update", KindSiteDeleted: "delete",
	KindEndpointCreated: "create", KindEndpointUpdated: "update", KindEndpointDeleted: "delete",
	KindPathCreated: "create", KindPathUpdated: "update", KindPathDeleted: "delete",
	KindPathMetricsReplaced: "update",
	KindPolicyCreated:       "create", KindPolicyUpdated: "update", KindPolicyDeleted: "delete",
	KindStatsReset:   "reset",
	KindCacheCleared: "clear",
	KindTokenCreated: "create", KindTokenRevoked: "delete",
}

// Kinds returns every change kind.
func Kinds() []string {
	out := make([]string, 0, len(kindActions))
	for k := range kindActions {
		out = append(out, k)
	}
	return out
}

// ChangeEvent is one event a change publishes to the SSE clients of every replica.
type ChangeEvent struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data,omitempty"`
}

// Effects is what a replica needs to apply a change besides its kind and resource id.
type Effects struct {
	// PathIDs are the paths removed or changed: their cached metrics and routing decisions go.
	PathIDs []int64 `json:"path_ids,omitempty"`
	// PolicyIDs are the policies touched (for deletions: those whose preferred path was cleared).
	PolicyIDs []int64 `json:"policy_ids,omitempty"`
	// TokenHash is the hash of a revoked token, to forget in the authentication cache.
	TokenHash string `json:"token_hash,omitempty"`
	// Caches names the caches a cache.cleared empties.
	Caches []string `json:"caches,omitempty"`
	// Events are published, in order, with the change's seq as their id. Deletions of paths
	// add one path.deleted per PathIDs entry after them.
	Events []ChangeEvent `json:"events,omitempty"`
}

// Change is one row of the change feed, which is also the audit log.
type Change struct {
	// Seq is assigned by the database and strictly increases in commit order.
	Seq          int64 `gorm:"primaryKey;column:seq"`
	Time         time.Time
	Kind         string
	Actor        string
	Action       string
	ResourceKind string
	ResourceID   string
	// Details is the audit summary (before/after, counts).
	Details map[string]any `gorm:"serializer:json"`
	Effects Effects        `gorm:"serializer:json"`
}

// TableName is the feed's table.
func (Change) TableName() string { return "changes" }

// feedLockKey is the pg_advisory_xact_lock key that serialises change inserts, so that seq
// order is commit order (a sequence is assigned at insert, not at commit).
const feedLockKey = 0x7061747266656564 // "patrfeed"

// FeedChannel is the NOTIFY channel of the feed in schema: one per schema, so databases shared
// by several schemas (tests) do not wake each other's tailers.
func FeedChannel(schema string) string { return "patronus_changes_" + schema }

// ChangeStore records and reads the change feed.
type ChangeStore struct {
	store *Store
}

// Changes returns the change-feed store.
func (s *Store) Changes() *ChangeStore { return &ChangeStore{store: s} }

// Record appends a change in the current transaction (or its own, outside one) and sets its
// seq and time. On PostgreSQL it takes the feed lock right before the insert, held to commit,
// and sends the seq on the feed channel, delivered at commit.
func (cs *ChangeStore) Record(ctx context.Context, c *Change) error {
	action, ok := kindActions[c.Kind]
	if !ok {
		return fmt.Errorf("record change: unknown kind %q", c.Kind)
	}
	c.Action = action
	c.ResourceKind, _, _ = strings.Cut(c.Kind, ".")
	if c.Time.IsZero() {
		c.Time = cs.store.db.NowFunc()
	}
	if c.Details == nil {
		c.Details = map[string]any{}
	}
	s := cs.store
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if s.Dialect == DialectPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", feedLockKey).Error; err != nil {
				return err
			}
		}
		if err := tx.Create(c).Error; err != nil {
			return err
		}
		if s.Dialect == DialectPostgres {
			return tx.Exec("SELECT pg_notify('patronus_changes_' || current_schema(), ?)", strconv.FormatInt(c.Seq, 10)).Error
		}
		return nil
	})
	if err != nil {
		return translate(err, "record change "+c.Kind)
	}
	s.recorded(c.Seq)
	return nil
}

// After returns up to limit changes with seq > after, in seq order.
func (cs *ChangeStore) After(ctx context.Context, after int64, limit int) ([]Change, error) {
	var out []Change
	err := cs.store.db.WithContext(ctx).Where("seq > ?", after).Order("seq").Limit(limit).Find(&out).Error
	return out, translate(err, "read changes")
}

// Head returns the newest seq (0 for an empty feed) and the newest seq pruning removed: a
// reader whose last seq is below prunedThrough missed changes for good.
func (cs *ChangeStore) Head(ctx context.Context) (head, prunedThrough int64, err error) {
	err = cs.store.db.WithContext(ctx).Raw(`SELECT coalesce((SELECT max(seq) FROM changes), 0),
  (SELECT pruned_through FROM change_feed_state WHERE id = 1)`).Row().Scan(&head, &prunedThrough)
	if head < prunedThrough {
		head = prunedThrough
	}
	return head, prunedThrough, translate(err, "read the feed head")
}

// Prune deletes the changes recorded before the given time (and so their audit entries),
// remembers the newest seq it removed, and returns how many rows went.
func (cs *ChangeStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := cs.store.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var through *int64
		if err := tx.Raw("SELECT max(seq) FROM changes WHERE time < ?", before.UTC()).Row().Scan(&through); err != nil {
			return err
		}
		if through == nil {
			return nil
		}
		res := tx.Exec("DELETE FROM changes WHERE seq <= ?", *through)
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
		return tx.Exec("UPDATE change_feed_state SET pruned_through = ? WHERE id = 1 AND pruned_through < ?", *through, *through).Error
	})
	return n, translate(err, "prune the change feed")
}

// DefaultFeedRetention is how long changes (and so audit entries) are kept: 90 days, as
// NetBox keeps its change log.
const DefaultFeedRetention = 90 * 24 * time.Hour
