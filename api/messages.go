package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// extExpected is the schema extension that says, in words, what a pattern or an anyOf accepts;
// the validator's own message would quote the regular expression.
const extExpected = "x-expected"

// formatWords says what each string format of the spec accepts.
var formatWords = map[string]string{
	"uuid":          "a UUID like 6f1c2a52-8a4e-4b8e-9a52-2d3f7c1e0b11",
	"date-time":     "an RFC 3339 time with a zone, like 2026-12-01T18:00:00Z",
	"ipv4":          "an IPv4 address like 203.0.113.10",
	"ipv6":          "an IPv6 address like 2001:db8::10, without a zone",
	"uri-reference": "a URI reference",
}

// typeWords names each JSON type with its article.
var typeWords = map[string]string{
	"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
	"object": "a JSON object", "array": "a JSON array",
}

// schemaMessage says in words what a value that failed the schema must be. It never quotes a
// regular expression or a Go type: the validator's own reasons do both.
func schemaMessage(se *openapi3.SchemaError) string {
	s := se.Schema
	if s == nil {
		return "is invalid"
	}
	if expected, ok := s.Extensions[extExpected].(string); ok {
		switch se.SchemaField {
		case "pattern", "anyOf", "oneOf", "format":
			return "must be " + expected
		}
	}
	switch se.SchemaField {
	case "type":
		return "must be " + typeOf(s)
	case "nullable":
		return "must not be null"
	case "format":
		if w, ok := formatWords[s.Format]; ok {
			return "must be " + w
		}
		return "must be " + typeOf(s) + " of format " + s.Format
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		return rangeMessage(s)
	case "minLength", "maxLength":
		return lengthMessage(s.MinLength, s.MaxLength, "character")
	case "minItems", "maxItems":
		return lengthMessage(s.MinItems, s.MaxItems, "item")
	case "enum":
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprint(v)
		}
		if len(vals) == 1 {
			return "must be " + vals[0]
		}
		return "must be one of " + strings.Join(vals, ", ")
	case "pattern":
		return "does not have the documented form"
	case "additionalProperties":
		return "unknown field"
	case "required":
		return "is required"
	case "anyOf", "oneOf":
		if s.Description != "" {
			return "must be " + lowerFirst(strings.TrimSuffix(strings.TrimSpace(s.Description), "."))
		}
		return "matches none of the documented forms"
	}
	return "is invalid"
}

// typeOf names the JSON type a schema wants; integers with a range say so.
func typeOf(s *openapi3.Schema) string {
	if s.Type == nil || len(*s.Type) == 0 {
		return "a value"
	}
	t := (*s.Type)[0]
	if t == "integer" && (s.Min != nil || s.Max != nil) {
		return "an integer " + strings.TrimPrefix(rangeMessage(s), "must be ")
	}
	if w, ok := typeWords[t]; ok {
		return w
	}
	return t
}

func rangeMessage(s *openapi3.Schema) string {
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	switch {
	case s.Min != nil && s.Max != nil:
		return "must be between " + num(*s.Min) + " and " + num(*s.Max)
	case s.Min != nil:
		return "must be at least " + num(*s.Min)
	case s.Max != nil:
		return "must be at most " + num(*s.Max)
	}
	return "is out of range"
}

func lengthMessage(min uint64, max *uint64, unit string) string {
	plural := func(n uint64) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatUint(n, 10) + " " + unit + "s"
	}
	switch {
	case max != nil && min > 0:
		return fmt.Sprintf("must have between %d and %s", min, plural(*max))
	case max != nil:
		return "must have at most " + plural(*max)
	default:
		return "must have at least " + plural(min)
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// paramMessage says in words what is wrong with a parameter or header.
func paramMessage(e *openapi3filter.RequestError) string {
	var se *openapi3.SchemaError
	if errors.As(e.Err, &se) {
		return schemaMessage(se)
	}
	var pe *openapi3filter.ParseError
	if errors.As(e.Err, &pe) && e.Parameter != nil && e.Parameter.Schema != nil && e.Parameter.Schema.Value != nil {
		return "must be " + typeOf(e.Parameter.Schema.Value)
	}
	if e.Err == nil && strings.Contains(e.Reason, "required") {
		return "is required"
	}
	if e.Parameter != nil && e.Parameter.Schema != nil && e.Parameter.Schema.Value != nil {
		return "must be " + typeOf(e.Parameter.Schema.Value)
	}
	return "is invalid"
}
