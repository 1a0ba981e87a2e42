package files

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// jsonLookup finds the value at path in one JSON line without decoding the rest of it. It
// returns the value as the string a key is compared with (a string's text, a number in
// canonical form — 42, 4.2e1 and 42.0 all give "42" — or true/false), whether the line has a
// usable value there (null, objects, arrays and missing fields have none), and whether the line
// is a row at all (a blank line is not). A line that is not a JSON object is an error, and so
// is a malformed line, as far as the lookup reads it: a line holding the key is checked to its
// end; the values skipped on the way are checked for balance and literals only.
func jsonLookup(b []byte, path []string) (val []byte, has, row bool, err error) {
	i := skipWS(b, 0)
	if i == len(b) {
		return nil, false, false, nil
	}
	if b[i] != '{' {
		return nil, false, false, errors.New("not a JSON object")
	}
	for depth, seg := range path {
		if i >= len(b) || b[i] != '{' {
			if depth == 0 {
				return nil, false, false, errors.New("not a JSON object")
			}
			return nil, false, true, nil
		}
		i++
		found := false
		for !found {
			i = skipWS(b, i)
			if i >= len(b) {
				return nil, false, false, errors.New("unexpected end of line")
			}
			if b[i] == '}' {
				if depth == 0 {
					// The top-level object must end the line.
					if skipWS(b, i+1) != len(b) {
						return nil, false, false, errors.New("data after the JSON object")
					}
				}
				return nil, false, true, nil
			}
			if b[i] != '"' {
				return nil, false, false, errors.New("expected a field name")
			}
			end, esc, err := scanString(b, i)
			if err != nil {
				return nil, false, false, err
			}
			name := b[i+1 : end-1]
			if esc {
				var s string
				if err := json.Unmarshal(b[i:end], &s); err != nil {
					return nil, false, false, err
				}
				name = []byte(s)
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return nil, false, false, errors.New("expected ':' after a field name")
			}
			i = skipWS(b, i+1)
			if string(name) == seg {
				found = true
				break
			}
			if i, err = skipValue(b, i); err != nil {
				return nil, false, false, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i++
			} else if i >= len(b) || b[i] != '}' {
				return nil, false, false, errors.New("expected ',' or '}'")
			}
		}
	}
	if i >= len(b) {
		return nil, false, false, errors.New("unexpected end of line")
	}
	end, err := skipValue(b, i)
	if err != nil {
		return nil, false, false, err
	}
	val, has, err = scalar(b[i:end])
	if err != nil {
		return nil, false, false, err
	}
	// Check the rest of the line: the objects around the value must close, and nothing follow.
	for range path {
		if end, err = finishObject(b, end); err != nil {
			return nil, false, false, err
		}
	}
	if skipWS(b, end) != len(b) {
		return nil, false, false, errors.New("data after the JSON object")
	}
	return val, has, true, nil
}

// scalar returns the key form of a JSON value: a string's text, a canonical number, true or
// false; null, objects and arrays have none.
func scalar(v []byte) ([]byte, bool, error) {
	switch c := v[0]; {
	case c == '"':
		if bytes.IndexByte(v, '\\') < 0 {
			return v[1 : len(v)-1], true, nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, false, err
		}
		return []byte(s), true, nil
	case c == '-' || c >= '0' && c <= '9':
		n, err := canonicalNumber(v)
		return n, err == nil, err
	case string(v) == "true" || string(v) == "false":
		return v, true, nil
	}
	return nil, false, nil
}

// finishObject consumes the remaining members of an object from just after a member's value
// to its closing brace, and returns the index after it.
func finishObject(b []byte, i int) (int, error) {
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, errors.New("unexpected end of line")
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, errors.New("expected ',' or '}'")
		}
		i = skipWS(b, i+1)
		if i >= len(b) || b[i] != '"' {
			return 0, errors.New("expected a field name")
		}
		end, _, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, errors.New("expected ':' after a field name")
		}
		if i, err = skipValue(b, skipWS(b, i+1)); err != nil {
			return 0, err
		}
	}
}

// canonicalNumber renders a JSON number as keys are compared: integers as their digits,
// other numbers as the shortest form that reads back (integral values below 2^53 as integers).
func canonicalNumber(n []byte) ([]byte, error) {
	digits := true
	for j, c := range n {
		if !(c >= '0' && c <= '9' || c == '-' && j == 0) {
			digits = false
			break
		}
	}
	if digits && len(n) > 0 && n[len(n)-1] != '-' {
		if len(n) > 1 && (n[0] == '0' || n[0] == '-' && n[1] == '0') && string(n) != "-0" {
			return nil, errors.New("number with a leading zero")
		}
		if string(n) == "-0" {
			return []byte("0"), nil
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return nil, errors.New("malformed number " + strconv.Quote(string(n)))
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(nil, int64(f), 10), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at b[i] == '"' and whether it has
// escapes.
func scanString(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		if !stopsString[b[j]] {
			continue
		}
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc, nil
		case '\n':
			return 0, false, errors.New("unterminated string")
		}
	}
	return 0, false, errors.New("unterminated string")
}

// stopsString holds the bytes scanString stops at.
var stopsString = [256]bool{'"': true, '\\': true, '\n': true}

// endsLiteral holds the bytes that end a number or literal.
var endsLiteral = [256]bool{',': true, '}': true, ']': true, ' ': true, '\t': true, '\r': true, '\n': true}

// skipValue returns the index after the JSON value starting at b[i], checking its structure
// only as far as needed to find its end.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errors.New("unexpected end of line")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _, err := scanString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errors.New("unterminated object or array")
	default:
		j := i
		for j < len(b) && !endsLiteral[b[j]] {
			j++
		}
		if j == i {
			return 0, errors.New("expected a value")
		}
		if c := b[i]; c == '-' || c >= '0' && c <= '9' {
			return j, nil
		}
		if lit := b[i:j]; string(lit) == "true" || string(lit) == "false" || string(lit) == "null" {
			return j, nil
		}
		return 0, errors.New("invalid value " + strconv.Quote(string(b[i:j])))
	}
}
