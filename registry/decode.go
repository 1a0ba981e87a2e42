package registry

import (
	"errors"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode decodes n into v (a pointer to a struct with yaml tags) strictly: every key of every
// mapping must name a field, and values must have the field's type. Problems are recorded with
// their lines through b.Errorf; Decode returns false when there were any.
func (b *Build) Decode(n *yaml.Node, v any) bool {
	before := len(*b.errs)
	if n == nil {
		b.Errorf(nil, "missing %s block", b.Dataset.Connector)
		return false
	}
	DecodeStrict(n, v, func(at *yaml.Node, msg string) { b.Errorf(at, "%s", msg) })
	return len(*b.errs) == before
}

// DecodeStrict decodes n into v, calling report for each unknown key and each value of the
// wrong type, with the node at fault.
func DecodeStrict(n *yaml.Node, v any, report func(at *yaml.Node, msg string)) {
	checkKeys(n, reflect.TypeOf(v), report)
	if err := n.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				report(n, strings.TrimPrefix(e, "yaml: "))
			}
			return
		}
		report(n, err.Error())
	}
}

// checkKeys walks n alongside type t and reports mapping keys that name no field.
func checkKeys(n *yaml.Node, t reflect.Type, report func(*yaml.Node, string)) {
	for t != nil && (t.Kind() == reflect.Pointer) {
		t = t.Elem()
	}
	if n == nil || t == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return
			}
			report(n, "expected a mapping")
			return
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "-" || !f.IsExported() {
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			fields[tag] = f.Type
			known = append(known, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				report(k, "unknown key "+quote(k.Value)+" (known: "+strings.Join(known, ", ")+")")
				continue
			}
			checkKeys(val, ft, report)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				checkKeys(c, t.Elem(), report)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				checkKeys(n.Content[i], t.Elem(), report)
			}
		}
	}
}

func quote(s string) string { return "\"" + s + "\"" }

// Child returns the value under key in mapping n, or n itself when the key is absent, so that
// an error about a connector block's field points at the nearest line there is.
func Child(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

// Item returns the i-th element of sequence n, or n itself (for its line).
func Item(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}
