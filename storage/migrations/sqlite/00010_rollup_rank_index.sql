-- +goose Up
-- The bucket indexes of the rollup tables also carry the series id and its bytes, so that
-- ranking top by bytes over a range (SUM(bytes) per series) reads the index alone: a 1h row
-- is mostly its histogram, and reading 24,000 of them to sum their bytes took most of a
-- day's top-10. Pruning by age still uses the index's first column.
DROP INDEX policy_stats_1m_bucket_idx;
CREATE INDEX policy_stats_1m_bucket_idx ON policy_stats_1m (bucket, policy_id, bytes);
DROP INDEX policy_stats_1h_bucket_idx;
CREATE INDEX policy_stats_1h_bucket_idx ON policy_stats_1h (bucket, policy_id, bytes);
DROP INDEX path_stats_1m_bucket_idx;
CREATE INDEX path_stats_1m_bucket_idx ON path_stats_1m (bucket, path_id, bytes);
DROP INDEX path_stats_1h_bucket_idx;
CREATE INDEX path_stats_1h_bucket_idx ON path_stats_1h (bucket, path_id, bytes);

-- +goose Down
DROP INDEX policy_stats_1m_bucket_idx;
CREATE INDEX policy_stats_1m_bucket_idx ON policy_stats_1m (bucket);
DROP INDEX policy_stats_1h_bucket_idx;
CREATE INDEX policy_stats_1h_bucket_idx ON policy_stats_1h (bucket);
DROP INDEX path_stats_1m_bucket_idx;
CREATE INDEX path_stats_1m_bucket_idx ON path_stats_1m (bucket);
DROP INDEX path_stats_1h_bucket_idx;
CREATE INDEX path_stats_1h_bucket_idx ON path_stats_1h (bucket);
