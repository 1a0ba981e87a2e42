// Command sqlerase benchmarks the sql connector on PostgreSQL. It fills a table with -rows rows
// (10 per user, indexed by user_id) and erases -subjects users three ways, each on its own
// users of the same table:
//
//	(a) direct     one prepared DELETE per subject over one connection: the baseline
//	(b) connector  the sql connector's Erase then Holds per subject, one after the other
//	(g) guarded    the same under a guard (-max-removed, default 10000 as in the registry): the
//	               subject's rows counted and deleted atomically (one statement on PostgreSQL)
//	(c) pipeline   requests submitted to the pipeline (SQLite store) and executed by its
//	               engine with -workers workers: planning, leasing, erase (guarded by
//	               -max-removed, as every dataset is by default), verify, audit; one
//	               submitter, one Submit (one durable commit) per subject
//	(d) batched    the pipeline again, the subjects submitted as a bulk intake does
//	               (SubmitBatch of -batch, one transaction each)
//
// and prints the time per subject of each and its ratio to (a).
//
//	go run ./bench/sqlerase -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"erasure"
	"erasure/audit"
	sqlconn "erasure/connector/sql"
	"erasure/pipeline"
	"erasure/store/sqlite"
)

const rowsPerUser = 10

func main() {
	dsn := flag.String("dsn", envOr("ERASURE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL URL")
	rows := flag.Int("rows", 1_000_000, "rows in the table")
	subjects := flag.Int("subjects", 10_000, "subjects erased by each mode")
	workers := flag.Int("workers", 16, "pipeline workers for (c) and (d)")
	maxRemoved := flag.Int64("max-removed", 10000, "the guard of (g), (c) and (d); 0 runs them unguarded")
	batch := flag.Int("batch", 1000, "submissions per SubmitBatch in (d)")
	flag.Parse()
	users := *rows / rowsPerUser
	if 5**subjects > users {
		log.Fatalf("-rows %d holds %d users: too few for 5 × %d subjects", *rows, users, *subjects)
	}
	ctx := context.Background()

	admin, err := sql.Open("pgx", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("bench_sqlerase_%d", time.Now().UnixNano())
	must(admin.ExecContext(ctx, "CREATE SCHEMA "+schema))
	defer admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	u, err := url.Parse(*dsn)
	if err != nil {
		log.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	sdsn := u.String()

	start := time.Now()
	must(admin.ExecContext(ctx, "CREATE TABLE "+schema+".events (id bigserial PRIMARY KEY, user_id bigint NOT NULL, payload text)"))
	must(admin.ExecContext(ctx, "INSERT INTO "+schema+".events (user_id, payload) SELECT g % $1, md5(g::text) FROM generate_series(0, $2 - 1) g", users, *rows))
	must(admin.ExecContext(ctx, "CREATE INDEX ON "+schema+".events (user_id)"))
	must(admin.ExecContext(ctx, "VACUUM ANALYZE "+schema+".events"))
	fmt.Printf("setup     %d rows, %d users, %d rows each: %v\n", *rows, users, rowsPerUser, time.Since(start).Round(time.Millisecond))

	n := *subjects
	a := direct(ctx, sdsn, 0, n)
	report("direct", "one DELETE per subject, one connection", a, n, a)
	check(ctx, admin, schema, 0, n)

	b := connector(ctx, sdsn, n, 2*n, ctx)
	report("connector", "Erase + Holds per subject, sequential", b, n, a)
	check(ctx, admin, schema, n, 2*n)

	g := connector(ctx, sdsn, 2*n, 3*n, erasure.ContextWithGuard(ctx, erasure.Guard{MaxRemoved: *maxRemoved}))
	report("guarded", "the same under a guard: count and delete atomically", g, n, a)
	check(ctx, admin, schema, 2*n, 3*n)

	c, submitted := pipe(ctx, sdsn, 3*n, 4*n, *workers, 1, *maxRemoved)
	report("pipeline", fmt.Sprintf("submit + execute (guarded erase, verify, audit), %d workers, SQLite store", *workers), c, n, a)
	fmt.Printf("          of which the last submission returned after %v (one submitter, one Submit each; the engine runs meanwhile)\n", submitted.Round(time.Millisecond))
	check(ctx, admin, schema, 3*n, 4*n)

	bc, bsubmitted := pipe(ctx, sdsn, 4*n, 5*n, *workers, *batch, *maxRemoved)
	report("batched", fmt.Sprintf("the same, submitted as a bulk intake does (SubmitBatch of %d)", *batch), bc, n, a)
	fmt.Printf("          of which the last batch returned after %v\n", bsubmitted.Round(time.Millisecond))
	check(ctx, admin, schema, 4*n, 5*n)

	var left int64
	admin.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".events").Scan(&left)
	fmt.Printf("done      %d rows left of %d (%d erased)\n", left, *rows, int64(*rows)-left)
}

func direct(ctx context.Context, dsn string, from, to int) time.Duration {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	st, err := db.PrepareContext(ctx, "DELETE FROM events WHERE user_id = $1")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	for u := from; u < to; u++ {
		must(st.ExecContext(ctx, int64(u)))
	}
	return time.Since(start)
}

// connector erases users [from, to) with the connector, each Erase under ectx (which carries
// a guard or not).
func connector(ctx context.Context, dsn string, from, to int, ectx context.Context) time.Duration {
	ds := &erasure.Dataset{Name: "bench.events"}
	conn, err := sqlconn.New(ds, sqlconn.Config{Driver: "postgres", DSN: dsn, Table: "events", Key: &sqlconn.Key{Column: "user_id", Identifier: "user_id"}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Check(ctx); err != nil { // connect before the clock starts, like (a)
		log.Fatal(err)
	}
	start := time.Now()
	for u := from; u < to; u++ {
		s := erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(u)})
		if _, err := conn.Erase(ectx, s); err != nil {
			log.Fatal(err)
		}
		if holds, err := conn.Holds(ctx, s); err != nil || holds {
			log.Fatalf("Holds after Erase = %v, %v", holds, err)
		}
	}
	return time.Since(start)
}

// pipe returns the time until every request completed, and the time the submissions took.
func pipe(ctx context.Context, dsn string, from, to, workers, batch int, maxRemoved int64) (time.Duration, time.Duration) {
	dir, err := os.MkdirTemp("", "erasure-sqlerase-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	h, _ := audit.NewHasher([]byte("bench-key-0123456789abcdef"))
	st, err := sqlite.Open(ctx, filepath.Join(dir, "store.db"), sqlite.Options{Hasher: h, Chain: h.Chain()})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	ds := &erasure.Dataset{Name: "bench.events", Owner: "bench", Connector: "sql", Method: erasure.MethodRealtime,
		Policy: erasure.Policy{Deadline: time.Hour, MaxAttempts: 3, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Minute}, Timeout: 30 * time.Second,
			Guard: erasure.Guard{MaxRemoved: maxRemoved}}}
	conn, err := sqlconn.New(ds, sqlconn.Config{Driver: "postgres", DSN: dsn, Table: "events", Key: &sqlconn.Key{Column: "user_id", Identifier: "user_id"}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Check(ctx); err != nil {
		log.Fatal(err)
	}
	ds.Conn = conn
	eng := &pipeline.Engine{Store: st, Datasets: map[string]*erasure.Dataset{ds.Name: ds}, Workers: workers, Poll: 5 * time.Millisecond}
	svc := &pipeline.Service{Store: st, Hasher: h, Chain: h.Chain(), Registered: []*erasure.Dataset{ds}, Identifiers: []string{"user_id"}, DefaultDeadline: time.Hour, Engine: eng}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { eng.Run(rctx); close(done) }()
	var subs []erasure.Submission
	for u := from; u < to; u++ {
		sub := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: strconv.Itoa(u)}), Reason: "bench", Actor: "bench"}
		if batch <= 1 {
			if _, _, err := svc.Submit(ctx, sub); err != nil {
				log.Fatal(err)
			}
			continue
		}
		if subs = append(subs, sub); len(subs) == batch || u == to-1 {
			rs, err := svc.SubmitBatch(ctx, subs)
			if err != nil {
				log.Fatal(err)
			}
			for _, r := range rs {
				if r.Err != nil {
					log.Fatal(r.Err)
				}
			}
			subs = subs[:0]
		}
	}
	submitted := time.Since(start)
	want := to - from
	for {
		var ended, failed int
		err := st.ReadSQL().QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'failed') FROM requests WHERE status IN ('completed', 'failed')`).Scan(&ended, &failed)
		if err != nil {
			log.Fatal(err)
		}
		if failed > 0 {
			log.Fatalf("pipeline: %d requests failed", failed)
		}
		if ended == want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	<-done
	return took, submitted
}

func check(ctx context.Context, db *sql.DB, schema string, from, to int) {
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".events WHERE user_id >= $1 AND user_id < $2", from, to).Scan(&n); err != nil {
		log.Fatal(err)
	}
	if n != 0 {
		log.Fatalf("%d rows of erased users [%d, %d) remain", n, from, to)
	}
}

func report(name, what string, d time.Duration, n int, base time.Duration) {
	fmt.Printf("%-9s %-62s %v total, %v per subject, ratio to direct %.2f\n", name, what, d.Round(time.Millisecond), (d / time.Duration(n)).Round(time.Microsecond), d.Seconds()/base.Seconds())
}

func must(_ sql.Result, err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
