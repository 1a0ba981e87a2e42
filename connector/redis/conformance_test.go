package redisconn_test

import (
	"testing"

	"erasure"
	"erasure/connector/connectortest"
)

// TestConnectorContract runs the connectors' common contract on a real Redis: a dataset with
// an exact key, a pattern, a hash field and a set member per subject.
func TestConnectorContract(t *testing.T) {
	newEnv(t) // skip early without the service
	connectortest.Run(t, connectortest.Target{
		Open: func(t *testing.T) *connectortest.Service {
			e := newEnv(t)
			p := e.prefix
			return &connectortest.Service{
				Registry: contractRegistry(p),
				Env:      map[string]string{"REDIS_URL": e.url},
				Key:      "user_id",
				// Five things per subject: two keys, two keys under the pattern, a hash field and a
				// set member (the unit of Outcome.Removed).
				Plant: func(t *testing.T, s erasure.Subject) []erasure.Identifier {
					ctx := t.Context()
					for _, v := range s.Values("user_id") {
						set(t, e.rdb, p+":timeline:"+v, p+":session:"+v+":a", p+":session:"+v+":b")
						if err := e.rdb.HSet(ctx, p+":profiles", v, "profile").Err(); err != nil {
							t.Fatal(err)
						}
						if err := e.rdb.SAdd(ctx, p+":followers", v).Err(); err != nil {
							t.Fatal(err)
						}
					}
					return nil
				},
				Remaining: func(t *testing.T, s erasure.Subject) int64 {
					ctx := t.Context()
					var n int64
					for _, v := range s.Values("user_id") {
						n += int64(exists(t, e.rdb, []string{p + ":timeline:" + v}))
						iter := e.rdb.Scan(ctx, 0, p+":session:"+v+":*", 1000).Iterator()
						for iter.Next(ctx) {
							n++
						}
						if err := iter.Err(); err != nil {
							t.Fatal(err)
						}
						if ok, err := e.rdb.HExists(ctx, p+":profiles", v).Result(); err != nil {
							t.Fatal(err)
						} else if ok {
							n++
						}
						if ok, err := e.rdb.SIsMember(ctx, p+":followers", v).Result(); err != nil {
							t.Fatal(err)
						} else if ok {
							n++
						}
					}
					return n
				},
			}
		},
		Unreachable: func(t *testing.T, at connectortest.Nowhere) *connectortest.Service {
			return &connectortest.Service{
				Registry: contractRegistry("erasure_test"),
				Env:      map[string]string{"REDIS_URL": "redis://" + at.Addr + "/0?dial_timeout=2s"},
				Key:      "user_id",
			}
		},
	})
}

func contractRegistry(prefix string) string {
	return `version: 1
identifiers: [user_id, email]
datasets:
  - name: timeline-cache
    owner: timeline-team
    connector: redis
    redis:
      url: ${REDIS_URL}
      keys: ["` + prefix + `:timeline:{user_id}", "` + prefix + `:session:{user_id}:*"]
      hash_fields: [ { key: "` + prefix + `:profiles", field: "{user_id}" } ]
      members: [ { key: "` + prefix + `:followers", member: "{user_id}", type: set } ]
`
}
