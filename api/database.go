package api

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/patronus-sdwan/patronus/storage"
)

// databaseProbe is the readiness check of the database: connected and migrated, answering,
// and able to write (on SQLite, a disk with room).
func databaseProbe(cfg Config) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if cfg.DatabaseReady != nil && !cfg.DatabaseReady() {
			return storage.ErrUnavailable
		}
		return cfg.DB.CheckWritable(ctx)
	}
}

// databaseGate answers 503 on the routes that need the database while it is not connected
// yet, so no request meets an unmigrated schema. Public routes and traffic ingest, which
// needs no database for the admin token, pass.
func databaseGate(ready func() bool, roleOf func(method, fullPath string) (string, bool)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if ready == nil || ready() || c.FullPath() == trafficRoute {
			c.Next()
			return
		}
		if role, known := roleOf(c.Request.Method, c.FullPath()); !known || role == "" {
			c.Next()
			return
		}
		writeError(c, newError(errUnavailable, "the database is not connected yet"))
	}
}
