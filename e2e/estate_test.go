// Package e2e_test runs the real `erasure` binary against a real estate: PostgreSQL, MariaDB,
// Redis and an HTTP microservice on loopback, reached through identity lookups from a request
// that names only an email.
//
// The tests need ERASURE_TEST_POSTGRES, ERASURE_TEST_MYSQL and ERASURE_TEST_REDIS (see
// internal/testenv); each makes its own schema, database and key prefix and drops them after.
// The binary is built once per test run, on first use.
package e2e_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"erasure"
	"erasure/client"
	_ "erasure/connector/http"
	_ "erasure/connector/redis"
	_ "erasure/connector/sql"
	"erasure/internal/testenv"
	"erasure/registry"
)

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// erasureBinary builds ./cmd/erasure once per run (only when a test gets past its service
// checks) and returns its path.
func erasureBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "erasure-e2e-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "erasure")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/erasure")
		cmd.Dir = ".." // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build ./cmd/erasure: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

// person is one subject of the estate.
type person struct {
	Email, UserID, AccountID, DeviceID string
}

// people returns the subject to erase first, then 50 others, among them user ids that a
// careless pattern or prefix match would take for the subject's (100, 10010, 10011).
func people() []person {
	ids := []string{"1001", "100", "10010", "10011"}
	for i := 1002; len(ids) < 51; i++ {
		ids = append(ids, fmt.Sprint(i))
	}
	out := make([]person, len(ids))
	for i, id := range ids {
		out[i] = person{Email: "u" + id + "@example.com", UserID: id, AccountID: "7" + id, DeviceID: "dev-" + id}
	}
	return out
}

// What each person has in each store when seeded.
var seeded = map[string]int{
	"pg.users": 1, "pg.accounts": 1, "pg.invoices": 2, "pg.devices": 1,
	"mariadb.orders": 3, "redis.timeline": 1, "redis.sessions": 2, "profiles": 1,
}

// estate is the estate of one test: a PostgreSQL schema, a MariaDB database, a Redis key
// prefix and a profile microservice, all private to the test.
type estate struct {
	t       *testing.T
	people  []person
	pgDSN   string
	pg      *sql.DB
	myDSN   string
	my      *sql.DB
	redis   *redis.Client
	redisU  string
	prefix  string
	profile *profileService
	// profileURL is the base URL of the profile service.
	profileURL string
}

func newEstate(t *testing.T) *estate {
	t.Helper()
	e := &estate{t: t, people: people()}
	e.openPostgres(testenv.Address(t, "ERASURE_TEST_POSTGRES"))
	e.openMySQL(testenv.Address(t, "ERASURE_TEST_MYSQL"))
	e.openRedis(testenv.Address(t, "ERASURE_TEST_REDIS"))
	e.profile = &profileService{profiles: map[string]bool{}, gate: make(chan struct{})}
	srv := httptest.NewServer(e.profile) // on 127.0.0.1
	t.Cleanup(srv.Close)
	e.profileURL = srv.URL
	e.seed()
	return e
}

func (e *estate) openPostgres(base string) {
	t := e.t
	t.Helper()
	e.pgDSN = testenv.PostgresSchema(t, "e2e")
	var err error
	if e.pg, err = sql.Open("pgx", e.pgDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pg.Close() })
	e.exec(e.pg,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL, name TEXT)`,
		`CREATE TABLE accounts (id BIGINT PRIMARY KEY, plan TEXT)`,
		`CREATE TABLE invoices (id BIGSERIAL PRIMARY KEY, account_id BIGINT NOT NULL,
			amount INT, CONSTRAINT invoices_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id))`,
		`CREATE TABLE devices (device_id TEXT PRIMARY KEY, user_id BIGINT)`)
}

func (e *estate) openMySQL(base string) {
	t := e.t
	t.Helper()
	e.myDSN = testenv.MySQLDatabase(t, "e2e")
	var err error
	if e.my, err = sql.Open("mysql", e.myDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.my.Close() })
	e.exec(e.my, `CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL,
		account_id BIGINT NOT NULL, total INT, KEY orders_user (user_id))`)
}

func (e *estate) openRedis(base string) {
	t := e.t
	t.Helper()
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("ERASURE_TEST_REDIS: %v", err)
	}
	e.redisU = base
	e.redis = redis.NewClient(opts)
	if err := e.redis.Ping(t.Context()).Err(); err != nil {
		e.redis.Close()
		testenv.Unavailable(t, "ERASURE_TEST_REDIS", err)
	}
	e.prefix = testenv.Name("e2e")
	t.Cleanup(func() {
		defer e.redis.Close()
		ctx := context.Background()
		keys, err := e.redis.Keys(ctx, e.prefix+":*").Result() // test cleanup of a private prefix
		if err == nil && len(keys) > 0 {
			err = e.redis.Unlink(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("clean redis prefix %s: %v", e.prefix, err)
		}
	})
}

func (e *estate) exec(db *sql.DB, stmts ...string) {
	e.t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(e.t.Context(), s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

// seed gives every person the rows, keys and profile counted in seeded.
func (e *estate) seed() {
	t, ctx := e.t, e.t.Context()
	t.Helper()
	for _, p := range e.people {
		steps := []struct {
			db   *sql.DB
			stmt string
			args []any
		}{
			{e.pg, `INSERT INTO users (id, email, name) VALUES ($1, $2, $3)`, []any{p.UserID, p.Email, "Name " + p.UserID}},
			{e.pg, `INSERT INTO accounts (id, plan) VALUES ($1, 'pro')`, []any{p.AccountID}},
			{e.pg, `INSERT INTO invoices (account_id, amount) VALUES ($1, 10), ($1, 20)`, []any{p.AccountID}},
			{e.pg, `INSERT INTO devices (device_id, user_id) VALUES ($1, $2)`, []any{p.DeviceID, p.UserID}},
			{e.my, `INSERT INTO orders (user_id, account_id, total) VALUES (?, ?, 1), (?, ?, 2), (?, ?, 3)`,
				[]any{p.UserID, p.AccountID, p.UserID, p.AccountID, p.UserID, p.AccountID}},
		}
		for _, s := range steps {
			if _, err := s.db.ExecContext(ctx, s.stmt, s.args...); err != nil {
				t.Fatalf("seed %s: %v", s.stmt, err)
			}
		}
		pipe := e.redis.TxPipeline()
		pipe.RPush(ctx, e.prefix+":timeline:"+p.UserID, "post-1", "post-2")
		pipe.Set(ctx, e.prefix+":session:"+p.UserID+":web", "s", 0)
		pipe.Set(ctx, e.prefix+":session:"+p.UserID+":mobile", "s", 0)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("seed redis: %v", err)
		}
		e.profile.put(p.UserID)
	}
}

// counts is what each store holds per user id ("?KEY" for anything not attributable).
type counts map[string]map[string]int

// snapshot counts every person's rows, keys and profiles in every store.
func (e *estate) snapshot() counts {
	t, ctx := e.t, e.t.Context()
	t.Helper()
	byAccount := map[string]string{}
	for _, p := range e.people {
		byAccount[p.AccountID] = p.UserID
	}
	c := counts{}
	add := func(store, key string, n int, byAccountID bool) {
		uid := key
		if byAccountID {
			if u, ok := byAccount[key]; ok {
				uid = u
			} else {
				uid = "?" + key
			}
		}
		if c[store] == nil {
			c[store] = map[string]int{}
		}
		c[store][uid] += n
	}
	queries := []struct {
		store     string
		db        *sql.DB
		query     string
		byAccount bool
	}{
		{"pg.users", e.pg, `SELECT id::text, count(*) FROM users GROUP BY id`, false},
		{"pg.accounts", e.pg, `SELECT id::text, count(*) FROM accounts GROUP BY id`, true},
		{"pg.invoices", e.pg, `SELECT account_id::text, count(*) FROM invoices GROUP BY account_id`, true},
		{"pg.devices", e.pg, `SELECT user_id::text, count(*) FROM devices GROUP BY user_id`, false},
		{"mariadb.orders", e.my, `SELECT CAST(user_id AS CHAR), count(*) FROM orders GROUP BY user_id`, false},
	}
	for _, q := range queries {
		c[q.store] = map[string]int{}
		rows, err := q.db.QueryContext(ctx, q.query)
		if err != nil {
			t.Fatalf("count %s: %v", q.store, err)
		}
		for rows.Next() {
			var key string
			var n int
			if err := rows.Scan(&key, &n); err != nil {
				t.Fatal(err)
			}
			add(q.store, key, n, q.byAccount)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	c["redis.timeline"], c["redis.sessions"] = map[string]int{}, map[string]int{}
	iter := e.redis.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rest := strings.TrimPrefix(iter.Val(), e.prefix+":")
		parts := strings.Split(rest, ":")
		switch {
		case len(parts) == 2 && parts[0] == "timeline":
			add("redis.timeline", parts[1], 1, false)
		case len(parts) == 3 && parts[0] == "session":
			add("redis.sessions", parts[1], 1, false)
		default:
			add("redis.other", rest, 1, false)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	c["profiles"] = e.profile.counts()
	return c
}

// profileService is the profile microservice: DELETE /users/{id} removes a profile (404 when
// there is none), GET /users/{id} answers 200 or 404. Deletes wait until gate is closed.
type profileService struct {
	mu       sync.Mutex
	profiles map[string]bool
	gate     chan struct{}
	once     sync.Once
}

func (p *profileService) put(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.profiles[id] = true
}

func (p *profileService) open() { p.once.Do(func() { close(p.gate) }) }

func (p *profileService) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for id := range p.profiles {
		out[id]++
	}
	return out
}

func (p *profileService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/users/")
	if !ok || id == "" || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodDelete {
		select {
		case <-p.gate:
		case <-r.Context().Done():
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !p.profiles[id] {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"id":"` + id + `"}`))
	case http.MethodDelete:
		if !p.profiles[id] {
			http.NotFound(w, r)
			return
		}
		delete(p.profiles, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// estateConfig is the registry of the estate. pg.accounts is parent of pg.invoices (foreign
// key invoices_account_fk); %s is its `after:` line, or nothing. pg.invoices waits for the
// profile service, so that without the `after:` the parent is erased while the children are
// still there. Nothing provides device_id: pg.devices is never reachable.
const estateConfig = `version: 1
server: { addr: %q, data_dir: %q, workers: 8 }
auth:
  tokens:
    - { name: e2e, secret: "${E2E_TOKEN}", roles: [submit, read, operate] }
identifiers: [email, user_id, account_id, device_id]
defaults: { max_attempts: 5, backoff: { initial: 100ms, max: 1s }, timeout: 20s }
datasets:
  - name: pg.users
    owner: accounts-team
    connector: sql
    sql: { driver: postgres, dsn: "${E2E_PG_DSN}", table: users, key: { column: email, identifier: email } }
    provides: [ { identifier: user_id, column: id } ]
  - name: mariadb.orders
    owner: orders-team
    connector: sql
    sql: { driver: mysql, dsn: "${E2E_MYSQL_DSN}", table: orders, key: { column: user_id, identifier: user_id } }
    provides: [ { identifier: account_id, column: account_id } ]
  - name: pg.accounts
    owner: billing-team
    connector: sql
    sql: { driver: postgres, dsn: "${E2E_PG_DSN}", table: accounts, key: { column: id, identifier: account_id } }
    %s
  - name: pg.invoices
    owner: billing-team
    connector: sql
    sql: { driver: postgres, dsn: "${E2E_PG_DSN}", table: invoices, key: { column: account_id, identifier: account_id } }
    after: [profile-service]
  - name: pg.devices
    owner: devices-team
    connector: sql
    sql: { driver: postgres, dsn: "${E2E_PG_DSN}", table: devices, key: { column: device_id, identifier: device_id } }
  - name: redis.timeline
    owner: timeline-team
    connector: redis
    redis: { url: "${E2E_REDIS_URL}", keys: [%q, %q] }
  - name: profile-service
    owner: profile-team
    connector: http
    http:
      erase:  { method: DELETE, url: "%s/users/{user_id}" }
      verify: { method: GET, url: "%s/users/{user_id}", gone: [404] }
`

// server is a running `erasure serve` child process.
type server struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	client *client.Client
}

// serve writes the estate's configuration, checks it with registry.Parse as the binary will,
// and runs `erasure serve --config` on a free loopback port until the test ends.
func (e *estate) serve(afterLine string) *server {
	t := e.t
	t.Helper()
	bin := erasureBinary(t)
	dir := t.TempDir()
	token := strings.ReplaceAll(testenv.Name("token"), "_", "")
	env := map[string]string{"E2E_TOKEN": token, "E2E_PG_DSN": e.pgDSN, "E2E_MYSQL_DSN": e.myDSN, "E2E_REDIS_URL": e.redisU}
	addr := freeAddr(t)
	yml := fmt.Sprintf(estateConfig, addr, filepath.Join(dir, "data"), afterLine,
		e.prefix+":timeline:{user_id}", e.prefix+":session:{user_id}:*", e.profileURL, e.profileURL)
	cfg, err := registry.Parse("erasure.yaml", []byte(yml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the estate's configuration is refused:\n%v", err)
	}
	for _, d := range cfg.Datasets {
		d.Conn.Close()
	}
	path := filepath.Join(dir, "erasure.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}

	s := &server{out: &lockedBuffer{}}
	s.cmd = exec.Command(bin, "serve", "--config", path)
	s.cmd.Env = os.Environ()
	for k, v := range env {
		s.cmd.Env = append(s.cmd.Env, k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("erasure serve output:\n%s", s.out.String())
		}
	})
	s.client, err = client.New("http://"+addr, token)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); s.client.Ready(t.Context()) != nil; {
		select {
		case <-exited:
			t.Fatalf("erasure serve exited: %v\n%s", s.cmd.ProcessState, s.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure serve not ready after a minute:\n%s", s.out.String())
		}
	}
	return s
}

// waitFor polls request id until cond holds, failing the test after a minute (a guard against
// hanging, not a performance assertion).
func (s *server) waitFor(t *testing.T, id, what string, cond func(*erasure.Request) bool) *erasure.Request {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := s.client.Request(t.Context(), id)
		if err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s: still not %s after a minute: status %s, tasks %s", id, what, r.Status, describe(r.Tasks))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func describe(tasks []erasure.Task) string {
	var b strings.Builder
	for _, t := range tasks {
		fmt.Fprintf(&b, "\n  %s %s: %s (attempts %d, removed %d) %s %s", t.Kind, t.Dataset, t.State, t.Attempts, t.Removed, t.LastError, t.Note)
	}
	return b.String()
}

func taskOf(r *erasure.Request, kind erasure.TaskKind, dataset string) *erasure.Task {
	for i := range r.Tasks {
		if r.Tasks[i].Kind == kind && r.Tasks[i].Dataset == dataset {
			return &r.Tasks[i]
		}
	}
	return nil
}

// TestEstate_EmailOnlyRequest submits one request naming only an email to a real `erasure
// serve` whose estate spans PostgreSQL, MariaDB, Redis and an HTTP service. The user id is found
// in PostgreSQL by email, the account id in MariaDB by user id; the subject's rows, keys and
// profile are erased everywhere and nobody else's; a dataset keyed by an identifier nobody
// provides is skipped; a parent table erased before its children fails on the foreign key
// with a message naming the constraint and the `after:` entry that fixes it.
func TestEstate_EmailOnlyRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	type want struct {
		status erasure.RequestStatus
		// left is what the subject still has per store afterwards (absent: nothing).
		left map[string]int
		// removed is Outcome.Removed per done erase task.
		removed map[string]int64
		// failed is the dataset whose task fails, with what its error must say.
		failed    string
		errorSays []string
	}
	cases := []struct {
		name  string
		after string
		want  want
	}{
		{
			name:  "AfterErasesChildrenFirst",
			after: "after: [pg.invoices]",
			want: want{
				status: erasure.RequestCompleted,
				left:   map[string]int{"pg.devices": 1},
				removed: map[string]int64{"pg.users": 1, "mariadb.orders": 3, "pg.accounts": 1, "pg.invoices": 2,
					"redis.timeline": 3, "profile-service": 1},
			},
		},
		{
			name:  "MissingAfterFailsOnForeignKey",
			after: "",
			want: want{
				status: erasure.RequestFailed,
				left:   map[string]int{"pg.devices": 1, "pg.accounts": 1},
				removed: map[string]int64{"pg.users": 1, "mariadb.orders": 3, "pg.invoices": 2,
					"redis.timeline": 3, "profile-service": 1},
				failed:    "pg.accounts",
				errorSays: []string{"invoices_account_fk", "add `after: [pg.invoices]` to dataset pg.accounts"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEstate(t)
			subject := e.people[0]
			before := e.snapshot()
			for store, n := range seeded {
				for _, p := range e.people {
					if got := before[store][p.UserID]; got != n {
						t.Fatalf("seeded %s: user %s has %d, want %d", store, p.UserID, got, n)
					}
				}
			}
			srv := e.serve(tc.after)
			ctx := t.Context()

			sub := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "email", Value: subject.Email}), Reason: "user_request"}
			req, created, err := srv.client.Submit(ctx, sub, testenv.Name("e2e"))
			if err != nil || !created {
				t.Fatalf("submit: created %v, %v", created, err)
			}
			// The parent's erase must run while the children are still there: the profile
			// service (which pg.invoices waits for) answers only once every lookup is done and
			// pg.accounts has either failed or is blocked behind its `after:`.
			srv.waitFor(t, req.ID, "past its lookups", func(r *erasure.Request) bool {
				for _, tk := range r.Tasks {
					if tk.Kind == erasure.TaskLookup && !tk.State.Succeeded() {
						return false
					}
				}
				a := taskOf(r, erasure.TaskErase, "pg.accounts")
				return a != nil && (a.State == erasure.TaskBlocked || a.State == erasure.TaskFailed || a.State == erasure.TaskDone)
			})
			e.profile.open()
			r := srv.waitFor(t, req.ID, string(tc.want.status), func(r *erasure.Request) bool {
				return r.Status == erasure.RequestCompleted || r.Status == erasure.RequestFailed || r.Status == erasure.RequestCancelled
			})
			if r.Status != tc.want.status {
				t.Fatalf("request %s, want %s; tasks:%s", r.Status, tc.want.status, describe(r.Tasks))
			}

			// Every task did what it should.
			for _, ds := range []string{"pg.users", "mariadb.orders"} {
				if tk := taskOf(r, erasure.TaskLookup, ds); tk == nil || tk.State != erasure.TaskDone {
					t.Errorf("lookup %s: %+v, want done", ds, tk)
				}
			}
			if tk := taskOf(r, erasure.TaskErase, "pg.devices"); tk == nil || tk.State != erasure.TaskSkipped || !strings.Contains(tk.Note, "no identifier") {
				t.Errorf("pg.devices: %+v, want skipped with \"no identifier\"", tk)
			}
			for ds, n := range tc.want.removed {
				tk := taskOf(r, erasure.TaskErase, ds)
				switch {
				case tk == nil:
					t.Errorf("no erase task for %s", ds)
				case tk.State != erasure.TaskDone || tk.Removed != n || tk.VerifiedAt == nil:
					t.Errorf("%s: %s, removed %d, verified %v (%s); want done, removed %d, verified", ds, tk.State, tk.Removed, tk.VerifiedAt, tk.LastError, n)
				}
			}
			if tc.want.failed != "" {
				tk := taskOf(r, erasure.TaskErase, tc.want.failed)
				if tk == nil || tk.State != erasure.TaskFailed {
					t.Fatalf("%s: %+v, want failed", tc.want.failed, tk)
				}
				if tk.Attempts != 1 {
					t.Errorf("%s: %d attempts: a foreign-key violation is permanent and must not be retried", tk.Dataset, tk.Attempts)
				}
				for _, s := range tc.want.errorSays {
					if !strings.Contains(tk.LastError, s) {
						t.Errorf("%s error %q does not say %q", tk.Dataset, tk.LastError, s)
					}
				}
			}

			// Exactly the subject's data is gone; everyone else's is as it was.
			after := e.snapshot()
			for _, store := range slices.Sorted(maps.Keys(seeded)) {
				for _, p := range e.people {
					want := before[store][p.UserID]
					if p == subject {
						want = tc.want.left[store]
					}
					if got := after[store][p.UserID]; got != want {
						t.Errorf("%s: user %s has %d, want %d", store, p.UserID, got, want)
					}
				}
				for key := range after[store] {
					if !slices.ContainsFunc(e.people, func(p person) bool { return p.UserID == key }) {
						t.Errorf("%s: holds data of key %q, which is nobody's", store, key)
					}
				}
			}
			if len(after["redis.other"]) > 0 {
				t.Errorf("unexpected redis keys: %v", after["redis.other"])
			}

			// The audit trail verifies, holds the identifiers found by lookups as keyed hashes,
			// and (once the request is completed) never the subject's identifiers in clear.
			if rep, err := srv.client.VerifyAudit(ctx); err != nil || !rep.OK {
				t.Fatalf("audit trail: %+v %v", rep, err)
			}
			found := map[string]int{}
			var trail bytes.Buffer
			err = srv.client.AuditEach(ctx, erasure.AuditFilter{}, func(ev erasure.AuditEvent) error {
				trail.Write(ev.Data)
				if ev.Type == erasure.EventTaskAttempt && ev.RequestID == req.ID {
					var d struct {
						Found []string `json:"found"`
					}
					json.Unmarshal(ev.Data, &d)
					for _, h := range d.Found {
						typ, _, _ := strings.Cut(h, ":")
						found[typ]++
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("audit trail: %v", err)
			}
			if found["user_id"] != 1 || found["account_id"] != 1 {
				t.Errorf("identifiers found by lookups in the audit trail: %v, want one user_id and one account_id", found)
			}
			if r.Status == erasure.RequestCompleted {
				for _, clear := range []string{subject.Email, `"user_id:` + subject.UserID, `"` + subject.AccountID + `"`} {
					if strings.Contains(trail.String(), clear) {
						t.Errorf("the audit trail of a completed request holds %q in clear", clear)
					}
				}
			}
			if strings.Contains(srv.out.String(), subject.Email) {
				t.Errorf("the server's logs hold the subject's email in clear")
			}
			t.Logf("%s: audit trail verified; tasks:%s", r.Status, describe(r.Tasks))
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() > 4<<20 {
		return len(p), nil
	}
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
