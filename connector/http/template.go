package httpconn

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"erasure/registry"
)

// part is one piece of a compiled template: a literal, or a placeholder with the escaping that
// fits where it stands.
type part struct {
	lit    string
	name   string // "" for a literal
	escape func(string) string
}

// urlTemplate is a URL template whose placeholders are escaped by position: url.PathEscape in
// the path, url.QueryEscape in the query. Placeholders in the scheme, host or fragment are
// refused when it is compiled, so that no identifier value can choose where a request goes.
type urlTemplate struct {
	src   string
	parts []part
	vars  []string
	// base is scheme://host/, what Check probes.
	base string
}

// marker stands for placeholder i while a template is analysed. NUL never appears in a
// template's literal text (compile refuses control characters).
func marker(i int) string { return "\x00" + strconv.Itoa(i) + "\x00" }

// skeleton expands t with a marker per placeholder and splits the result back into literal
// and placeholder pieces, with each piece's byte offset in the skeleton.
func skeleton(t registry.Template) (string, []part, []int, error) {
	src := t.String()
	for _, r := range src {
		if r < 0x20 || r == 0x7f {
			return "", nil, nil, errors.New("contains a control character")
		}
	}
	vars := t.Vars()
	marks := make(map[string]string, len(vars))
	for i, v := range vars {
		marks[v] = marker(i)
	}
	sk, _ := t.Expand(marks, nil)
	var parts []part
	var offsets []int
	for i := 0; i < len(sk); {
		j := strings.IndexByte(sk[i:], 0)
		if j < 0 {
			parts, offsets = append(parts, part{lit: sk[i:]}), append(offsets, i)
			break
		}
		if j > 0 {
			parts, offsets = append(parts, part{lit: sk[i : i+j]}), append(offsets, i)
		}
		start := i + j
		end := strings.IndexByte(sk[start+1:], 0) + start + 1
		n, _ := strconv.Atoi(sk[start+1 : end])
		parts, offsets = append(parts, part{name: vars[n]}), append(offsets, start)
		i = end + 1
	}
	return sk, parts, offsets, nil
}

// compileURL checks that t is an absolute http or https URL whose placeholders all stand in the
// path or the query, and returns it ready to expand.
func compileURL(t registry.Template) (urlTemplate, error) {
	sk, parts, offsets, err := skeleton(t)
	if err != nil {
		return urlTemplate{}, err
	}
	probe := make(map[string]string)
	for _, v := range t.Vars() {
		probe[v] = "x"
	}
	sample, _ := t.Expand(probe, nil)
	u, err := url.Parse(sample)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return urlTemplate{}, fmt.Errorf("is not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlTemplate{}, errors.New("must be an absolute http:// or https:// URL")
	}
	if u.Host == "" {
		return urlTemplate{}, errors.New("has no host")
	}
	scheme := strings.Index(sk, "://")
	if scheme < 0 {
		return urlTemplate{}, errors.New("must be an absolute http:// or https:// URL")
	}
	authEnd := len(sk)
	if k := strings.IndexAny(sk[scheme+3:], "/?#"); k >= 0 {
		authEnd = scheme + 3 + k
	}
	query, fragment := len(sk), len(sk)
	if k := strings.IndexByte(sk, '#'); k >= 0 {
		fragment = k
	}
	if k := strings.IndexByte(sk[:fragment], '?'); k >= 0 {
		query = k
	}
	for i := range parts {
		p := &parts[i]
		if p.name == "" {
			continue
		}
		switch off := offsets[i]; {
		case off < authEnd:
			return urlTemplate{}, fmt.Errorf("has placeholder {%s} in its scheme or host: identifiers may only stand in the path or the query", p.name)
		case off > fragment:
			return urlTemplate{}, fmt.Errorf("has placeholder {%s} in its fragment, which is never sent", p.name)
		case off > query:
			p.escape = url.QueryEscape
		default:
			p.escape = pathEscape
		}
	}
	return urlTemplate{src: t.String(), parts: parts, vars: t.Vars(), base: u.Scheme + "://" + u.Host + "/"}, nil
}

// pathEscape escapes v for a path segment. Beyond url.PathEscape (which escapes "/", "?", "#"
// and "%"), it escapes values made only of dots, which would otherwise be "." or ".." segments
// that clients and servers resolve against the path.
func pathEscape(v string) string {
	if strings.Trim(v, ".") == "" {
		return strings.Repeat("%2E", len(v))
	}
	return url.PathEscape(v)
}

// expand returns the URL for values (every placeholder must have one).
func (t urlTemplate) expand(values map[string]string) (*url.URL, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		b.WriteString(p.escape(values[p.name]))
	}
	u, err := url.Parse(b.String())
	if err != nil {
		// Unreachable for a compiled template and escaped values; never echo the URL.
		return nil, fmt.Errorf("%s: building the URL failed", t.src)
	}
	return u, nil
}

// bodyTemplate is a request body with placeholders escaped for its content type.
type bodyTemplate struct {
	t      registry.Template
	escape func(string) string
}

// bodyEscaper returns the escaping for a body of the given media type: JSON string content for
// JSON (the template supplies the quotes), form encoding for forms.
func bodyEscaper(contentType string) (func(string) string, bool) {
	mt := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return jsonStringContent, true
	case mt == "application/x-www-form-urlencoded":
		return url.QueryEscape, true
	}
	return nil, false
}

// jsonStringContent escapes v to sit between the double quotes of a JSON string.
func jsonStringContent(v string) string {
	b, _ := json.Marshal(v)
	return string(b[1 : len(b)-1])
}
