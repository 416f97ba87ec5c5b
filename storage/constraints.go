package storage

import (
	"context"
	"fmt"
	"strings"
)

// ForeignKey is one foreign-key constraint as the database catalog reports it.
type ForeignKey struct {
	Table     string
	Column    string
	RefTable  string
	RefColumn string
	// OnDelete is the referential action in upper case: CASCADE, SET NULL, NO ACTION, ...
	OnDelete string
}

// RequiredForeignKeys are the rules site deletion relies on: the database, not the
// application, removes endpoints, paths and metrics and clears preferred paths.
var RequiredForeignKeys = []ForeignKey{
	{Table: "endpoints", Column: "site_id", RefTable: "sites", RefColumn: "id", OnDelete: "CASCADE"},
	{Table: "paths", Column: "local_endpoint_id", RefTable: "endpoints", RefColumn: "id", OnDelete: "CASCADE"},
	{Table: "paths", Column: "remote_endpoint_id", RefTable: "endpoints", RefColumn: "id", OnDelete: "CASCADE"},
	{Table: "path_metrics", Column: "path_id", RefTable: "paths", RefColumn: "id", OnDelete: "CASCADE"},
	{Table: "policies", Column: "path_id", RefTable: "paths", RefColumn: "id", OnDelete: "SET NULL"},
}

// ForeignKeys reads every foreign key of the inventory tables from the catalog.
func (db *DB) ForeignKeys(ctx context.Context) ([]ForeignKey, error) {
	var fks []ForeignKey
	if db.Dialect == DialectPostgres {
		rows, err := db.SQL().QueryContext(ctx, `
SELECT kcu.table_name, kcu.column_name, ccu.table_name, ccu.column_name, rc.delete_rule
FROM information_schema.referential_constraints rc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_name = rc.constraint_name AND kcu.constraint_schema = rc.constraint_schema
JOIN information_schema.constraint_column_usage ccu
  ON ccu.constraint_name = rc.unique_constraint_name AND ccu.constraint_schema = rc.unique_constraint_schema
WHERE rc.constraint_schema = current_schema()
ORDER BY kcu.table_name, kcu.column_name`)
		if err != nil {
			return nil, fmt.Errorf("read foreign keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var fk ForeignKey
			if err := rows.Scan(&fk.Table, &fk.Column, &fk.RefTable, &fk.RefColumn, &fk.OnDelete); err != nil {
				return nil, fmt.Errorf("read foreign keys: %w", err)
			}
			fks = append(fks, fk)
		}
		return fks, rows.Err()
	}
	for _, table := range []string{"sites", "endpoints", "paths", "path_metrics", "policies", "changes", "api_tokens", "policy_stats"} {
		rows, err := db.SQL().QueryContext(ctx, `SELECT "table", "from", "to", on_delete FROM pragma_foreign_key_list(?)`, table)
		if err != nil {
			return nil, fmt.Errorf("read foreign keys of %s: %w", table, err)
		}
		for rows.Next() {
			fk := ForeignKey{Table: table}
			if err := rows.Scan(&fk.RefTable, &fk.Column, &fk.RefColumn, &fk.OnDelete); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read foreign keys of %s: %w", table, err)
			}
			fks = append(fks, fk)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read foreign keys of %s: %w", table, err)
		}
	}
	return fks, nil
}

// CheckForeignKeys verifies that every rule in RequiredForeignKeys exists in the database, and
// on SQLite that enforcement is switched on. Start-up refuses to serve without them, because
// site deletion would silently leave orphans.
func (db *DB) CheckForeignKeys(ctx context.Context) error {
	if db.Dialect == DialectSQLite {
		var on int
		if err := db.SQL().QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&on); err != nil {
			return fmt.Errorf("check foreign keys: %w", err)
		}
		if on != 1 {
			return fmt.Errorf("check foreign keys: SQLite foreign key enforcement is off")
		}
	}
	have, err := db.ForeignKeys(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, want := range RequiredForeignKeys {
		found := false
		for _, fk := range have {
			if fk.Table == want.Table && fk.Column == want.Column && fk.RefTable == want.RefTable &&
				strings.EqualFold(fk.OnDelete, want.OnDelete) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s.%s -> %s ON DELETE %s", want.Table, want.Column, want.RefTable, want.OnDelete))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("check foreign keys: missing %s", strings.Join(missing, "; "))
	}
	return nil
}
