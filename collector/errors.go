package collector

import (
	"strconv"
	"strings"
)

// ValidationError says which part of a traffic batch is invalid, so that the API can answer
// with a problem naming the report and field. A batch with one is rejected whole.
type ValidationError struct {
	// Index is the report's position in the batch, or -1 when the error is not about one
	// report (malformed JSON outside the reports, too many reports).
	Index int
	// Field is the JSON path of the offending value, like "reports[3].flow.dst_port"; empty
	// when the body as a whole is wrong.
	Field string
	// Message says what is wrong with it.
	Message string
	// Kind sorts the error for the API's status code: bad content, bad JSON, too many reports.
	Kind ValidationKind
}

// ValidationKind says what sort of problem a ValidationError is.
type ValidationKind uint8

const (
	// InvalidValue is well-formed JSON whose content breaks the batch's rules.
	InvalidValue ValidationKind = iota
	// MalformedJSON is a body that is not well-formed JSON.
	MalformedJSON
	// TooManyReports is a batch over the decoder's report limit.
	TooManyReports
)

// Error formats the error as "field: message".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// ValidationErrors is every problem found in one batch, in the order of the body, at most
// MaxValidationErrors of them.
type ValidationErrors []*ValidationError

// MaxValidationErrors bounds how many problems of one batch are collected.
const MaxValidationErrors = 100

// Error joins the problems.
func (es ValidationErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As find the problems.
func (es ValidationErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// fieldPath is the JSON path of a field of report i, like "reports[3].flow.src_ip".
func fieldPath(i int, field string) string {
	p := "reports[" + strconv.Itoa(i) + "]"
	if field != "" {
		p += "." + field
	}
	return p
}

// at is the path of field in report index, or field itself when index < 0 (the batch).
// Decoders pass paths relative to their report and build the full one only for an error.
func at(index int, field string) string {
	if index < 0 {
		return field
	}
	return fieldPath(index, field)
}
