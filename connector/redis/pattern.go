package redisconn

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"erasure"
	"erasure/registry"
)

// globChars are escaped in identifier values placed in a pattern: the characters special to
// Redis MATCH, and "]" for symmetry. patternChars, in a template's literal text, make it a
// pattern ("]" alone is literal in MATCH).
const (
	globChars    = `*?[]\`
	patternChars = `*?[\`
)

// pattern is a compiled key, field or member template.
type pattern struct {
	src  string
	t    registry.Template
	vars []string
	// glob is set when the template's literal text holds a glob character: the expansion is a
	// MATCH pattern, and identifier values are glob-escaped into it.
	glob bool
}

// compilePattern parses src and decides whether it is a glob. A placeholder right next to a
// wildcard is refused: "session:{user_id}*" would match the keys of user 10 when erasing user
// 1, so a delimiter must separate them.
func compilePattern(src string) (pattern, error) {
	t, err := registry.ParseTemplate(src)
	if err != nil {
		return pattern{}, err
	}
	if strings.IndexByte(src, 0) >= 0 {
		return pattern{}, fmt.Errorf("%q contains a NUL byte", src)
	}
	p := pattern{src: t.String(), t: t, vars: t.Vars()}
	// Split into literal and placeholder pieces with NUL-delimited markers.
	marks := map[string]string{}
	for i, v := range p.vars {
		marks[v] = "\x00" + strconv.Itoa(i) + "\x00"
	}
	sk, _ := t.Expand(marks, nil)
	pieces := strings.Split(sk, "\x00") // literal, index, literal, index, ..., literal
	var literal strings.Builder
	for i := 0; i < len(pieces); i += 2 {
		literal.WriteString(pieces[i])
	}
	p.glob = strings.ContainsAny(literal.String(), patternChars)
	if p.glob {
		for i := 1; i < len(pieces); i += 2 {
			before, after := pieces[i-1], pieces[i+1]
			n, _ := strconv.Atoi(pieces[i])
			if before != "" && strings.ContainsAny(before[len(before)-1:], "*?]") ||
				after != "" && strings.ContainsAny(after[:1], "*?[") {
				return pattern{}, fmt.Errorf("%q has a wildcard right next to {%s}: put a delimiter between them (as in \"session:{%s}:*\"), or the keys of other subjects whose value starts or ends like this one would match", src, p.vars[n], p.vars[n])
			}
		}
	}
	return p, nil
}

// expand fills the pattern with values; in a glob, values are escaped so that they match
// themselves only.
func (p pattern) expand(values map[string]string) string {
	var esc func(string) string
	if p.glob {
		esc = globEscape
	}
	s, _ := p.t.Expand(values, esc)
	return s
}

// globEscape backslash-escapes every character special to Redis MATCH.
func globEscape(v string) string {
	if !strings.ContainsAny(v, globChars) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(globChars, v[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// combinations returns one value map per combination of the subject's values for vars, or
// nil when the subject lacks one of them. An empty value is an error.
func combinations(s erasure.Subject, vars []string) ([]map[string]string, error) {
	out := []map[string]string{{}}
	for _, v := range vars {
		values := s.Values(v)
		if len(values) == 0 {
			return nil, nil
		}
		if slices.Contains(values, "") {
			return nil, erasure.Permanentf("the subject has an empty %s identifier", v)
		}
		next := make([]map[string]string, 0, len(out)*len(values))
		for _, m := range out {
			for _, val := range values {
				n := make(map[string]string, len(m)+1)
				for k, x := range m {
					n[k] = x
				}
				n[v] = val
				next = append(next, n)
			}
		}
		out = next
	}
	return out, nil
}

// segmentMatcher returns the expanded pattern glob (Redis MATCH syntax, identifier values
// backslash-escaped in it) as a regular expression in which * and ? do not match sep: SCAN
// MATCH lets "session:q:*" match "session:q:r:web", which is the key of the subject "q:r" as
// much as of "q"; kept within one segment, the wildcard matches only "session:q:web". A
// pattern's character classes are kept as written. With sep 0, nil: Redis's own matching.
func segmentMatcher(glob string, sep byte) *regexp.Regexp {
	if sep == 0 {
		return nil
	}
	notSep := "[^" + regexp.QuoteMeta(string(sep)) + "]"
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '\\':
			if i+1 < len(glob) {
				i++
				b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
			}
		case '*':
			b.WriteString(notSep + "*")
		case '?':
			b.WriteString(notSep)
		case '[':
			end := i + 1
			for end < len(glob) && glob[end] != ']' {
				if glob[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(glob) {
				b.WriteString(`\[`)
				continue
			}
			b.WriteString("[" + glob[i+1:end] + "]") // Redis and Go read [a-z], [^a] and \] alike
			i = end
		default:
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		}
	}
	b.WriteString(`\z`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return regexp.MustCompile(`\A\z.`) // a class Go cannot read: match nothing rather than too much
	}
	return re
}
