// Command pipeline benchmarks the erasure pipeline on the embedded SQLite store: it plans and
// completes N requests × D datasets with connectors that do no I/O, and prints tasks per
// second next to a baseline measured in the same run: the same number of task rows inserted
// and then updated in SQLite as plainly as possible (prepared statements, batched
// transactions, same pragmas).
//
//	go run ./bench/pipeline -requests 20000 -datasets 10
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"erasure"
	"erasure/audit"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

type noop struct{ n atomic.Int64 }

func (c *noop) Close() error { return nil }
func (c *noop) Erase(ctx context.Context, s erasure.Subject) (erasure.Outcome, error) {
	c.n.Add(1)
	return erasure.Outcome{Removed: 1}, nil
}
func (c *noop) Holds(ctx context.Context, s erasure.Subject) (bool, error) { return false, nil }

func main() {
	requests := flag.Int("requests", 20000, "requests to submit")
	datasets := flag.Int("datasets", 10, "datasets per request")
	batch := flag.Int("batch", 256, "rows per transaction (baseline) and results per commit (pipeline)")
	submitters := flag.Int("submitters", 8, "concurrent submitters (like API clients)")
	syncMode := flag.String("sync", "FULL", "SQLite synchronous pragma for both runs: FULL or NORMAL")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the pipeline run to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "erasure-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tasks := *requests * *datasets

	base := baseline(filepath.Join(dir, "baseline.db"), tasks, *batch, *syncMode)
	fmt.Printf("baseline  %d task rows inserted then updated, %d per transaction: %v  (%.0f tasks/s)\n", tasks, *batch, base.Round(time.Millisecond), float64(tasks)/base.Seconds())

	submit, run := pipe(filepath.Join(dir, "pipeline.db"), *requests, *datasets, *batch, *submitters, *syncMode)
	total := submit + run
	fmt.Printf("pipeline  %d requests × %d datasets: submit %v (%.0f requests/s, %d submitters), execute %v  total %v  (%.0f tasks/s)\n",
		*requests, *datasets, submit.Round(time.Millisecond), float64(*requests)/submit.Seconds(), *submitters, run.Round(time.Millisecond), total.Round(time.Millisecond), float64(tasks)/total.Seconds())
	fmt.Printf("ratio     pipeline ÷ baseline = %.2f (tasks/s)\n", base.Seconds()/total.Seconds())
}

func baseline(path string, n, batch int, syncMode string) time.Duration {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous("+syncMode+")&_txlock=immediate")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, dataset TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, updated_at INTEGER NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		tx, _ := db.Begin()
		st, _ := tx.Prepare(`INSERT INTO tasks (request_id, dataset, state, attempts, updated_at) VALUES (?, ?, 'pending', 0, ?)`)
		for j := i; j < min(n, i+batch); j++ {
			if _, err := st.Exec(fmt.Sprintf("r_%d", j/10), fmt.Sprintf("ds%d", j%10), time.Now().UnixMilli()); err != nil {
				log.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			log.Fatal(err)
		}
	}
	for i := 1; i <= n; i += batch {
		tx, _ := db.Begin()
		st, _ := tx.Prepare(`UPDATE tasks SET state = 'done', attempts = attempts + 1, updated_at = ? WHERE id = ?`)
		for j := i; j < min(n+1, i+batch); j++ {
			if _, err := st.Exec(time.Now().UnixMilli(), j); err != nil {
				log.Fatal(err)
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			log.Fatal(err)
		}
	}
	return time.Since(start)
}

func pipe(path string, requests, datasets, batch, submitters int, syncMode string) (time.Duration, time.Duration) {
	ctx := context.Background()
	h, _ := audit.NewHasher([]byte("bench-key-0123456789abcdef"))
	st, err := sqlite.Open(ctx, path, sqlite.Options{Hasher: h, Chain: h.Chain(), Synchronous: syncMode})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	conn := &noop{}
	var ds []*erasure.Dataset
	m := map[string]*erasure.Dataset{}
	for i := 0; i < datasets; i++ {
		d := &erasure.Dataset{Name: fmt.Sprintf("ds%d", i), Owner: "bench", Connector: "noop", Method: erasure.MethodRealtime, Keys: []string{"user_id"}, Conn: conn,
			Policy: erasure.Policy{Deadline: time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 10 * time.Second}}
		ds = append(ds, d)
		m[d.Name] = d
	}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: ds, Identifiers: []string{"user_id"}, DefaultDeadline: time.Hour}
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < submitters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(requests) {
					return
				}
				_, _, err := svc.Submit(ctx, erasure.Submission{Subject: []erasure.Identifier{{Type: "user_id", Value: fmt.Sprint(i)}}, Reason: "bench", Actor: "bench"})
				if err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	submit := time.Since(start)

	start = time.Now()
	cs := &countingStore{Store: st}
	e := &pipeline.Engine{Store: cs, Datasets: m, Workers: 16, Batch: batch, Poll: 5 * time.Millisecond}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.Run(rctx); close(done) }()
	for {
		p, err := st.Requests(ctx, erasure.RequestFilter{Status: erasure.RequestCompleted, Limit: 1})
		if err != nil {
			log.Fatal(err)
		}
		_ = p
		n, err := completed(ctx, st)
		if err != nil {
			log.Fatal(err)
		}
		if n == requests {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	run := time.Since(start)
	fmt.Printf("          execute: %d lease calls, %d tasks leased, %d finish calls (%d results, with the next lease), %v in lease, %v in finish\n", cs.leases.Load(), cs.leased.Load(), cs.finishes.Load(), cs.finished.Load(), time.Duration(cs.leaseNS.Load()).Round(time.Millisecond), time.Duration(cs.finishNS.Load()).Round(time.Millisecond))
	if got := conn.n.Load(); got != int64(requests*datasets) {
		log.Fatalf("erased %d times, want %d", got, requests*datasets)
	}
	return submit, run
}

func completed(ctx context.Context, st *sqlite.DB) (int, error) {
	var n int
	err := st.ReadSQL().QueryRowContext(ctx, `SELECT count(*) FROM requests WHERE status = 'completed'`).Scan(&n)
	return n, err
}

// countingStore counts the store calls of the executor, to show where its time goes.
type countingStore struct {
	erasure.Store
	leases, leased, finishes, finished, leaseNS, finishNS atomic.Int64
}

func (c *countingStore) LeaseTasks(ctx context.Context, owner string, n int, lease time.Duration) ([]erasure.Task, error) {
	start := time.Now()
	t, err := c.Store.LeaseTasks(ctx, owner, n, lease)
	c.leaseNS.Add(int64(time.Since(start)))
	c.leases.Add(1)
	c.leased.Add(int64(len(t)))
	return t, err
}

func (c *countingStore) FinishAndLease(ctx context.Context, rs []erasure.TaskResult, owner string, n int, lease time.Duration) ([]int64, []erasure.Task, error) {
	start := time.Now()
	d, t, err := c.Store.FinishAndLease(ctx, rs, owner, n, lease)
	c.finishNS.Add(int64(time.Since(start)))
	c.finishes.Add(1)
	c.finished.Add(int64(len(rs)))
	c.leased.Add(int64(len(t)))
	return d, t, err
}

func (c *countingStore) FinishTasks(ctx context.Context, rs []erasure.TaskResult) ([]int64, error) {
	start := time.Now()
	d, err := c.Store.FinishTasks(ctx, rs)
	c.finishNS.Add(int64(time.Since(start)))
	c.finishes.Add(1)
	c.finished.Add(int64(len(rs)))
	return d, err
}
