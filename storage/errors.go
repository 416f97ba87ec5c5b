package storage

import (
	"errors"
	"fmt"
	"strings"

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
		return &DuplicateError{what: what, Key: uniqueKeyOf(err), cause: err}
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

// Unique keys of the inventory, as DuplicateError.Key names them (PostgreSQL's constraint or
// index names).
const (
	UniqueSiteName        = "sites_name_key"
	UniquePolicyName      = "policies_name_key"
	UniqueEndpointAddress = "endpoints_address_key"
	UniquePathEnds        = "paths_ends_key"
	UniqueTokenName       = "api_tokens_live_name_key"
	UniqueTokenHash       = "api_tokens_hash_key"
)

// sqliteUniqueColumns maps the columns SQLite names in "UNIQUE constraint failed: ..." to the
// key.
var sqliteUniqueColumns = map[string]string{
	"sites.name":        UniqueSiteName,
	"policies.name":     UniquePolicyName,
	"endpoints.address": UniqueEndpointAddress,
	"paths.local_endpoint_id, paths.remote_endpoint_id": UniquePathEnds,
	"api_tokens.name": UniqueTokenName,
	"api_tokens.hash": UniqueTokenHash,
}

// DuplicateError is a write that a unique key refused. It matches ErrConflict; Key says which
// key, so the caller can find and name the row it collided with.
type DuplicateError struct {
	what string
	// Key is one of the Unique* names, or "" when the database did not say.
	Key   string
	cause error
}

func (e *DuplicateError) Error() string {
	return e.what + ": " + ErrConflict.Error() + ": already exists"
}

// Unwrap makes errors.Is(err, ErrConflict) true and keeps the driver's error for logs.
func (e *DuplicateError) Unwrap() []error { return []error{ErrConflict, e.cause} }

// uniqueKeyOf names the unique key a duplicate-key error of either driver is about.
func uniqueKeyOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	const marker = "UNIQUE constraint failed: "
	msg := err.Error()
	i := strings.Index(msg, marker)
	if i < 0 {
		return ""
	}
	cols := msg[i+len(marker):]
	if j := strings.Index(cols, " ("); j >= 0 { // the driver appends the result code
		cols = cols[:j]
	}
	return sqliteUniqueColumns[cols]
}
