// Command pipeline benchmarks the erasure pipeline: it submits N requests × D datasets with
// connectors that do no I/O and runs them to completion with W executors, on SQLite and on
// PostgreSQL, and prints tasks per second next to a baseline measured in the same run, in the
// same database: the same number of task rows inserted then updated as plainly as possible
// (batched transactions, W writers).
//
//	go run ./bench/pipeline                                   # SQLite, 1 worker, 20000 × 10
//	go run ./bench/pipeline -stores sqlite,postgres -workers 1,2,4 -requests 5000
//	go run ./bench/pipeline -stores postgres -river           # with River beside (bench/river)
//	go run ./bench/pipeline -grow 1000000 -api                # cost as the store grows
//
// Beside the baseline, "baseline+" (-indexed, on by default) writes the same rows as a store of
// tasks must at least: with an index by request, one of due tasks and one of each dataset's open
// tasks, and a lease update between the insert and the finishing update. It is printed for
// comparison (how much of the gap is what any task store writes); the ratios stay against the
// baseline.
//
// Workers are separate Engines (their own owners, as processes would be): on PostgreSQL each
// on a store handle (a pool) of its own; on SQLite, which one process owns, on the one handle.
// Requests are submitted through the first handle, as a fleet's serve takes the API.
// PostgreSQL runs in a schema created for each configuration and dropped after (-dsn, default
// $ERASURE_TEST_POSTGRES).
//
// -grow N runs the first worker count again on a store already holding N finished requests
// (D tasks each, written by SQL, without audit events), and prints both; with -api it also
// measures the API's request listing and lookup on both stores.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"erasure"
	"erasure/api"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/postgres"
	"erasure/store/sqlite"
	"erasure/store/sqlstore"
)

type noop struct{ n atomic.Int64 }

func (c *noop) Close() error { return nil }
func (c *noop) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	c.n.Add(1)
	return erasure.Outcome{Removed: 1}, nil
}
func (c *noop) Holds(ctx context.Context, s erasure.Subject) (bool, error) { return false, nil }

// options are the flags.
type options struct {
	requests, datasets, batch, submitters int
	intake                                string
	sync                                  string
	dsn                                   string
	grow                                  int
	api                                   bool
	apiCalls                              int
	river                                 bool
	riverDir                              string
	riverJobs                             int
	indexed                               bool
}

func main() {
	var o options
	flag.IntVar(&o.requests, "requests", 20000, "requests to submit")
	flag.IntVar(&o.datasets, "datasets", 10, "datasets per request")
	flag.IntVar(&o.batch, "batch", 256, "rows per transaction (baseline) and results per commit (pipeline)")
	flag.IntVar(&o.submitters, "submitters", 8, "concurrent submitters (like API clients)")
	flag.StringVar(&o.intake, "intake", "single", "how requests go in: single (Submit, one per call) or batch (SubmitBatch, -batch per call)")
	flag.StringVar(&o.sync, "sync", "FULL", "SQLite synchronous pragma for both runs: FULL or NORMAL")
	stores := flag.String("stores", "sqlite", "stores to run on, comma-separated: sqlite, postgres")
	workers := flag.String("workers", "1", "worker counts to run, comma-separated (such as 1,2,4)")
	flag.StringVar(&o.dsn, "dsn", os.Getenv("ERASURE_TEST_POSTGRES"), "PostgreSQL database for -stores postgres (a schema per run is created and dropped)")
	flag.IntVar(&o.grow, "grow", 0, "also run on a store already holding this many finished requests (such as 1000000)")
	flag.BoolVar(&o.api, "api", false, "measure the API's request listing and lookup after each run")
	flag.IntVar(&o.apiCalls, "api-calls", 2000, "calls per API measurement")
	flag.BoolVar(&o.river, "river", false, "run the River peer (bench/river, on PostgreSQL) beside")
	flag.StringVar(&o.riverDir, "river-dir", "bench/river", "where the River peer's module is")
	flag.IntVar(&o.riverJobs, "river-jobs", 20000, "jobs of the River peer")
	flag.BoolVar(&o.indexed, "indexed", true, "also measure baseline+: the baseline's rows with the indexes a task store needs and a lease update")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the pipeline runs to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var ws []int
	for _, s := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 64 {
			log.Fatalf("-workers: %q is not a count from 1 to 64", s)
		}
		ws = append(ws, n)
	}
	kinds := strings.Split(*stores, ",")
	for _, k := range kinds {
		if k != "sqlite" && k != "postgres" {
			log.Fatalf("-stores: %q is not sqlite or postgres", k)
		}
		if k == "postgres" && o.dsn == "" {
			log.Fatal("-stores postgres needs -dsn or $ERASURE_TEST_POSTGRES")
		}
	}
	tasks := o.requests * o.datasets
	fmt.Printf("pipeline bench: %d requests × %d datasets = %d tasks, intake %s, results per commit %d\n", o.requests, o.datasets, tasks, o.intake, o.batch)
	type row struct {
		kind       string
		workers    int
		base, pipe float64 // tasks/s
	}
	var rows []row
	for _, kind := range kinds {
		for _, w := range ws {
			r, err := runOnce(o, kind, w, 0)
			if err != nil {
				log.Fatalf("%s, %d workers: %v", kind, w, err)
			}
			rows = append(rows, row{kind, w, r.baseRate(tasks), r.pipeRate(tasks)})
		}
		if o.grow > 0 {
			if err := grow(o, kind, ws[0]); err != nil {
				log.Fatalf("%s, grow: %v", kind, err)
			}
		}
	}
	if o.river {
		if err := river(o); err != nil {
			fmt.Printf("river    unavailable: %v\n", err)
		}
	}
	fmt.Println("summary  store     workers  baseline tasks/s  pipeline tasks/s  pipeline ÷ baseline  ÷ 1 worker")
	first := map[string]float64{}
	for _, r := range rows {
		if r.workers == ws[0] {
			first[r.kind] = r.pipe
		}
		fmt.Printf("summary  %-9s %7d  %16.0f  %16.0f  %19.2f  %10.2f\n", r.kind, r.workers, r.base, r.pipe, r.pipe/r.base, r.pipe/first[r.kind])
	}
}

// result is one configuration's figures.
type result struct {
	base, submit, execute time.Duration
	api                   map[string]float64 // calls/s by name
}

func (r result) baseRate(tasks int) float64 { return float64(tasks) / r.base.Seconds() }
func (r result) pipeRate(tasks int) float64 { return float64(tasks) / (r.submit + r.execute).Seconds() }

// runOnce runs the baseline, the pipeline and (-api) the API with w workers on a fresh store of
// kind.
func runOnce(o options, kind string, w, preload int) (result, error) {
	ctx := context.Background()
	var res result
	e, err := setup(ctx, o, kind, w, preload)
	if err != nil {
		return res, err
	}
	defer e.close()
	if res.base, err = e.baseline(ctx); err != nil {
		return res, err
	}
	if o.indexed {
		if err := e.indexedBaseline(ctx); err != nil {
			return res, err
		}
	}
	if res.submit, res.execute, err = e.pipeline(ctx); err != nil {
		return res, err
	}
	if o.api {
		if res.api, err = e.measureAPI(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// grow compares, on stores of kind, the pipeline and (-api) the API on an empty store and on
// one holding o.grow finished requests: both stores open at once and measured in turns (two
// pipeline runs each, three API rounds each), so that the machine's other load hits both alike;
// each keeps its best.
func grow(o options, kind string, w int) error {
	ctx := context.Background()
	tasks := o.requests * o.datasets
	empty, err := setup(ctx, o, kind, w, 0)
	if err != nil {
		return err
	}
	defer empty.close()
	grown, err := setup(ctx, o, kind, w, o.grow)
	if err != nil {
		return err
	}
	defer grown.close()
	best := map[*env]float64{}
	apiBest := map[*env]map[string]float64{empty: {}, grown: {}}
	for round := 0; round < 2; round++ {
		for _, e := range []*env{empty, grown} {
			submit, execute, err := e.pipeline(ctx)
			if err != nil {
				return err
			}
			best[e] = max(best[e], float64(tasks)/(submit+execute).Seconds())
		}
	}
	if o.api {
		for round := 0; round < 3; round++ {
			for _, e := range []*env{empty, grown} {
				got, err := e.measureAPI(ctx)
				if err != nil {
					return err
				}
				for k, v := range got {
					apiBest[e][k] = max(apiBest[e][k], v)
				}
			}
		}
	}
	fmt.Printf("%-8s grow     %d finished requests already in the store: pipeline %.0f tasks/s vs %.0f on an empty store = %.2f  [best of 2 runs each, in turns]\n",
		kind, o.grow, best[grown], best[empty], best[grown]/best[empty])
	if o.api {
		for _, name := range apiNames {
			e, g := apiBest[empty][name], apiBest[grown][name]
			fmt.Printf("%-8s grow     API %-44s %7.0f calls/s vs %7.0f on an empty store = %.2f  [best of 3 rounds each, in turns]\n", kind, name, g, e, g/e)
		}
	}
	return nil
}

// env is a store of one kind opened for w workers, with the datasets and services over it.
type env struct {
	o       options
	kind    string
	w       int
	t       *target
	h       *audit.Hasher
	handles []*sqlstore.DB
	svcs    []*pipeline.Service
	m       map[string]*erasure.Dataset
	conn    *noop
	runs    int // pipeline runs so far (each submits users of its own)
	// baseRate is the baseline's tasks/s, once measured; indexedRate the indexed baseline's.
	baseRate, indexedRate float64
}

func setup(ctx context.Context, o options, kind string, w, preload int) (*env, error) {
	t, err := newTarget(ctx, kind, o)
	if err != nil {
		return nil, err
	}
	e := &env{o: o, kind: kind, w: w, t: t, conn: &noop{}, m: map[string]*erasure.Dataset{}}
	e.h, _ = audit.NewHasher([]byte("bench-key-0123456789abcdef"))
	if preload > 0 {
		start := time.Now()
		st, err := t.open(ctx, e.h, 4)
		if err != nil {
			e.close()
			return nil, err
		}
		err = t.preload(ctx, preload, o.datasets)
		st.Close()
		if err != nil {
			e.close()
			return nil, fmt.Errorf("preload: %w", err)
		}
		fmt.Printf("%-8s preload  %d finished requests × %d tasks written in %v\n", kind, preload, o.datasets, time.Since(start).Round(time.Second))
	}
	// The handles: one per worker on PostgreSQL, one for all on SQLite.
	for i := 0; i < w; i++ {
		if kind == "sqlite" && i > 0 {
			e.handles = append(e.handles, e.handles[0])
			continue
		}
		st, err := t.open(ctx, e.h, max(4, 16/w))
		if err != nil {
			e.close()
			return nil, err
		}
		e.handles = append(e.handles, st)
	}
	var ds []*erasure.Dataset
	for i := 0; i < o.datasets; i++ {
		d := &erasure.Dataset{Name: fmt.Sprintf("ds%d", i), Owner: "bench", Connector: "noop", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Conn: e.conn,
			Policy: erasure.Policy{Deadline: time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 10 * time.Second}}
		ds = append(ds, d)
		e.m[d.Name] = d
	}
	for _, st := range e.handles {
		e.svcs = append(e.svcs, &pipeline.Service{Store: st, Hasher: e.h, Chain: e.h.Chain(), Registered: ds, Identifiers: []string{"user_id"}, DefaultDeadline: time.Hour})
	}
	return e, nil
}

func (e *env) close() {
	seen := map[*sqlstore.DB]bool{}
	for _, st := range e.handles {
		if !seen[st] {
			seen[st] = true
			st.Close()
		}
	}
	e.t.close()
}

// baseline runs the target's baseline for the run's tasks with w writers, and prints it.
func (e *env) baseline(ctx context.Context) (time.Duration, error) {
	tasks := e.o.requests * e.o.datasets
	d, err := e.t.baseline(ctx, tasks, e.o.batch, e.w, false)
	if err != nil {
		return 0, fmt.Errorf("baseline: %w", err)
	}
	fmt.Printf("%-8s %d worker%s baseline  %d task rows inserted then updated, %d per transaction, %d writer%s: %v  (%.0f tasks/s)\n",
		e.kind, e.w, plural(e.w), tasks, e.o.batch, e.w, plural(e.w), d.Round(time.Millisecond), float64(tasks)/d.Seconds())
	e.baseRate = float64(tasks) / d.Seconds()
	return d, nil
}

// indexedBaseline measures, for comparison only, the same rows with what any store of tasks
// needs: an index by request, an index of due tasks and one of each dataset's open tasks
// (partial, as the store's are), and a lease step (an update to running, due at the lease's
// end) between the insert and the finishing update.
func (e *env) indexedBaseline(ctx context.Context) error {
	tasks := e.o.requests * e.o.datasets
	d, err := e.t.baseline(ctx, tasks, e.o.batch, e.w, true)
	if err != nil {
		return fmt.Errorf("indexed baseline: %w", err)
	}
	e.indexedRate = float64(tasks) / d.Seconds()
	fmt.Printf("%-8s %d worker%s baseline+ the same with 3 indexes (by request, due, dataset open) and a lease update: %v  (%.0f tasks/s)\n",
		e.kind, e.w, plural(e.w), d.Round(time.Millisecond), e.indexedRate)
	return nil
}

// pipeline submits the run's requests (users of its own) and runs them to completion with the
// workers, and prints it.
func (e *env) pipeline(ctx context.Context) (submit, execute time.Duration, err error) {
	o, tasks := e.o, e.o.requests*e.o.datasets
	offset := int64(e.runs) * int64(o.requests)
	e.runs++
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, o.submitters)
	per := 1
	if o.intake == "batch" {
		per = o.batch
	}
	for s := 0; s < o.submitters; s++ {
		// Requests go in through one process, as in a fleet (serve takes the API, the
		// workers execute): spreading the submitters over every worker's handle would split
		// the group commit's batches, and the intake would slow as workers are added.
		svc := e.svcs[0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := next.Add(int64(per)) - int64(per)
				if first >= int64(o.requests) {
					return
				}
				var subs []erasure.Submission
				for i := first; i < min(first+int64(per), int64(o.requests)); i++ {
					subs = append(subs, erasure.Submission{Subject: []erasure.Identifier{{Type: "user_id", Value: fmt.Sprint(offset + i + 1)}}, Reason: "bench", Actor: "bench"})
				}
				var err error
				if o.intake == "batch" {
					var rs []erasure.SubmitResult
					if rs, err = svc.SubmitBatch(ctx, subs); err == nil {
						for _, r := range rs {
							if r.Err != nil {
								err = r.Err
							}
						}
					}
				} else {
					_, _, err = svc.Submit(ctx, subs[0])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, fmt.Errorf("submit: %w", err)
	}
	submit = time.Since(start)

	// Execute: the engines until every task's result is committed.
	start = time.Now()
	erased := e.conn.n.Load()
	var committed atomic.Int64
	var stats storeStats
	rctx, cancel := context.WithCancel(ctx)
	var engines sync.WaitGroup
	for i, st := range e.handles {
		cs := &countingStore{Store: st, stats: &stats, committed: &committed}
		eng := &pipeline.Engine{Store: cs, Datasets: e.m, Owner: fmt.Sprintf("bench-%d", i), Workers: 16, Batch: o.batch, Poll: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
		engines.Add(1)
		go func() { defer engines.Done(); eng.Run(rctx) }()
	}
	for committed.Load() < int64(tasks) {
		time.Sleep(2 * time.Millisecond)
	}
	execute = time.Since(start)
	cancel()
	engines.Wait()
	if got := e.conn.n.Load() - erased; got < int64(tasks) {
		return 0, 0, fmt.Errorf("erased %d times, want at least %d", got, tasks)
	}
	rate := float64(tasks) / (submit + execute).Seconds()
	ratio := ""
	if e.baseRate > 0 {
		ratio = fmt.Sprintf("  = %.2f × baseline", rate/e.baseRate)
	}
	if e.indexedRate > 0 {
		ratio += fmt.Sprintf(" (%.2f × baseline+)", rate/e.indexedRate)
	}
	fmt.Printf("%-8s %d worker%s pipeline  submit %v (%.0f requests/s, %d submitters), execute %v, total %v  (%.0f tasks/s)%s\n",
		e.kind, e.w, plural(e.w), submit.Round(time.Millisecond), float64(o.requests)/submit.Seconds(), o.submitters, execute.Round(time.Millisecond),
		(submit + execute).Round(time.Millisecond), rate, ratio)
	fmt.Printf("%-8s          execute: %d lease calls (%d tasks), %d finish calls (%d results, with the next lease), %v in lease, %v in finish (summed over workers)\n", e.kind,
		stats.leases.Load(), stats.leased.Load(), stats.finishes.Load(), stats.finished.Load(), time.Duration(stats.leaseNS.Load()).Round(time.Millisecond), time.Duration(stats.finishNS.Load()).Round(time.Millisecond))
	return submit, execute, nil
}

// measureAPI measures the API on the env's store, and prints it.
func (e *env) measureAPI(ctx context.Context) (map[string]float64, error) {
	got, err := measureAPI(ctx, e.svcs[0], e.o.apiCalls)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	for _, name := range apiNames {
		fmt.Printf("%-8s          API %-44s %7.0f calls/s\n", e.kind, name, got[name])
	}
	return got, nil
}

func plural(n int) string {
	if n == 1 {
		return " "
	}
	return "s"
}

// target is a fresh database for one configuration: a SQLite file, or a PostgreSQL schema.
type target struct {
	kind, sync string
	dir        string // SQLite
	dsn        string // PostgreSQL: the schema's DSN
	adminDSN   string
	schema     string
}

func newTarget(ctx context.Context, kind string, o options) (*target, error) {
	t := &target{kind: kind, sync: o.sync}
	if kind == "sqlite" {
		dir, err := os.MkdirTemp("", "erasure-bench-")
		if err != nil {
			return nil, err
		}
		t.dir = dir
		return t, nil
	}
	b := make([]byte, 5)
	rand.Read(b)
	t.schema, t.adminDSN = "bench_"+hex.EncodeToString(b), o.dsn
	db, err := sql.Open("pgx", o.dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+t.schema); err != nil {
		return nil, err
	}
	u, err := url.Parse(o.dsn)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("search_path", t.schema)
	u.RawQuery = q.Encode()
	t.dsn = u.String()
	return t, nil
}

func (t *target) close() {
	if t.kind == "sqlite" {
		os.RemoveAll(t.dir)
		return
	}
	db, err := sql.Open("pgx", t.adminDSN)
	if err == nil {
		db.Exec(`DROP SCHEMA ` + t.schema + ` CASCADE`)
		db.Close()
	}
}

// open opens a store handle (a pool of maxConns on PostgreSQL).
func (t *target) open(ctx context.Context, h *audit.Hasher, maxConns int) (*sqlstore.DB, error) {
	if t.kind == "sqlite" {
		return sqlite.Open(ctx, filepath.Join(t.dir, "erasure.db"), sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: t.sync})
	}
	return postgres.Open(ctx, t.dsn, postgres.Options{Hasher: h, Chain: h.Chain(), MaxConns: maxConns})
}

// raw opens the database plainly, for the baseline and the preload: SQLite with the store's
// pragmas and one connection (writes are serial there), PostgreSQL with conns connections.
func (t *target) raw(conns int) (*sql.DB, error) {
	if t.kind == "sqlite" {
		db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(t.dir, "erasure.db"), strings.ToUpper(t.sync))+"&_txlock=immediate")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		return db, nil
	}
	db, err := sql.Open("pgx", t.dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// ph returns the i-th placeholder (1-based) of the dialect.
func (t *target) ph(i int) string {
	if t.kind == "sqlite" {
		return "?"
	}
	return "$" + strconv.Itoa(i)
}

// baseline inserts n task rows then updates each, batch rows per transaction, from writers
// goroutines (each with its share), in a table of its own in the same database. Indexed, the
// table has the three indexes of indexedBaseline and each row is updated twice: leased
// (running, due at the lease's end), then done.
func (t *target) baseline(ctx context.Context, n, batch, writers int, indexed bool) (time.Duration, error) {
	db, err := t.raw(writers)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	id := "INTEGER PRIMARY KEY"
	if t.kind == "postgres" {
		id = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
	}
	table := "bench_baseline"
	if indexed {
		table = "bench_baseline_indexed"
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+table+` (id `+id+`, request_id TEXT NOT NULL, dataset TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, updated_at BIGINT NOT NULL, due_at BIGINT NOT NULL DEFAULT 0)`); err != nil {
		return 0, err
	}
	steps := []string{fmt.Sprintf(`UPDATE %s SET state = 'done', attempts = attempts + 1, updated_at = %s WHERE id = %s`, table, t.ph(1), t.ph(2))}
	if indexed {
		for _, q := range []string{
			`CREATE INDEX ` + table + `_request ON ` + table + ` (request_id)`,
			`CREATE INDEX ` + table + `_due ON ` + table + ` (due_at, request_id) WHERE state IN ('pending', 'running')`,
			`CREATE INDEX ` + table + `_open ON ` + table + ` (dataset, request_id) WHERE state <> 'done'`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return 0, err
			}
		}
		lease := fmt.Sprintf(`UPDATE %s SET state = 'running', attempts = attempts + 1, due_at = CAST(%s AS BIGINT) + 60000 WHERE id = %s`, table, t.ph(1), t.ph(2))
		steps = []string{lease, steps[0]}
	}
	insert := fmt.Sprintf(`INSERT INTO %s (request_id, dataset, state, attempts, updated_at) VALUES (%s, %s, 'pending', 0, %s) RETURNING id`, table, t.ph(1), t.ph(2), t.ph(3))
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		lo, hi := n*w/writers, n*(w+1)/writers
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ids []int64
			for i := lo; i < hi; i += batch {
				err := inTx(ctx, db, insert, func(st *sql.Stmt) error {
					for j := i; j < min(hi, i+batch); j++ {
						var id int64
						if err := st.QueryRowContext(ctx, fmt.Sprintf("r_%d", j/10), fmt.Sprintf("ds%d", j%10), time.Now().UnixMilli()).Scan(&id); err != nil {
							return err
						}
						ids = append(ids, id)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
			for _, update := range steps {
				for i := 0; i < len(ids); i += batch {
					err := inTx(ctx, db, update, func(st *sql.Stmt) error {
						for _, id := range ids[i:min(len(ids), i+batch)] {
							if _, err := st.ExecContext(ctx, time.Now().UnixMilli(), id); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

// inTx runs fn with statement q prepared in a transaction of db, and commits; on an error the
// transaction is rolled back (left open, it would hold its locks until the schema's drop).
func inTx(ctx context.Context, db *sql.DB, q string, fn func(st *sql.Stmt) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := fn(st); err != nil {
		return err
	}
	return tx.Commit()
}

// preload writes n finished (completed) requests with datasets done tasks each and one
// identifier (hashed, its value gone), as the store holds ended requests, by SQL in the
// database. Their ids sort before any new request's. No audit events are written for them.
func (t *target) preload(ctx context.Context, n, datasets int) error {
	db, err := t.raw(1)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().Add(-24 * time.Hour).UnixMilli()
	var series, id string
	if t.kind == "sqlite" {
		series = `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < %d) `
		id = `printf('r_0%025d', i)`
	} else {
		series = `WITH s(i) AS (SELECT generate_series(0, %d)) `
		id = `'r_0' || lpad(i::text, 25, '0')`
	}
	const chunk = 200000
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk) - 1
		s := fmt.Sprintf(series, hi-lo)
		stmts := []string{
			s + fmt.Sprintf(`INSERT INTO requests (id, status, reason, deadline, submitted_by, fingerprint, created_at, updated_at, finished_at)
				SELECT %s, 'completed', 'retention', %d, 'preload', 'fp', %d, %d, %d FROM (SELECT i + %d AS i FROM s) x`, id, now+30*86400000, now, now, now, lo),
			s + fmt.Sprintf(`INSERT INTO identifiers (request_id, type, value, hash, found_by, created_at)
				SELECT %s, 'user_id', NULL, 'user_id:' || i, 'submitted', %d FROM (SELECT i + %d AS i FROM s) x`, id, now, lo),
		}
		for d := 0; d < datasets; d++ {
			stmts = append(stmts, s+fmt.Sprintf(`INSERT INTO tasks (request_id, dataset, kind, method, state, keys, attempts, removed, verified_at, due_at, created_at, updated_at, finished_at)
				SELECT %s, 'ds%d', 'erase', 'realtime', 'done', 'user_id', 1, 1, %d, %d, %d, %d, %d FROM (SELECT i + %d AS i FROM s) x`, id, d, now, now, now, now, now, lo))
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	_, err = db.ExecContext(ctx, `ANALYZE`)
	return err
}

// storeStats counts the executors' store calls, to show where their time goes.
type storeStats struct {
	leases, leased, finishes, finished, leaseNS, finishNS atomic.Int64
}

// countingStore counts an executor's store calls and the done results committed.
type countingStore struct {
	erasure.Store
	stats     *storeStats
	committed *atomic.Int64
}

func (c *countingStore) LeaseTasks(ctx context.Context, owner string, n int, lease time.Duration) ([]erasure.Task, error) {
	start := time.Now()
	t, err := c.Store.LeaseTasks(ctx, owner, n, lease)
	c.stats.leaseNS.Add(int64(time.Since(start)))
	c.stats.leases.Add(1)
	c.stats.leased.Add(int64(len(t)))
	return t, err
}

func (c *countingStore) FinishTasks(ctx context.Context, rs []erasure.TaskResult) ([]int64, error) {
	start := time.Now()
	dropped, err := c.Store.FinishTasks(ctx, rs)
	c.finished(rs, dropped, err, start)
	return dropped, err
}

// FinishAndLease is the engine's commit, which takes the next lease in the same transaction.
func (c *countingStore) FinishAndLease(ctx context.Context, rs []erasure.TaskResult, owner string, n int, lease time.Duration) ([]int64, []erasure.Task, error) {
	start := time.Now()
	dropped, t, err := c.Store.FinishAndLease(ctx, rs, owner, n, lease)
	c.stats.leased.Add(int64(len(t)))
	c.finished(rs, dropped, err, start)
	return dropped, t, err
}

func (c *countingStore) finished(rs []erasure.TaskResult, dropped []int64, err error, start time.Time) {
	c.stats.finishNS.Add(int64(time.Since(start)))
	c.stats.finishes.Add(1)
	c.stats.finished.Add(int64(len(rs)))
	if err != nil {
		return
	}
	lost := map[int64]bool{}
	for _, id := range dropped {
		lost[id] = true
	}
	for _, r := range rs {
		if r.State == erasure.TaskDone && !lost[r.TaskID] {
			c.committed.Add(1)
		}
	}
}

var apiNames = []string{"GET /v1/requests?limit=100", "GET /v1/requests?status=completed&limit=100", "GET /v1/requests?cursor=…&limit=100 (page 5)", "GET /v1/requests/{id}"}

// measureAPI calls the API's request listing and lookup, in this process (no network),
// calls times each with 4 callers, and returns calls/s by name.
func measureAPI(ctx context.Context, svc *pipeline.Service, calls int) (map[string]float64, error) {
	const secret = "bench-api-token-0123456789"
	h := api.New(api.Config{Service: svc, Tokens: []api.Token{{Name: "bench", Secret: secret, Roles: []string{"read"}}}, Logger: slog.New(slog.DiscardHandler)}).Handler()
	do := func(path string) (*httptest.ResponseRecorder, error) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d %s", path, w.Code, w.Body.String())
		}
		return w, nil
	}
	// The ids of the newest requests (the run's), and the cursor of page 5.
	page, err := svc.Requests(ctx, erasure.RequestFilter{Limit: 500})
	if err != nil || len(page.Requests) == 0 {
		return nil, fmt.Errorf("listing: %v", err)
	}
	var ids []string
	for _, r := range page.Requests {
		ids = append(ids, r.ID)
	}
	cursor := page.Requests[min(399, len(page.Requests)-1)].ID
	paths := map[string]func(i int) string{
		apiNames[0]: func(int) string { return "/v1/requests?limit=100" },
		apiNames[1]: func(int) string { return "/v1/requests?status=completed&limit=100" },
		apiNames[2]: func(int) string { return "/v1/requests?limit=100&cursor=" + cursor },
		apiNames[3]: func(i int) string { return "/v1/requests/" + ids[(i*7919)%len(ids)] },
	}
	out := map[string]float64{}
	for _, name := range apiNames {
		path := paths[name]
		if _, err := do(path(0)); err != nil {
			return nil, err
		}
		var next atomic.Int64
		var failed atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > calls {
						return
					}
					if _, err := do(path(i)); err != nil {
						failed.Store(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			return nil, err
		}
		out[name] = float64(calls) / time.Since(start).Seconds()
	}
	return out, nil
}

// river runs the River peer (bench/river, its own module) on the same PostgreSQL.
func river(o options) error {
	if o.dsn == "" {
		return fmt.Errorf("no PostgreSQL (-dsn)")
	}
	cmd := exec.Command("go", "run", "-tags", "river", ".", "-dsn", o.dsn, "-jobs", strconv.Itoa(o.riverJobs))
	cmd.Dir = o.riverDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	fmt.Print(string(out))
	return nil
}
