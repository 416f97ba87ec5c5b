-- +goose Up
-- The list filters and sort orders (?status=, ?sort=priority, ?sort=name, ?sort=created_at):
-- each index starts with the filtered or sorted column and ends with the key that breaks ties,
-- so a page is one index range scan. ?q= substring search cannot use a B-tree index; the
-- inventory tables are small enough for a scan.
CREATE INDEX paths_status_idx ON paths (status, id);
CREATE INDEX paths_name_idx ON paths (name, id);
CREATE INDEX policies_priority_idx ON policies (priority, id);
CREATE INDEX endpoints_site_name_idx ON endpoints (site_id, name, id);
CREATE INDEX sites_created_at_idx ON sites (created_at, id);

-- +goose Down
DROP INDEX sites_created_at_idx;
DROP INDEX endpoints_site_name_idx;
DROP INDEX policies_priority_idx;
DROP INDEX paths_name_idx;
DROP INDEX paths_status_idx;
