// Command intake benchmarks the bulk intake: N subjects in one `erasure submit --file` (the
// real binary, built first, against a server in this process, over POST /v1/requests:batch),
// printed next to two figures of the same run on the same store:
//
//   - baseline: the same requests, identifiers and task rows inserted by plain multi-row
//     INSERT statements, one transaction per batch of the same size, in a database of the same
//     kind (SQLite with the store's pragmas, or a schema of the same PostgreSQL);
//   - one by one: a sample submitted with POST /v1/requests by concurrent clients, as an
//     intake without batches would.
//
// The executor does not run: only the intake is measured.
//
//	go run ./bench/intake                                  # SQLite, 100,000 subjects
//	go run ./bench/intake -dsn postgres://…/db             # PostgreSQL (a schema created and dropped)
//	go run ./bench/intake -subjects 20000 -batch 1000 -datasets 3
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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"erasure"
	"erasure/client"
	"erasure/registry"
	"erasure/server"
	"erasure/store/sqlite"
)

// noop is a dataset that erases nothing (the executor does not run here anyway).
type noop struct{}

func (noop) Method() erasure.Method { return erasure.MethodRealtime }
func (noop) Build(b *registry.Build) erasure.Connector {
	b.Dataset.Keys = []string{"user_id"}
	return noopConn{}
}

type noopConn struct{}

func (noopConn) Close() error { return nil }
func (noopConn) Erase(context.Context, erasure.Subject) (erasure.Outcome, error) {
	return erasure.Outcome{}, nil
}

func init() { registry.Register("noop", noop{}) }

const token = "bench-intake-token-0123456789"

var cpuprofile string

func main() {
	subjects := flag.Int("subjects", 100_000, "subjects in the file")
	batch := flag.Int("batch", 1000, "submissions per call (submit --batch) and rows per transaction (baseline)")
	parallel := flag.Int("parallel", 2, "calls in flight (submit --parallel)")
	datasets := flag.Int("datasets", 3, "datasets per request")
	single := flag.Int("single", 2000, "requests of the one-by-one sample")
	clients := flag.Int("clients", 8, "concurrent clients of the one-by-one sample")
	dsn := flag.String("dsn", "", "a PostgreSQL database to run on (a schema is created and dropped); default SQLite")
	bin := flag.String("erasure", "", "the erasure binary (default: built from ./cmd/erasure)")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the server during submit --file to `file`")
	flag.Parse()
	if err := run(*subjects, *batch, *parallel, *datasets, *single, *clients, *dsn, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(subjects, batch, parallel, datasets, single, clients int, dsn, bin string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "erasure-intake-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "erasure")
		out, err := exec.Command("go", "build", "-o", bin, "./cmd/erasure").CombinedOutput()
		if err != nil {
			return fmt.Errorf("building erasure: %v\n%s", err, out)
		}
	}
	kind := "SQLite"
	var storeDSN, baseDSN string
	if dsn != "" {
		kind = "PostgreSQL"
		if storeDSN, err = schema(ctx, dsn, "intake"); err != nil {
			return err
		}
		if baseDSN, err = schema(ctx, dsn, "intake_base"); err != nil {
			return err
		}
		defer dropSchema(dsn, storeDSN)
		defer dropSchema(dsn, baseDSN)
	}

	file := filepath.Join(dir, "subjects.csv")
	if err := writeSubjects(file, subjects); err != nil {
		return err
	}

	// Baseline: the rows the intake writes, inserted plainly.
	base, err := baseline(ctx, dir, baseDSN, subjects, datasets, batch)
	if err != nil {
		return err
	}
	fmt.Printf("baseline     %d requests (+%d identifiers, %d tasks) by multi-row INSERTs, %d per transaction: %v  (%.0f requests/s)\n",
		subjects, subjects, subjects*datasets, batch, base.Round(time.Millisecond), float64(subjects)/base.Seconds())

	srv, stop, err := startServer(ctx, dir, storeDSN, datasets)
	if err != nil {
		return err
	}
	defer stop()

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
	}
	start := time.Now()
	cmd := exec.Command(bin, "submit", "--file", file, "--batch", fmt.Sprint(batch), "--parallel", fmt.Sprint(parallel), "--reason", "retention", "--idempotency-prefix", "bench")
	cmd.Env = append(os.Environ(), "ERASURE_URL="+srv, "ERASURE_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fmt.Errorf("submit --file: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	fmt.Printf("submit       %s\n", lines[len(lines)-1])
	fmt.Printf("submit       %d subjects in one `submit --file` (batches of %d, %d in flight): %v  (%.0f requests/s)\n",
		subjects, batch, parallel, took.Round(time.Millisecond), float64(subjects)/took.Seconds())

	oneStart := time.Now()
	if err := oneByOne(ctx, srv, single, clients); err != nil {
		return err
	}
	one := time.Since(oneStart)
	fmt.Printf("one by one   %d requests with POST /v1/requests, %d clients: %v  (%.0f requests/s)\n", single, clients, one.Round(time.Millisecond), float64(single)/one.Seconds())
	fmt.Printf("ratio        %s: submit --file ÷ baseline = %.2f; submit --file ÷ one by one = %.1f× (requests/s)\n",
		kind, base.Seconds()/took.Seconds(), (float64(subjects)/took.Seconds())/(float64(single)/one.Seconds()))
	return nil
}

func writeSubjects(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, "user_id,email")
	for i := 0; i < n; i++ {
		fmt.Fprintf(f, "%d,user%d@example.com\n", 1_000_000+i, i)
	}
	return f.Close()
}

// startServer runs the API of a server over noop datasets, without executor, and returns its URL.
func startServer(ctx context.Context, dir, dsn string, datasets int) (string, func(), error) {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nserver: { data_dir: %q, max_body_bytes: 1048576 }\n", filepath.Join(dir, "data"))
	env := map[string]string{"BENCH_TOKEN": token, "BENCH_AUDIT_KEY": randomHex(32), "BENCH_SIGNING_KEY": randomHex(32), "BENCH_DSN": dsn}
	if dsn != "" {
		b.WriteString("store: { dsn: \"${BENCH_DSN}\" }\naudit: { key: \"${BENCH_AUDIT_KEY}\", signing_key: \"${BENCH_SIGNING_KEY}\" }\n")
	}
	b.WriteString("auth: { tokens: [ { name: bench, secret: \"${BENCH_TOKEN}\", roles: [submit, read] } ] }\n")
	b.WriteString("identifiers: [user_id, email]\ndatasets:\n")
	for i := 0; i < datasets; i++ {
		fmt.Fprintf(&b, "  - { name: ds%d, owner: bench, connector: noop, noop: {} }\n", i)
	}
	cfg, err := registry.Parse(filepath.Join(dir, "erasure.yaml"), []byte(b.String()), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return "", nil, err
	}
	s, err := server.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", nil, err
	}
	h := s.HTTP()
	if err := h.Listen("127.0.0.1:0"); err != nil {
		s.Close()
		return "", nil, err
	}
	hctx, cancel := context.WithCancel(ctx)
	h.Start(hctx)
	return h.URL(), func() { cancel(); h.Wait(); s.Close() }, nil
}

// oneByOne submits n requests one per call from clients at once.
func oneByOne(ctx context.Context, srv string, n, clients int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _ := client.New(srv, token)
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				sub := erasure.Submission{Subject: erasure.NewSubject(erasure.Identifier{Type: "user_id", Value: fmt.Sprint(9_000_000 + i)}), Reason: "retention"}
				if _, _, err := c.Submit(ctx, sub, ""); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// baseline inserts what the intake of n requests writes (a request, an identifier, a task per
// dataset each) with multi-row INSERTs, batch requests per transaction.
func baseline(ctx context.Context, dir, dsn string, n, datasets, batch int) (time.Duration, error) {
	var db *sql.DB
	var err error
	pg := dsn != ""
	if pg {
		db, err = sql.Open("pgx", dsn)
	} else {
		db, err = sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "baseline.db"), "FULL")+"&_txlock=immediate")
		db.SetMaxOpenConns(1)
	}
	if err != nil {
		return 0, err
	}
	defer db.Close()
	id := "INTEGER PRIMARY KEY"
	if pg {
		id = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
	}
	for _, ddl := range []string{
		`CREATE TABLE requests (id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL, deadline BIGINT NOT NULL, submitted_by TEXT NOT NULL, idempotency_key TEXT UNIQUE, fingerprint TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
		`CREATE TABLE identifiers (request_id TEXT NOT NULL, type TEXT NOT NULL, value TEXT, hash TEXT NOT NULL, found_by TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (request_id, hash))`,
		`CREATE TABLE tasks (id ` + id + `, request_id TEXT NOT NULL, dataset TEXT NOT NULL, kind TEXT NOT NULL, method TEXT NOT NULL, state TEXT NOT NULL, due_at BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return 0, err
		}
	}
	const per = 64 // rows per INSERT statement
	insert := func(tx *sql.Tx, prefix string, k int, args []any) error {
		for start := 0; start < len(args); start += per * k {
			chunk := args[start:min(len(args), start+per*k)]
			rows := make([]string, len(chunk)/k)
			for i := range rows {
				ph := make([]string, k)
				for j := range ph {
					ph[j] = "?"
					if pg {
						ph[j] = fmt.Sprintf("$%d", i*k+j+1)
					}
				}
				rows[i] = "(" + strings.Join(ph, ", ") + ")"
			}
			if _, err := tx.ExecContext(ctx, prefix+strings.Join(rows, ", "), chunk...); err != nil {
				return err
			}
		}
		return nil
	}
	hash := strings.Repeat("ab", 32)
	start := time.Now()
	for i := 0; i < n; i += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		now := time.Now().UnixMilli()
		var reqs, ids, tasks []any
		for j := i; j < min(n, i+batch); j++ {
			rid := fmt.Sprintf("r_%026d", j)
			reqs = append(reqs, rid, "pending", "retention", now+3600_000, "bench", fmt.Sprintf("key-%d", j), hash, now, now)
			ids = append(ids, rid, "user_id", fmt.Sprint(1_000_000+j), hash, "submitted", now)
			for d := 0; d < datasets; d++ {
				tasks = append(tasks, rid, fmt.Sprintf("ds%d", d), "erase", "realtime", "pending", now, now, now)
			}
		}
		if err := insert(tx, `INSERT INTO requests (id, status, reason, deadline, submitted_by, idempotency_key, fingerprint, created_at, updated_at) VALUES `, 9, reqs); err != nil {
			return 0, err
		}
		if err := insert(tx, `INSERT INTO identifiers (request_id, type, value, hash, found_by, created_at) VALUES `, 6, ids); err != nil {
			return 0, err
		}
		if err := insert(tx, `INSERT INTO tasks (request_id, dataset, kind, method, state, due_at, created_at, updated_at) VALUES `, 8, tasks); err != nil {
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// schema creates a schema with a random name on the database dsn names and returns a DSN whose
// search_path is that schema.
func schema(ctx context.Context, dsn, prefix string) (string, error) {
	name := prefix + "_" + randomHex(6)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+name); err != nil {
		return "", err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func dropSchema(dsn, schemaDSN string) {
	u, _ := url.Parse(schemaDSN)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Print(err)
		return
	}
	defer db.Close()
	db.Exec(`DROP SCHEMA ` + u.Query().Get("search_path") + ` CASCADE`)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
