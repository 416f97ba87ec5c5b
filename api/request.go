package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/patronus-sdwan/patronus/storage"
)

// decodeBodyStrict decodes the request body into v (a generated request type), refusing
// unknown fields and trailing data. The validation middleware has already checked the body
// against the spec, so these errors are a backstop; they name the field all the same.
func decodeBodyStrict(c *gin.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonDecodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fieldErrors(errBadRequest, []FieldError{{Field: "body", Message: "malformed JSON: data after the first value"}})
	}
	return nil
}

// jsonDecodeError names the field an encoding/json error is about.
func jsonDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return fieldError(field, "must be %s", jsonKindWords(typeErr.Type))
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fieldErrors(errBadRequest, []FieldError{{Field: "body", Message: "malformed JSON: " + err.Error()}})
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fieldError(strings.Trim(name, `"`), "unknown field")
	}
	return fieldError("body", "%v", err)
}

// cursorKey checks that the id a cursor carries is of the list's id type.
type cursorKey func(id string) bool

// uuidKey accepts the ids of lists keyed by UUID (sites, endpoints), in the canonical form the
// API writes into cursors only: uuid.Parse also takes {braces}, urn:uuid: and undashed forms,
// which PostgreSQL's uuid type partly refuses (a 500) and SQLite's text ids order differently.
func uuidKey(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// int64Key accepts the ids of lists keyed by a positive integer (paths, policies, audit, tokens),
// in the canonical form the API writes into cursors (no sign, no leading zeros).
func int64Key(id string) bool {
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && n > 0 && strconv.FormatInt(n, 10) == id
}

// listParamsOf turns the limit and cursor query parameters into storage paging; a cursor this
// API did not hand out is a 400 naming the parameter.
func listParamsOf(limit *int32, cursor *string, key cursorKey) (storage.ListParams, error) {
	var p storage.ListParams
	if limit != nil {
		p.Limit = int(*limit)
	}
	if p.Limit < 0 || p.Limit > storage.MaxPageLimit {
		return p, fieldErrors(errBadRequest, []FieldError{{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", storage.MaxPageLimit)}})
	}
	if cursor != nil && *cursor != "" {
		id, err := storage.CursorKey(*cursor)
		if err != nil || !key(id) {
			return p, fieldErrors(errBadRequest, []FieldError{{Field: "cursor", Message: storage.CursorNotOurs}})
		}
		p.Cursor = *cursor
	}
	return p, nil
}

// sortedListParamsOf is listParamsOf for a list with filters and a sort order: the page is
// read in the order sort names ("name", "-created_at"; nil for the default), and its cursors
// are valid only under the same filters and sort, which are every query parameter of the
// request but limit and cursor.
func sortedListParamsOf[S ~string](c *gin.Context, limit *int32, cursor *string, key cursorKey, sort *S) (storage.ListParams, error) {
	p, err := listParamsOf(limit, cursor, key)
	if err != nil {
		return p, err
	}
	if sort != nil {
		s := string(*sort)
		p.Sort = storage.Sort{Key: strings.TrimPrefix(s, "-"), Desc: strings.HasPrefix(s, "-")}
	}
	scope := c.Request.URL.Query()
	scope.Del("limit")
	scope.Del("cursor")
	p.Scope = scope.Encode()
	return p, nil
}

// nextCursorOf is the next_cursor of a page: null on the last page.
func nextCursorOf(cursor string) *string {
	if cursor == "" {
		return nil
	}
	return &cursor
}

// conflictField is a 409 naming the field whose value collides with stored state.
func conflictField(field, message, format string, args ...any) error {
	return &apiError{kind: storage.ErrConflict, detail: fmt.Sprintf(format, args...),
		fields: []FieldError{{Field: field, Message: message}}}
}

// deref returns *p, or the zero value when p is nil.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// afterCommit is the context for work that must finish once a write has committed, even if the
// client has gone.
func afterCommit(c *gin.Context) context.Context {
	return context.WithoutCancel(c.Request.Context())
}

// jsonKindWords names the JSON value a Go type decodes from, never the Go type itself.
func jsonKindWords(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	}
	return "a JSON object"
}

// writeCreated answers 201 Created with the new resource and its path in Location, where it
// is read back (or, for a token, revoked).
func writeCreated(c *gin.Context, location string, body any) {
	c.Header("Location", location)
	c.JSON(http.StatusCreated, body)
}
