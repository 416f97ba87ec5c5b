package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"
)

// Store bundles the inventory stores over one database handle, which may be a transaction.
type Store struct {
	db *gorm.DB
	// Dialect is the database dialect the store runs on.
	Dialect string
	// hook is told the newest seq once a write that recorded changes has committed; shared by
	// every Store derived from the one NewStore made.
	hook *commitHook
	// pending collects the seqs recorded inside Tx until it commits; nil outside a Tx.
	pending *[]int64
}

type commitHook struct{ fn func(seq int64) }

// NewStore returns the stores over db.
func NewStore(db *DB) *Store {
	return &Store{db: db.Gorm, Dialect: db.Dialect, hook: &commitHook{}}
}

// OnCommit sets the function told the seq of the newest change once a write that recorded it
// has committed (the in-process wake-up of the feed tailer). Set it before serving.
func (s *Store) OnCommit(fn func(seq int64)) { s.hook.fn = fn }

// recorded notes that a change with this seq was recorded: at once outside a transaction, at
// commit inside one.
func (s *Store) recorded(seq int64) {
	if s.pending != nil {
		*s.pending = append(*s.pending, seq)
		return
	}
	s.committed(seq)
}

func (s *Store) committed(seq int64) {
	if s.hook != nil && s.hook.fn != nil {
		s.hook.fn(seq)
	}
}

// Tx runs fn with a Store bound to one transaction: fn's writes commit together when it returns
// nil and roll back otherwise. Losing to a concurrent transaction (a deadlock, a
// serialization failure, a busy database) is ErrConflict.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	if s.pending != nil { // already inside a Tx: its commit announces the changes
		return fn(s)
	}
	var pending []int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		pending = pending[:0]
		return fn(&Store{db: tx, Dialect: s.Dialect, hook: s.hook, pending: &pending})
	})
	if err != nil && !errors.Is(err, ErrConflict) && isContention(err) {
		return &contentionError{what: "transaction", cause: err}
	}
	if err == nil && len(pending) > 0 {
		s.committed(slices.Max(pending))
	}
	return err
}

// Sites returns the site store.
func (s *Store) Sites() *SiteStore { return &SiteStore{db: s.db, dialect: s.Dialect} }

// Endpoints returns the endpoint store.
func (s *Store) Endpoints() *EndpointStore { return &EndpointStore{db: s.db} }

// Paths returns the path store.
func (s *Store) Paths() *PathStore { return &PathStore{db: s.db} }

// Metrics returns the path-metrics store.
func (s *Store) Metrics() *MetricsStore { return &MetricsStore{db: s.db, dialect: s.Dialect} }

// Policies returns the policy store.
func (s *Store) Policies() *PolicyStore { return &PolicyStore{db: s.db} }

// Audit returns the audit store.
func (s *Store) Audit() *AuditStore { return &AuditStore{store: s} }

// Tokens returns the API token store.
func (s *Store) Tokens() *TokenStore { return &TokenStore{db: s.db} }

// Gorm returns the handle the stores use, for queries no store offers.
func (s *Store) Gorm() *gorm.DB { return s.db }

// Default and maximum page sizes of list calls.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 1000
)

// ListParams selects one page of a list.
type ListParams struct {
	// Limit is the page size; 0 means DefaultPageLimit, values above MaxPageLimit are invalid.
	Limit int
	// Cursor is the opaque NextCursor of the previous page; empty starts at the beginning.
	Cursor string
	// Sort orders the list; the zero value is by id (creation order).
	Sort Sort
	// Scope is the filters and sort the list is read under, as canonical text. Its cursors
	// carry a digest of it, and a cursor handed out under another scope is ErrBadCursor.
	Scope string
}

// Page is one page of a list and the cursor of the next one ("" when this is the last).
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// EncodeCursor makes an opaque cursor from the last id of a page.
func EncodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// DecodeCursor returns the id a cursor made by EncodeCursor carries.
func DecodeCursor(cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("%w: malformed cursor", ErrInvalid)
	}
	return string(b), nil
}
