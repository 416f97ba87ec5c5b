-- +goose Up
-- History rollups (storage/history/tiers.go): per policy and bucket, summed over instances,
-- rebuilt from the raw rows of policy_stats by the rollup job, so a rebuild replaces a row and
-- never adds to it. policy_id -1 holds every policy together. bucket and last_at are Unix
-- seconds (the start of the bucket, of its last interval with traffic); rates is the text
-- form of the per-interval bytes (exact on 1m, a histogram on 1h).
CREATE TABLE policy_stats_1m (
    policy_id    INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    packets      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    active_flows INTEGER NOT NULL,
    max_bytes    INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    last_bytes   INTEGER NOT NULL,
    rates        TEXT NOT NULL,
    PRIMARY KEY (policy_id, bucket)
);
-- all policies over a range (top, totals) and pruning by age
CREATE INDEX policy_stats_1m_bucket_idx ON policy_stats_1m (bucket);

CREATE TABLE policy_stats_1h (
    policy_id    INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    packets      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    samples      INTEGER NOT NULL,
    active_flows INTEGER NOT NULL,
    max_bytes    INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    last_bytes   INTEGER NOT NULL,
    rates        TEXT NOT NULL,
    PRIMARY KEY (policy_id, bucket)
);
CREATE INDEX policy_stats_1h_bucket_idx ON policy_stats_1h (bucket);

-- +goose Down
DROP TABLE policy_stats_1h;
DROP TABLE policy_stats_1m;
