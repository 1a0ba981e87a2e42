// Package redisconn is the `redis` connector: it erases a subject's keys, hash fields and set
// or sorted-set members from one Redis database, inside the task (method realtime). It
// registers itself as "redis" with the registry; import it for its side effect:
//
//	import _ "erasure/connector/redis"
//
// # The block
//
//	datasets:
//	- name: timeline-cache
//	  owner: timeline-team
//	  connector: redis
//	  redis:
//	    url: ${REDIS_URL}     # redis://[user:password@]host:port/db, rediss:// for TLS
//	    keys:                 # exact keys are UNLINKed; patterns are SCANned and UNLINKed
//	      - "timeline:{user_id}"
//	      - "session:{user_id}:*"
//	    hash_fields:          # HDEL key field
//	      - { key: "profiles", field: "{user_id}" }
//	    members:              # SREM (set) or ZREM (zset) key member
//	      - { key: "followers:all", member: "{user_id}", type: set }
//	      - { key: "leaderboard", member: "{user_id}", type: zset }
//	    scan_count: 1000      # COUNT hint of each SCAN (default 1000)
//	    separator: ":"        # between key segments: pattern wildcards never match it ("" for none)
//
// At least one of keys, hash_fields and members is required; unknown keys are errors. The
// URL is parsed when the registry is loaded (errors never quote it: it may hold a password) but
// nothing connects until the first call. The user, password and database number of the URL are
// used; go-redis URL options (dial_timeout, read_timeout, pool_size...) are accepted as query
// parameters. Note that a server whose default user has no password accepts any password
// given without a user name (that is Redis's behaviour), so give the user name when using ACLs.
//
// # Templates
//
// {name} placeholders name declared identifier types. A key template whose literal text holds
// a glob character (* ? [ or \) is a pattern: it is erased with SCAN MATCH (never KEYS) and
// UNLINK in batches, and identifier values are backslash-escaped into it (* ? [ ] \), so a
// subject whose user_id is "*" matches the literal key "session:*:..." only. A wildcard right
// next to a placeholder ("session:{user_id}*") is refused: it would erase user 10's keys with
// user 1's. A wildcard never matches the separator (":" unless separator says otherwise):
// "session:{user_id}:*" for user q erases session:q:web but not session:q:r:web, which is the
// key of user "q:r" as much as of q (Redis MATCH finds both; the connector keeps only the keys
// whose wildcard parts stay within one segment). Keys whose suffix spans several segments need
// a pattern per depth ("session:{user_id}:*:*"), or separator: "" where no identifier value
// can hold the separator. Other templates are used as they are: Redis keys, fields and members are binary
// safe, and values are sent as arguments, never spliced into commands. Patterns are only
// allowed in keys; hash_fields and members name exact keys, fields and members. Every entry
// needs a placeholder (in its key, field or member), or every subject would erase it.
//
// The dataset's keys are every identifier used. A subject with several values gets every
// combination of them. A template needing an identifier the subject lacks is skipped; a subject
// that lacks them for every template is a permanent error (the pipeline skips such tasks).
//
// # Semantics
//
// Erase removes everything in one pipelined round trip (UNLINK in chunks of 512 keys, HDEL,
// SREM, ZREM), then each pattern with SCAN + UNLINK. Outcome.Removed counts keys unlinked plus
// fields and members removed; erasing again removes 0. Holds is true while anything remains:
// EXISTS, a SCAN stopping at the first matching key, HEXISTS, SISMEMBER, ZSCORE.
//
// Errors: refused connections, resets and timeouts are transient, as are the server replies
// LOADING, BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN and READONLY. Authentication failures
// (WRONGPASS, NOAUTH), WRONGTYPE and every other server reply are permanent. Messages name
// commands by their templates ("redis HDEL profiles {user_id}: WRONGTYPE ..."), never by
// expanded keys.
//
// Under a guard (erasure.GuardFrom, max_removed), Erase first counts what it would remove: the
// exact keys that exist, the keys matching each pattern (a full SCAN, stopping once the count
// passes the limit), and the hash fields and members present. Over the limit it fails with a
// permanent *erasure.GuardError and unlinks nothing; keys created between the count and the
// erase are erased too.
//
// A canary's plant block lists exact keys (SET with a ttl, default 24h), hash_fields (HSET) and
// members (SADD, ZADD) in the block's own syntax, with placeholders among the dataset's keys:
//
//	canary: { plant: { keys: ["session:{user_id}:web"], ttl: 1h } }
//
// Write them the way the application writes its data: the canary then fails when the dataset's
// keys no longer match them. Without a plant block the dataset's own templates are planted (a
// pattern's * and ? standing for "canary" and "x"), which proves the erasure works but not that
// the patterns still match. Remains reads the planted items back (EXISTS, HEXISTS, SISMEMBER,
// ZSCORE).
//
// Check sends PING (which authenticates) and, for hash_fields and members whose key has no
// placeholder, checks with TYPE that the key is absent or of the declared type (a mismatch is
// permanent). Keys with placeholders cannot be checked without a subject.
//
// Connectors built with the same URL share one client and its connection pool, created on first
// use and closed when the last of them closes. The connector talks to a single server (or a
// proxy in front of a cluster); Redis Cluster, whose SCAN is per node, is not supported.
package redisconn
