package natstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
)

// Schema is a JSON Schema (draft 2020-12) restricted to the keywords docs/schemas use. A
// keyword it does not know makes Validate report a problem, so that a schema growing beyond
// this checker cannot pass unchecked.
type Schema map[string]any

// LoadSchema reads a schema file.
func LoadSchema(path string) (Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Schema
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return s, nil
}

// Validate returns every way the JSON document data breaks the schema; none when it conforms.
func (s Schema) Validate(data []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	return validate(map[string]any(s), v, "$")
}

var annotations = map[string]bool{"$schema": true, "$id": true, "title": true, "description": true, "examples": true}

func validate(s map[string]any, v any, at string) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, at+": "+fmt.Sprintf(format, args...)) }
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	obj, isObj := v.(map[string]any)
	for _, k := range keys {
		kw := s[k]
		switch k {
		case "type":
			if !hasType(v, kw.(string)) {
				bad("is %s, want %s", typeOf(v), kw)
			}
		case "required":
			if isObj {
				for _, r := range kw.([]any) {
					if _, ok := obj[r.(string)]; !ok {
						bad("missing required %q", r)
					}
				}
			}
		case "properties":
			if isObj {
				for name, sub := range kw.(map[string]any) {
					if pv, ok := obj[name]; ok {
						out = append(out, validate(sub.(map[string]any), pv, at+"."+name)...)
					}
				}
			}
		case "additionalProperties":
			if !isObj {
				continue
			}
			props, _ := s["properties"].(map[string]any)
			for name, pv := range obj {
				if _, declared := props[name]; declared {
					continue
				}
				switch ap := kw.(type) {
				case bool:
					if !ap {
						bad("property %q is not allowed", name)
					}
				case map[string]any:
					out = append(out, validate(ap, pv, at+"."+name)...)
				}
			}
		case "minProperties":
			if isObj && len(obj) < num(kw) {
				bad("has %d properties, want at least %d", len(obj), num(kw))
			}
		case "propertyNames":
			if isObj {
				for name := range obj {
					out = append(out, validate(kw.(map[string]any), name, at+"["+name+"]")...)
				}
			}
		case "oneOf":
			n := 0
			for _, alt := range kw.([]any) {
				if len(validate(alt.(map[string]any), v, at)) == 0 {
					n++
				}
			}
			if n != 1 {
				bad("matches %d of the oneOf alternatives, want exactly 1", n)
			}
		case "if":
			if len(validate(kw.(map[string]any), v, at)) == 0 {
				if then, ok := s["then"].(map[string]any); ok {
					out = append(out, validate(then, v, at)...)
				}
			}
		case "then":
			// applied with "if"
		case "items":
			if arr, ok := v.([]any); ok {
				for i, e := range arr {
					out = append(out, validate(kw.(map[string]any), e, fmt.Sprintf("%s[%d]", at, i))...)
				}
			}
		case "minItems":
			if arr, ok := v.([]any); ok && len(arr) < num(kw) {
				bad("has %d items, want at least %d", len(arr), num(kw))
			}
		case "uniqueItems":
			if arr, ok := v.([]any); ok && kw.(bool) {
				seen := map[string]bool{}
				for _, e := range arr {
					b, _ := json.Marshal(e)
					if seen[string(b)] {
						bad("has a repeated item")
					}
					seen[string(b)] = true
				}
			}
		case "minimum":
			if n, ok := v.(json.Number); ok {
				if f, _ := n.Float64(); f < float64(num(kw)) {
					bad("is %s, want at least %d", n, num(kw))
				}
			}
		case "minLength", "maxLength":
			if str, ok := v.(string); ok {
				l := utf8.RuneCountInString(str)
				if k == "minLength" && l < num(kw) || k == "maxLength" && l > num(kw) {
					bad("has length %d, %s is %d", l, k, num(kw))
				}
			}
		case "pattern":
			if str, ok := v.(string); ok && !regexp.MustCompile(kw.(string)).MatchString(str) {
				bad("does not match %s", kw)
			}
		case "format":
			if str, ok := v.(string); ok {
				switch kw {
				case "date-time":
					if _, err := time.Parse(time.RFC3339, str); err != nil {
						bad("is not an RFC 3339 date-time")
					}
				default:
					bad("schema uses format %q, which this checker does not know", kw)
				}
			}
		case "enum":
			if !slices.ContainsFunc(kw.([]any), func(e any) bool { return equal(e, v) }) {
				bad("is not one of %v", kw)
			}
		case "const":
			if !equal(kw, v) {
				bad("is not %v", kw)
			}
		default:
			if !annotations[k] {
				bad("schema uses keyword %q, which this checker does not know", k)
			}
		}
	}
	return out
}

func num(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	}
	return 0
}

func equal(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func hasType(v any, typ string) bool {
	switch typ {
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	}
	return typeOf(v) == typ
}

func typeOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
