-- +goose Up
-- Rollups of path history (storage/history/tiers.go), as policy_stats_1m and policy_stats_1h
-- are of policy history: per path and bucket, summed over instances, rebuilt from the raw
-- rows of path_stats by the rollup job; path_id -1 holds every path together. No foreign key
-- to paths: a path's history outlives the path, until the tier's retention deletes it.
CREATE TABLE path_stats_1m (
    path_id      BIGINT NOT NULL,
    bucket       BIGINT NOT NULL,
    packets      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    samples      BIGINT NOT NULL,
    active_flows BIGINT NOT NULL,
    max_bytes    BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    last_bytes   BIGINT NOT NULL,
    rates        TEXT NOT NULL,
    PRIMARY KEY (path_id, bucket)
);
CREATE INDEX path_stats_1m_bucket_idx ON path_stats_1m (bucket);

CREATE TABLE path_stats_1h (
    path_id      BIGINT NOT NULL,
    bucket       BIGINT NOT NULL,
    packets      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    samples      BIGINT NOT NULL,
    active_flows BIGINT NOT NULL,
    max_bytes    BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    last_bytes   BIGINT NOT NULL,
    rates        TEXT NOT NULL,
    PRIMARY KEY (path_id, bucket)
);
CREATE INDEX path_stats_1h_bucket_idx ON path_stats_1h (bucket);

-- +goose Down
DROP TABLE path_stats_1h;
DROP TABLE path_stats_1m;
