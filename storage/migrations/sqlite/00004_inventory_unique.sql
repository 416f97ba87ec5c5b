-- Inventory sanity: one path per (local, remote) endpoint pair, one endpoint per address
-- (stored in canonical form, so the text compares as the address does), and one live token
-- per name (a revoked token's name may be reused).
--
-- Migrate canonicalises the addresses and refuses, naming them, rows that would break these
-- indexes before this runs; run by hand on such rows it fails here, in its transaction,
-- leaving the database at version 3.

-- +goose Up
CREATE UNIQUE INDEX paths_ends_key ON paths (local_endpoint_id, remote_endpoint_id);
CREATE UNIQUE INDEX endpoints_address_key ON endpoints (address);
CREATE UNIQUE INDEX api_tokens_live_name_key ON api_tokens (name) WHERE revoked_at IS NULL;

-- +goose Down
DROP INDEX api_tokens_live_name_key;
DROP INDEX endpoints_address_key;
DROP INDEX paths_ends_key;
