package scan

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"erasure"
	redisconn "erasure/connector/redis"
	"erasure/registry"
)

// Bounds of a Redis scan.
const (
	// redisBatch is how many keys are read in one pipelined round trip.
	redisBatch = 100
	// redisItems is how many fields, members or items of one key are read.
	redisItems = 100
	// redisFieldPlaces is the most fields a hash may have for each to be a place of its own;
	// larger hashes are read as field names and values.
	redisFieldPlaces = 64
	// maxFamilies bounds the key families of one Redis database.
	maxFamilies = 10_000
)

// redisDataset is a redis dataset with its key templates as regular expressions.
type redisDataset struct {
	ds        *erasure.Dataset
	url       string
	server    string // address and database: what "the same Redis" means
	templates []keyTemplate
}

// keyTemplate is a key template of a dataset matched against keys: group i+1 is the value of
// placeholder vars[i].
type keyTemplate struct {
	re   *regexp.Regexp
	vars []string
}

func newRedisDataset(d *erasure.Dataset, c *redisconn.Connector) (*redisDataset, error) {
	rd := &redisDataset{ds: d, url: c.URL(), server: redisServer(c.URL())}
	for _, src := range c.KeyTemplates() {
		kt, err := compileKeyTemplate(src)
		if err != nil {
			return nil, erasure.Errorf(erasure.EINVALID, "dataset %s: key template %q: %v", d.Name, src, err)
		}
		rd.templates = append(rd.templates, kt)
	}
	return rd, nil
}

// redisServer returns "host:port/db" for a Redis URL, or the URL's host when it cannot be
// parsed.
func redisServer(u string) string {
	opts, err := redis.ParseURL(u)
	if err != nil {
		return u
	}
	return opts.Addr + "/" + strconv.Itoa(opts.DB)
}

// compileKeyTemplate turns a key template ("session:{user_id}:*") into a regular expression
// matching the keys it names: placeholders match any non-empty text, glob characters (* ? [])
// as Redis MATCH does.
func compileKeyTemplate(src string) (keyTemplate, error) {
	t, err := registry.ParseTemplate(src)
	if err != nil {
		return keyTemplate{}, err
	}
	vars := t.Vars()
	marks := map[string]string{}
	for i, v := range vars {
		marks[v] = "\x00" + strconv.Itoa(i) + "\x00"
	}
	s, _ := t.Expand(marks, nil)
	pieces := strings.Split(s, "\x00") // literal, index, literal, ..., literal
	var b strings.Builder
	b.WriteString("^")
	var kt keyTemplate
	for i, p := range pieces {
		if i%2 == 1 {
			n, _ := strconv.Atoi(p)
			kt.vars = append(kt.vars, vars[n])
			b.WriteString("(.+?)")
			continue
		}
		b.WriteString(globRegexp(p))
	}
	b.WriteString("$")
	kt.re, err = regexp.Compile(b.String())
	return kt, err
}

// globRegexp translates the literal text of a key template, with Redis glob characters, into
// a regular expression.
func globRegexp(lit string) string {
	var b strings.Builder
	for i := 0; i < len(lit); i++ {
		switch c := lit[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+1 < len(lit) {
				i++
				b.WriteString(regexp.QuoteMeta(lit[i : i+1]))
			}
		case '[':
			end := strings.IndexByte(lit[i+1:], ']')
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := lit[i+1 : i+1+end]
			neg := strings.HasPrefix(class, "^")
			class = strings.TrimPrefix(class, "^")
			b.WriteString("[")
			if neg {
				b.WriteString("^")
			}
			for j := 0; j < len(class); j++ {
				if class[j] == '-' && j > 0 && j < len(class)-1 {
					b.WriteByte('-')
				} else {
					b.WriteString(regexp.QuoteMeta(class[j : j+1]))
				}
			}
			b.WriteString("]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(lit[i : i+1]))
		}
	}
	return b.String()
}

// family is a group of keys of the same shape.
type family struct {
	pattern   string
	segs      []string // the pattern's segments: literal text or a placeholder
	keys      int
	uncovered int
	dataset   string
	// keyPlaces are the places of the placeholder segments, by segment index.
	keyPlaces map[int]*place
}

// redisSource is one Redis database.
type redisSource struct {
	url, server, match string
	raw                map[string]map[string]string
	datasets           []*redisDataset // on this URL
	cover              []*redisDataset // on the same server and database

	families map[string]*family
	// segmentOf maps a place to the index of the key segment it is (absent: a value or field).
	segmentOf map[*place]int
	familyOf  map[*place]*family
}

func (s *redisSource) init(all []*redisDataset) error {
	s.server = redisServer(s.url)
	for _, d := range all {
		if d.server == s.server {
			s.cover = append(s.cover, d)
		}
	}
	return nil
}

func (s *redisSource) describe() Source {
	ds := make([]*erasure.Dataset, len(s.datasets))
	for i, d := range s.datasets {
		ds[i] = d.ds
	}
	return Source{Kind: SourceRedis, Name: "redis://" + s.server, Datasets: names(ds)}
}

var (
	uuidRE  = regexp.MustCompile(`^(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hexRE   = regexp.MustCompile(`^(?i)[0-9a-f]{16,}$`)
	tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{20,}$`)
	digitRE = regexp.MustCompile(`[0-9]`)
	alphaRE = regexp.MustCompile(`[A-Za-z]`)
)

// segmentShape returns the placeholder that stands for seg in a key family, or seg itself
// when it is literal text.
func segmentShape(seg string, m matchers) string {
	if seg == "" {
		return seg
	}
	if t := m.segmentType(seg); t != "" {
		return "{" + t + "}"
	}
	switch {
	case strings.Trim(seg, "0123456789") == "":
		return "{n}"
	case uuidRE.MatchString(seg):
		return "{uuid}"
	case hexRE.MatchString(seg) && digitRE.MatchString(seg):
		return "{hex}"
	case tokenRE.MatchString(seg) && digitRE.MatchString(seg) && alphaRE.MatchString(seg):
		return "{token}"
	}
	return seg
}

func isPlaceholder(seg string) bool {
	return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

func (s *redisSource) scan(ctx context.Context, c *collector, src *Source) error {
	opts, err := redis.ParseURL(s.url)
	if err != nil {
		return fmt.Errorf("url: %v", err) // never the URL: it may hold a password
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	s.families = map[string]*family{}
	s.segmentOf = map[*place]int{}
	s.familyOf = map[*place]*family{}
	defer s.settle()

	seen := map[string]bool{}
	var keys []string
	var cursor uint64
	for {
		batch, next, err := rdb.Scan(ctx, cursor, s.match, 1000).Result()
		if err != nil {
			return redisError("SCAN", err)
		}
		for _, k := range batch {
			if !seen[k] && len(keys) < c.sample {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		cursor = next
		if cursor == 0 || len(keys) >= c.sample {
			break
		}
	}
	for i := 0; i < len(keys); i += redisBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := keys[i:min(i+redisBatch, len(keys))]
		if err := s.read(ctx, rdb, batch, c); err != nil {
			return err
		}
		src.Rows += int64(len(batch))
		src.Units = len(s.families)
		c.progress(fmt.Sprintf("%s %s: %d/%d keys, %d families", SourceRedis, src.Name, i+len(batch), len(keys), len(s.families)))
	}
	return nil
}

// redisError names the command, never the key or the URL.
func redisError(cmd string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("redis %s: %v", cmd, err)
}

// read reads a batch of keys: their types, then what each holds.
func (s *redisSource) read(ctx context.Context, rdb *redis.Client, keys []string, c *collector) error {
	pipe := rdb.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return redisError("TYPE", err)
	}
	pipe = rdb.Pipeline()
	type read struct {
		key, typ string
		str      *redis.StringCmd
		scan     *redis.ScanCmd
		list     *redis.StringSliceCmd
	}
	reads := make([]read, 0, len(keys))
	for i, k := range keys {
		r := read{key: k, typ: types[i].Val()}
		switch r.typ {
		case "string":
			r.str = pipe.GetRange(ctx, k, 0, maxValue)
		case "hash":
			r.scan = pipe.HScan(ctx, k, 0, "", redisItems)
		case "set":
			r.scan = pipe.SScan(ctx, k, 0, "", redisItems)
		case "zset":
			r.list = pipe.ZRange(ctx, k, 0, redisItems-1)
		case "list":
			r.list = pipe.LRange(ctx, k, 0, redisItems-1)
		}
		reads = append(reads, r)
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	// Per-command errors (a key that changed type or expired in between) skip that key's
	// content; the key itself still counts.
	for _, r := range reads {
		f := s.key(r.key, c)
		if f == nil {
			continue
		}
		last := f.lastLiteral()
		switch {
		case r.str != nil && r.str.Err() == nil:
			c.observe(s.valuePlace(c, f, f.pattern+" value", last), r.str.Val())
		case r.scan != nil && r.scan.Err() == nil && r.typ == "hash":
			kv, _ := r.scan.Val()
			names := s.valuePlace(c, f, f.pattern+" [field names]", last)
			for j := 0; j+1 < len(kv); j += 2 {
				c.scalar(names, kv[j])
				// Fields named like values (ids, addresses) are not places of their own: a
				// location never prints a value.
				if len(kv) <= 2*redisFieldPlaces && c.nameLike(kv[j]) {
					c.observe(s.valuePlace(c, f, f.pattern+" field "+kv[j], kv[j]), kv[j+1])
				} else {
					c.observe(s.valuePlace(c, f, f.pattern+" [field values]", last), kv[j+1])
				}
			}
		case r.scan != nil && r.scan.Err() == nil:
			members, _ := r.scan.Val()
			p := s.valuePlace(c, f, f.pattern+" [members]", last)
			for _, v := range members {
				c.observe(p, v)
			}
		case r.list != nil && r.list.Err() == nil:
			p := s.valuePlace(c, f, f.pattern+" [members]", last)
			for _, v := range r.list.Val() {
				c.observe(p, v)
			}
		}
	}
	return nil
}

// lastLiteral is the last literal segment of the family's pattern: the "name" of its values.
func (f *family) lastLiteral() string {
	for i := len(f.segs) - 1; i >= 0; i-- {
		if !isPlaceholder(f.segs[i]) && f.segs[i] != "" {
			return f.segs[i]
		}
	}
	return ""
}

// key files a key into its family. A key named by a registered template is covered, and
// what the template's placeholders capture as whole segments takes their names ({user_id}); a
// literal segment that is an erased identifier takes its type's name too, so that a family's
// pattern never prints an identifier. The placeholder segments are values of the family's key
// places; captured and erased values are looked for among the erased identifiers of their type.
func (s *redisSource) key(k string, c *collector) *family {
	parts := strings.Split(k, ":")
	segs := make([]string, len(parts))
	for i, p := range parts {
		segs[i] = segmentShape(p, c.m)
	}
	type capture struct {
		typ   int
		value string
	}
	var caps []capture
	seen := map[capture]bool{}
	add := func(cp capture) {
		if !seen[cp] {
			seen[cp] = true
			caps = append(caps, cp)
		}
	}
	dataset := ""
	for _, d := range s.cover {
		for _, t := range d.templates {
			m := t.re.FindStringSubmatch(k)
			if m == nil {
				continue
			}
			if dataset == "" {
				dataset = d.ds.Name
			}
			for gi, v := range t.vars {
				for i, p := range parts {
					if p == m[gi+1] {
						segs[i] = "{" + v + "}"
					}
				}
				if i := c.m.index(v); i >= 0 {
					add(capture{i, m[gi+1]})
				}
			}
		}
	}
	if c.erased != nil {
		for i, seg := range segs {
			if isPlaceholder(seg) {
				continue
			}
			if ti := c.erased.find(parts[i]); ti >= 0 {
				segs[i] = "{" + c.m[ti].typ.Name + "}"
				add(capture{ti, parts[i]})
			}
		}
	}
	pattern := strings.Join(segs, ":")
	f := s.families[pattern]
	if f == nil {
		if len(s.families) >= maxFamilies {
			return nil
		}
		f = &family{pattern: pattern, segs: segs, keyPlaces: map[int]*place{}}
		s.families[pattern] = f
		var holes []int
		for i, seg := range segs {
			if isPlaceholder(seg) {
				holes = append(holes, i)
			}
		}
		for _, i := range holes {
			loc := pattern
			if len(holes) > 1 {
				loc = fmt.Sprintf("%s [segment %d]", pattern, i+1)
			}
			name := ""
			if i > 0 && !isPlaceholder(segs[i-1]) {
				name = segs[i-1]
			}
			if p := c.place(loc, name, pattern); p != nil {
				f.keyPlaces[i] = p
				s.segmentOf[p] = i
				s.familyOf[p] = f
			}
		}
	}
	f.keys++
	if dataset == "" {
		f.uncovered++
	} else if f.dataset == "" {
		f.dataset = dataset
	}
	for i, p := range f.keyPlaces {
		c.scalar(p, parts[i])
	}
	for _, cp := range caps {
		p, whole := s.placeOfValue(f, parts, cp.value, c)
		// A whole segment was looked at by scalar: check it here only when scalar did not.
		if p != nil && c.erased != nil && !(whole && c.checks(p, cp.typ, cp.value)) {
			c.erased.check(p, cp.typ, cp.value)
		}
	}
	return f
}

// placeOfValue returns the key place of the segment equal to v (and true), or else the
// family's first key place, or a place for the whole key when it has no placeholder.
func (s *redisSource) placeOfValue(f *family, parts []string, v string, c *collector) (*place, bool) {
	first := -1
	for i, p := range f.keyPlaces {
		if parts[i] == v {
			return p, true
		}
		if first < 0 || i < first {
			first = i
		}
	}
	if first >= 0 {
		return f.keyPlaces[first], false
	}
	return s.valuePlace(c, f, f.pattern+" [key]", ""), false
}

// valuePlace returns a place holding values or fields of family f's keys.
func (s *redisSource) valuePlace(c *collector, f *family, loc, name string) *place {
	p := c.place(loc, name, f.pattern)
	if p != nil {
		s.familyOf[p] = f
	}
	return p
}

// settle marks the places of every family whose sampled keys all match a registered key
// template as covered by it.
func (s *redisSource) settle() {
	for p, f := range s.familyOf {
		p.covered = f.keys > 0 && f.uncovered == 0
		p.dataset = f.dataset
	}
}

// suggest proposes a redis dataset whose key template names the recognized segment; values
// and fields of keys that name no identifier get advice in a comment.
func (s *redisSource) suggest(p *place, t erasure.IdentifierType) string {
	f := s.familyOf[p]
	if f == nil {
		return ""
	}
	i, ok := s.segmentOf[p]
	if !ok {
		return fmt.Sprintf("# keys %s hold %s values (%s) but their names hold no identifier: no key template can find a\n"+
			"# subject's keys; name them by an identifier (or index them with hash_fields or members), or give them a short expiry",
			f.pattern, t.Name, strings.TrimPrefix(p.loc, f.pattern+" "))
	}
	var tmpl strings.Builder
	var words []string
	for j, seg := range f.segs {
		if j > 0 {
			tmpl.WriteByte(':')
		}
		switch {
		case j == i:
			tmpl.WriteString("{" + t.Name + "}")
		case isPlaceholder(seg):
			tmpl.WriteString("*")
		default:
			words = append(words, seg)
			for _, r := range seg {
				switch r {
				case '{':
					tmpl.WriteString("{{")
				case '}':
					tmpl.WriteString("}}")
				case '*', '?', '[', ']', '\\':
					tmpl.WriteString(`\`)
					tmpl.WriteRune(r)
				default:
					tmpl.WriteRune(r)
				}
			}
		}
	}
	ds := make([]*erasure.Dataset, len(s.cover))
	for j, d := range s.cover {
		ds[j] = d.ds
	}
	url := "${REDIS_URL}"
	if len(s.datasets) > 0 {
		url = rawValue(s.raw, s.datasets[0].ds.Name, "redis.url", url)
	}
	return fmt.Sprintf("- name: %s\n  owner: %s  # as the other datasets of this Redis: check\n  connector: redis\n  redis: { url: %s, keys: [%s] }",
		datasetName(append([]string{"redis"}, words...)...), ownerOf(ds), yamlString(url), yamlString(tmpl.String()))
}
