-- +goose Up
CREATE TABLE sites (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    location    TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL,
    CONSTRAINT sites_name_key UNIQUE (name)
);

CREATE TABLE endpoints (
    id         TEXT PRIMARY KEY,
    site_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    interface  TEXT NOT NULL DEFAULT '',
    address    TEXT NOT NULL,
    wan_kind   TEXT NOT NULL DEFAULT 'other',
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT endpoints_site_fk FOREIGN KEY (site_id) REFERENCES sites (id) ON DELETE CASCADE
);
-- PostgreSQL does not index foreign keys by itself; without these a cascade scans the table.
CREATE INDEX endpoints_site_id_idx ON endpoints (site_id);

CREATE TABLE paths (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL,
    local_endpoint_id  TEXT NOT NULL,
    remote_endpoint_id TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'up',
    created_at         DATETIME NOT NULL,
    updated_at         DATETIME NOT NULL,
    CONSTRAINT paths_local_endpoint_fk FOREIGN KEY (local_endpoint_id) REFERENCES endpoints (id) ON DELETE CASCADE,
    CONSTRAINT paths_remote_endpoint_fk FOREIGN KEY (remote_endpoint_id) REFERENCES endpoints (id) ON DELETE CASCADE,
    CONSTRAINT paths_status_check CHECK (status IN ('up', 'degraded', 'down'))
);
CREATE INDEX paths_local_endpoint_id_idx ON paths (local_endpoint_id);
CREATE INDEX paths_remote_endpoint_id_idx ON paths (remote_endpoint_id);

CREATE TABLE path_metrics (
    path_id         INTEGER PRIMARY KEY,
    latency_ms      REAL NOT NULL,
    jitter_ms       REAL NOT NULL,
    packet_loss_pct REAL NOT NULL,
    bandwidth_mbps  REAL NOT NULL,
    mtu             INTEGER NOT NULL,
    score           INTEGER NOT NULL,
    measured_at     DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL,
    CONSTRAINT path_metrics_path_fk FOREIGN KEY (path_id) REFERENCES paths (id) ON DELETE CASCADE
);

CREATE TABLE policies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT 1,
    protocol    INTEGER,
    src_cidr    TEXT NOT NULL DEFAULT '',
    dst_cidr    TEXT NOT NULL DEFAULT '',
    src_ports   TEXT NOT NULL DEFAULT '[]',
    dst_ports   TEXT NOT NULL DEFAULT '[]',
    action_type TEXT NOT NULL,
    path_id     INTEGER,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL,
    CONSTRAINT policies_name_key UNIQUE (name),
    CONSTRAINT policies_path_fk FOREIGN KEY (path_id) REFERENCES paths (id) ON DELETE SET NULL,
    CONSTRAINT policies_action_check CHECK (action_type IN ('prefer_path', 'drop'))
);
CREATE INDEX policies_path_id_idx ON policies (path_id);

CREATE TABLE audit_entries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time          DATETIME NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_entries_resource_idx ON audit_entries (resource_kind, resource_id);
CREATE INDEX audit_entries_time_idx ON audit_entries (time);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    last_used_at DATETIME,
    revoked_at   DATETIME,
    CONSTRAINT api_tokens_hash_key UNIQUE (hash),
    CONSTRAINT api_tokens_role_check CHECK (role IN ('viewer', 'operator', 'admin'))
);

CREATE TABLE policy_stats (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id    INTEGER NOT NULL,
    timestamp    DATETIME NOT NULL,
    instance     TEXT NOT NULL,
    packets      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    active_flows INTEGER NOT NULL,
    -- one row per policy, instance and flush time: a re-sent batch overwrites instead of adding
    CONSTRAINT policy_stats_point_key UNIQUE (policy_id, instance, timestamp)
);
CREATE INDEX policy_stats_policy_time_idx ON policy_stats (policy_id, timestamp);
CREATE INDEX policy_stats_time_idx ON policy_stats (timestamp);

-- +goose Down
DROP TABLE policy_stats;
DROP TABLE api_tokens;
DROP TABLE audit_entries;
DROP TABLE policies;
DROP TABLE path_metrics;
DROP TABLE paths;
DROP TABLE endpoints;
DROP TABLE sites;
