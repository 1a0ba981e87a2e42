package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/registry"
)

// quietLogger drops go-redis's own log lines (pool dial errors printed to stderr): failures
// reach the pipeline as classified errors, and the library's lines bypass slog.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() {
	redis.SetLogger(quietLogger{})
	registry.Register("redis", driver{})
}

// block is the `redis:` connector block.
type block struct {
	URL        string           `yaml:"url"`
	Keys       []string         `yaml:"keys"`
	HashFields []hashFieldBlock `yaml:"hash_fields"`
	Members    []memberBlock    `yaml:"members"`
	ScanCount  int64            `yaml:"scan_count"`
	// Separator is the character between the segments of keys (default ":"): a wildcard of
	// a pattern never matches it. "" lets wildcards match anything.
	Separator *string `yaml:"separator"`
}

type hashFieldBlock struct {
	Key   string `yaml:"key"`
	Field string `yaml:"field"`
}

type memberBlock struct {
	Key    string `yaml:"key"`
	Member string `yaml:"member"`
	Type   string `yaml:"type"`
}

// DefaultScanCount is the COUNT hint of each SCAN when the block sets none.
const DefaultScanCount = 1000

const maxScanCount = 100000

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
	c := &Connector{name: b.Dataset.Name, url: cfg.URL, scanCount: cfg.ScanCount, separator: ':'}
	if cfg.Separator != nil {
		switch sep := *cfg.Separator; {
		case sep == "":
			c.separator = 0
		case len(sep) == 1 && !strings.ContainsAny(sep, globChars) && sep[0] >= 0x20 && sep[0] < 0x7f:
			c.separator = sep[0]
		default:
			fail(registry.Child(b.Block, "separator"), `redis: separator must be one printable ASCII character other than * ? [ ] \ (or "" for none)`)
		}
	}
	if cfg.URL == "" {
		fail(b.Block, "redis: url is required (redis://[user:password@]host:port/db)")
	} else if opts, err := parseURL(cfg.URL); err != nil {
		fail(registry.Child(b.Block, "url"), "redis: url: %v", err)
	} else {
		c.opts = opts
	}
	switch {
	case c.scanCount == 0:
		c.scanCount = DefaultScanCount
	case c.scanCount < 1 || c.scanCount > maxScanCount:
		fail(registry.Child(b.Block, "scan_count"), "redis: scan_count must be between 1 and %d", maxScanCount)
	}

	var keys []string
	use := func(t pattern) {
		for _, v := range t.vars {
			if !slices.Contains(keys, v) {
				keys = append(keys, v)
			}
		}
	}
	compile := func(n *yaml.Node, what, src string, globOK bool) (pattern, bool) {
		p, err := compilePattern(src)
		if err != nil {
			fail(n, "redis: %s %v", what, err)
			return p, false
		}
		if p.glob && !globOK {
			fail(n, "redis: %s %q contains a glob character (* ? [ \\): patterns are only supported in keys", what, src)
			return p, false
		}
		ok := true
		for _, v := range p.vars {
			if !b.Declared(v) {
				fail(n, "redis: %s %q: {%s} is not a declared identifier (declared: %s)", what, src, v, strings.Join(b.Identifiers, ", "))
				ok = false
			}
		}
		return p, ok
	}

	kn := registry.Child(b.Block, "keys")
	for i, src := range cfg.Keys {
		n := registry.Item(kn, i)
		p, ok := compile(n, "keys:", src, true)
		if !ok {
			continue
		}
		if len(p.vars) == 0 {
			fail(n, "redis: keys: %q has no identifier placeholder: every subject would erase it", src)
			continue
		}
		use(p)
		if p.glob {
			c.globs = append(c.globs, p)
		} else {
			c.exact = append(c.exact, p)
		}
	}
	hn := registry.Child(b.Block, "hash_fields")
	for i, h := range cfg.HashFields {
		n := registry.Item(hn, i)
		if h.Key == "" || h.Field == "" {
			fail(n, "redis: hash_fields: key and field are both required")
			continue
		}
		k, ok1 := compile(registry.Child(n, "key"), "hash_fields: key", h.Key, false)
		f, ok2 := compile(registry.Child(n, "field"), "hash_fields: field", h.Field, false)
		if !ok1 || !ok2 {
			continue
		}
		if len(k.vars)+len(f.vars) == 0 {
			fail(n, "redis: hash_fields: neither key nor field has an identifier placeholder: every subject would erase the same field")
			continue
		}
		use(k)
		use(f)
		c.fields = append(c.fields, hashField{key: k, field: f})
	}
	mn := registry.Child(b.Block, "members")
	for i, m := range cfg.Members {
		n := registry.Item(mn, i)
		if m.Key == "" || m.Member == "" {
			fail(n, "redis: members: key and member are both required")
			continue
		}
		if m.Type != "set" && m.Type != "zset" {
			fail(registry.Child(n, "type"), "redis: members: type must be set or zset, not %q", m.Type)
			continue
		}
		k, ok1 := compile(registry.Child(n, "key"), "members: key", m.Key, false)
		v, ok2 := compile(registry.Child(n, "member"), "members: member", m.Member, false)
		if !ok1 || !ok2 {
			continue
		}
		if len(k.vars)+len(v.vars) == 0 {
			fail(n, "redis: members: neither key nor member has an identifier placeholder: every subject would erase the same member")
			continue
		}
		use(k)
		use(v)
		c.members = append(c.members, member{key: k, member: v, typ: m.Type})
	}
	if len(cfg.Keys)+len(cfg.HashFields)+len(cfg.Members) == 0 {
		fail(b.Block, "redis: nothing to erase: give keys, hash_fields or members")
	}
	b.Dataset.Keys = keys
	if !bad && b.Dataset.Canary != nil && !buildPlant(b, c) {
		bad = true
	}
	if bad {
		return nil
	}
	return c
}

// parseURL parses a redis:// or rediss:// URL without connecting. Its errors never quote the
// URL, which may hold a password.
func parseURL(s string) (*redis.Options, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix" {
		return nil, fmt.Errorf("scheme %q is not redis, rediss or unix", u.Scheme)
	}
	opts, err := redis.ParseURL(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		msg := err.Error()
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		return nil, errors.New(msg)
	}
	return opts, nil
}
