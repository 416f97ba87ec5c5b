package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// unavailableError is a statement that failed because the database could not be reached,
// did not answer in time, or cannot write (a full disk). It matches ErrUnavailable and keeps
// the driver's error in the chain for logs; its message, which clients see, has no address,
// user or driver text.
type unavailableError struct {
	what  string
	cause error
}

func (e *unavailableError) Error() string { return e.what + ": " + ErrUnavailable.Error() }

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// AsUnavailable returns err as an ErrUnavailable error if the database's unavailability
// caused it (a refused or dropped connection, a deadline, a statement timeout, a full disk),
// for errors that did not pass through a store's translation.
func AsUnavailable(err error) (error, bool) {
	if err == nil {
		return nil, false
	}
	if errors.Is(err, ErrUnavailable) {
		return err, true
	}
	if isUnavailable(err) {
		return &unavailableError{what: "database", cause: err}, true
	}
	return nil, false
}

// isUnavailable says whether err means the database is down, unreachable, too slow or out
// of space, rather than that the statement was wrong.
func isUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "53": // insufficient resources: disk full, too many connections
			return true
		}
		switch pgErr.Code {
		case "57014", "57P01", "57P02", "57P03": // statement timeout / cancel, shutdown, cannot connect now
			return true
		}
		return false
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff { // the primary result code of SQLite
		case 10, 13, 14: // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return true
		}
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return true
	case errors.As(err, &connErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENOSPC):
		return true
	}
	return false
}
