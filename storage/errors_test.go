package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// sqliteError stands in for the SQLite driver's error, which reports its result code.
type sqliteError int

func (e sqliteError) Error() string { return "sqlite error" }
func (e sqliteError) Code() int     { return int(e) }

func TestTranslateContention(t *testing.T) {
	for name, cause := range map[string]error{
		"SerializationFailure": &pgconn.PgError{Code: "40001", Message: "could not serialize access"},
		"Deadlock":             &pgconn.PgError{Code: "40P01", Message: "deadlock detected"},
		"LockNotAvailable":     &pgconn.PgError{Code: "55P03", Message: "canceling statement due to lock timeout"},
		"SQLiteBusy":           sqliteError(5),
		"SQLiteBusySnapshot":   sqliteError(517),
		"SQLiteLocked":         sqliteError(6),
	} {
		t.Run(name, func(t *testing.T) {
			err := translate(cause, "delete site x")
			if !errors.Is(err, ErrConflict) || !errors.Is(err, cause) {
				t.Fatalf("translate(%v) = %v, want ErrConflict keeping the cause", cause, err)
			}
			if msg := err.Error(); strings.Contains(msg, "SQLSTATE") || strings.Contains(msg, "sqlite") || !strings.HasPrefix(msg, "delete site x: ") {
				t.Errorf("message %q leaks the driver's text or loses the operation", msg)
			}
		})
	}
	for name, cause := range map[string]error{
		"UniqueViolation":  &pgconn.PgError{Code: "23505"},
		"SQLiteConstraint": sqliteError(19),
		"Plain":            errors.New("connection refused"),
	} {
		t.Run(name, func(t *testing.T) {
			if err := translate(cause, "op"); isContention(cause) || errors.Is(err, ErrConflict) {
				t.Errorf("translate(%v) = %v: not a contention error", cause, err)
			}
		})
	}
}
