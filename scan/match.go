package scan

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"erasure"
	"erasure/audit"
)

// Bounds of what one value costs.
const (
	// maxValue is the longest value looked at; longer ones are counted, not read.
	maxValue = 64 << 10
	// maxDepth is how deep JSON values are followed.
	maxDepth = 8
	// maxLeaves is how many scalars of one JSON value are looked at.
	maxLeaves = 512
	// maxPlaces bounds the places of one source (columns, fields, key families...).
	maxPlaces = 20_000
)

// typeMatcher is a declared identifier type with its scan patterns compiled.
type typeMatcher struct {
	typ    erasure.IdentifierType
	names  []*regexp.Regexp
	values *regexp.Regexp // nil: values are not recognized
}

// matchers are the declared types, in declaration order (which breaks ties).
type matchers []typeMatcher

func compileTypes(types []erasure.IdentifierType) (matchers, error) {
	out := make(matchers, 0, len(types))
	for _, t := range types {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		tm := typeMatcher{typ: t}
		for _, p := range t.ScanNames {
			tm.names = append(tm.names, regexp.MustCompile("(?i)"+p))
		}
		if t.ScanValues != "" {
			tm.values = regexp.MustCompile(t.ScanValues)
		}
		out = append(out, tm)
	}
	return out, nil
}

func (tm *typeMatcher) nameMatches(name string) bool {
	if name == "" {
		return false
	}
	for _, re := range tm.names {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// valueMatches reports whether v looks like a value of the type.
func (tm *typeMatcher) valueMatches(v string) bool {
	if tm.values == nil {
		return false
	}
	if tm.typ.Trim {
		v = strings.TrimSpace(v)
	}
	return tm.values.MatchString(v)
}

// index returns the position of the type called name, or -1.
func (m matchers) index(name string) int {
	for i := range m {
		if m[i].typ.Name == name {
			return i
		}
	}
	return -1
}

// segmentType returns the first type whose value pattern recognizes s, or "".
func (m matchers) segmentType(s string) string {
	for i := range m {
		if m[i].valueMatches(s) {
			return m[i].typ.Name
		}
	}
	return ""
}

// place is where values are sampled from: a column, a field, a part of a key family.
type place struct {
	// loc is shown to people; name is matched with name patterns; places of one group give at
	// most one unregistered finding (a Redis key family), by default a place is its own group.
	loc, name, group string
	// covered is set when a registered dataset names the place; dataset is the one that does
	// (or that covers the table, for messages).
	covered bool
	dataset string
	// holds are the identifier types the registry says the place holds.
	holds map[string]bool

	nameHit []bool // per type
	values  int    // scalar values sampled
	json    int    // values that were JSON documents, read as child places
	matched []int  // per type: values its value pattern recognized
	residue map[string]int
}

// collector gathers the places of one source.
type collector struct {
	m      matchers
	erased *erasedSet
	sample int
	places map[string]*place
	list   []*place
	values int64
	// progress receives lines for people.
	progress func(string)
	// names remembers which keys and fields read as names (see nameLike).
	names map[string]bool
	// setup, when set, is called with each new place (after it inherits its parent's
	// coverage), for the source to say what covers it.
	setup func(p *place)
}

func newCollector(m matchers, erased *erasedSet, opts Options) *collector {
	return &collector{m: m, erased: erased, sample: opts.Sample, places: map[string]*place{}, progress: opts.Progress, names: map[string]bool{}}
}

// place returns the place at loc, creating it with name and group (group "" is loc itself).
// It returns nil once the source has maxPlaces places: their values are not looked at.
func (c *collector) place(loc, name, group string) *place {
	p, created := c.lookup(loc, name, group, nil)
	if created && c.setup != nil {
		c.setup(p)
	}
	return p
}

// lookup returns the place at loc, creating it (inheriting parent's coverage, when a parent is
// given) and reporting whether it did.
func (c *collector) lookup(loc, name, group string, parent *place) (*place, bool) {
	if p := c.places[loc]; p != nil {
		return p, false
	}
	if len(c.list) >= maxPlaces {
		return nil, false
	}
	if group == "" {
		group = loc
	}
	p := &place{loc: loc, name: name, group: group, nameHit: make([]bool, len(c.m)), matched: make([]int, len(c.m))}
	for i := range c.m {
		p.nameHit[i] = c.m[i].nameMatches(name)
	}
	if parent != nil {
		p.covered, p.dataset = parent.covered, parent.dataset
	}
	c.places[loc] = p
	c.list = append(c.list, p)
	return p, true
}

// child returns the place of field key inside p's JSON values. It shares p's group when p is
// part of a larger one (a key family), and p's coverage.
func (c *collector) child(p *place, key string) *place {
	loc := key
	if p.loc != "" {
		if key[0] == '[' {
			loc = p.loc + key
		} else {
			loc = p.loc + "." + key
		}
	}
	name := key
	if key[0] == '[' || key[0] == '{' {
		name = p.name
	}
	group := ""
	if p.group != p.loc {
		group = p.group
	}
	q, created := c.lookup(loc, name, group, p)
	if created && c.setup != nil {
		c.setup(q)
	}
	return q
}

// nameLike reports whether an object key or a hash field reads as a name rather than a value:
// not a number, a uuid, a long random string, a value of a declared type, or an erased
// identifier.
func (c *collector) nameLike(k string) bool {
	if ok, seen := c.names[k]; seen {
		return ok
	}
	ok := k != "" && !isPlaceholder(segmentShape(k, c.m)) && (c.erased == nil || c.erased.find(k) < 0)
	if len(c.names) < maxPlaces {
		c.names[k] = ok
	}
	return ok
}

// observe looks at one value of p: a JSON object or array is followed field by field into
// child places, anything else is a scalar.
func (c *collector) observe(p *place, v string) {
	if p == nil {
		return
	}
	t := strings.TrimSpace(v)
	if t == "" {
		return
	}
	if len(v) > maxValue {
		c.values++
		p.values++
		return
	}
	if (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
		dec := json.NewDecoder(strings.NewReader(t))
		dec.UseNumber()
		var doc any
		if dec.Decode(&doc) == nil {
			p.json++
			leaves := 0
			c.observeJSON(p, doc, 0, &leaves)
			return
		}
	}
	c.scalar(p, v)
}

// observeJSON looks at a decoded JSON value of p.
func (c *collector) observeJSON(p *place, v any, depth int, leaves *int) {
	if p == nil || *leaves >= maxLeaves {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		if depth >= maxDepth {
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			field := k
			if !c.nameLike(k) {
				// An object keyed by values (ids, addresses): the keys are values of one
				// place, the values of another, and no location prints a key.
				field = "{key}"
				kp := c.child(p, "[keys]")
				c.scalar(kp, k)
				// A key that is an erased identifier is residue, unless it is a number: as
				// anywhere, 1 is many things, and counts only where a name or the registry
				// says it is an id.
				if kp != nil && c.erased != nil && segmentShape(k, c.m) != "{n}" {
					if ti := c.erased.find(k); ti >= 0 && !c.checks(kp, ti, k) {
						c.erased.check(kp, ti, k)
					}
				}
			}
			c.observeJSON(c.child(p, field), x[k], depth+1, leaves)
		}
	case []any:
		if depth >= maxDepth {
			return
		}
		for _, e := range x {
			c.observeJSON(c.child(p, "[]"), e, depth+1, leaves)
		}
	case string:
		*leaves++
		c.scalar(p, x)
	case json.Number:
		*leaves++
		c.scalar(p, x.String())
	case bool:
		*leaves++
		if x {
			c.scalar(p, "true")
		} else {
			c.scalar(p, "false")
		}
	}
}

// observeJSONRow looks at one JSON lines row: its fields are places of their own.
func (c *collector) observeJSONRow(line []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return false
	}
	if _, ok := doc.(map[string]any); !ok {
		return false
	}
	root := &place{} // never listed: the row itself is not a place
	leaves := 0
	c.observeJSON(root, doc, 0, &leaves)
	return true
}

// scalar counts one value of p against every type's value pattern and, with the store, looks
// for it among the erased identifiers.
func (c *collector) scalar(p *place, v string) {
	if p == nil || strings.TrimSpace(v) == "" {
		return
	}
	c.values++
	p.values++
	if len(v) > erasure.MaxIdentifierValue || !utf8.ValidString(v) {
		return
	}
	for i := range c.m {
		tm := &c.m[i]
		hit := tm.valueMatches(v)
		if hit {
			p.matched[i]++
		}
		if c.erased != nil && (hit || p.holds[tm.typ.Name] || tm.values == nil && p.nameHit[i]) {
			c.erased.check(p, i, v)
		}
	}
}

// checks reports whether scalar(p, v) looks for v among the erased identifiers of type m[i].
func (c *collector) checks(p *place, i int, v string) bool {
	tm := &c.m[i]
	return strings.TrimSpace(v) != "" && len(v) <= erasure.MaxIdentifierValue && utf8.ValidString(v) &&
		(tm.valueMatches(v) || p.holds[tm.typ.Name] || tm.values == nil && p.nameHit[i])
}

// verdict returns the identifier type p most likely holds and a score, or -1. A type is
// recognized by values (at least half the sampled values match) or by name (the name matches
// and the values do not contradict it: the type has no value pattern, nothing was sampled, or
// some value matches).
func (c *collector) verdict(p *place) (int, float64) {
	if p.values == 0 && p.json > 0 {
		return -1, 0 // a JSON document: its fields are judged instead
	}
	best, bestScore := -1, 0.0
	for i := range c.m {
		hasValues := c.m[i].values != nil
		byValues := hasValues && p.matched[i] > 0 && 2*p.matched[i] >= p.values
		byName := p.nameHit[i] && (!hasValues || p.values == 0 || p.matched[i] > 0)
		if !byValues && !byName {
			continue
		}
		score := 0.0
		if byValues {
			score = 1 + float64(p.matched[i])/float64(p.values)
		}
		if p.nameHit[i] {
			score += 0.5
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	return best, bestScore
}

// findings judges the places of a source: for each group of uncovered places, the best
// recognized one is unregistered; every erased identifier found is residue.
func (c *collector) findings(source string, src source) []Finding {
	type pick struct {
		p     *place
		i     int
		score float64
	}
	picks := map[string]*pick{}
	var groups []string
	for _, p := range c.list {
		if p.covered {
			continue
		}
		i, score := c.verdict(p)
		if i < 0 {
			continue
		}
		b := picks[p.group]
		if b == nil {
			groups = append(groups, p.group)
		}
		if b == nil || score > b.score {
			picks[p.group] = &pick{p, i, score}
		}
	}
	var out []Finding
	for _, g := range groups {
		b := picks[g]
		t := c.m[b.i].typ
		out = append(out, Finding{Kind: Unregistered, Source: source, Location: b.p.loc, Identifier: t.Name,
			NameMatch: b.p.nameHit[b.i], Matched: b.p.matched[b.i], Sampled: b.p.values, Dataset: b.p.dataset,
			Suggestion: src.suggest(b.p, t)})
	}
	for _, p := range c.list {
		hashes := make([]string, 0, len(p.residue))
		for h := range p.residue {
			hashes = append(hashes, h)
		}
		sort.Strings(hashes)
		for _, h := range hashes {
			typ, _, _ := strings.Cut(h, ":")
			i := c.m.index(typ)
			f := Finding{Kind: Residue, Source: source, Location: p.loc, Identifier: typ, Hash: h, Values: p.residue[h], Sampled: p.values}
			if i >= 0 {
				f.NameMatch, f.Matched = p.nameHit[i], p.matched[i]
			}
			if p.covered {
				f.Dataset = p.dataset
			}
			out = append(out, f)
		}
	}
	return out
}

// erasedSet holds the keyed hashes of erased identifiers.
type erasedSet struct {
	h      *audit.Hasher
	m      matchers
	hashes map[string]bool
	types  []bool // per matcher: some erased identifier has this type
}

func newErasedSet(h *audit.Hasher, hashes []string, m matchers) *erasedSet {
	e := &erasedSet{h: h, m: m, hashes: make(map[string]bool, len(hashes)), types: make([]bool, len(m))}
	for _, x := range hashes {
		e.hashes[x] = true
		typ, _, _ := strings.Cut(x, ":")
		if i := m.index(typ); i >= 0 {
			e.types[i] = true
		}
	}
	return e
}

// find returns the index of a type of which v is an erased identifier (as it is or in
// canonical form), or -1.
func (e *erasedSet) find(v string) int {
	if v == "" || len(v) > erasure.MaxIdentifierValue || !utf8.ValidString(v) {
		return -1
	}
	for i := range e.m {
		if !e.types[i] {
			continue
		}
		t := e.m[i].typ
		if e.hashes[e.h.Identifier(erasure.Identifier{Type: t.Name, Value: v})] {
			return i
		}
		if cv, err := t.Canonical(v); err == nil && cv != v && e.hashes[e.h.Identifier(erasure.Identifier{Type: t.Name, Value: cv})] {
			return i
		}
	}
	return -1
}

// check records in p the erased identifier of type m[i] that v is, as it is or in canonical
// form, if any.
func (e *erasedSet) check(p *place, i int, v string) {
	if !e.types[i] {
		return
	}
	t := e.m[i].typ
	h := e.h.Identifier(erasure.Identifier{Type: t.Name, Value: v})
	if !e.hashes[h] {
		cv, err := t.Canonical(v)
		if err != nil || cv == v {
			return
		}
		if h = e.h.Identifier(erasure.Identifier{Type: t.Name, Value: cv}); !e.hashes[h] {
			return
		}
	}
	if p.residue == nil {
		p.residue = map[string]int{}
	}
	p.residue[h]++
}
