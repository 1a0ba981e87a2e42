package redisconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"erasure"
)

// TestConnector_Guard: the SCAN matches (and exact keys, fields, members) are counted before
// anything is unlinked; over max_removed the erase fails and every key stays.
func TestConnector_Guard(t *testing.T) {
	e := newEnv(t)
	p := e.prefix
	block := fmt.Sprintf("url: %q\nkeys: [\"%s:profile:{user_id}\", \"%s:session:{user_id}:*\"]\n"+
		"members: [{ key: \"%s:followers\", member: \"{user_id}\", type: set }]\nscan_count: 10\n", e.url, p, p, p)
	c := build(t, block)[0]
	var wide []string
	for i := range 50 {
		wide = append(wide, fmt.Sprintf("%s:session:u1:%d", p, i))
	}
	set(t, e.rdb, wide...)
	set(t, e.rdb, p+":profile:u1", p+":profile:u2", p+":session:u2:a", p+":session:u2:b")
	e.rdb.SAdd(context.Background(), p+":followers", "u1", "u2")
	before := e.count(t, e.rdb)
	guarded := erasure.ContextWithGuard(context.Background(), erasure.Guard{MaxRemoved: 20})

	t.Run("OverTheLimitUnlinksNothing", func(t *testing.T) {
		out, err := c.Erase(guarded, subject("user_id", "u1"))
		g, ok := erasure.AsGuardError(err)
		if !ok || !erasure.IsPermanent(err) {
			t.Fatalf("err %v, want a permanent guard error", err)
		}
		// The count stops once past the limit: it names a count above it.
		if g.Count <= 20 || g.Limit != 20 || !strings.Contains(err.Error(), "max_removed 20") || out.Removed != 0 {
			t.Fatalf("guard error %+v (%v), outcome %+v", g, err, out)
		}
		if after := e.count(t, e.rdb); after != before {
			t.Fatalf("%d keys after the refused erase, %d before", after, before)
		}
		if ok, _ := e.rdb.SIsMember(context.Background(), p+":followers", "u1").Result(); !ok {
			t.Fatal("the set member was removed by a refused erase")
		}
	})
	t.Run("UnderTheLimitIsErased", func(t *testing.T) {
		out, err := c.Erase(guarded, subject("user_id", "u2"))
		if err != nil || out.Removed != 4 {
			t.Fatalf("guarded erase of 4: %+v, %v", out, err)
		}
		mustHold(t, c, subject("user_id", "u2"), false)
	})
	t.Run("ForcedGoesThrough", func(t *testing.T) {
		mustErase(t, c, subject("user_id", "u1"), 52)
		if after := e.count(t, e.rdb); after != 0 { // an emptied set is no key
			t.Fatalf("%d keys left, want none", after)
		}
	})
}
