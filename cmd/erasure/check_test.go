package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"erasure/internal/testenv"
)

// checkEstate is a PostgreSQL schema with a users table, a Redis key and an HTTP service,
// private to one test.
type checkEstate struct {
	pgDSN    string
	pg       *sql.DB
	redisURL string
	rdb      *redis.Client
	key      string
	httpURL  string
	// hung is a loopback address that accepts connections and never answers.
	hung string
}

func newCheckEstate(t *testing.T) *checkEstate {
	t.Helper()
	e := &checkEstate{}
	testenv.Address(t, "ERASURE_TEST_POSTGRES") // skip early without the service
	e.redisURL = testenv.Address(t, "ERASURE_TEST_REDIS")

	e.pgDSN = testenv.PostgresSchema(t, "check")
	var err error
	if e.pg, err = sql.Open("pgx", e.pgDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pg.Close() })
	for _, s := range []string{
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT, name TEXT)`,
		`INSERT INTO users SELECT i, 'u' || i || '@example.com', 'n' FROM generate_series(1, 20) i`,
	} {
		if _, err := e.pg.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}

	opts, err := redis.ParseURL(e.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(opts)
	t.Cleanup(func() { e.rdb.Close() })
	e.key = testenv.Name("check")
	if err := e.rdb.Set(t.Context(), e.key+":timeline:1", "x", 0).Err(); err != nil {
		testenv.Unavailable(t, "ERASURE_TEST_REDIS", err)
	}
	t.Cleanup(func() { e.rdb.Del(context.Background(), e.key+":timeline:1") })

	var deletes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			deletes.Add(1)
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		if n := deletes.Load(); n > 0 {
			t.Errorf("the check sent %d DELETE requests", n)
		}
	})
	e.httpURL = srv.URL

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	e.hung = ln.Addr().String()
	return e
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

const checkHealthy = `version: 1
identifiers: [user_id, email, record_id]
datasets:
  - name: accounts.users
    owner: accounts-team
    connector: sql
    sql: { driver: postgres, dsn: "${CHECK_PG_DSN}", table: users, key: { column: id, identifier: user_id } }
    provides: [ { identifier: email, column: email } ]
  - name: accounts.redacted
    owner: accounts-team
    connector: sql
    sql: { driver: postgres, dsn: "${CHECK_PG_DSN}", table: users, key: { column: email, identifier: email }, action: redact, columns: [name] }
  - name: timeline-cache
    owner: timeline-team
    connector: redis
    redis: { url: "${CHECK_REDIS_URL}", keys: ["${CHECK_PREFIX}:timeline:{user_id}"] }
  - name: profile-service
    owner: profile-team
    connector: http
    http: { erase: { method: DELETE, url: "${CHECK_HTTP_URL}/users/{user_id}" } }
  - name: notifications
    owner: messaging-team
    connector: nats
    nats: { subject: erasure.notifications, identifiers: [user_id] }
  - name: catalogue
    owner: catalogue-team
    connector: records
    records: { source: sierra, mode: tombstone }
`

// checkBroken adds, to the healthy estate, a table missing its key column, a PostgreSQL where
// nothing listens, and a Redis that accepts connections and never answers.
const checkBroken = checkHealthy + `  - name: billing.missing-column
    owner: billing-team
    connector: sql
    sql: { driver: postgres, dsn: "${CHECK_PG_DSN}", table: users, key: { column: user_ref, identifier: user_id } }
  - name: billing.missing-table
    owner: billing-team
    connector: sql
    sql: { driver: postgres, dsn: "${CHECK_PG_DSN}", table: invoices, key: { column: user_id, identifier: user_id } }
  - name: ledger.unreachable
    owner: billing-team
    connector: sql
    sql: { driver: postgres, dsn: "postgres://postgres@${CHECK_CLOSED}/test?sslmode=disable&connect_timeout=5", table: ledger, key: { column: user_id, identifier: user_id } }
  - name: sessions.hung
    owner: timeline-team
    connector: redis
    redis: { url: "redis://${CHECK_HUNG}/0", keys: ["session:{user_id}"] }
`

// TestDatasetsCheck runs `erasure datasets check` against real PostgreSQL and Redis servers:
// a sound estate passes with one line per dataset; a broken one exits non-zero naming what is
// wrong with each failing dataset, while the sound datasets still pass. Nothing is erased.
func TestDatasetsCheck(t *testing.T) {
	type line struct{ word, says string }
	healthy := map[string]line{
		"accounts.users":    {"ok", ""},
		"accounts.redacted": {"ok", ""},
		"timeline-cache":    {"ok", ""},
		"profile-service":   {"ok", ""},
		"notifications":     {"skipped", "checked when serve connects"},
		"catalogue":         {"skipped", "checked when serve runs"},
	}
	broken := map[string]line{
		"billing.missing-column": {"FAILED", "table users has no key column user_ref"},
		"billing.missing-table":  {"FAILED", "invoices"},
		"ledger.unreachable":     {"FAILED", "connection failed"},
		"sessions.hung":          {"FAILED", "no answer within 2s"},
	}
	for name, l := range healthy {
		broken[name] = l
	}
	cases := []struct {
		name     string
		config   string
		code     int
		lines    map[string]line
		summary  string
		stderrIs string
	}{
		{"HealthyEstatePasses", checkHealthy, 0, healthy, ": 6 datasets: 4 ok, 0 failed, 2 not checked", ""},
		{"BrokenEstateFails", checkBroken, 6, broken, ": 10 datasets: 4 ok, 4 failed, 2 not checked",
			"erasure datasets check: 4 datasets of 10 failed the check\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newCheckEstate(t)
			t.Setenv("CHECK_PG_DSN", e.pgDSN)
			t.Setenv("CHECK_REDIS_URL", e.redisURL)
			t.Setenv("CHECK_PREFIX", e.key)
			t.Setenv("CHECK_HTTP_URL", e.httpURL)
			t.Setenv("CHECK_CLOSED", closedAddr(t))
			t.Setenv("CHECK_HUNG", e.hung)
			path := writeConfig(t, tc.config)

			code, stdout, stderr := run(t, "datasets", "check", "--config", path, "--timeout", "2s")
			if code != tc.code || stderr != tc.stderrIs {
				t.Fatalf("exit code %d, stderr %q; want %d, %q; stdout:\n%s", code, stderr, tc.code, tc.stderrIs, stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if len(lines) != len(tc.lines)+1 {
				t.Fatalf("%d lines, want one per dataset and a summary:\n%s", len(lines), stdout)
			}
			for _, l := range lines[:len(lines)-1] {
				f := strings.Fields(l)
				if len(f) < 3 {
					t.Errorf("line %q: want name, connector, outcome", l)
					continue
				}
				want, ok := tc.lines[f[0]]
				if !ok {
					t.Errorf("line for unknown dataset: %q", l)
					continue
				}
				if f[2] != want.word || !strings.Contains(l, want.says) {
					t.Errorf("line %q: want %s saying %q", l, want.word, want.says)
				}
				if strings.Contains(l, e.pgDSN) {
					t.Errorf("line %q quotes the DSN", l)
				}
			}
			if last := lines[len(lines)-1]; last != path+tc.summary {
				t.Errorf("summary %q, want %q", last, path+tc.summary)
			}

			// Nothing was erased: every row and the Redis key are still there.
			var rows, named int
			if err := e.pg.QueryRowContext(t.Context(), `SELECT count(*), count(name) FROM users`).Scan(&rows, &named); err != nil {
				t.Fatal(err)
			}
			if rows != 20 || named != 20 {
				t.Errorf("users: %d rows, %d with a name after the check; want 20, 20", rows, named)
			}
			if n, err := e.rdb.Exists(t.Context(), e.key+":timeline:1").Result(); err != nil || n != 1 {
				t.Errorf("redis key after the check: exists %d, %v", n, err)
			}
		})
	}
}

// TestDatasetsCheck_Usage covers the command line, which needs no service.
func TestDatasetsCheck_Usage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"a.yaml", "b.yaml"}, 2, "give one configuration file"},
		{[]string{"--timeout", "0s", "x.yaml"}, 2, "--timeout must be positive"},
		{[]string{"--parallel", "0", "x.yaml"}, 2, "--parallel must be at least 1"},
		{[]string{"--config", "/nonexistent/erasure.yaml"}, 3, "does not exist"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"datasets", "check"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.says) || stdout != "" {
				t.Errorf("code %d, stdout %q, stderr %q; want %d saying %q", code, stdout, stderr, tc.code, tc.says)
			}
		})
	}
}

// TestDatasetsCheck_NATS checks async datasets on an external NATS: a stream that serve has
// not created yet is not a failure, a stream capturing the subject passes, and a stream that
// does not capture it fails.
func TestDatasetsCheck_NATS(t *testing.T) {
	natsURL := testenv.Address(t, "ERASURE_TEST_NATS")
	nc, err := nats.Connect(natsURL)
	if err != nil {
		testenv.Unavailable(t, "ERASURE_TEST_NATS", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const config = `version: 1
identifiers: [user_id]
nats: { url: "${CHECK_NATS_URL}", stream: %s }
datasets:
  - name: notifications
    owner: messaging-team
    connector: nats
    nats: { subject: %s, identifiers: [user_id] }
`
	cases := []struct {
		name     string
		subjects func(subject string) []string // the stream's subjects; nil: no stream
		code     int
		word     string
		says     string
	}{
		{"StreamNotCreatedYet", nil, 0, "skipped", "does not exist yet (serve creates it)"},
		{"StreamCapturesSubject", func(s string) []string { return []string{s} }, 0, "ok", "captures"},
		{"StreamMissesSubject", func(s string) []string { return []string{s + ".other"} }, 6, "FAILED", "no stream captures"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := strings.ToUpper(testenv.Name("CHECK"))
			subject := testenv.Name("check") + ".notifications"
			if tc.subjects != nil {
				if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: stream, Subjects: tc.subjects(subject)}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { js.DeleteStream(context.Background(), stream) })
			}
			t.Setenv("CHECK_NATS_URL", natsURL)
			path := writeConfig(t, fmt.Sprintf(config, stream, subject))
			code, stdout, stderr := run(t, "datasets", "check", path)
			lines := strings.Split(stdout, "\n")
			f := strings.Fields(lines[0])
			if code != tc.code || len(f) < 3 || f[0] != "notifications" || f[2] != tc.word || !strings.Contains(lines[0], tc.says) {
				t.Errorf("code %d, stdout %q, stderr %q; want %d and notifications %s saying %q", code, stdout, stderr, tc.code, tc.word, tc.says)
			}
			if tc.subjects == nil {
				if _, err := js.Stream(t.Context(), stream); err == nil {
					t.Errorf("the check created stream %s", stream)
					js.DeleteStream(context.Background(), stream)
				}
			}
		})
	}
}

// TestDatasetsCheck_NotCheckable: a connector without a check is reported as such, and is not
// a failure.
func TestDatasetsCheck_NotCheckable(t *testing.T) {
	path := writeConfig(t, `version: 1
identifiers: [user_id]
datasets:
  - name: legacy
    owner: team
    connector: validatetest
    validatetest: { key: user_id }
`)
	code, stdout, stderr := run(t, "datasets", "check", path)
	want := "legacy  validatetest  skipped  not checkable: the validatetest connector has no check\n" +
		path + ": 1 dataset: 0 ok, 0 failed, 1 not checked\n"
	if code != 0 || stdout != want || stderr != "" {
		t.Errorf("code %d, stdout %q, stderr %q; want 0, %q", code, stdout, stderr, want)
	}
}
