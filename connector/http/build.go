package httpconn

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/registry"
)

func init() { registry.Register("http", driver{}) }

// block is the `http:` connector block.
type block struct {
	Erase   *eraseBlock       `yaml:"erase"`
	Hide    *eraseBlock       `yaml:"hide"`
	Verify  *verifyBlock      `yaml:"verify"`
	Lookup  *lookupBlock      `yaml:"lookup"`
	Headers map[string]string `yaml:"headers"`
	Timeout time.Duration     `yaml:"timeout"`
}

type eraseBlock struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	// Removed is the JSON field of a 2xx response holding how many things the request erased.
	Removed string `yaml:"removed"`
}

// plantBlock is the canary's plant block: the request creating a canary subject, and the
// request reading it back (default: the verify request).
type plantBlock struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	Check   *verifyBlock      `yaml:"check"`
}

type verifyBlock struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	Gone    []int             `yaml:"gone"`
}

type lookupBlock struct {
	Method  string            `yaml:"method"`
	URL     string            `yaml:"url"`
	Body    string            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	Field   string            `yaml:"field"`
}

// DefaultTimeout bounds one HTTP exchange when the block sets no timeout.
const DefaultTimeout = 10 * time.Second

// maxTimeout is the largest timeout accepted; longer work belongs to an async dataset.
const maxTimeout = 10 * time.Minute

type driver struct{}

func (driver) Method() erasure.Method { return erasure.MethodRealtime }

// Build decodes and validates the block; see the package documentation for its keys.
func (driver) Build(b *registry.Build) erasure.Connector {
	var cfg block
	if !b.Decode(b.Block, &cfg) {
		return nil
	}
	bad := false
	fail := func(n *yaml.Node, format string, args ...any) {
		b.Errorf(n, format, args...)
		bad = true
	}
	c := &Connector{name: b.Dataset.Name, timeout: cfg.Timeout, headers: http.Header{}}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	} else if c.timeout < 0 || c.timeout > maxTimeout {
		fail(registry.Child(b.Block, "timeout"), "timeout must be between 1ms and %s", maxTimeout)
	}
	if !headersOK(b, registry.Child(b.Block, "headers"), "headers", cfg.Headers, c.headers) {
		bad = true
	}

	if cfg.Erase == nil {
		fail(b.Block, "http: erase is required")
		return nil
	}
	en := registry.Child(b.Block, "erase")
	var ok bool
	if c.erase, ok = buildRequest(b, en, "erase", "DELETE", cfg.Erase.Method, cfg.Erase.URL, cfg.Erase.Body, cfg.Erase.Headers); !ok {
		bad = true
	} else if len(c.erase.vars) == 0 {
		fail(registry.Child(en, "url"), "erase: the url or body must contain an identifier placeholder such as {user_id}, or every subject would erase the same thing")
	}
	if cfg.Erase.Removed != "" {
		segs, err := parsePath(cfg.Erase.Removed)
		if err != nil {
			fail(registry.Child(en, "removed"), "erase: removed %q: %v", cfg.Erase.Removed, err)
		}
		c.removed = segs
	}
	keys := slices.Clone(c.erase.vars)

	if v := cfg.Verify; v != nil {
		vn := registry.Child(b.Block, "verify")
		r, ok := buildRequest(b, vn, "verify", "GET", v.Method, v.URL, "", v.Headers)
		if !ok {
			bad = true
		}
		for _, name := range r.vars {
			if !slices.Contains(c.erase.vars, name) {
				fail(registry.Child(vn, "url"), "verify: placeholder {%s} is not used by erase, so a subject being erased may have no value for it", name)
			}
		}
		r.gone = []int{http.StatusNotFound, http.StatusGone}
		if v.Gone != nil {
			r.gone = v.Gone
		}
		if len(r.gone) == 0 {
			fail(registry.Child(vn, "gone"), "verify: gone must list at least one status code")
		}
		for i, code := range r.gone {
			if code < 100 || code > 599 {
				fail(registry.Item(registry.Child(vn, "gone"), i), "verify: gone: %d is not an HTTP status code", code)
			}
		}
		c.verify = &r
	}

	if h := cfg.Hide; h != nil {
		hn := registry.Child(b.Block, "hide")
		r, ok := buildRequest(b, hn, "hide", "POST", h.Method, h.URL, h.Body, h.Headers)
		if !ok {
			bad = true
		} else if len(r.vars) == 0 {
			fail(registry.Child(hn, "url"), "hide: the url or body must contain an identifier placeholder such as {user_id}")
		}
		for _, name := range r.vars {
			if !slices.Contains(c.erase.vars, name) {
				fail(registry.Child(hn, "url"), "hide: placeholder {%s} is not used by erase, so a subject being hidden may have no value for it", name)
			}
		}
		c.hide = &r
	}

	provides := b.Dataset.Provides
	if l := cfg.Lookup; l != nil {
		ln := registry.Child(b.Block, "lookup")
		r, ok := buildRequest(b, ln, "lookup", "GET", l.Method, l.URL, l.Body, l.Headers)
		if !ok {
			bad = true
		} else if len(r.vars) == 0 {
			fail(registry.Child(ln, "url"), "lookup: the url or body must contain an identifier placeholder such as {email}")
		}
		if len(provides) == 0 {
			fail(ln, "lookup is set but the dataset provides no identifier: add provides: [{identifier: TYPE, field: JSON.PATH}]")
		}
		var root []string
		if l.Field != "" {
			segs, err := parsePath(l.Field)
			if err != nil {
				fail(registry.Child(ln, "field"), "lookup: field %q: %v", l.Field, err)
			}
			root = segs
		}
		for _, p := range provides {
			segs, err := parsePath(p.Field)
			if err != nil {
				fail(ln, "lookup: provides %s: field %q: %v", p.Identifier, p.Field, err)
				continue
			}
			src := p.Field
			if l.Field != "" {
				src = l.Field + "." + p.Field
			}
			c.provides = append(c.provides, provide{typ: p.Identifier, path: append(slices.Clone(root), segs...), src: src})
		}
		c.lookup = &r
		for _, v := range r.vars {
			if !slices.Contains(keys, v) {
				keys = append(keys, v)
			}
		}
	} else if len(provides) > 0 {
		fail(b.Block, "the dataset provides identifiers but the http block has no lookup to read them")
	}
	// The pipeline runs a task when the subject has any of the keys and passes only those
	// identifiers, to lookups as to erasures: the lookup's identifiers are keys too.
	b.Dataset.Keys = keys
	if b.Dataset.Canary != nil && !buildPlant(b, c) {
		bad = true
	}
	if bad {
		return nil
	}
	c.client = newClient()
	switch {
	case c.verify != nil && c.lookup != nil:
		return verifyingResolving{c}
	case c.verify != nil:
		return verifying{c}
	case c.lookup != nil:
		return resolving{c}
	}
	return c
}

// buildPlant builds the canary's plant and check requests into c; false after reporting a
// problem. A canary needs a plant block (a create endpoint) and something to read the canary
// back with: plant.check or the dataset's verify.
func buildPlant(b *registry.Build, c *Connector) bool {
	if b.Plant == nil {
		b.Errorf(b.Block, "http: the canary needs canary.plant: { method: POST, url: ..., body: ... }, the service's endpoint creating a subject")
		return false
	}
	var p plantBlock
	if !b.DecodePlant(&p) {
		return false
	}
	r, ok := buildRequest(b, b.Plant, "canary.plant", "POST", p.Method, p.URL, p.Body, p.Headers)
	c.plant = &r
	for _, v := range r.vars {
		if !slices.Contains(b.Dataset.Keys, v) {
			b.Errorf(registry.Child(b.Plant, "url"), "canary.plant: {%s} is not one of the dataset's keys (%s): the canary subject has only those", v, strings.Join(b.Dataset.Keys, ", "))
			ok = false
		}
	}
	switch {
	case p.Check != nil:
		cn := registry.Child(b.Plant, "check")
		chk, cok := buildRequest(b, cn, "canary.plant.check", "GET", p.Check.Method, p.Check.URL, "", p.Check.Headers)
		chk.gone = []int{http.StatusNotFound, http.StatusGone}
		if p.Check.Gone != nil {
			chk.gone = p.Check.Gone
		}
		for _, v := range chk.vars {
			if !slices.Contains(b.Dataset.Keys, v) {
				b.Errorf(registry.Child(cn, "url"), "canary.plant.check: {%s} is not one of the dataset's keys (%s)", v, strings.Join(b.Dataset.Keys, ", "))
				cok = false
			}
		}
		c.check = &chk
		ok = ok && cok
	case c.verify != nil:
		c.check = c.verify
	default:
		b.Errorf(b.Plant, "http: the canary needs a way to read its subject back: canary.plant.check: { url: ... } or the dataset's verify")
		ok = false
	}
	return ok
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// buildRequest validates one request block (erase, verify or lookup) found at n.
func buildRequest(b *registry.Build, n *yaml.Node, what, defMethod, method, rawURL, body string, headers map[string]string) (request, bool) {
	ok := true
	r := request{method: defMethod, headers: http.Header{}}
	if method != "" {
		r.method = strings.ToUpper(method)
		if !slices.Contains(methods, r.method) {
			b.Errorf(registry.Child(n, "method"), "%s: method %q is not one of %s", what, method, strings.Join(methods, ", "))
			ok = false
		}
	}
	if !headersOK(b, registry.Child(n, "headers"), what+".headers", headers, r.headers) {
		ok = false
	}
	un := registry.Child(n, "url")
	if rawURL == "" {
		b.Errorf(n, "%s: url is required", what)
		return r, false
	}
	t, err := registry.ParseTemplate(rawURL)
	if err != nil {
		b.Errorf(un, "%s: url: %v", what, err)
		return r, false
	}
	if r.url, err = compileURL(t); err != nil {
		b.Errorf(un, "%s: url %s %v", what, t.String(), err)
		return r, false
	}
	if !declared(b, un, what+": url", t.Vars()) {
		ok = false
	}
	r.vars = t.Vars()
	if body != "" {
		bn := registry.Child(n, "body")
		if r.method == "GET" || r.method == "HEAD" {
			b.Errorf(bn, "%s: a %s request cannot have a body", what, r.method)
			ok = false
		}
		bt, err := registry.ParseTemplate(body)
		if err != nil {
			b.Errorf(bn, "%s: body: %v", what, err)
			return r, false
		}
		if r.headers.Get("Content-Type") == "" {
			r.headers.Set("Content-Type", "application/json")
		}
		esc, known := bodyEscaper(r.headers.Get("Content-Type"))
		if !known && len(bt.Vars()) > 0 {
			b.Errorf(bn, "%s: cannot escape identifiers for a body of Content-Type %q: use application/json or application/x-www-form-urlencoded", what, r.headers.Get("Content-Type"))
			ok = false
		}
		if !declared(b, bn, what+": body", bt.Vars()) {
			ok = false
		}
		r.body = &bodyTemplate{t: bt, escape: esc}
		for _, v := range bt.Vars() {
			if !slices.Contains(r.vars, v) {
				r.vars = append(r.vars, v)
			}
		}
	}
	return r, ok
}

func declared(b *registry.Build, n *yaml.Node, what string, vars []string) bool {
	ok := true
	for _, v := range vars {
		if !b.Declared(v) {
			b.Errorf(n, "%s: {%s} is not a declared identifier (declared: %s)", what, v, strings.Join(b.Identifiers, ", "))
			ok = false
		}
	}
	return ok
}

// headersOK validates header names and values into h. Values are secrets as often as not, so
// messages never quote them.
func headersOK(b *registry.Build, n *yaml.Node, what string, in map[string]string, h http.Header) bool {
	ok := true
	for name, value := range in {
		at := registry.Child(n, name)
		if !validHeaderName(name) {
			b.Errorf(at, "%s: %q is not a valid header name", what, name)
			ok = false
			continue
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			b.Errorf(at, "%s: the value of %s contains a line break or NUL", what, name)
			ok = false
			continue
		}
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			b.Errorf(at, "%s: %s is set by the connector and cannot be configured", what, name)
			ok = false
			continue
		}
		h.Set(name, value)
	}
	return ok
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
