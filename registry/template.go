package registry

import (
	"fmt"
	"strings"
)

// Template is a string with {identifier} placeholders, such as
// "http://profile.internal/users/{user_id}" or "session:{user_id}:*".
type Template struct {
	parts []string // literal, var, literal, var, ..., literal
}

// ParseTemplate parses s. A placeholder is {name} with name a valid identifier type; "{{" and
// "}}" stand for literal braces. Unbalanced braces and malformed names are errors.
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return Template{}, fmt.Errorf("template %q: unclosed {", s)
			}
			name := s[i+1 : i+end]
			if !identifierTypeOK(name) {
				return Template{}, fmt.Errorf("template %q: placeholder {%s} is not an identifier name", s, name)
			}
			t.parts = append(t.parts, lit.String(), name)
			lit.Reset()
			i += end
		case c == '}':
			return Template{}, fmt.Errorf("template %q: } without {", s)
		default:
			lit.WriteByte(c)
		}
	}
	t.parts = append(t.parts, lit.String())
	return t, nil
}

func identifierTypeOK(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Vars returns the placeholder names in order of appearance, without duplicates.
func (t Template) Vars() []string {
	var out []string
	seen := map[string]bool{}
	for i := 1; i < len(t.parts); i += 2 {
		if !seen[t.parts[i]] {
			seen[t.parts[i]] = true
			out = append(out, t.parts[i])
		}
	}
	return out
}

// Expand fills the placeholders from values, passing each value through escape (nil: as is).
// It returns false when a placeholder has no value.
func (t Template) Expand(values map[string]string, escape func(string) string) (string, bool) {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v, ok := values[p]
		if !ok {
			return "", false
		}
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// Literal reports whether the template has no placeholder.
func (t Template) Literal() bool { return len(t.parts) == 1 }

// String returns the template's source form.
func (t Template) String() string {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 1 {
			b.WriteString("{" + p + "}")
			continue
		}
		b.WriteString(strings.NewReplacer("{", "{{", "}", "}}").Replace(p))
	}
	return b.String()
}
