package pipeline_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"erasure"
	_ "erasure/connector/files"
	_ "erasure/connector/http"
	recordsconn "erasure/connector/records"
	_ "erasure/connector/redis"
	_ "erasure/connector/sql"
	"erasure/internal/testenv"
	"erasure/pipeline"
	"erasure/registry"
	"erasure/store/sqlrecords"
	"erasure/store/sqlrecords/sqlrecordstest"
)

// Canaries end to end: a synthetic subject planted through each connector, erased through the
// pipeline (store, executor, sweeper), checked; and the broken datasets the canary is for.

// canaryEnv is a pipeline whose executor runs in the background, over datasets from a registry.
type canaryEnv struct {
	h        *harness
	canaries *pipeline.Canaries
	metrics  *prometheus.Registry
	cfg      *registry.Config
}

// newCanaryEnv loads datasets (YAML list items, ${VAR}s from env) and runs the pipeline over
// them until the test ends.
func newCanaryEnv(t *testing.T, datasets string, env map[string]string) *canaryEnv {
	t.Helper()
	src := "version: 1\nidentifiers: [user_id, email, record_id]\n" +
		"defaults: { max_attempts: 1, backoff: { initial: 10ms, max: 10ms }, timeout: 5s }\ndatasets:\n" + datasets
	cfg, err := registry.Parse("erasure.yaml", []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	t.Cleanup(func() {
		for _, d := range cfg.Datasets {
			d.Conn.Close()
		}
	})
	h := newHarness(t, nil, cfg.Datasets...)
	reg := prometheus.NewRegistry()
	m := pipeline.NewMetrics(reg)
	h.engine.Metrics = m
	h.engine.Hasher = h.svc.Hasher
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.engine.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	sw := h.sweeper(cfg.Datasets...)
	return &canaryEnv{h: h, cfg: cfg, metrics: reg, canaries: &pipeline.Canaries{Store: h.store, Datasets: cfg.Datasets, Hasher: h.svc.Hasher,
		Engine: h.engine, Sweeper: sw, Metrics: m, Poll: 10 * time.Millisecond}}
}

// run runs the canary of dataset through RunCanaries (so that it is recorded) and returns it.
func (e *canaryEnv) run(t *testing.T, dataset string) erasure.CanaryResult {
	t.Helper()
	res, err := e.canaries.RunCanaries(context.Background(), dataset, "test")
	if err != nil || len(res) != 1 {
		t.Fatalf("RunCanaries(%s) = %+v, %v", dataset, res, err)
	}
	return res[0]
}

// scrape returns the metrics as Prometheus reads them.
func (e *canaryEnv) scrape(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(e.metrics, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func wantPass(t *testing.T, e *canaryEnv, r erasure.CanaryResult) {
	t.Helper()
	if !r.OK || r.Reason != "" || r.RequestID == "" {
		t.Fatalf("canary of %s: %+v, want it passed", r.Dataset, r)
	}
	req, err := e.h.store.Request(context.Background(), r.RequestID)
	if err != nil || req.Canary != r.Dataset || req.Status != erasure.RequestCompleted || len(req.Tasks) != 1 {
		t.Fatalf("canary request %+v, %v", req, err)
	}
	if line := `erasure_canary_ok{dataset="` + r.Dataset + `"} 1`; !strings.Contains(e.scrape(t), line) {
		t.Fatalf("metrics lack %s after a pass", line)
	}
	// A canary is no user's request.
	if page, _ := e.h.store.Requests(context.Background(), erasure.RequestFilter{}); len(page.Requests) != 0 {
		t.Fatalf("the canary shows in the requests listing: %+v", page.Requests)
	}
}

func wantFail(t *testing.T, e *canaryEnv, r erasure.CanaryResult, stage erasure.CanaryStage, reason ...string) {
	t.Helper()
	if r.OK || r.Stage != stage {
		t.Fatalf("canary of %s: %+v, want it failed at %s", r.Dataset, r, stage)
	}
	t.Logf("canary of %s failed at %s: %s", r.Dataset, r.Stage, r.Reason)
	for _, s := range reason {
		if !strings.Contains(r.Reason, s) {
			t.Fatalf("canary of %s failed with %q, want a reason saying %q", r.Dataset, r.Reason, s)
		}
	}
	if strings.Contains(r.Reason, "erasure-canary-") {
		t.Fatalf("the reason %q holds the canary subject's value", r.Reason)
	}
	if line := `erasure_canary_ok{dataset="` + r.Dataset + `"} 0`; !strings.Contains(e.scrape(t), line) {
		t.Fatalf("metrics lack %s after a failure", line)
	}
	evs, err := e.h.store.Audit(context.Background(), erasure.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Type == erasure.EventCanaryFailed && ev.Dataset == r.Dataset && strings.Contains(string(ev.Data), string(stage)) {
			if r.RequestID != "" {
				if req, _ := e.h.store.Request(context.Background(), r.RequestID); req.Status != erasure.RequestCompleted && req.Status != erasure.RequestCancelled {
					t.Fatalf("the failed canary's request is left %s", req.Status)
				}
			}
			return
		}
	}
	t.Fatalf("no canary.failed event for %s in the trail", r.Dataset)
}

func TestCanary_SQL(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*testing.T) warehouse
	}{{"PostgreSQL", postgresWarehouse}, {"MariaDB", mysqlWarehouse}} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.open(t)
			ctx := context.Background()
			exec := func(q string) {
				t.Helper()
				if _, err := w.db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			exec(`CREATE TABLE users (id VARCHAR(64) NOT NULL, email VARCHAR(255), status VARCHAR(16) NOT NULL, created VARCHAR(32) NOT NULL)`)
			exec(`INSERT INTO users VALUES ('1', 'a@example.com', 'active', '2026-01-01'), ('2', 'b@example.com', 'active', '2026-01-01')`)
			e := newCanaryEnv(t, `
  - name: accounts.users
    owner: accounts
    connector: sql
    sql: { driver: `+w.driver+`, dsn: "${DSN}", table: users, key: { column: id, identifier: user_id }, where: [ { column: status, equals: active } ] }
    canary: { timeout: 20s, plant: { values: { created: "2026-12-01" } } }
`, map[string]string{"DSN": w.dsn})
			count := func() int {
				var n int
				w.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n)
				return n
			}
			t.Run("HealthyPasses", func(t *testing.T) {
				wantPass(t, e, e.run(t, "accounts.users"))
				if n := count(); n != 2 {
					t.Fatalf("%d rows after the canary, want the 2 real ones", n)
				}
			})
			t.Run("TableMovedFails", func(t *testing.T) {
				if w.driver == "mysql" {
					exec(`RENAME TABLE users TO accounts`)
				} else {
					exec(`ALTER TABLE users RENAME TO accounts`)
				}
				wantFail(t, e, e.run(t, "accounts.users"), erasure.CanaryPlant, "planting the canary subject failed", "users")
			})
		})
	}
}

func TestCanary_Redis(t *testing.T) {
	url := testenv.Address(t, "ERASURE_TEST_REDIS")
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	p := testenv.Name("canary")
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), p+"*").Result()
		if len(keys) > 0 {
			rdb.Unlink(context.Background(), keys...)
		}
	})
	rdb.Set(context.Background(), p+":session:1:a", "real", 0)
	e := newCanaryEnv(t, `
  - name: web.sessions
    owner: web
    connector: redis
    redis: { url: "${REDIS}", keys: ["`+p+`:session:{user_id}:*"] }
    canary: { timeout: 10s, plant: { keys: ["`+p+`:session:{user_id}:token"] } }
  - name: web.sessions.renamed
    owner: web
    connector: redis
    redis: { url: "${REDIS}", keys: ["`+p+`:session:{user_id}:*"] }
    canary: { timeout: 10s, plant: { keys: ["`+p+`:sess:{user_id}:token"], ttl: 1m } }
`, map[string]string{"REDIS": url})
	t.Run("HealthyPasses", func(t *testing.T) {
		wantPass(t, e, e.run(t, "web.sessions"))
	})
	t.Run("PatternThatNoLongerMatchesFails", func(t *testing.T) {
		// The application now writes sess:..., the dataset still erases session:...
		wantFail(t, e, e.run(t, "web.sessions.renamed"), erasure.CanaryCheck, "still there after its erasure completed", "do not match")
	})
	if v, _ := rdb.Exists(context.Background(), p+":session:1:a").Result(); v != 1 {
		t.Fatal("a real key was erased by a canary")
	}
}

// profileService is a service with a create, a delete and a read endpoint; broken, its DELETE
// answers 204 and deletes nothing.
type profileService struct {
	mu     sync.Mutex
	users  map[string]bool
	broken bool
}

func (s *profileService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := strings.TrimPrefix(r.URL.Path, "/users/")
	switch {
	case r.Method == http.MethodPost:
		var b struct{ ID string }
		if json.NewDecoder(r.Body).Decode(&b) != nil || b.ID == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.users[b.ID] = true
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodDelete:
		if !s.broken {
			delete(s.users, id)
		}
		w.WriteHeader(http.StatusNoContent)
	case s.users[id]:
		w.Write([]byte(`{}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestCanary_HTTP(t *testing.T) {
	svc := &profileService{users: map[string]bool{"real": true}}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	e := newCanaryEnv(t, `
  - name: profile
    owner: profile
    connector: http
    http: { erase: { url: "${URL}/users/{user_id}" } }
    canary: { timeout: 10s, plant: { url: "${URL}/users", body: '{{"id": "{user_id}"}}', check: { url: "${URL}/users/{user_id}" } } }
  - name: profile.verified
    owner: profile
    connector: http
    http: { erase: { url: "${URL}/users/{user_id}" }, verify: { url: "${URL}/users/{user_id}" } }
    canary: { timeout: 10s, plant: { url: "${URL}/users", body: '{{"id": "{user_id}"}}' } }
`, map[string]string{"URL": srv.URL})
	t.Run("HealthyPasses", func(t *testing.T) {
		wantPass(t, e, e.run(t, "profile"))
		wantPass(t, e, e.run(t, "profile.verified"))
	})
	t.Run("DeleteAnswering204ButDeletingNothingFails", func(t *testing.T) {
		svc.mu.Lock()
		svc.broken = true
		svc.mu.Unlock()
		// Without a verify the pipeline believes the 204: only the canary's own read sees it.
		wantFail(t, e, e.run(t, "profile"), erasure.CanaryCheck, "still there after its erasure completed")
		// With one, the erasure itself fails.
		wantFail(t, e, e.run(t, "profile.verified"), erasure.CanaryErase, "erasure failed", "still holds the subject")
	})
	if !svc.users["real"] {
		t.Fatal("a real user was erased by a canary")
	}
}

func TestCanary_Files(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "part-000.jsonl"), []byte(`{"user":{"id":"1"},"n":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newCanaryEnv(t, `
  - name: warehouse.events
    owner: data
    connector: files
    files: { path: "${DIR}", format: jsonl, key: { field: user.id, identifier: user_id } }
    canary: { timeout: 20s, plant: { partition: canary/erasure-canary.jsonl, fields: { event: canary } } }
`, map[string]string{"DIR": dir})
	wantPass(t, e, e.run(t, "warehouse.events"))
	b, err := os.ReadFile(filepath.Join(dir, "canary", "erasure-canary.jsonl"))
	if err != nil || len(b) != 0 {
		t.Fatalf("canary partition after the canary: %q, %v; want it empty", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "part-000.jsonl")); !strings.Contains(string(b), `"id":"1"`) {
		t.Fatal("a real row was erased by a canary")
	}
}

func TestCanary_Records(t *testing.T) {
	e := newCanaryEnv(t, `
  - name: catalogue.sierra
    owner: catalogue
    connector: records
    records: { source: sierra, mode: purge }
    canary: { timeout: 10s, plant: { payload: '{"title": "canary"}' } }
`, nil)
	st, _ := sqlrecordstest.Open(t, filepath.Join(t.TempDir(), "records.db"), sqlrecords.Options{})
	recordsconn.Bind(e.cfg.Datasets, st)
	r := e.run(t, "catalogue.sierra")
	wantPass(t, e, r)
}

func TestCanaries_Service(t *testing.T) {
	svc := &profileService{users: map[string]bool{}}
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	e := newCanaryEnv(t, `
  - name: profile
    owner: profile
    connector: http
    http: { erase: { url: "${URL}/users/{user_id}" }, verify: { url: "${URL}/users/{user_id}" } }
    canary: { every: 1h, timeout: 10s, plant: { url: "${URL}/users", body: '{{"id": "{user_id}"}}' } }
  - name: plain
    owner: profile
    connector: http
    http: { erase: { url: "${URL}/other/{user_id}" } }
`, map[string]string{"URL": srv.URL})
	ctx := context.Background()
	t.Run("UnknownDatasetIsNotFound", func(t *testing.T) {
		if _, err := e.canaries.RunCanaries(ctx, "nope", "op"); erasure.ErrorCode(err) != erasure.ENOTFOUND {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("DatasetWithoutCanaryIsInvalid", func(t *testing.T) {
		if _, err := e.canaries.RunCanaries(ctx, "plain", "op"); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("NeverRunIsListedEmpty", func(t *testing.T) {
		got, err := e.canaries.Canaries(ctx)
		if err != nil || len(got) != 1 || got[0].Dataset != "profile" || !got[0].Started.IsZero() {
			t.Fatalf("Canaries = %+v, %v", got, err)
		}
	})
	t.Run("ScheduleRunsWhatIsDueOnce", func(t *testing.T) {
		if due := e.canaries.ScheduleOnce(ctx); len(due) != 1 || due[0] != "profile" {
			t.Fatalf("due %v", due)
		}
		e.canaries.Wait()
		if due := e.canaries.ScheduleOnce(ctx); len(due) != 0 {
			t.Fatalf("due again at once: %v", due)
		}
		got, _ := e.canaries.Canaries(ctx)
		if len(got) != 1 || !got[0].OK || got[0].Actor != "canary" {
			t.Fatalf("after the scheduled run: %+v", got)
		}
		infos, err := e.h.svc.Datasets(ctx)
		if err != nil || infos[0].Canary == nil || !infos[0].Canary.OK || infos[1].Canary != nil {
			t.Fatalf("dataset health: %+v, %v", infos, err)
		}
		if infos[0].Health.Backlog != 0 || len(infos[0].Health.ByState) != 0 {
			t.Fatalf("the canary's task counts in the dataset's health: %+v", infos[0].Health)
		}
	})
}
