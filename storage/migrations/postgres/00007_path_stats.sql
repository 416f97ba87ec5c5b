-- +goose Up
-- Per-path traffic history, the SQL form of the path_traffic measurement: one row per path,
-- instance and flush time, the same columns as policy_stats (active_flows is always 0: flows
-- are tracked per policy). No foreign key to paths: a path's history outlives the path, until
-- the history retention deletes it.
CREATE TABLE path_stats (
    id           BIGSERIAL PRIMARY KEY,
    path_id      BIGINT NOT NULL,
    timestamp    TIMESTAMPTZ NOT NULL,
    instance     TEXT NOT NULL,
    packets      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    active_flows BIGINT NOT NULL,
    -- a re-sent batch overwrites instead of adding
    CONSTRAINT path_stats_point_key UNIQUE (path_id, instance, timestamp)
);
CREATE INDEX path_stats_path_time_idx ON path_stats (path_id, timestamp);
CREATE INDEX path_stats_time_idx ON path_stats (timestamp);

-- +goose Down
DROP TABLE path_stats;
