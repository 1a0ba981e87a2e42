package redisconn_test

import (
	"context"
	"fmt"
	"testing"

	"erasure"
)

// BenchmarkErase_Pattern erases one subject's 1,000 keys among 20,000 others with a pattern,
// next to a baseline doing the same SCAN MATCH + UNLINK loop with go-redis directly. Run with
// ERASURE_TEST_REDIS set: go test -run - -bench Erase_Pattern ./connector/redis/
func BenchmarkErase_Pattern(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	p := e.prefix
	var others []string
	for i := range 20000 {
		others = append(others, fmt.Sprintf("%s:session:o%d:%d", p, i%20, i))
	}
	for i := 0; i < len(others); i += 1000 {
		set(b, e.rdb, others[i:i+1000]...)
	}
	mine := make([]string, 1000)
	for i := range mine {
		mine[i] = fmt.Sprintf("%s:session:u1:%d", p, i)
	}
	c := build(b, fmt.Sprintf("url: %q\nkeys: [\"%s:session:{user_id}:*\"]\n", e.url, p))[0]
	s := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: "u1"})

	run := func(b *testing.B, erase func() int64) {
		for b.Loop() {
			b.StopTimer()
			set(b, e.rdb, mine...)
			b.StartTimer()
			if n := erase(); n != int64(len(mine)) {
				b.Fatalf("removed %d, want %d", n, len(mine))
			}
		}
		b.ReportMetric(float64(b.N*len(mine))/b.Elapsed().Seconds(), "keys/s")
	}
	b.Run("connector", func(b *testing.B) {
		run(b, func() int64 {
			out, err := c.Erase(ctx, s)
			if err != nil {
				b.Fatal(err)
			}
			return out.Removed
		})
	})
	b.Run("baseline-go-redis", func(b *testing.B) {
		run(b, func() int64 {
			var cursor uint64
			var n int64
			for {
				keys, next, err := e.rdb.Scan(ctx, cursor, p+":session:u1:*", 1000).Result()
				if err != nil {
					b.Fatal(err)
				}
				if len(keys) > 0 {
					n += e.rdb.Unlink(ctx, keys...).Val()
				}
				if cursor = next; cursor == 0 {
					return n
				}
			}
		})
	})
}
