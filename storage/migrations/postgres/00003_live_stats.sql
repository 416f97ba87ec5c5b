-- +goose Up
-- Each replica's latest live counters, written every flush interval, so any replica can answer
-- cluster-wide totals. reset_seq is the newest stats reset (its change sequence number) the
-- counters reflect; a row older than the newest reset in live_stats_resets is ignored.
CREATE TABLE live_totals (
    instance             TEXT PRIMARY KEY,
    packets              BIGINT NOT NULL,
    bytes                BIGINT NOT NULL,
    active_flows         BIGINT NOT NULL,
    unclassified_packets BIGINT NOT NULL,
    unclassified_bytes   BIGINT NOT NULL,
    unclassified_reports BIGINT NOT NULL,
    tracked_flows        BIGINT NOT NULL,
    flow_overflow        BIGINT NOT NULL,
    flows_expired        BIGINT NOT NULL,
    reset_seq            BIGINT NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- One row per instance and policy with traffic since its last reset; a policy with no row has
-- zero counters on that instance.
CREATE TABLE live_policy_stats (
    instance     TEXT NOT NULL,
    policy_id    BIGINT NOT NULL,
    packets      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    active_flows BIGINT NOT NULL,
    last_seen    TIMESTAMPTZ,
    reset_seq    BIGINT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance, policy_id)
);
CREATE INDEX live_policy_stats_policy_idx ON live_policy_stats (policy_id);

-- The newest reset of each scope: policy_id 0 is a reset of every policy.
CREATE TABLE live_stats_resets (
    policy_id BIGINT PRIMARY KEY,
    reset_seq BIGINT NOT NULL,
    reset_at  TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE live_stats_resets;
DROP TABLE live_policy_stats;
DROP TABLE live_totals;
