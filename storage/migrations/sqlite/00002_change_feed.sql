-- +goose Up
-- The audit log becomes the change feed: one row per write, in the write's transaction, with a
-- strictly increasing seq that every replica tails (see storage/change.go).
ALTER TABLE audit_entries RENAME TO changes;
ALTER TABLE changes RENAME COLUMN id TO seq;
ALTER TABLE changes ADD COLUMN kind TEXT NOT NULL DEFAULT '';
-- effects: what replicas need to apply the change (removed path ids, token hash, events).
ALTER TABLE changes ADD COLUMN effects TEXT NOT NULL DEFAULT '{}';
UPDATE changes SET kind = CASE
    WHEN resource_kind = 'token' AND action = 'delete' THEN 'token.revoked'
    WHEN resource_kind = 'path_metrics' THEN 'path_metrics.replaced'
    WHEN action = 'create' THEN resource_kind || '.created'
    WHEN action = 'update' THEN resource_kind || '.updated'
    WHEN action = 'delete' THEN resource_kind || '.deleted'
    WHEN action = 'reset' THEN resource_kind || '.reset'
    WHEN action = 'clear' THEN resource_kind || '.cleared'
    ELSE resource_kind || '.' || action END;
-- pruned_through is the newest seq pruning removed: a tailer whose last applied seq is below it
-- fell behind the retained feed.
CREATE TABLE change_feed_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT NOT NULL DEFAULT 0
);
INSERT INTO change_feed_state (id, pruned_through) VALUES (1, 0);

-- +goose Down
DROP TABLE change_feed_state;
ALTER TABLE changes DROP COLUMN effects;
ALTER TABLE changes DROP COLUMN kind;
ALTER TABLE changes RENAME COLUMN seq TO id;
ALTER TABLE changes RENAME TO audit_entries;
