// Package strictjson decodes JSON documents strictly, for every JSON body erasure accepts from
// outside: the HTTP API's bodies, acknowledgements of async commands (NATS, Kafka, HTTP) and
// record writes.
//
// encoding/json is lenient in ways that matter when a document names whom to erase: it
// replaces invalid UTF-8 and lone UTF-16 surrogates (\ud800) with U+FFFD, so that different
// inputs become one value; it keeps the last of two equal keys, so that {"subject":…,
// "subject":…} silently means the second; and it matches field names without case, so that
// "Subject" and "REASON" are accepted. Unmarshal first scans the document and refuses all of
// these, then decodes it with encoding/json:
//
//   - exactly one JSON value, nothing but white space after it;
//   - valid UTF-8 throughout, and \u escapes that pair their surrogates;
//   - no object with the same key twice (compared after unescaping, at any depth);
//   - every key of an object decoded into a struct is, exactly, the JSON name of one of its
//     fields (unknown fields and fields spelt in another case are errors); values decoded by
//     their own UnmarshalJSON (json.RawMessage, time.Time…) get the first three checks only;
//   - nesting at most MaxDepth deep.
//
// Errors are *erasure.Error with code EINVALID (ETOOLARGE from Decode): their messages say
// what is wrong and where (a byte offset, a field name when it is plain), and never quote a
// value of the document.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"erasure"
)

// MaxDepth is the deepest nesting of arrays and objects accepted.
const MaxDepth = 1000

// Unmarshal decodes data into v (a non-nil pointer) after checking it strictly (see the
// package documentation). It returns an EINVALID *erasure.Error for anything refused.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return erasure.Errorf(erasure.EINTERNAL, "strictjson: Unmarshal needs a non-nil pointer, not %T", v)
	}
	if err := Check(data, rv.Type().Elem()); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return typeError(err)
	}
	return nil
}

// Decode reads at most limit bytes from r and decodes them with Unmarshal. A document longer
// than limit is an ETOOLARGE *erasure.Error; an error reading r is returned as it is, for the
// caller to classify (a timeout, a connection lost).
func Decode(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return TooLarge(limit)
	}
	return Unmarshal(data, v)
}

// TooLarge is the error of a document longer than limit bytes.
func TooLarge(limit int64) error {
	return erasure.Errorf(erasure.ETOOLARGE, "request body is larger than %d bytes", limit)
}

// Valid checks data as Unmarshal does for a value decoded into any (no field names to match)
// and returns the same errors.
func Valid(data []byte) error { return Check(data, nil) }

// Check checks data strictly for a value of type t (nil: any) without decoding it.
func Check(data []byte, t reflect.Type) error {
	s := &scanner{data: data}
	s.skipSpace()
	if s.pos == len(data) {
		return invalid("the JSON document is empty: send a JSON value")
	}
	if err := s.value(shapeOf(t), 0); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(data) {
		return invalid("there is data after the JSON value at byte %d: send exactly one value", s.pos)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return erasure.Errorf(erasure.EINVALID, format, args...)
}

// plainName matches field names safe to show in an error message.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Name returns a key for an error message: quoted when it is a plain name, else a placeholder,
// so that no arbitrary input is echoed.
func Name(key string) string {
	if plainName.MatchString(key) {
		return strconv.Quote(key)
	}
	return "(a name not shown)"
}

// typeError turns an encoding/json error on a document that passed the checks (a value of the
// wrong type, a number out of range, an UnmarshalJSON refusal) into an EINVALID error.
func typeError(err error) error {
	var (
		e   *erasure.Error
		typ *json.UnmarshalTypeError
		syn *json.SyntaxError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &typ):
		if typ.Field == "" {
			return invalid("the JSON value must be %s", kind(typ.Type))
		}
		return invalid("field %s must be %s", Name(typ.Field), kind(typ.Type))
	case errors.As(err, &syn):
		return invalid("malformed JSON at byte %d", syn.Offset)
	}
	return invalid("the JSON document is not valid: %s", clip(err.Error()))
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func kind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return "of another type"
}

// shape is what the scanner knows of the Go type a value decodes into: the fields of a struct
// (by exact JSON name), the element of a map, slice or array; nil for anything whose names
// are not checked (scalars, interfaces, types with their own UnmarshalJSON).
type shape struct {
	fields map[string]*shape // struct: JSON name → the field's shape
	names  []string          // struct: the JSON names, for messages
	elem   *shape            // map, slice, array
	isMap  bool
	isList bool
}

var (
	shapes      sync.Map // reflect.Type → *shape
	unmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarsh = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// opaque is the shape of values checked for UTF-8, surrogates and duplicates only.
var opaque *shape

func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return opaque
	}
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, s)
	return s
}

func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler) ||
		t.Implements(textUnmarsh) || reflect.PointerTo(t).Implements(textUnmarsh) {
		return opaque // decoded by its own method, from whatever JSON it accepts
	}
	if s, ok := building[t]; ok {
		return s // a recursive type: the shape being built
	}
	switch t.Kind() {
	case reflect.Struct:
		s := &shape{fields: map[string]*shape{}}
		building[t] = s
		addFields(s, t, building)
		return s
	case reflect.Map:
		s := &shape{isMap: true}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		return s
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return opaque // []byte is a base64 string
		}
		s := &shape{isList: true}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		return s
	}
	return opaque
}

// addFields adds the JSON fields of struct t to s, promoting those of embedded structs
// without a name as encoding/json does (a name given at a shallower depth wins).
func addFields(s *shape, t reflect.Type, building map[reflect.Type]*shape) {
	type pending struct {
		t     reflect.Type
		depth int
	}
	queue := []pending{{t, 0}}
	depthOf := map[string]int{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for i := 0; i < p.t.NumField(); i++ {
			f := p.t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
				queue = append(queue, pending{ft, p.depth + 1})
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if d, ok := depthOf[name]; ok && d <= p.depth {
				continue
			}
			depthOf[name] = p.depth
			if _, ok := s.fields[name]; !ok {
				s.names = append(s.names, name)
			}
			s.fields[name] = buildShape(f.Type, building)
		}
	}
}

// scanner checks one document.
type scanner struct {
	data []byte
	pos  int
	// key is a scratch buffer for unescaped keys.
	key []byte
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) unexpected() error {
	if s.pos >= len(s.data) {
		return invalid("the JSON document is truncated")
	}
	c := s.data[s.pos]
	if c >= utf8.RuneSelf && !utf8.FullRune(s.data[s.pos:]) || c >= utf8.RuneSelf && !validRuneAt(s.data, s.pos) {
		return invalid("the JSON document is not valid UTF-8 at byte %d", s.pos)
	}
	return invalid("malformed JSON at byte %d", s.pos)
}

func validRuneAt(b []byte, i int) bool {
	r, n := utf8.DecodeRune(b[i:])
	return !(r == utf8.RuneError && n <= 1)
}

// value checks the value at pos, decoded into sh.
func (s *scanner) value(sh *shape, depth int) error {
	if s.pos >= len(s.data) {
		return s.unexpected()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		if depth >= MaxDepth {
			return invalid("the JSON document nests deeper than %d levels", MaxDepth)
		}
		return s.object(sh, depth+1)
	case c == '[':
		if depth >= MaxDepth {
			return invalid("the JSON document nests deeper than %d levels", MaxDepth)
		}
		return s.array(sh, depth+1)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.unexpected()
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.unexpected()
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.pos < len(s.data) && s.data[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		return s.unexpected()
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.unexpected()
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.unexpected()
		}
	}
	return nil
}

// str checks the string at pos and returns it unescaped when keep is set.
func (s *scanner) str(keep bool) ([]byte, error) {
	start := s.pos
	s.pos++ // the opening quote
	if keep {
		s.key = s.key[:0]
	}
	for {
		if s.pos >= len(s.data) {
			return nil, invalid("the JSON document is truncated inside a string starting at byte %d", start)
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.key, nil
		case c < 0x20:
			return nil, invalid("a JSON string holds a control character at byte %d: escape it", s.pos)
		case c == '\\':
			if err := s.escape(keep); err != nil {
				return nil, err
			}
		case c < utf8.RuneSelf:
			if keep {
				s.key = append(s.key, c)
			}
			s.pos++
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n <= 1 {
				return nil, invalid("the JSON document is not valid UTF-8 at byte %d", s.pos)
			}
			if keep {
				s.key = append(s.key, s.data[s.pos:s.pos+n]...)
			}
			s.pos += n
		}
	}
}

func (s *scanner) escape(keep bool) error {
	at := s.pos
	if s.pos+1 >= len(s.data) {
		return invalid("the JSON document is truncated inside an escape at byte %d", at)
	}
	c := s.data[s.pos+1]
	if r := simpleEscapes[c]; r != 0 {
		if keep {
			s.key = append(s.key, r)
		}
		s.pos += 2
		return nil
	}
	if c != 'u' {
		return invalid("a JSON string has an invalid escape at byte %d", at)
	}
	r, ok := hex4(s.data, s.pos+2)
	if !ok {
		return invalid("a JSON string has an invalid \\u escape at byte %d", at)
	}
	s.pos += 6
	switch {
	case utf16.IsSurrogate(r) && r < 0xdc00:
		// A high surrogate must be followed by an escaped low surrogate.
		if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
			if r2, ok := hex4(s.data, s.pos+2); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
				s.pos += 6
				if keep {
					s.key = utf8.AppendRune(s.key, utf16.DecodeRune(r, r2))
				}
				return nil
			}
		}
		return invalid("a JSON string has a lone UTF-16 surrogate at byte %d: it is not a character", at)
	case utf16.IsSurrogate(r):
		return invalid("a JSON string has a lone UTF-16 surrogate at byte %d: it is not a character", at)
	}
	if keep {
		s.key = utf8.AppendRune(s.key, r)
	}
	return nil
}

// simpleEscapes maps the character after a backslash to what it stands for (0: none).
var simpleEscapes = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (s *scanner) object(sh *shape, depth int) error {
	s.pos++ // {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	var seen map[string]bool
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected()
		}
		at := s.pos
		k, err := s.str(true)
		if err != nil {
			return err
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		key := string(k)
		if seen[key] {
			return invalid("the JSON object at byte %d has key %s twice", at, Name(key))
		}
		seen[key] = true
		child := opaque
		switch {
		case sh != nil && sh.fields != nil:
			f, ok := sh.fields[key]
			if !ok {
				return unknownField(key, sh)
			}
			child = f
		case sh != nil && sh.isMap:
			child = sh.elem
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.unexpected()
		}
		s.pos++
		s.skipSpace()
		if err := s.value(child, depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.unexpected()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.unexpected()
		}
	}
}

func unknownField(key string, sh *shape) error {
	for _, n := range sh.names {
		if strings.EqualFold(n, key) {
			return invalid("unknown field %s: field names are case-sensitive (did you mean %q?)", Name(key), n)
		}
	}
	return invalid("unknown field %s", Name(key))
}

func (s *scanner) array(sh *shape, depth int) error {
	s.pos++ // [
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	child := opaque
	if sh != nil && sh.isList {
		child = sh.elem
	}
	for {
		s.skipSpace()
		if err := s.value(child, depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.unexpected()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.unexpected()
		}
	}
}
