package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Sort orders a list by one of its sort keys. The zero value is the list's default order: by
// id ascending, which is creation order.
type Sort struct {
	// Key is a sort key the list offers ("name", "created_at", "priority"...); "" is the id.
	Key string
	// Desc reverses the order.
	Desc bool
}

// ErrBadCursor is a cursor the list did not hand out, or one it handed out under other filters
// or another sort. It is an ErrInvalid; the error is a *CursorError saying which.
var ErrBadCursor = fmt.Errorf("%w: bad cursor", ErrInvalid)

// CursorError is an ErrBadCursor with its reason, written for the client.
type CursorError struct {
	// Reason says what is wrong with the cursor, e.g. CursorOtherScope.
	Reason string
}

func (e *CursorError) Error() string { return "bad cursor: " + e.Reason }

// Is makes a CursorError an ErrBadCursor and an ErrInvalid.
func (e *CursorError) Is(target error) bool { return target == ErrBadCursor || target == ErrInvalid }

// CursorNotOurs is the reason of an ErrBadCursor for a cursor no list handed out.
const CursorNotOurs = "is not a cursor this API returned"

// CursorOtherScope is the reason of an ErrBadCursor for a cursor handed out under other filters
// or another sort.
const CursorOtherScope = "was returned for other filters or another sort; send the same filters and sort as the request that returned it, or start again without a cursor"

// valueKind is how a sort column's value is written into a cursor and read back.
type valueKind int

const (
	kindText valueKind = iota
	kindTime
	kindInt
)

// sortColumn is a column a list can be ordered by, and how to read it off an item.
type sortColumn[T any] struct {
	column string
	kind   valueKind
	value  func(T) any // a string, a time.Time or an int64, per kind
}

// listSpec describes one list: its key column (unique, the tie-break of every order), how to
// read an item's key, and the sort keys it offers. Column names come from here only, never
// from a request.
type listSpec[T any] struct {
	keyColumn string
	keyOf     func(T) string
	keyArg    func(string) (any, error)
	sorts     map[string]sortColumn[T]
}

// cursorBody is what the cursor of a filtered or sorted list carries: the last item's key,
// its sort value, and a digest of the filters and sort it was handed out under.
type cursorBody struct {
	Key   string `json:"k"`
	Value string `json:"v,omitempty"`
	Scope string `json:"s"`
}

// scopeDigest is a short digest of a list's filters and sort, carried by its cursors.
func scopeDigest(scope string, s Sort) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + s.Key + "\x00" + strconv.FormatBool(s.Desc)))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

func badCursor(reason string) error { return &CursorError{Reason: reason} }

// CursorKey returns the key (the last item's id) a cursor of any list carries.
func CursorKey(cursor string) (string, error) {
	raw, err := DecodeCursor(cursor)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(raw, "{") {
		return raw, nil
	}
	var body cursorBody
	if err := json.Unmarshal([]byte(raw), &body); err != nil || body.Key == "" {
		return "", badCursor(CursorNotOurs)
	}
	return body.Key, nil
}

// listSorted reads one page of q in the order p.Sort asks, after p.Cursor. Keyset paging:
// each page starts after the last item of the previous one, so inserts and deletes meanwhile
// neither repeat nor skip the items that stay. Without filters (p.Scope "") and in the
// default order, cursors are the plain EncodeCursor of the last key, as they always were.
func listSorted[T any](ctx context.Context, q *gorm.DB, spec listSpec[T], p ListParams) (Page[T], error) {
	limit := p.Limit
	switch {
	case limit == 0:
		limit = DefaultPageLimit
	case limit < 0 || limit > MaxPageLimit:
		return Page[T]{}, fmt.Errorf("%w: limit must be between 1 and %d", ErrInvalid, MaxPageLimit)
	}
	var col sortColumn[T]
	if p.Sort.Key != "" {
		var ok bool
		if col, ok = spec.sorts[p.Sort.Key]; !ok {
			return Page[T]{}, fmt.Errorf("%w: this list cannot be sorted by %s", ErrInvalid, p.Sort.Key)
		}
	}
	plain := p.Scope == "" && p.Sort == Sort{}
	digest := scopeDigest(p.Scope, p.Sort)
	q = q.WithContext(ctx)
	if p.Cursor != "" {
		raw, err := DecodeCursor(p.Cursor)
		if err != nil {
			return Page[T]{}, badCursor(CursorNotOurs)
		}
		var body cursorBody
		isBody := strings.HasPrefix(raw, "{") && json.Unmarshal([]byte(raw), &body) == nil
		switch {
		case plain && !isBody:
			body = cursorBody{Key: raw}
		case plain, !isBody, body.Scope != digest:
			return Page[T]{}, badCursor(CursorOtherScope)
		}
		key, err := spec.keyArg(body.Key)
		if err != nil {
			return Page[T]{}, badCursor(CursorNotOurs)
		}
		cmp := ">"
		if p.Sort.Desc {
			cmp = "<"
		}
		if p.Sort.Key == "" {
			q = q.Where(spec.keyColumn+" "+cmp+" ?", key)
		} else {
			v, err := parseSortValue(col.kind, body.Value)
			if err != nil {
				return Page[T]{}, badCursor(CursorNotOurs)
			}
			q = q.Where("("+col.column+" "+cmp+" ? OR ("+col.column+" = ? AND "+spec.keyColumn+" "+cmp+" ?))", v, v, key)
		}
	}
	var order []clause.OrderByColumn
	if p.Sort.Key != "" {
		order = append(order, clause.OrderByColumn{Column: clause.Column{Name: col.column}, Desc: p.Sort.Desc})
	}
	order = append(order, clause.OrderByColumn{Column: clause.Column{Name: spec.keyColumn}, Desc: p.Sort.Desc})
	var items []T
	if err := q.Order(clause.OrderBy{Columns: order}).Limit(limit + 1).Find(&items).Error; err != nil {
		return Page[T]{}, err
	}
	page := Page[T]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := items[limit-1]
		if plain {
			page.NextCursor = EncodeCursor(spec.keyOf(last))
		} else {
			body := cursorBody{Key: spec.keyOf(last), Scope: digest}
			if p.Sort.Key != "" {
				body.Value = formatSortValue(col.value(last))
			}
			b, err := json.Marshal(body)
			if err != nil {
				return Page[T]{}, err
			}
			page.NextCursor = EncodeCursor(string(b))
		}
	}
	if page.Items == nil {
		page.Items = []T{}
	}
	return page, nil
}

func formatSortValue(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return x
	}
	panic(fmt.Sprintf("storage: sort value of kind %T", v))
}

func parseSortValue(kind valueKind, s string) (any, error) {
	switch kind {
	case kindTime:
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UTC(), err
	case kindInt:
		return strconv.ParseInt(s, 10, 64)
	}
	return s, nil
}

// likeEscaper makes LIKE's wildcards (and the escape character itself) match literally.
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// containsFold narrows q to rows where any of cols contains text, ignoring case (ASCII letters
// on SQLite, whose LOWER folds only those; every letter on PostgreSQL). The text is a bound
// parameter, and % and _ in it match themselves.
func containsFold(q *gorm.DB, text string, cols ...string) *gorm.DB {
	pattern := "%" + likeEscaper.Replace(strings.ToLower(text)) + "%"
	conds := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		conds[i] = "LOWER(" + c + ") LIKE ? ESCAPE '!'"
		args[i] = pattern
	}
	return q.Where("("+strings.Join(conds, " OR ")+")", args...)
}

// createdAtSort and nameSort are the sort keys most lists offer.
func createdAtSort[T any](of func(T) time.Time) sortColumn[T] {
	return sortColumn[T]{column: "created_at", kind: kindTime, value: func(x T) any { return of(x) }}
}

func nameSort[T any](of func(T) string) sortColumn[T] {
	return sortColumn[T]{column: "name", kind: kindText, value: func(x T) any { return of(x) }}
}
