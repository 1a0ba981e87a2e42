//go:build river

// Command river is the peer of bench/pipeline for task throughput: River (riverqueue/river) on
// the same PostgreSQL, inserting then working N no-op jobs, with its defaults and tuned. It is
// a module of its own (go.mod here) behind the build tag "river", never a dependency of
// erasure; bench/pipeline runs it beside its own figures with -river.
//
//	cd bench/river && go run -tags river . -dsn postgres://…/db -jobs 20000
//
// A schema is created for the run and dropped after. Each line: jobs inserted (InsertMany, in
// batches), then worked until every one completed; jobs/s over both.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// NoopArgs is a job that does nothing.
type NoopArgs struct {
	N int `json:"n"`
}

func (NoopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[NoopArgs]
	done *atomic.Int64
}

func (w *noopWorker) Work(ctx context.Context, job *river.Job[NoopArgs]) error {
	w.done.Add(1)
	return nil
}

func main() {
	dsn := flag.String("dsn", os.Getenv("ERASURE_TEST_POSTGRES"), "the PostgreSQL database (default $ERASURE_TEST_POSTGRES)")
	jobs := flag.Int("jobs", 20000, "jobs to insert and work")
	batch := flag.Int("batch", 1000, "jobs per InsertMany")
	tunedWorkers := flag.Int("tuned-workers", 1000, "MaxWorkers of the tuned run")
	defaults := flag.Bool("defaults", true, "also run with River's default fetch settings (100 workers, 100 ms poll)")
	flag.Parse()
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "river: give -dsn or set ERASURE_TEST_POSTGRES")
		os.Exit(2)
	}
	ctx := context.Background()
	if *defaults {
		if err := run(ctx, *dsn, "defaults", *jobs, *batch, 100, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "river:", err)
			os.Exit(1)
		}
	}
	if err := run(ctx, *dsn, "tuned", *jobs, *batch, *tunedWorkers, 10*time.Millisecond, 5*time.Millisecond); err != nil {
		fmt.Fprintln(os.Stderr, "river:", err)
		os.Exit(1)
	}
}

// run inserts and works jobs in a fresh schema. poll and cooldown 0 keep River's defaults.
func run(ctx context.Context, dsn, name string, jobs, batch, workers int, poll, cooldown time.Duration) error {
	schema := "river_bench_" + randomHex(5)
	admin, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("pool_max_conns", "32")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		return err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	var done atomic.Int64
	ws := river.NewWorkers()
	river.AddWorker(ws, &noopWorker{done: &done})
	cfg := &river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}}, Workers: ws}
	if poll > 0 {
		cfg.FetchPollInterval, cfg.FetchCooldown = poll, cooldown
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < jobs; i += batch {
		params := make([]river.InsertManyParams, 0, batch)
		for j := i; j < min(jobs, i+batch); j++ {
			params = append(params, river.InsertManyParams{Args: NoopArgs{N: j}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return err
		}
	}
	inserted := time.Since(start)
	if err := client.Start(ctx); err != nil {
		return err
	}
	for done.Load() < int64(jobs) {
		time.Sleep(2 * time.Millisecond)
	}
	// Completions are written by River's completer after Work returns: wait for them too.
	for {
		var left int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	total := time.Since(start)
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client.Stop(stop)
	fmt.Printf("river %-8s %d no-op jobs: insert %v, insert+work %v  (%.0f jobs/s; MaxWorkers %d%s)\n", name, jobs, inserted.Round(time.Millisecond), total.Round(time.Millisecond),
		float64(jobs)/total.Seconds(), workers, map[bool]string{true: fmt.Sprintf(", poll %v, cooldown %v", poll, cooldown), false: ", fetch defaults"}[poll > 0])
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
