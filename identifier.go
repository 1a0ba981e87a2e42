package erasure

import (
	"regexp"
	"sort"
	"unicode/utf8"
)

// MaxIdentifierValue is the largest identifier value, in bytes, that intake accepts.
// Connectors must still cope with any value (they bind values as parameters).
const MaxIdentifierValue = 4096

var identifierTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidIdentifierType reports whether typ is a well-formed identifier type name
// (lower case letters, digits and underscores, starting with a letter, at most 63 bytes).
func ValidIdentifierType(typ string) bool { return identifierTypeRE.MatchString(typ) }

// Identifier is one typed value naming a subject, such as user_id=42.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Validate returns an EINVALID error when the type is malformed or the value is empty, too long,
// or not valid UTF-8. It does not check that the type is declared by the registry.
func (id Identifier) Validate() error {
	switch {
	case !ValidIdentifierType(id.Type):
		return Errorf(EINVALID, "identifier type %q is not valid: use lower case letters, digits and _", truncate(id.Type, 64))
	case id.Value == "":
		return Errorf(EINVALID, "identifier %s has an empty value", id.Type)
	case len(id.Value) > MaxIdentifierValue:
		return Errorf(EINVALID, "identifier %s is longer than %d bytes", id.Type, MaxIdentifierValue)
	case !utf8.ValidString(id.Value):
		return Errorf(EINVALID, "identifier %s is not valid UTF-8", id.Type)
	}
	return nil
}

// Subject is the set of identifiers of one person or record in one request. It grows as lookups
// find more identifiers. The zero value is an empty subject. A Subject is kept sorted by type
// then value and holds no duplicates.
type Subject []Identifier

// NewSubject returns the subject holding ids, sorted and without duplicates.
func NewSubject(ids ...Identifier) Subject {
	s, _ := Subject(nil).With(ids...)
	return s
}

// Values returns every value the subject has for the identifier type typ.
func (s Subject) Values(typ string) []string {
	var out []string
	for _, id := range s {
		if id.Type == typ {
			out = append(out, id.Value)
		}
	}
	return out
}

// Has reports whether the subject has at least one value of type typ.
func (s Subject) Has(typ string) bool {
	for _, id := range s {
		if id.Type == typ {
			return true
		}
	}
	return false
}

// HasAll reports whether the subject has a value for every type in types.
func (s Subject) HasAll(types []string) bool {
	for _, t := range types {
		if !s.Has(t) {
			return false
		}
	}
	return true
}

// Only returns the part of the subject whose types are in types.
func (s Subject) Only(types []string) Subject {
	var out Subject
	for _, id := range s {
		for _, t := range types {
			if id.Type == t {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// With returns the subject grown by ids and the identifiers that were new to it.
func (s Subject) With(ids ...Identifier) (Subject, []Identifier) {
	seen := make(map[Identifier]bool, len(s)+len(ids))
	out := make(Subject, 0, len(s)+len(ids))
	for _, id := range s {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	var added []Identifier
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
			added = append(added, id)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Value < out[j].Value
	})
	return out, added
}

// Types returns the distinct identifier types of the subject, sorted.
func (s Subject) Types() []string {
	var out []string
	for i, id := range s {
		if i == 0 || s[i-1].Type != id.Type {
			out = append(out, id.Type)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
