package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"unicode"
)

// controlMessage is what a field with a control character is told.
const controlMessage = "must not contain control characters (U+%04X at offset %d)"

// controlCharFields names every string value of a JSON body that holds a control character
// (C0 such as NUL, DEL, or C1): PostgreSQL refuses NUL in text (a 500 before this check) and
// SQLite would store it, and no name or description of the inventory needs any of them.
func controlCharFields(body []byte) []FieldError {
	// Control characters inside a valid JSON string are escaped (\u0000, \n) or, for DEL and
	// C1, raw bytes 0x7F or 0xC2 0x80-0x9F; without those bytes there is nothing to find.
	if bytes.IndexByte(body, '\\') < 0 && bytes.IndexByte(body, 0x7f) < 0 && bytes.IndexByte(body, 0xc2) < 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil // malformed JSON is reported elsewhere
	}
	var fields []FieldError
	var walk func(path []string, v any)
	walk = func(path []string, v any) {
		switch x := v.(type) {
		case string:
			if i, r, ok := firstControl(x); ok {
				fields = append(fields, FieldError{Field: fieldPathOf(path), Message: fmt.Sprintf(controlMessage, r, i)})
			}
		case []any:
			for i, e := range x {
				walk(append(path, strconv.Itoa(i)), e)
			}
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(append(path[:len(path):len(path)], k), x[k])
			}
		}
	}
	walk(nil, v)
	return fields
}

// controlCharParams names every query parameter whose value holds a control character.
func controlCharParams(q url.Values) []FieldError {
	var fields []FieldError
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range q[k] {
			if i, r, ok := firstControl(v); ok {
				fields = append(fields, FieldError{Field: k, Message: fmt.Sprintf(controlMessage, r, i)})
				break
			}
		}
	}
	return fields
}

func firstControl(s string) (int, rune, bool) {
	for i, r := range s {
		if unicode.IsControl(r) {
			return i, r, true
		}
	}
	return 0, 0, false
}
