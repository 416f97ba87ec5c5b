package collector

// The JSON scanning underneath DecodeBatch: whitespace, punctuation, strings, numbers.

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// str reads a JSON string at the current position (which is '"') and returns its content.
// Without escapes the result views the input; with escapes it is decoded into d.scratch and
// valid until the next call.
func (d *decoder) str(index int, field string) ([]byte, error) {
	d.pos++ // opening quote
	start := d.pos
	for d.pos < len(d.data) {
		for d.pos < len(d.data) && plainStringByte[d.data[d.pos]] {
			d.pos++
		}
		if d.pos == len(d.data) {
			break
		}
		switch c := d.data[d.pos]; {
		case c == '"':
			s := d.data[start:d.pos]
			d.pos++
			return s, nil
		case c == '\\':
			return d.strEscaped(start, index, field)
		case c < 0x20:
			return nil, d.syntax(index, field, "a string character (control characters must be escaped)")
		}
		d.pos++
	}
	return nil, d.syntax(index, field, "'\"'")
}

// plainStringByte is true for the bytes a JSON string holds as they are.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (d *decoder) strEscaped(start, index int, field string) ([]byte, error) {
	out := append(d.scratch[:0], d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.scratch = out
			return out, nil
		case c < 0x20:
			return nil, d.syntax(index, field, "a string character (control characters must be escaped)")
		case c != '\\':
			out = append(out, c)
			d.pos++
			continue
		}
		d.pos++ // backslash
		if d.pos >= len(d.data) {
			break
		}
		e := d.data[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, d.syntax(index, field, "four hex digits after \\u")
			}
			if utf16.IsSurrogate(r) {
				// A surrogate pair is two escapes; a lone surrogate becomes U+FFFD, as in encoding/json.
				save := d.pos
				if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
					d.pos += 2
					if r2, ok := d.hex4(); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
						r = utf16.DecodeRune(r, r2)
					} else {
						r = utf8.RuneError
						d.pos = save
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			d.pos--
			return nil, d.syntax(index, field, "a valid escape")
		}
	}
	return nil, d.syntax(index, field, "'\"'")
}

func (d *decoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.pos += 4
	return r, true
}

// fieldName makes an unknown member name safe to put in an error's field path.
func fieldName(k []byte) string {
	const maxLen = 64
	if len(k) > maxLen {
		k = k[:maxLen]
	}
	for _, c := range k {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.Quote(string(k))
		}
	}
	return string(k)
}

// truncateQuote quotes a rejected value for an error message, cut to a readable length.
func truncateQuote(s []byte) string {
	const maxLen = 64
	if len(s) > maxLen {
		return strconv.Quote(string(s[:maxLen])) + "..."
	}
	return strconv.Quote(string(s))
}

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) syntax(index int, field, want string) error {
	msg := "invalid JSON: unexpected end of input, expected " + want
	if d.pos < len(d.data) {
		msg = fmt.Sprintf("invalid JSON at offset %d: unexpected %q, expected %s", d.pos, d.data[d.pos], want)
	}
	return &ValidationError{Index: index, Field: at(index, field), Message: msg, Kind: MalformedJSON}
}

// expect consumes c after optional whitespace.
func (d *decoder) expect(c byte, index int, field string) error {
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return nil
	}
	return d.syntax(index, field, strconv.QuoteRune(rune(c)))
}

// next reads what follows a member: true at ',' (more members), false at the closing byte.
func (d *decoder) next(closing byte, index int, field string) (more bool, err error) {
	d.ws()
	if d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ',':
			d.pos++
			return true, nil
		case closing:
			d.pos++
			return false, nil
		}
	}
	return false, d.syntax(index, field, fmt.Sprintf("',' or %q", closing))
}

// open consumes the '{' of an object and reports whether it has members.
func (d *decoder) open(index int, field string) (members bool, err error) {
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return false, d.typeErr(index, field, "an object")
	}
	d.pos++
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return false, nil
	}
	return true, nil
}

// key reads a member name and its ':'.
func (d *decoder) key(index int, field string) ([]byte, error) {
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.syntax(index, field, "a member name")
	}
	k, err := d.str(index, field)
	if err != nil {
		return nil, err
	}
	if err := d.expect(':', index, field); err != nil {
		return nil, err
	}
	d.ws()
	return k, nil
}

// typeErr reports a value of the wrong JSON type at the current position.
func (d *decoder) typeErr(index int, field, want string) error {
	if d.pos >= len(d.data) {
		return d.syntax(index, field, want)
	}
	got := ""
	switch c := d.data[d.pos]; {
	case c == '"':
		got = "a string"
	case c == '{':
		got = "an object"
	case c == '[':
		got = "an array"
	case c == 't' || c == 'f':
		got = "a boolean"
	case c == 'n':
		got = "null"
	case c == '-' || (c >= '0' && c <= '9'):
		got = "a number"
	default:
		return d.syntax(index, field, want)
	}
	return &ValidationError{Index: index, Field: at(index, field), Message: "must be " + want + ", not " + got}
}

func (d *decoder) null(i int, field string) error {
	if bytes.HasPrefix(d.data[d.pos:], []byte("null")) {
		d.pos += 4
		return nil
	}
	return d.syntax(i, field, "null")
}

// number checks the JSON number grammar at the current position and skips the number.
func (d *decoder) number(i int, field string) error {
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.pos < len(d.data) && d.data[d.pos] == '-' {
		d.pos++
	}
	start := d.pos
	if n := digits(); n == 0 || (n > 1 && d.data[start] == '0') {
		d.pos = start
		return d.syntax(i, field, "a number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return d.syntax(i, field, "a digit")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return d.syntax(i, field, "a digit")
		}
	}
	return nil
}
