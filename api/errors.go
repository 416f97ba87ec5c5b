package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/patronus-sdwan/patronus/storage"
)

// problemContentType is the media type of every error body (RFC 9457).
const problemContentType = "application/problem+json"

// problemTypeBase prefixes the type URI of each problem kind; the URIs are documented in
// openapi.yaml.
const problemTypeBase = "https://patronus.dev/problems/"

// FieldError names one field of the input and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id"`
	Errors    []FieldError `json:"errors,omitempty"`
	// Checks is each dependency's state, in the readiness problem only.
	Checks map[string]checkResult `json:"checks,omitempty"`
}

// Error kinds raised by the API layer itself, beside storage's sentinels.
var (
	// errBadRequest: malformed JSON, a bad query parameter, a bad header.
	errBadRequest = errors.New("bad request")
	// errValidation: a well-formed body whose fields break the schema.
	errValidation = errors.New("validation failed")
	// errUnauthenticated: no token or an unknown one.
	errUnauthenticated = errors.New("unauthenticated")
	// errForbidden: a valid token whose role is too low.
	errForbidden = errors.New("forbidden")
	// errTooLarge: the body is over the size limit.
	errTooLarge = errors.New("request body too large")
	// errUnsupportedMedia: a body in a content type or encoding we do not read.
	errUnsupportedMedia = errors.New("unsupported media type")
	// errPrecondition: If-Match did not match.
	errPrecondition = errors.New("precondition failed")
	// errUnavailable: a dependency is down.
	errUnavailable = errors.New("service unavailable")
	// errBusy: the server is at a bound it sets itself (concurrent ingest requests, bytes
	// being decompressed); the client should retry shortly.
	errBusy = errors.New("server busy")
	// errTooManyRequests: this client made too many failed attempts; it should wait.
	errTooManyRequests = errors.New("too many requests")
)

// errorKind is one row of the error table.
type errorKind struct {
	err    error
	status int
	slug   string
	title  string
}

// retryAfterOf is the Retry-After (whole seconds) sent with the kinds a client should retry,
// unless the error carries its own (retryAfterError).
var retryAfterOf = map[error]time.Duration{
	errUnavailable: 5 * time.Second, storage.ErrUnavailable: 5 * time.Second,
	errBusy: time.Second, errTooManyRequests: 10 * time.Second,
}

// unavailableLog spaces out the log lines of 503 answers, which come in floods during an
// outage.
var unavailableLog = rate.Sometimes{Interval: 10 * time.Second}

// retryAfterError is an error that says when the client may retry.
type retryAfterError interface{ RetryAfter() time.Duration }

// errorTable is the one place where an error becomes an HTTP status; first match wins.
var errorTable = []errorKind{
	{errBadRequest, http.StatusBadRequest, "bad-request", "Bad request"},
	{errValidation, http.StatusUnprocessableEntity, "validation", "Validation failed"},
	{storage.ErrInvalid, http.StatusUnprocessableEntity, "validation", "Validation failed"},
	{errUnauthenticated, http.StatusUnauthorized, "unauthenticated", "Authentication required"},
	{errForbidden, http.StatusForbidden, "forbidden", "Insufficient role"},
	{storage.ErrNotFound, http.StatusNotFound, "not-found", "Not found"},
	{errPrecondition, http.StatusConflict, "conflict", "Conflict"},
	{storage.ErrConflict, http.StatusConflict, "conflict", "Conflict"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	{errUnsupportedMedia, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
	{errUnavailable, http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	{storage.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	{errBusy, http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	{errTooManyRequests, http.StatusTooManyRequests, "too-many-requests", "Too many requests"},
}

// apiError carries field errors with an error kind from the table.
type apiError struct {
	kind   error
	detail string
	fields []FieldError
}

func (e *apiError) Error() string {
	if len(e.fields) == 0 {
		return e.detail
	}
	parts := make([]string, len(e.fields))
	for i, f := range e.fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return e.detail + ": " + strings.Join(parts, "; ")
}

func (e *apiError) Unwrap() error { return e.kind }

// newError returns an error of the given kind with a detail shown to the client.
func newError(kind error, format string, args ...any) error {
	return &apiError{kind: kind, detail: fmt.Sprintf(format, args...)}
}

// fieldError returns a validation error naming one field.
func fieldError(field, format string, args ...any) error {
	return &apiError{kind: errValidation, detail: "the request has invalid fields",
		fields: []FieldError{{Field: field, Message: fmt.Sprintf(format, args...)}}}
}

// fieldErrors returns a validation error naming several fields; kind is errValidation or
// errBadRequest.
func fieldErrors(kind error, fields []FieldError) error {
	return &apiError{kind: kind, detail: "the request has invalid fields", fields: fields}
}

// inputKindRank orders the kinds of bad input by which one answers a request that has several:
// a body over the limit or in a type we do not read, then a malformed request (a bad
// parameter, malformed JSON), then a body off its schema.
var inputKindRank = []error{errTooLarge, errUnsupportedMedia, errBadRequest, errValidation}

// mergeInputErrors makes one answer of the input errors of a request (bad parameters, a bad
// body), naming every field of each: its status is that of the first kind in inputKindRank
// among them, its detail that error's. An error of another kind (a server fault) stands alone.
func mergeInputErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	var lead *apiError
	leadRank := len(inputKindRank)
	var fields []FieldError
	for _, err := range errs {
		var ae *apiError
		if !errors.As(err, &ae) {
			return err
		}
		rank := slices.Index(inputKindRank, ae.kind)
		if rank < 0 {
			return err
		}
		if rank < leadRank {
			lead, leadRank = ae, rank
		}
		fields = append(fields, ae.fields...)
	}
	return &apiError{kind: lead.kind, detail: lead.detail, fields: fields}
}

// maxFieldErrors bounds errors[] of one answer, so a huge bad batch gets a bounded answer.
const maxFieldErrors = 100

// problemFor builds the problem body of err. Errors not in the table are internal: their text
// is logged, never shown.
func problemFor(err error) (Problem, bool) {
	p, _, known := problemAndRetry(err)
	return p, known
}

// problemAndRetry is problemFor with the Retry-After the answer carries (0: none).
func problemAndRetry(err error) (Problem, time.Duration, bool) {
	// A list cursor is a query parameter: a bad one is a 400 naming it.
	var ce *storage.CursorError
	if errors.As(err, &ce) {
		err = fieldErrors(errBadRequest, []FieldError{{Field: "cursor", Message: ce.Reason}})
	}
	for _, k := range errorTable {
		if errors.Is(err, k.err) {
			retry := retryAfterOf[k.err]
			var ra retryAfterError
			if errors.As(err, &ra) && ra.RetryAfter() > 0 {
				retry = ra.RetryAfter()
			}
			p := Problem{Type: problemTypeBase + k.slug, Title: k.title, Status: k.status}
			var ae *apiError
			if errors.As(err, &ae) {
				p.Detail = ae.detail
				p.Errors = ae.fields
				if len(p.Errors) > maxFieldErrors {
					p.Detail += fmt.Sprintf(" (the first %d of %d errors)", maxFieldErrors, len(p.Errors))
					p.Errors = p.Errors[:maxFieldErrors]
				}
			} else {
				p.Detail = publicDetail(err)
			}
			return p, retry, true
		}
	}
	// A driver error no store translated, of a database that is down or too slow.
	if u, ok := storage.AsUnavailable(err); ok {
		return problemAndRetry(u)
	}
	return Problem{Type: problemTypeBase + "internal", Title: "Internal error", Status: http.StatusInternalServerError,
		Detail: "internal error"}, 0, false
}

// publicDetail is the message of a storage error without its wrapped internals: storage
// messages are written for clients ("get site X: not found").
func publicDetail(err error) string {
	return err.Error()
}

// writeError answers the request with err as problem+json. Handlers call it and return.
func writeError(c *gin.Context, err error) {
	p, retry, known := problemAndRetry(err)
	if retry > 0 {
		c.Header("Retry-After", strconv.Itoa(int(max(time.Second, retry.Round(time.Second))/time.Second)))
	}
	p.Instance = problemInstance(c)
	p.RequestID = requestID(c)
	if !known {
		loggerFrom(c).Error("internal error", "err", err, "request_id", p.RequestID, "path", c.Request.URL.Path)
	}
	if errors.Is(err, storage.ErrUnavailable) || errors.Is(err, errUnavailable) {
		// The client sees a word; the cause goes to the log, at most once per interval.
		unavailableLog.Do(func() {
			loggerFrom(c).Warn("dependency unavailable", "err", err, "request_id", p.RequestID, "path", c.Request.URL.Path)
		})
	}
	if p.Status == http.StatusUnauthorized && c.Writer.Header().Get("WWW-Authenticate") == "" {
		c.Header("WWW-Authenticate", `Bearer realm="patronus"`)
	}
	unread := closeUnread(c, err)
	writeProblem(c, p)
	if unread {
		afterUnread(c)
	}
}

// problemInstance is the request path as the client sent it, percent-encoded: a valid URI
// reference, unlike the decoded path (/docs/a b.js).
func problemInstance(c *gin.Context) string {
	return c.Request.URL.EscapedPath()
}

func writeProblem(c *gin.Context, p Problem) {
	c.Abort()
	c.Header("Content-Type", problemContentType)
	c.Status(p.Status)
	body, err := jsonMarshal(p)
	if err != nil {
		return
	}
	_, _ = c.Writer.Write(body)
}
