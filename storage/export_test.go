package storage

import "context"

// MigrateUpTo applies the migrations up to and including version, as an older release left
// the database, for tests of the migrations after it.
func (db *DB) MigrateUpTo(ctx context.Context, version int64) error {
	provider, err := db.migrationProvider(ctx)
	if err != nil {
		return err
	}
	_, err = provider.UpTo(ctx, version)
	return err
}
