package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"erasure"
	_ "erasure/connector/redis"
	"erasure/internal/testenv"
	"erasure/registry"
)

// registryYAML wraps a redis block (written without indentation) in a minimal registry with
// one dataset per block, named cache, cache2, ... The first block's first line is line 8.
func registryYAML(blocks ...string) string {
	var b strings.Builder
	b.WriteString("version: 1\nidentifiers: [user_id, email]\ndatasets:\n")
	for i, block := range blocks {
		name := "cache"
		if i > 0 {
			name = fmt.Sprintf("cache%d", i+1)
		}
		b.WriteString("  - name: " + name + "\n    owner: cache-team\n    connector: redis\n    redis:\n")
		for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
			b.WriteString("      " + line + "\n")
		}
	}
	return b.String()
}

// conn is the connector under test with the interfaces it implements.
type conn interface {
	erasure.Eraser
	erasure.Verifier
	erasure.Checker
	erasure.Connector
}

// build loads blocks and returns their connectors, closed when the test ends.
func build(t testing.TB, blocks ...string) []conn {
	t.Helper()
	cfg, err := registry.Parse("erasure.yaml", []byte(registryYAML(blocks...)), os.LookupEnv)
	if err != nil {
		t.Fatalf("registry refused:\n%v", err)
	}
	var out []conn
	for _, d := range cfg.Datasets {
		c, ok := d.Conn.(conn)
		if !ok {
			t.Fatalf("dataset %s: connector %T is not an Eraser, Verifier and Checker", d.Name, d.Conn)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// env is a real Redis with a private key prefix, cleaned up after the test.
type env struct {
	url    string // ERASURE_TEST_REDIS
	opts   *redis.Options
	rdb    *redis.Client
	prefix string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	u := testenv.Address(t, "ERASURE_TEST_REDIS")
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("ERASURE_TEST_REDIS: %v", err)
	}
	e := &env{url: u, opts: opts, rdb: redis.NewClient(opts), prefix: testenv.Name("erasure_test")}
	if err := e.rdb.Ping(context.Background()).Err(); err != nil {
		testenv.Unavailable(t, "ERASURE_TEST_REDIS", err)
	}
	t.Cleanup(func() {
		e.drop(t, e.rdb)
		e.rdb.Close()
	})
	return e
}

// drop unlinks every key of the test's prefix in rdb's database.
func (e *env) drop(t testing.TB, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		rdb.Unlink(ctx, keys[:n]...)
		keys = keys[n:]
	}
}

// count returns how many keys of the prefix exist.
func (e *env) count(t testing.TB, rdb *redis.Client) int {
	t.Helper()
	ctx := context.Background()
	seen := map[string]bool{} // SCAN may return a key more than once
	iter := rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		seen[iter.Val()] = true
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return len(seen)
}

// exists counts which of keys exist.
func exists(t testing.TB, rdb *redis.Client, keys []string) int {
	t.Helper()
	ctx := context.Background()
	total := 0
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		c, err := rdb.Exists(ctx, keys[:n]...).Result()
		if err != nil {
			t.Fatal(err)
		}
		total += int(c)
		keys = keys[n:]
	}
	return total
}

func set(t testing.TB, rdb *redis.Client, keys ...string) {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	for _, k := range keys {
		pipe.Set(ctx, k, "v", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// urlWith returns the test URL with its user info and database replaced.
func (e *env) urlWith(t *testing.T, user *url.Userinfo, db int) string {
	t.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	if user != nil {
		u.User = user
	}
	u.Path = fmt.Sprintf("/%d", db)
	return u.String()
}

func subject(typ string, values ...string) erasure.Subject {
	var s erasure.Subject
	for _, v := range values {
		s, _ = s.With(erasure.Identifier{Type: typ, Value: v})
	}
	return s
}

func mustErase(t *testing.T, c conn, s erasure.Subject, removed int64) {
	t.Helper()
	out, err := c.Erase(context.Background(), s)
	if err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if out.Removed != removed {
		t.Fatalf("Erase removed %d, want %d", out.Removed, removed)
	}
}

func mustHold(t *testing.T, c conn, s erasure.Subject, want bool) {
	t.Helper()
	got, err := c.Holds(context.Background(), s)
	if err != nil {
		t.Fatalf("Holds: %v", err)
	}
	if got != want {
		t.Fatalf("Holds = %v, want %v", got, want)
	}
}

func TestConnector_Erase(t *testing.T) {
	ctx := context.Background()

	t.Run("ExactKeysOfEachValueAreUnlinkedAndOthersKept", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		c := build(t, fmt.Sprintf("url: %q\nkeys: [\"%s:timeline:{user_id}\", \"%s:inbox:{user_id}\"]\n", e.url, p, p))[0]
		set(t, e.rdb, p+":timeline:u1", p+":inbox:u1", p+":timeline:u2", p+":timeline:u3", p+":timeline:u1x")
		s := subject("user_id", "u1", "u2")
		mustHold(t, c, s, true)
		mustErase(t, c, s, 3)
		mustHold(t, c, s, false)
		if n := exists(t, e.rdb, []string{p + ":timeline:u3", p + ":timeline:u1x"}); n != 2 {
			t.Errorf("%d of 2 other subjects' keys remain", n)
		}
		t.Run("SecondEraseRemovesNothing", func(t *testing.T) { mustErase(t, c, s, 0) })
	})

	t.Run("GlobErasesTheSubjectsKeysAmongManyOthers", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		c := build(t, fmt.Sprintf("url: %q\nkeys: [\"%s:session:{user_id}:*\"]\nscan_count: 500\n", e.url, p))[0]
		var mine, others []string
		for i := range 5000 {
			mine = append(mine, fmt.Sprintf("%s:session:u1:%d", p, i))
		}
		otherUsers := []string{"u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u1x", "xu1", "U1", "u"}
		for j := 10; len(otherUsers) < 20; j++ {
			otherUsers = append(otherUsers, fmt.Sprintf("u%d", j)) // u10..u17: share u1's prefix
		}
		for _, u := range otherUsers {
			for i := range 1000 {
				others = append(others, fmt.Sprintf("%s:session:%s:%d", p, u, i))
			}
		}
		others = append(others, p+":session:u1", p+":sessions:u1:1")
		for i := 0; i < len(mine); i += 1000 {
			set(t, e.rdb, mine[i:i+1000]...)
		}
		for i := 0; i < len(others); i += 1000 {
			set(t, e.rdb, others[i:min(i+1000, len(others))]...)
		}
		before := e.count(t, e.rdb)
		if before != len(mine)+len(others) {
			t.Fatalf("seeded %d keys, want %d", before, len(mine)+len(others))
		}
		s := subject("user_id", "u1")
		mustHold(t, c, s, true)
		mustErase(t, c, s, 5000)
		mustHold(t, c, s, false)
		if after, n := e.count(t, e.rdb), exists(t, e.rdb, others); after != len(others) || n != len(others) {
			t.Errorf("after erase %d keys under the prefix and %d of %d others remain", after, n, len(others))
		}
		mustErase(t, c, s, 0)
	})

	t.Run("GlobWildcardsStayWithinOneSegment", func(t *testing.T) {
		// session:{user_id}:* for q must not reach session:q:r:web, a key of the subject
		// "q:r" as much as of "q".
		e := newEnv(t)
		p := e.prefix
		c := build(t, fmt.Sprintf("url: %q\nkeys: [\"%s:session:{user_id}:*\"]\n", e.url, p))[0]
		set(t, e.rdb, p+":session:q:web", p+":session:q:api", p+":session:q:r:web", p+":session:q:r:api", p+":session:q*:web")
		q := subject("user_id", "q")
		mustHold(t, c, q, true)
		mustErase(t, c, q, 2)
		mustHold(t, c, q, false)
		if n := exists(t, e.rdb, []string{p + ":session:q:r:web", p + ":session:q:r:api", p + ":session:q*:web"}); n != 3 {
			t.Fatalf("erasing q removed %d of the 3 keys of q:r and q*", 3-n)
		}
		qr := subject("user_id", "q:r")
		mustErase(t, c, qr, 2)
		mustErase(t, c, subject("user_id", "q*"), 1)
		if n := e.count(t, e.rdb); n != 0 {
			t.Fatalf("%d keys left", n)
		}
	})

	t.Run("SeparatorIsConfigurable", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		c := build(t, fmt.Sprintf("url: %q\nkeys: [\"%s/session/{user_id}/*\"]\nseparator: \"/\"\n", e.url, p))[0]
		set(t, e.rdb, p+"/session/q/web", p+"/session/q/r/web", p+"/session/q:x/web")
		mustErase(t, c, subject("user_id", "q"), 1)
		if n := exists(t, e.rdb, []string{p + "/session/q/r/web", p + "/session/q:x/web"}); n != 2 {
			t.Fatalf("erasing q removed %d keys of other subjects", 2-n)
		}
	})

	t.Run("HashFieldsAndSetAndSortedSetMembers", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		block := fmt.Sprintf("url: %q\n"+
			"hash_fields: [{ key: \"%s:profiles\", field: \"{user_id}\" }, { key: \"%s:by-email:{email}\", field: \"{user_id}\" }]\n"+
			"members:\n"+
			"  - { key: \"%s:followers\", member: \"{user_id}\", type: set }\n"+
			"  - { key: \"%s:ranking\", member: \"{user_id}\", type: zset }\n", e.url, p, p, p, p)
		c := build(t, block)[0]
		e.rdb.HSet(ctx, p+":profiles", "u1", "a", "u2", "b")
		e.rdb.HSet(ctx, p+":by-email:a@example.com", "u1", "x", "u9", "y")
		e.rdb.SAdd(ctx, p+":followers", "u1", "u2")
		e.rdb.ZAdd(ctx, p+":ranking", redis.Z{Score: 1, Member: "u1"}, redis.Z{Score: 2, Member: "u2"})
		s := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "u1"}, erasure.Identifier{Type: "email", Value: "a@example.com"})
		mustHold(t, c, s, true)
		mustErase(t, c, s, 4)
		mustHold(t, c, s, false)
		if !e.rdb.HExists(ctx, p+":profiles", "u2").Val() || !e.rdb.HExists(ctx, p+":by-email:a@example.com", "u9").Val() ||
			!e.rdb.SIsMember(ctx, p+":followers", "u2").Val() || e.rdb.ZScore(ctx, p+":ranking", "u2").Err() != nil {
			t.Error("another subject's field or member was removed")
		}
		mustErase(t, c, s, 0)

		t.Run("TemplatesNeedingAnAbsentIdentifierAreSkipped", func(t *testing.T) {
			e.rdb.HSet(ctx, p+":profiles", "u3", "c")
			mustErase(t, c, subject("user_id", "u3"), 1)
		})
	})

	t.Run("HostileValuesMatchOnlyThemselves", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		block := fmt.Sprintf("url: %q\n"+
			"keys: [\"%s:t:{user_id}\", \"%s:s:{user_id}:*\"]\n"+
			"hash_fields: [{ key: \"%s:h\", field: \"{user_id}\" }]\n"+
			"members: [{ key: \"%s:set\", member: \"{user_id}\", type: set }, { key: \"%s:z\", member: \"{user_id}\", type: zset }]\n",
			e.url, p, p, p, p, p)
		c := build(t, block)[0]
		seed := func(v string) {
			set(t, e.rdb, p+":t:"+v, p+":s:"+v+":1", p+":s:"+v+":2")
			e.rdb.HSet(ctx, p+":h", v, "x")
			e.rdb.SAdd(ctx, p+":set", v)
			e.rdb.ZAdd(ctx, p+":z", redis.Z{Score: 1, Member: v})
		}
		others := []string{"a", "b", "ab", "u2", `a\b2`}
		for _, o := range others {
			seed(o)
		}
		wantOthers := e.count(t, e.rdb)
		for _, v := range []string{`"'`, "*", "?", "[ab]", `a\b`, "\x00", "a\x00b", "u2*", "}{", "%s", strings.Repeat("x", 1<<20)} {
			name := v
			if len(name) > 16 {
				name = "1MB"
			}
			t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
				seed(v)
				s := subject("user_id", v)
				mustHold(t, c, s, true)
				mustErase(t, c, s, 6)
				mustHold(t, c, s, false)
				if n := e.count(t, e.rdb); n != wantOthers {
					t.Errorf("%d keys under the prefix, want the others' %d", n, wantOthers)
				}
				for _, o := range others {
					if !e.rdb.HExists(ctx, p+":h", o).Val() || !e.rdb.SIsMember(ctx, p+":set", o).Val() || e.rdb.ZScore(ctx, p+":z", o).Err() != nil {
						t.Errorf("other subject %q lost a field or member", o)
					}
				}
			})
		}
	})

	t.Run("DatabaseNumberInURLIsUsed", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		db9 := redis.NewClient(&redis.Options{Addr: e.opts.Addr, Username: e.opts.Username, Password: e.opts.Password, DB: 9})
		t.Cleanup(func() { e.drop(t, db9); db9.Close() })
		c := build(t, fmt.Sprintf("url: %q\nkeys: [\"%s:k:{user_id}\"]\n", e.urlWith(t, nil, 9), p))[0]
		set(t, db9, p+":k:u1")
		set(t, e.rdb, p+":k:u1")
		mustErase(t, c, subject("user_id", "u1"), 1)
		if db9.Exists(ctx, p+":k:u1").Val() != 0 {
			t.Error("key in db 9 survived")
		}
		if e.opts.DB != 9 && e.rdb.Exists(ctx, p+":k:u1").Val() != 1 {
			t.Errorf("key in db %d was erased by a connector on db 9", e.opts.DB)
		}
	})

	t.Run("PasswordIsUsedAndAWrongOneIsAPermanentError", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		user := p + "_user"
		if err := e.rdb.Do(ctx, "ACL", "SETUSER", user, "on", ">right-pw", "~*", "&*", "+@all").Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		t.Cleanup(func() { e.rdb.Do(context.Background(), "ACL", "DELUSER", user) })
		// A password comes from the environment: the registry refuses one written in the file.
		block := func(pw string) string {
			name := "TEST_REDIS_URL_" + strings.ReplaceAll(pw, "-", "_")
			t.Setenv(name, e.urlWith(t, url.UserPassword(user, pw), e.opts.DB))
			return fmt.Sprintf("url: \"${%s}\"\nkeys: [\"%s:k:{user_id}\"]\n", name, p)
		}
		cs := build(t, block("wrong-pw"), block("right-pw"))
		set(t, e.rdb, p+":k:u1")
		_, err := cs[0].Erase(ctx, subject("user_id", "u1"))
		if !erasure.IsPermanent(err) || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("Erase with a wrong password: %v; want a permanent authentication error", err)
		}
		if strings.Contains(err.Error(), "wrong-pw") {
			t.Errorf("error %q quotes the password", err)
		}
		if err := cs[0].Check(ctx); !erasure.IsPermanent(err) {
			t.Errorf("Check with a wrong password: %v; want permanent", err)
		}
		if e.rdb.Exists(ctx, p+":k:u1").Val() != 1 {
			t.Fatal("the key went away although authentication failed")
		}
		mustErase(t, cs[1], subject("user_id", "u1"), 1)
	})

	t.Run("WrongTypeIsPermanent", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		c := build(t, fmt.Sprintf("url: %q\nhash_fields: [{ key: \"%s:profiles\", field: \"{user_id}\" }]\n", e.url, p))[0]
		set(t, e.rdb, p+":profiles")
		_, err := c.Erase(ctx, subject("user_id", "u1"))
		if !erasure.IsPermanent(err) || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Errorf("Erase: %v; want a permanent WRONGTYPE error", err)
		}
		if _, err := c.Holds(ctx, subject("user_id", "u1")); !erasure.IsPermanent(err) {
			t.Errorf("Holds: %v; want permanent", err)
		}
	})

	t.Run("ConnectionRefusedIsTransient", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := build(t, "url: redis://"+addr+"/0\nkeys: [\"k:{user_id}\"]\n")[0]
		_, err = c.Erase(ctx, subject("user_id", "u1"))
		assertTransient(t, err)
		_, err = c.Holds(ctx, subject("user_id", "u1"))
		assertTransient(t, err)
		assertTransient(t, c.Check(ctx))
	})

	t.Run("SubjectWithoutAnyKeyIsPermanent", func(t *testing.T) {
		e := newEnv(t)
		c := build(t, fmt.Sprintf("url: %q\nkeys: [\"%s:k:{user_id}\"]\n", e.url, e.prefix))[0]
		if _, err := c.Erase(ctx, subject("email", "a@example.com")); !erasure.IsPermanent(err) {
			t.Errorf("Erase: %v; want permanent", err)
		}
	})

	t.Run("ConnectorsOnOneURLShareAClientThatOutlivesTheFirstClose", func(t *testing.T) {
		e := newEnv(t)
		p := e.prefix
		block := fmt.Sprintf("url: %q\nkeys: [\"%s:k:{user_id}\"]\n", e.url, p)
		cs := build(t, block, block)
		set(t, e.rdb, p+":k:u1", p+":k:u2")
		mustErase(t, cs[0], subject("user_id", "u1"), 1)
		mustErase(t, cs[1], subject("user_id", "u1"), 0)
		if err := cs[0].Close(); err != nil {
			t.Fatal(err)
		}
		mustErase(t, cs[1], subject("user_id", "u2"), 1)
		if _, err := cs[0].Erase(ctx, subject("user_id", "u2")); !erasure.IsPermanent(err) {
			t.Errorf("Erase after Close: %v; want permanent", err)
		}
	})
}

func TestConnector_Check(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p := e.prefix
	block := fmt.Sprintf("url: %q\nkeys: [\"%s:k:{user_id}\"]\nhash_fields: [{ key: \"%s:profiles\", field: \"{user_id}\" }]\nmembers: [{ key: \"%s:followers\", member: \"{user_id}\", type: zset }]\n", e.url, p, p, p)
	c := build(t, block)[0]
	t.Run("AbsentKeysPass", func(t *testing.T) {
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("KeysOfTheDeclaredTypePass", func(t *testing.T) {
		e.rdb.HSet(ctx, p+":profiles", "u1", "x")
		e.rdb.ZAdd(ctx, p+":followers", redis.Z{Score: 1, Member: "u1"})
		if err := c.Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("KeyOfAnotherTypeIsPermanent", func(t *testing.T) {
		e.rdb.Unlink(ctx, p+":followers")
		e.rdb.SAdd(ctx, p+":followers", "u1")
		err := c.Check(ctx)
		if !erasure.IsPermanent(err) || !strings.Contains(err.Error(), "is a set") {
			t.Fatalf("Check = %v; want a permanent type mismatch", err)
		}
	})
}

func assertTransient(t *testing.T, err error) {
	t.Helper()
	var te *erasure.TransientError
	if err == nil || !errors.As(err, &te) || erasure.IsPermanent(err) {
		t.Fatalf("error %v is not transient", err)
	}
}
