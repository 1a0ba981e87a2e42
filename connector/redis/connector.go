package redisconn

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"erasure"
)

// unlinkChunk bounds the keys of one UNLINK or EXISTS.
const unlinkChunk = 512

// Connector erases a subject's keys, hash fields and set or sorted-set members from one Redis
// database. It is safe for concurrent use. Connectors built with the same URL share one client
// (and its connection pool); the client is created on first use and closed when the last of
// them closes.
type Connector struct {
	name      string
	url       string
	opts      *redis.Options
	scanCount int64
	// separator is the byte between key segments that wildcards never match (0: none).
	separator byte
	exact     []pattern
	globs     []pattern
	fields    []hashField
	members   []member

	// plant is what the dataset's canary plants (nil without a canary).
	plant *plantSpec

	mu     sync.Mutex
	rdb    *redis.Client
	closed bool
}

type hashField struct{ key, field pattern }

type member struct {
	key, member pattern
	typ         string // set or zset
}

var (
	_ erasure.Eraser   = (*Connector)(nil)
	_ erasure.Verifier = (*Connector)(nil)
	_ erasure.Checker  = (*Connector)(nil)
)

// clients holds the clients shared per URL, with the number of connectors using each.
var clients = struct {
	sync.Mutex
	m map[string]*sharedClient
}{m: map[string]*sharedClient{}}

type sharedClient struct {
	rdb  *redis.Client
	refs int
}

// client returns the shared client for the connector's URL, creating it on first use.
func (c *Connector) client() (*redis.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, erasure.Permanentf("redis connector of dataset %s is closed", c.name)
	}
	if c.rdb != nil {
		return c.rdb, nil
	}
	clients.Lock()
	defer clients.Unlock()
	sc := clients.m[c.url]
	if sc == nil {
		opts := *c.opts
		// Maintenance notifications are a Redis Enterprise/Cloud feature; auto mode would send
		// a command that plain servers refuse on every new connection.
		opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		if opts.DialerRetries == 0 {
			// The pipeline retries a failed task with backoff; dialling again inside one
			// attempt only delays the transient error.
			opts.DialerRetries = 1
		}
		sc = &sharedClient{rdb: redis.NewClient(&opts)}
		clients.m[c.url] = sc
	}
	sc.refs++
	c.rdb = sc.rdb
	return c.rdb, nil
}

// Close releases the connector's share of the client; the last connector of a URL to close
// closes the client. Close is idempotent.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.rdb == nil {
		return nil
	}
	c.rdb = nil
	clients.Lock()
	defer clients.Unlock()
	sc := clients.m[c.url]
	if sc == nil {
		return nil
	}
	if sc.refs--; sc.refs > 0 {
		return nil
	}
	delete(clients.m, c.url)
	return sc.rdb.Close()
}

// step is one expanded piece of work: its command description (templates only, for
// messages) and its arguments.
type step struct {
	what   string
	key    string
	args   []string // keys for UNLINK/EXISTS, fields, or members
	kind   string   // unlink, hash, set, zset
	glob   bool
	prefix string
	// match is, for a glob, the pattern as the connector applies it to the keys SCAN finds:
	// its wildcards do not match the separator (see segmentMatcher).
	match *regexp.Regexp
}

// plan expands every template the subject has values for. Templates needing an identifier
// the subject lacks are skipped; a subject lacking them for every template is a permanent
// error (the pipeline skips such tasks before calling the connector).
func (c *Connector) plan(s erasure.Subject) ([]step, error) {
	var steps []step
	used := 0
	for _, p := range c.exact {
		combos, err := combinations(s, p.vars)
		if err != nil {
			return nil, err
		}
		if combos == nil {
			continue
		}
		used++
		var keys []string
		for _, vals := range combos {
			keys = append(keys, p.expand(vals))
		}
		for len(keys) > 0 {
			n := min(len(keys), unlinkChunk)
			steps = append(steps, step{what: "UNLINK " + p.src, kind: "unlink", args: keys[:n]})
			keys = keys[n:]
		}
	}
	for _, p := range c.globs {
		combos, err := combinations(s, p.vars)
		if err != nil {
			return nil, err
		}
		if combos == nil {
			continue
		}
		used++
		for _, vals := range combos {
			key := p.expand(vals)
			steps = append(steps, step{what: "SCAN MATCH " + p.src, kind: "unlink", glob: true, key: key, match: segmentMatcher(key, c.separator)})
		}
	}
	group := func(kind, what string, key, arg pattern) error {
		vars := append(append([]string(nil), key.vars...), arg.vars...)
		combos, err := combinations(s, vars)
		if err != nil || combos == nil {
			return err
		}
		used++
		byKey := map[string][]string{}
		var order []string
		for _, vals := range combos {
			k := key.expand(vals)
			if _, ok := byKey[k]; !ok {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], arg.expand(vals))
		}
		for _, k := range order {
			args := byKey[k]
			for len(args) > 0 {
				n := min(len(args), unlinkChunk)
				steps = append(steps, step{what: what, kind: kind, key: k, args: args[:n]})
				args = args[n:]
			}
		}
		return nil
	}
	for _, f := range c.fields {
		if err := group("hash", "HDEL "+f.key.src+" "+f.field.src, f.key, f.field); err != nil {
			return nil, err
		}
	}
	for _, m := range c.members {
		op := "SREM "
		if m.typ == "zset" {
			op = "ZREM "
		}
		if err := group(m.typ, op+m.key.src+" "+m.member.src, m.key, m.member); err != nil {
			return nil, err
		}
	}
	if used == 0 {
		return nil, erasure.Permanentf("the subject has none of the identifiers dataset %s needs", c.name)
	}
	return steps, nil
}

// Erase unlinks the subject's exact keys, SCANs and unlinks the keys matching its patterns (in
// batches of about scan_count), and removes its hash fields and set or sorted-set members.
// Removed counts keys unlinked plus fields and members removed; erasing again removes 0.
// Connection failures and timeouts are transient; authentication failures, WRONGTYPE and other
// server errors are permanent (LOADING, BUSY, TRYAGAIN, MASTERDOWN, READONLY are transient).
func (c *Connector) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	steps, err := c.plan(s)
	if err != nil {
		return erasure.Outcome{}, err
	}
	rdb, err := c.client()
	if err != nil {
		return erasure.Outcome{}, err
	}
	if g := erasure.GuardFrom(ctx); g.MaxRemoved > 0 {
		n, err := c.count(ctx, rdb, steps, g.MaxRemoved)
		if err != nil {
			return erasure.Outcome{}, err
		}
		if err := g.Check(c.name, "keys, fields and members", n); err != nil {
			return erasure.Outcome{}, err
		}
	}
	var keys, items int64
	pipe := rdb.Pipeline()
	type pending struct {
		cmd *redis.IntCmd
		st  *step
	}
	var cmds []pending
	for i := range steps {
		st := &steps[i]
		if st.glob {
			continue
		}
		var cmd *redis.IntCmd
		switch st.kind {
		case "unlink":
			cmd = pipe.Unlink(ctx, st.args...)
		case "hash":
			cmd = pipe.HDel(ctx, st.key, st.args...)
		case "set":
			cmd = pipe.SRem(ctx, st.key, anys(st.args)...)
		case "zset":
			cmd = pipe.ZRem(ctx, st.key, anys(st.args)...)
		}
		cmds = append(cmds, pending{cmd, st})
	}
	if len(cmds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			// Exec returns the first failed command's error, or one that failed them all
			// (such as authentication) without setting it on each.
			for _, p := range cmds {
				if p.cmd.Err() != nil {
					return erasure.Outcome{}, classify(p.st.what, p.cmd.Err())
				}
			}
			return erasure.Outcome{}, classify(cmds[0].st.what, err)
		}
		for _, p := range cmds {
			if p.st.kind == "unlink" {
				keys += p.cmd.Val()
			} else {
				items += p.cmd.Val()
			}
		}
	}
	for i := range steps {
		if st := &steps[i]; st.glob {
			n, err := c.unlinkMatching(ctx, rdb, st)
			keys += n
			if err != nil {
				return erasure.Outcome{Removed: keys + items}, err
			}
		}
	}
	return erasure.Outcome{
		Removed: keys + items,
		Detail:  fmt.Sprintf("%d keys unlinked, %d fields or members removed", keys, items),
	}, nil
}

// count counts what erasing steps would remove, before anything is removed: the exact keys
// that exist, the keys matching each pattern (a full SCAN, stopped as soon as the count passes
// limit), and the hash fields and set members present. Keys created between the count and the
// erase are erased too.
func (c *Connector) count(ctx context.Context, rdb *redis.Client, steps []step, limit int64) (int64, error) {
	pipe := rdb.Pipeline()
	type counted struct {
		cmd  redis.Cmder
		what string
	}
	var cmds []counted
	for _, st := range steps {
		switch {
		case st.glob:
		case st.kind == "unlink":
			cmds = append(cmds, counted{pipe.Exists(ctx, st.args...), "EXISTS " + strings.TrimPrefix(st.what, "UNLINK ")})
		default:
			for _, a := range st.args {
				switch st.kind {
				case "hash":
					cmds = append(cmds, counted{pipe.HExists(ctx, st.key, a), st.what})
				case "set":
					cmds = append(cmds, counted{pipe.SIsMember(ctx, st.key, a), st.what})
				case "zset":
					cmds = append(cmds, counted{pipe.ZScore(ctx, st.key, a), st.what})
				}
			}
		}
	}
	var n int64
	if len(cmds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			for _, ch := range cmds {
				if e := ch.cmd.Err(); e != nil && !errors.Is(e, redis.Nil) {
					return 0, classify(ch.what, e)
				}
			}
			return 0, classify(cmds[0].what, err)
		}
		for _, ch := range cmds {
			switch cmd := ch.cmd.(type) {
			case *redis.IntCmd:
				n += cmd.Val()
			case *redis.BoolCmd:
				if cmd.Val() {
					n++
				}
			case *redis.FloatCmd:
				if cmd.Err() == nil {
					n++
				}
			}
		}
	}
	// SCAN may return a key more than once (while the keyspace is rehashed): each is counted
	// once, however often it is seen, and whichever patterns match it.
	seen := map[string]bool{}
	for _, st := range steps {
		if !st.glob {
			continue
		}
		var cursor uint64
		for n <= limit {
			keys, next, err := rdb.Scan(ctx, cursor, st.key, c.scanCount).Result()
			if err != nil {
				return 0, classify(st.what, err)
			}
			for _, k := range st.keep(keys) { // counted as erased: within one segment
				if !seen[k] {
					seen[k] = true
					n++
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return n, nil
}

// keep returns the keys SCAN found that the step's pattern matches with its wildcards kept
// within one segment.
func (st *step) keep(keys []string) []string {
	if st.match == nil {
		return keys
	}
	out := keys[:0]
	for _, k := range keys {
		if st.match.MatchString(k) {
			out = append(out, k)
		}
	}
	return out
}

// unlinkMatching SCANs the whole keyspace for st's pattern and unlinks each batch found.
func (c *Connector) unlinkMatching(ctx context.Context, rdb *redis.Client, st *step) (int64, error) {
	var cursor uint64
	var n int64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, st.key, c.scanCount).Result()
		if err != nil {
			return n, classify(st.what, err)
		}
		keys = st.keep(keys)
		if len(keys) > 0 {
			m, err := rdb.Unlink(ctx, keys...).Result()
			if err != nil {
				return n, classify("UNLINK after "+st.what, err)
			}
			n += m
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// Holds reports whether anything of the subject remains: an exact key (EXISTS), a key matching
// a pattern (SCAN, stopping at the first), a hash field (HEXISTS), a set member (SISMEMBER) or
// a sorted-set member (ZSCORE). Errors are classified as for Erase.
func (c *Connector) Holds(ctx context.Context, s erasure.Subject) (bool, error) {
	steps, err := c.plan(s)
	if err != nil {
		return false, err
	}
	rdb, err := c.client()
	if err != nil {
		return false, err
	}
	pipe := rdb.Pipeline()
	type check struct {
		cmd  redis.Cmder
		what string
		kind string
	}
	var checks []check
	for _, st := range steps {
		switch {
		case st.glob:
		case st.kind == "unlink":
			checks = append(checks, check{pipe.Exists(ctx, st.args...), "EXISTS " + strings.TrimPrefix(st.what, "UNLINK "), st.kind})
		default:
			for _, a := range st.args {
				var cmd redis.Cmder
				switch st.kind {
				case "hash":
					cmd = pipe.HExists(ctx, st.key, a)
				case "set":
					cmd = pipe.SIsMember(ctx, st.key, a)
				case "zset":
					cmd = pipe.ZScore(ctx, st.key, a)
				}
				checks = append(checks, check{cmd, st.what, st.kind})
			}
		}
	}
	if len(checks) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			for _, ch := range checks {
				if e := ch.cmd.Err(); e != nil && !errors.Is(e, redis.Nil) {
					return false, classify(ch.what, e)
				}
			}
			return false, classify(checks[0].what, err)
		}
		for _, ch := range checks {
			if err := ch.cmd.Err(); errors.Is(err, redis.Nil) {
				continue // ZSCORE of an absent member
			} else if err != nil {
				return false, classify(ch.what, err)
			}
			switch cmd := ch.cmd.(type) {
			case *redis.IntCmd:
				if cmd.Val() > 0 {
					return true, nil
				}
			case *redis.BoolCmd:
				if cmd.Val() {
					return true, nil
				}
			case *redis.FloatCmd:
				return true, nil // ZSCORE answered: the member is there
			}
		}
	}
	for _, st := range steps {
		if !st.glob {
			continue
		}
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, st.key, c.scanCount).Result()
			if err != nil {
				return false, classify(st.what, err)
			}
			if len(st.keep(keys)) > 0 {
				return true, nil
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return false, nil
}

// Check PINGs the server (which also authenticates) and, for hash_fields and members whose key
// has no placeholder, checks that the key is absent or of the declared type. Keys with
// placeholders cannot be checked without a subject. A type mismatch is permanent.
func (c *Connector) Check(ctx context.Context) error {
	rdb, err := c.client()
	if err != nil {
		return err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return classify("PING", err)
	}
	want := map[string]string{}
	var order []string
	for _, f := range c.fields {
		if len(f.key.vars) == 0 {
			order, want[f.key.src] = append(order, f.key.src), "hash"
		}
	}
	for _, m := range c.members {
		if len(m.key.vars) == 0 {
			order, want[m.key.src] = append(order, m.key.src), m.typ
		}
	}
	for _, k := range order {
		key, _ := registryLiteral(k)
		typ, err := rdb.Type(ctx, key).Result()
		if err != nil {
			return classify("TYPE "+k, err)
		}
		if typ != "none" && typ != want[k] {
			return erasure.Permanentf("redis key %q is a %s, but the registry declares a %s", k, typ, want[k])
		}
	}
	return nil
}

// registryLiteral returns the key of a template without placeholders ("{{" stands for "{").
func registryLiteral(src string) (string, error) {
	p, err := compilePattern(src)
	if err != nil {
		return "", err
	}
	return p.expand(nil), nil
}

// transientCodes are the Redis error codes worth retrying.
var transientCodes = map[string]bool{
	"LOADING": true, "BUSY": true, "TRYAGAIN": true, "MASTERDOWN": true,
	"CLUSTERDOWN": true, "READONLY": true,
}

// classify turns a go-redis error into a transient or permanent one. A server reply error is
// classified by its Redis error code (the reply's first word: the protocol's error type);
// anything else (refused, reset, timeout, pool exhausted) is transient. Messages name the
// command by its templates, never by expanded keys.
func classify(what string, err error) error {
	var re redis.Error
	switch {
	case errors.Is(err, redis.ErrClosed):
		return erasure.Permanent(fmt.Errorf("redis %s: %w", what, err))
	case redis.IsAuthError(err):
		return erasure.Permanent(fmt.Errorf("redis %s: authentication failed, check the user and password in the url: %w", what, err))
	case errors.As(err, &re):
		code, _, _ := strings.Cut(re.Error(), " ")
		if transientCodes[code] {
			return erasure.Transient(fmt.Errorf("redis %s: %w", what, err), 0)
		}
		return erasure.Permanent(fmt.Errorf("redis %s: %w", what, err))
	}
	return erasure.Transient(fmt.Errorf("redis %s: %w", what, err), 0)
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
