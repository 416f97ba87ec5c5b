package storage

import (
	"errors"
	"fmt"

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
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrInvalid):
		return fmt.Errorf("%s: %w", what, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}
