package redisconn

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"erasure"
	"erasure/registry"
)

// The canary's plant block:
//
//	canary:
//	  plant:
//	    keys: ["sess:{user_id}:token"]               # SET (with ttl)
//	    hash_fields: [{ key: "profiles", field: "{user_id}" }]   # HSET
//	    members: [{ key: "followers", member: "{user_id}", type: set }]  # SADD / ZADD
//	    ttl: 24h                                      # of the keys SET (default 24h)
//
// Write it the way the application writes its data, so that the canary fails when the
// dataset's keys no longer match it. Left out, the plant is the dataset's own templates, a
// pattern's * and ? standing for "canary" and "x": such a canary proves that the erasure works,
// not that the patterns still match what the application writes.

// DefaultPlantTTL is how long a planted key lives when the plant block sets no ttl: a failed
// canary's keys do not stay for ever.
const DefaultPlantTTL = 24 * time.Hour

type plantBlock struct {
	Keys       []string         `yaml:"keys"`
	HashFields []hashFieldBlock `yaml:"hash_fields"`
	Members    []memberBlock    `yaml:"members"`
	TTL        time.Duration    `yaml:"ttl"`
}

// plantSpec is what a canary plants: exact keys, hash fields, members.
type plantSpec struct {
	keys    []pattern
	fields  []hashField
	members []member
	ttl     time.Duration
}

var _ erasure.Planter = (*Connector)(nil)

// buildPlant builds c.plant from the canary's plant block (or the dataset's own templates);
// false after reporting a problem.
func buildPlant(b *registry.Build, c *Connector) bool {
	ps := &plantSpec{ttl: DefaultPlantTTL}
	c.plant = ps
	if b.Plant == nil {
		for _, p := range append(append([]pattern(nil), c.exact...), c.globs...) {
			src := strings.NewReplacer("*", "canary", "?", "x").Replace(p.src)
			q, err := compilePattern(src)
			if err != nil || q.glob {
				b.Errorf(b.Block, "redis: the canary cannot derive a key from %q: give canary.plant.keys", p.src)
				return false
			}
			ps.keys = append(ps.keys, q)
		}
		ps.fields, ps.members = c.fields, c.members
		return true
	}
	var pb plantBlock
	if !b.DecodePlant(&pb) {
		return false
	}
	ok := true
	compile := func(n *yaml.Node, what, src string) (pattern, bool) {
		p, err := compilePattern(src)
		switch {
		case err != nil:
			b.Errorf(n, "canary.plant: %s %v", what, err)
		case p.glob:
			b.Errorf(n, "canary.plant: %s %q is a pattern: a canary plants exact keys", what, src)
		default:
			for _, v := range p.vars {
				if !containsString(b.Dataset.Keys, v) {
					b.Errorf(n, "canary.plant: %s %q: {%s} is not one of the dataset's keys (%s)", what, src, v, strings.Join(b.Dataset.Keys, ", "))
					return p, false
				}
			}
			return p, true
		}
		return p, false
	}
	kn := registry.Child(b.Plant, "keys")
	for i, src := range pb.Keys {
		if p, good := compile(registry.Item(kn, i), "keys:", src); good {
			ps.keys = append(ps.keys, p)
		} else {
			ok = false
		}
	}
	hn := registry.Child(b.Plant, "hash_fields")
	for i, h := range pb.HashFields {
		n := registry.Item(hn, i)
		k, ok1 := compile(registry.Child(n, "key"), "hash_fields: key", h.Key)
		f, ok2 := compile(registry.Child(n, "field"), "hash_fields: field", h.Field)
		if ok1 && ok2 {
			ps.fields = append(ps.fields, hashField{key: k, field: f})
		} else {
			ok = false
		}
	}
	mn := registry.Child(b.Plant, "members")
	for i, m := range pb.Members {
		n := registry.Item(mn, i)
		if m.Type != "set" && m.Type != "zset" {
			b.Errorf(registry.Child(n, "type"), "canary.plant: members: type must be set or zset, not %q", m.Type)
			ok = false
			continue
		}
		k, ok1 := compile(registry.Child(n, "key"), "members: key", m.Key)
		v, ok2 := compile(registry.Child(n, "member"), "members: member", m.Member)
		if ok1 && ok2 {
			ps.members = append(ps.members, member{key: k, member: v, typ: m.Type})
		} else {
			ok = false
		}
	}
	if pb.TTL < 0 {
		b.Errorf(registry.Child(b.Plant, "ttl"), "canary.plant: ttl must be positive")
		ok = false
	} else if pb.TTL > 0 {
		ps.ttl = pb.TTL
	}
	if len(ps.keys)+len(ps.fields)+len(ps.members) == 0 {
		b.Errorf(b.Plant, "canary.plant: nothing to plant: give keys, hash_fields or members")
		ok = false
	}
	return ok
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// plantItem is one planted thing, named by its templates for messages.
type plantItem struct {
	what, kind, key, arg string
}

// plantItems expands the plant for subject s.
func (c *Connector) plantItems(s erasure.Subject) ([]plantItem, error) {
	if c.plant == nil {
		return nil, erasure.Permanentf("dataset %s has no canary plant", c.name)
	}
	var out []plantItem
	for _, p := range c.plant.keys {
		combos, err := combinations(s, p.vars)
		if err != nil {
			return nil, err
		}
		for _, vals := range combos {
			out = append(out, plantItem{what: "SET " + p.src, kind: "key", key: p.expand(vals)})
		}
	}
	pair := func(kind, what string, k, a pattern) error {
		combos, err := combinations(s, append(append([]string(nil), k.vars...), a.vars...))
		if err != nil {
			return err
		}
		for _, vals := range combos {
			out = append(out, plantItem{what: what, kind: kind, key: k.expand(vals), arg: a.expand(vals)})
		}
		return nil
	}
	for _, f := range c.plant.fields {
		if err := pair("hash", "HSET "+f.key.src+" "+f.field.src, f.key, f.field); err != nil {
			return nil, err
		}
	}
	for _, m := range c.plant.members {
		op := "SADD "
		if m.typ == "zset" {
			op = "ZADD "
		}
		if err := pair(m.typ, op+m.key.src+" "+m.member.src, m.key, m.member); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, erasure.Permanentf("the canary subject has none of the identifiers dataset %s plants", c.name)
	}
	return out, nil
}

// Plant writes the canary subject's keys (SET with the plant's ttl), hash fields and members,
// in one pipelined round trip. Errors are classified as Erase's.
func (c *Connector) Plant(ctx context.Context, s erasure.Subject) error {
	items, err := c.plantItems(s)
	if err != nil {
		return err
	}
	rdb, err := c.client()
	if err != nil {
		return err
	}
	pipe := rdb.Pipeline()
	cmds := make([]redis.Cmder, len(items))
	for i, it := range items {
		switch it.kind {
		case "key":
			cmds[i] = pipe.Set(ctx, it.key, "erasure-canary", c.plant.ttl)
		case "hash":
			cmds[i] = pipe.HSet(ctx, it.key, it.arg, "erasure-canary")
		case "set":
			cmds[i] = pipe.SAdd(ctx, it.key, it.arg)
		case "zset":
			cmds[i] = pipe.ZAdd(ctx, it.key, redis.Z{Member: it.arg})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		for i, cmd := range cmds {
			if cmd.Err() != nil {
				return classify(items[i].what, cmd.Err())
			}
		}
		return classify(items[0].what, err)
	}
	return nil
}

// Remains reports whether anything the plant wrote for s is still there (EXISTS, HEXISTS,
// SISMEMBER, ZSCORE): read by the plant's own templates, not the dataset's.
func (c *Connector) Remains(ctx context.Context, s erasure.Subject) (bool, error) {
	items, err := c.plantItems(s)
	if err != nil {
		return false, err
	}
	rdb, err := c.client()
	if err != nil {
		return false, err
	}
	pipe := rdb.Pipeline()
	cmds := make([]redis.Cmder, len(items))
	for i, it := range items {
		switch it.kind {
		case "key":
			cmds[i] = pipe.Exists(ctx, it.key)
		case "hash":
			cmds[i] = pipe.HExists(ctx, it.key, it.arg)
		case "set":
			cmds[i] = pipe.SIsMember(ctx, it.key, it.arg)
		case "zset":
			cmds[i] = pipe.ZScore(ctx, it.key, it.arg)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		for i, cmd := range cmds {
			if e := cmd.Err(); e != nil && !errors.Is(e, redis.Nil) {
				return false, classify(items[i].what, e)
			}
		}
		return false, classify(items[0].what, err)
	}
	for _, cmd := range cmds {
		switch x := cmd.(type) {
		case *redis.IntCmd:
			if x.Val() > 0 {
				return true, nil
			}
		case *redis.BoolCmd:
			if x.Val() {
				return true, nil
			}
		case *redis.FloatCmd:
			if x.Err() == nil {
				return true, nil
			}
		}
	}
	return false, nil
}
