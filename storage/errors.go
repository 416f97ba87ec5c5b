package storage

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Errors every store returns, whatever the database said.
var (
	// ErrNotFound means the resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the write collides with existing state: a unique name, a stale version.
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the input cannot be stored as given: a missing reference, a bad value.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable means the database could not be reached or did not answer in time; the
	// same request may succeed later.
	ErrUnavailable = errors.New("database unavailable")
)

// translate maps GORM and driver errors to this package's sentinels, keeping the cause in the
// chain for logs. what names the operation for the message.
func translate(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%s: %w", what, ErrConflict)
	case errors.Is(err, gorm.ErrForeignKeyViolated), errors.Is(err, gorm.ErrCheckConstraintViolated):
		return fmt.Errorf("%s: %w", what, ErrInvalid)
	case isContention(err):
		return &contentionError{what: what, cause: err}
	case isUnavailable(err):
		return &unavailableError{what: what, cause: err}
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrInvalid):
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// isContention says the database refused a statement because of concurrent transactions:
// PostgreSQL's serialization failure, deadlock or lock timeout, or SQLite's busy and locked.
// Retrying the whole request can succeed, so callers see ErrConflict, not an internal error.
func isContention(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01", "55P03":
			return true
		}
		return false
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff { // extended result codes keep the primary one in the low byte
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	return false
}

// contentionError is a write that lost to a concurrent transaction. It matches ErrConflict and
// keeps the driver's error in the chain for logs, while its message, which clients see, stays
// free of SQL.
type contentionError struct {
	what  string
	cause error
}

func (e *contentionError) Error() string {
	return e.what + ": " + ErrConflict.Error() + ": concurrent writes held the rows; retry"
}

func (e *contentionError) Unwrap() []error { return []error{ErrConflict, e.cause} }
