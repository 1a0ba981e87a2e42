package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"erasure"
)

// Limits that keep a hostile or broken file from costing more than a glance.
const (
	// MaxFileBytes is the largest configuration file Load and Parse accept.
	MaxFileBytes = 4 << 20
	// MaxDepth is the deepest nesting of mappings and sequences accepted.
	MaxDepth = 64
)

// Errors is every problem found in a configuration, sorted by line. Load and Parse return it
// (never a single error) when a file is refused.
type Errors []*LineError

// Error lists every error, one per line, after a count when there is more than one.
func (e Errors) Error() string {
	if len(e) == 1 {
		return e[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors:", len(e))
	for _, le := range e {
		b.WriteString("\n")
		b.WriteString(le.Error())
	}
	return b.String()
}

// Unwrap returns the errors, so that errors.As finds a *LineError.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, le := range e {
		out[i] = le
	}
	return out
}

// Lines returns each error as "file:line: message", in order.
func (e Errors) Lines() []string {
	out := make([]string, len(e))
	for i, le := range e {
		out[i] = le.Error()
	}
	return out
}

// Load reads and parses the configuration file at path, expanding ${VAR} from the process
// environment. It returns an *erasure.Error (ENOTFOUND when the file does not exist,
// EINVALID when it cannot be read or is larger than MaxFileBytes) when the file cannot be read,
// and Errors when its content is refused.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "configuration file %s does not exist", path)
	} else if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "cannot read configuration: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "cannot read configuration: %v", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse parses a configuration read from file (used in messages only). ${VAR} references are
// expanded with lookupEnv (os.LookupEnv when nil). It returns the configuration with every
// dataset's connector built, or Errors holding every problem found, each located by line; it
// never returns both, nor a nil configuration without an error.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	l := &loader{file: file, env: lookupEnv, raw: map[*yaml.Node]string{},
		badNodes: map[*yaml.Node]bool{}, badLines: map[int]bool{}, names: map[string]*entry{}}
	cfg := l.parse(data)
	if len(l.errs) > 0 {
		for _, e := range l.entries {
			if e.ds.Conn != nil {
				e.ds.Conn.Close()
			}
		}
		return nil, l.errors()
	}
	return cfg, nil
}

// loader carries one Parse.
type loader struct {
	file string
	env  func(string) (string, bool)
	errs []error // every error is a *LineError; []error because Build.errs is one
	// raw holds the value of each scalar as written, before ${VAR} expansion, for the scalars
	// expansion changed.
	raw map[*yaml.Node]string
	// badNodes are the scalars whose ${VAR} expansion failed, badLines their lines: checks
	// skip them rather than repeat the error.
	badNodes map[*yaml.Node]bool
	badLines map[int]bool
	cfg      *Config
	// names indexes the datasets by name (the first of each name).
	names   map[string]*entry
	entries []*entry
	// lines is the number of lines of the file: errors are clamped to it, since the YAML
	// parser places some nodes (an empty document) past the end.
	lines int
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	l.errs = append(l.errs, &LineError{File: l.file, Line: lineOf(n), Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) errorAt(line int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	l.errs = append(l.errs, &LineError{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func lineOf(n *yaml.Node) int {
	if n == nil || n.Line < 1 {
		return 1
	}
	return n.Line
}

// errors returns the recorded errors sorted by line, without exact duplicates.
func (l *loader) errors() Errors {
	out := make(Errors, 0, len(l.errs))
	seen := map[LineError]bool{}
	for _, err := range l.errs {
		le, ok := err.(*LineError)
		if !ok { // cannot happen: every path records a *LineError
			le = &LineError{File: l.file, Line: 1, Msg: err.Error()}
		}
		if le.Line > l.lines && l.lines > 0 {
			c := *le
			c.Line = l.lines
			le = &c
		}
		if seen[*le] {
			continue
		}
		seen[*le] = true
		out = append(out, le)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

var (
	yamlLineRE      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// parserProblems are the messages of the YAML parser, whose line numbers start at 0.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>": true, "did not find expected <document start>": true,
	"found undefined tag handle": true, "did not find expected node content": true,
	"did not find expected '-' indicator": true, "did not find expected key": true,
	"did not find expected ',' or ']'": true, "did not find expected ',' or '}'": true,
	"found duplicate %YAML directive": true, "found incompatible YAML document": true,
	"found duplicate %TAG directive": true,
}

// syntaxError records a YAML parser error at the line it names.
func (l *loader) syntaxError(data []byte, err error) {
	msg := err.Error()
	lines := splitLines(data)
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg = m[2]
		// The YAML parser (unlike its scanner) counts lines from 0.
		if parserProblems[msg] {
			line++
		}
		line = max(1, min(line, len(lines)))
		if line >= 1 && line <= len(lines) && bytes.Contains(lines[line-1], []byte("${")) && strings.Contains(msg, "expected ',' or") {
			msg += ` (inside { } and [ ], write "${VAR}" in quotes)`
		}
		l.errorAt(line, "invalid YAML: %s", msg)
		return
	}
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		for i, text := range lines {
			if bytes.Contains(text, []byte("*"+m[1])) {
				l.errorAt(i+1, "aliases (*%s) are not supported: write the value out", m[1])
				return
			}
		}
	}
	l.errorAt(1, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func (l *loader) parse(data []byte) *Config {
	if len(data) > MaxFileBytes {
		l.errorAt(1, "file is larger than %d MiB", MaxFileBytes>>20)
		return nil
	}
	l.lines = len(splitLines(data))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		l.errorAt(1, "file is empty: it needs at least version, identifiers and datasets")
		return nil
	} else if err != nil {
		l.syntaxError(data, err)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		l.errorAt(next.Line, "a second YAML document starts here: a configuration is one document")
	} else if !errors.Is(err, io.EOF) {
		l.syntaxError(data, err)
	}
	if len(doc.Content) != 1 {
		l.errorAt(doc.Line, "file is empty: it needs at least version, identifiers and datasets")
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		l.errorAt(root.Line, "file is empty: it needs at least version, identifiers and datasets")
		return nil
	}
	l.sanitize(root, 0)
	l.expandEnv(root, false)
	if root.Kind != yaml.MappingNode {
		l.errorf(root, "expected a mapping with version, identifiers, datasets...")
		return nil
	}
	l.cfg = &Config{File: l.file, Resources: NewResources()}
	l.top(root)
	l.literalSecrets(root, "", "")
	return l.cfg
}

// sanitize makes the tree safe to decode: it refuses aliases (replacing them with null, so
// nothing downstream expands them), merge keys, non-scalar keys, duplicate keys (dropping the
// repeat) and nesting deeper than MaxDepth (cutting it off).
func (l *loader) sanitize(n *yaml.Node, depth int) {
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		if depth >= MaxDepth {
			l.errorf(n, "nesting is deeper than %d levels", MaxDepth)
			nullify(n)
			return
		}
	}
	switch n.Kind {
	case yaml.AliasNode:
		l.errorf(n, "aliases (*%s) are not supported: write the value out", n.Value)
		nullify(n)
	case yaml.SequenceNode:
		for _, c := range n.Content {
			l.sanitize(c, depth+1)
		}
	case yaml.MappingNode:
		seen := map[string]*yaml.Node{}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch {
			case k.Kind == yaml.AliasNode:
				l.errorf(k, "aliases (*%s) are not supported: write the value out", k.Value)
				continue
			case k.Kind != yaml.ScalarNode:
				l.errorf(k, "keys must be plain strings")
				continue
			case k.Value == "<<" && k.Tag == "!!merge":
				l.errorf(k, "merge keys (<<) are not supported: write the keys out")
				continue
			}
			if first, dup := seen[k.Value]; dup {
				l.errorf(k, "key %q is repeated (first at line %d)", k.Value, first.Line)
				continue
			}
			seen[k.Value] = k
			l.sanitize(v, depth+1)
			kept = append(kept, k, v)
		}
		n.Content = kept
	}
}

// splitLines splits data at YAML line breaks: \n, \r\n, \r, and U+0085, U+2028, U+2029.
func splitLines(data []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\n':
			out = append(out, data[start:i])
			start = i + 1
		case data[i] == '\r':
			out = append(out, data[start:i])
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			start = i + 1
		case data[i] == 0xC2 && i+1 < len(data) && data[i+1] == 0x85,
			data[i] == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9):
			out = append(out, data[start:i])
			if data[i] == 0xC2 {
				i++
			} else {
				i += 2
			}
			start = i + 1
		}
	}
	return append(out, data[start:])
}

// nullify turns n into a null scalar in place, keeping its position.
func nullify(n *yaml.Node) {
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

// expandEnv expands ${VAR} in every scalar value (not in keys) of the tree.
func (l *loader) expandEnv(n *yaml.Node, key bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if key || !strings.Contains(n.Value, "$") {
			return
		}
		out, ok := l.expand(n, n.Value)
		if !ok {
			// Checks skip this value; connectors see it with the failed references removed
			// rather than a ${...} that would only cause more confusing errors.
			l.badNodes[n] = true
			l.badLines[n.Line] = true
		}
		if out == n.Value {
			return
		}
		l.raw[n] = n.Value
		n.Value = out
		// A plain scalar, or one that is a single ${VAR} even in quotes, takes the type of
		// what it now says (port: ${PORT} is a number), as if the value had been written in
		// place; other quoted scalars stay strings.
		if n.Tag == "!!str" && (n.Style == 0 || envRefRE.MatchString(l.raw[n])) {
			n.Style &^= yaml.DoubleQuotedStyle | yaml.SingleQuotedStyle
			n.Tag = ""
			n.Tag = n.ShortTag()
		}
	case yaml.MappingNode:
		for i, c := range n.Content {
			l.expandEnv(c, i%2 == 0)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			l.expandEnv(c, false)
		}
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand returns s with ${VAR} replaced by the variable's value and $${ by a literal ${. It
// records an error at n for each unset variable or malformed reference.
func (l *loader) expand(n *yaml.Node, s string) (string, bool) {
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				l.errorf(n, "unclosed ${ (write $${ for a literal ${)")
				return b.String(), false
			}
			name := s[i+2 : i+end]
			if !envNameRE.MatchString(name) {
				l.errorf(n, "${%s} is not a variable reference: names are letters, digits and _ (write $${ for a literal ${)", truncate(name, 40))
				ok = false
			} else if v, set := l.env(name); !set {
				l.errorf(n, "environment variable %s is not set", name)
				ok = false
			} else {
				b.WriteString(v)
			}
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ok
}

// rawValue returns a scalar's value as written in the file.
func (l *loader) rawValue(n *yaml.Node) string {
	if r, ok := l.raw[n]; ok {
		return r
	}
	return n.Value
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
