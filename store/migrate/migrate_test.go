package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	_ "modernc.org/sqlite"             // the "sqlite" driver

	"erasure"
	"erasure/internal/testenv"
	"erasure/store/migrate"
)

// backend opens connection pools on one fresh database of a dialect; each call to open is a
// pool of its own, as another process would have.
type backend struct {
	d    migrate.Dialect
	open func() *sql.DB
}

// newBackend returns a fresh SQLite database or PostgreSQL schema, dropped when t ends.
func newBackend(t *testing.T, d migrate.Dialect) backend {
	t.Helper()
	if d == migrate.Postgres {
		dsn := testenv.PostgresSchema(t, "migrate")
		return backend{d: d, open: func() *sql.DB { return openDB(t, "pgx", dsn) }}
	}
	path := filepath.Join(t.TempDir(), "m.db")
	return backend{d: d, open: func() *sql.DB {
		// A deferred transaction lock (no _txlock): the runner must not rely on the pool's.
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		return openDB(t, "sqlite", "file:"+path+"?"+q.Encode())
	}}
}

// cases runs each case against a fresh SQLite database and a fresh PostgreSQL schema.
type cases []struct {
	name string
	fn   func(t *testing.T, b backend)
}

func (cs cases) run(t *testing.T) {
	for _, d := range []migrate.Dialect{migrate.SQLite, migrate.Postgres} {
		t.Run(map[migrate.Dialect]string{migrate.SQLite: "SQLite", migrate.Postgres: "Postgres"}[d], func(t *testing.T) {
			for _, c := range cs {
				t.Run(c.name, func(t *testing.T) { c.fn(t, newBackend(t, d)) })
			}
		})
	}
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func files(kv ...string) fstest.MapFS {
	fs := fstest.MapFS{}
	for i := 0; i+1 < len(kv); i += 2 {
		fs[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return fs
}

func apply(t *testing.T, db *sql.DB, d migrate.Dialect, set migrate.Set) []string {
	t.Helper()
	got, err := migrate.Apply(context.Background(), db, d, set)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func applied(t *testing.T, db *sql.DB, d migrate.Dialect) string {
	t.Helper()
	names, err := migrate.Applied(context.Background(), db, d)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}

func count(t *testing.T, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// base is a set whose files depend on each other's order: 002 fills 001's table, 010 (after
// 002 in name order, not 2 after 10) reads what 002 wrote.
var base = files(
	"001_books.sql", "-- the first\nCREATE TABLE books (id BIGINT PRIMARY KEY, title TEXT NOT NULL);",
	"002_fill.sql", "INSERT INTO books (id, title) VALUES (1, 'one');\nINSERT INTO books (id, title) VALUES (2, 'two');",
	"010_copy.sql", "CREATE TABLE titles (title TEXT NOT NULL);\nINSERT INTO titles (title) SELECT title FROM books;",
)

func TestApply(t *testing.T) {
	ctx := context.Background()
	cases{
		{"AppliesInNameOrderOnce", func(t *testing.T, b backend) {
			db := b.open()
			got := apply(t, db, b.d, migrate.Set{Name: "lib", Files: base})
			if strings.Join(got, " ") != "lib/001_books.sql lib/002_fill.sql lib/010_copy.sql" {
				t.Fatalf("applied %v", got)
			}
			if n := count(t, db, `SELECT COUNT(*) FROM titles`); n != 2 {
				t.Fatalf("titles holds %d rows, want 2: the files did not run in name order", n)
			}
			if again := apply(t, db, b.d, migrate.Set{Name: "lib", Files: base}); len(again) != 0 {
				t.Fatalf("a second run applied %v", again)
			}
			if n := count(t, db, `SELECT COUNT(*) FROM books`); n != 2 {
				t.Fatalf("books holds %d rows after a second run, want 2", n)
			}
		}},
		{"AppliesOnlyNewFiles", func(t *testing.T, b backend) {
			db := b.open()
			apply(t, db, b.d, migrate.Set{Name: "lib", Files: files("001_books.sql", string(base["001_books.sql"].Data))})
			got := apply(t, db, b.d, migrate.Set{Name: "lib", Files: base})
			if strings.Join(got, " ") != "lib/002_fill.sql lib/010_copy.sql" {
				t.Fatalf("applied %v", got)
			}
		}},
		{"RecordsTheTimeOfEachFile", func(t *testing.T, b backend) {
			db := b.open()
			at := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
			apply(t, db, b.d, migrate.Set{Name: "lib", Files: base, Now: func() time.Time { return at }})
			if n := count(t, db, fmt.Sprintf(`SELECT COUNT(*) FROM schema_migrations WHERE applied_at = %d`, at.UnixMilli())); n != 3 {
				t.Fatalf("%d rows carry the clock's time, want 3", n)
			}
		}},
		{"AFailingFileLeavesNothingOfItself", func(t *testing.T, b backend) {
			db := b.open()
			bad := files(
				"001_ok.sql", "CREATE TABLE ok (id BIGINT);",
				"002_bad.sql", "CREATE TABLE half (id BIGINT);\nINSERT INTO missing VALUES (1);",
				"003_never.sql", "CREATE TABLE never (id BIGINT);",
			)
			got, err := migrate.Apply(ctx, db, b.d, migrate.Set{Name: "lib", Files: bad})
			if err == nil || !strings.Contains(err.Error(), "lib/002_bad.sql") {
				t.Fatalf("err = %v, want one naming lib/002_bad.sql", err)
			}
			if strings.Join(got, " ") != "lib/001_ok.sql" {
				t.Fatalf("applied %v before the failure, want 001", got)
			}
			if names := applied(t, db, b.d); names != "lib/001_ok.sql" {
				t.Fatalf("recorded %q", names)
			}
			for _, table := range []string{"half", "never"} {
				if exists(t, db, b.d, table) {
					t.Fatalf("table %s exists after the failure", table)
				}
			}
		}},
		{"SetsShareTheTable", func(t *testing.T, b backend) {
			db := b.open()
			apply(t, db, b.d, migrate.Set{Name: "a", Files: files("001_x.sql", "CREATE TABLE ax (id BIGINT);")})
			apply(t, db, b.d, migrate.Set{Name: "b", Files: files("001_x.sql", "CREATE TABLE bx (id BIGINT);")})
			if names := applied(t, db, b.d); names != "a/001_x.sql b/001_x.sql" {
				t.Fatalf("recorded %q", names)
			}
		}},
		{"RefusesADatabaseOfANewerBuild", func(t *testing.T, b backend) {
			db := b.open()
			apply(t, db, b.d, migrate.Set{Name: "lib", Files: base})
			older := files("001_books.sql", string(base["001_books.sql"].Data), "002_fill.sql", string(base["002_fill.sql"].Data))
			_, err := migrate.Apply(ctx, db, b.d, migrate.Set{Name: "lib", Files: older})
			if erasure.ErrorCode(err) != erasure.EINVALID || !strings.Contains(err.Error(), "lib/010_copy.sql") {
				t.Fatalf("err = %v, want EINVALID naming lib/010_copy.sql", err)
			}
		}},
		{"AdoptsAnOlderTracking", func(t *testing.T, b backend) {
			db := b.open()
			// An older tracking applied 001: running it again would fail.
			if _, err := db.Exec(`CREATE TABLE books (id BIGINT PRIMARY KEY, title TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			var calls int
			set := migrate.Set{Name: "lib", Files: base, Adopted: func(ctx context.Context, tx *sql.Tx) ([]string, error) {
				calls++
				return []string{"001_books.sql"}, nil
			}}
			got := apply(t, db, b.d, set)
			if strings.Join(got, " ") != "lib/002_fill.sql lib/010_copy.sql" {
				t.Fatalf("applied %v", got)
			}
			if names := applied(t, db, b.d); names != "lib/001_books.sql lib/002_fill.sql lib/010_copy.sql" {
				t.Fatalf("recorded %q", names)
			}
			apply(t, db, b.d, set)
			if calls != 2 {
				t.Fatalf("Adopted called %d times, want once per Apply", calls)
			}
		}},
		{"RefusesAnAdoptedFileItDoesNotKnow", func(t *testing.T, b backend) {
			db := b.open()
			_, err := migrate.Apply(ctx, db, b.d, migrate.Set{Name: "lib", Files: base, Adopted: func(context.Context, *sql.Tx) ([]string, error) {
				return []string{"004_gone.sql"}, nil
			}})
			if erasure.ErrorCode(err) != erasure.EINVALID || applied(t, db, b.d) != "" {
				t.Fatalf("err = %v, recorded %q; want EINVALID and nothing recorded", err, applied(t, db, b.d))
			}
		}},
		{"RefusesBadInput", func(t *testing.T, b backend) {
			db := b.open()
			for name, set := range map[string]migrate.Set{
				"FileNotNumbered": {Name: "lib", Files: files("init.sql", "CREATE TABLE x (id BIGINT);")},
				"NameWithSlash":   {Name: "a/b", Files: base},
				"NoName":          {Files: base},
				"NoFiles":         {Name: "lib"},
			} {
				if _, err := migrate.Apply(ctx, db, b.d, set); erasure.ErrorCode(err) != erasure.EINVALID {
					t.Errorf("%s: err = %v, want EINVALID", name, err)
				}
			}
			if _, err := migrate.Apply(ctx, db, "mysql", migrate.Set{Name: "lib", Files: base}); erasure.ErrorCode(err) != erasure.EINVALID {
				t.Errorf("unknown dialect: err = %v, want EINVALID", err)
			}
			if exists(t, db, b.d, "x") {
				t.Fatal("a refused set ran")
			}
		}},
		{"ConcurrentMigratorsApplyEachFileOnce", func(t *testing.T, b backend) {
			// Files that fail when run twice (no IF NOT EXISTS, a primary key) and read for a
			// moment before they write, so that the migrators overlap.
			slow := map[migrate.Dialect]string{migrate.SQLite: "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 20000) SELECT COUNT(*) FROM c;", migrate.Postgres: "SELECT pg_sleep(0.05);"}[b.d]
			set := files(
				"001_t.sql", slow+"\nCREATE TABLE t (id BIGINT PRIMARY KEY);",
				"002_row.sql", slow+"\nINSERT INTO t (id) VALUES (1);",
				"003_u.sql", "CREATE TABLE u (id BIGINT PRIMARY KEY);",
			)
			const migrators = 4
			dbs := make([]*sql.DB, migrators)
			for i := range dbs {
				dbs[i] = b.open()
				if err := dbs[i].Ping(); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make([][]string, migrators)
			errs := make([]error, migrators)
			for i := range migrators {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], errs[i] = migrate.Apply(ctx, dbs[i], b.d, migrate.Set{Name: "lib", Files: set})
				}()
			}
			close(start)
			wg.Wait()
			total := map[string]int{}
			for i := range migrators {
				if errs[i] != nil {
					t.Fatalf("migrator %d: %v", i, errs[i])
				}
				for _, name := range results[i] {
					total[name]++
				}
			}
			if len(total) != 3 || total["lib/001_t.sql"] != 1 || total["lib/002_row.sql"] != 1 || total["lib/003_u.sql"] != 1 {
				t.Fatalf("files applied across migrators: %v, want each once", total)
			}
			if n := count(t, dbs[0], `SELECT COUNT(*) FROM t`); n != 1 {
				t.Fatalf("t holds %d rows, want 1", n)
			}
		}},
	}.run(t)
}

// TestApply_KeepsTheSQLiteStoreTable opens a database migrated before this package existed:
// store/sqlite kept its own schema_migrations, with rows named by the embedded path.
func TestApply_KeepsTheSQLiteStoreTable(t *testing.T) {
	db := openDB(t, "sqlite", "file:"+filepath.Join(t.TempDir(), "old.db"))
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		`CREATE TABLE requests (id TEXT PRIMARY KEY)`,
		`INSERT INTO schema_migrations (name, applied_at) VALUES ('migrations/001_init.sql', 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	set := files("001_init.sql", "CREATE TABLE requests (id TEXT PRIMARY KEY);", "002_more.sql", "CREATE TABLE more (id TEXT);")
	got := apply(t, db, migrate.SQLite, migrate.Set{Name: "migrations", Files: set})
	if strings.Join(got, " ") != "migrations/002_more.sql" {
		t.Fatalf("applied %v, want only 002", got)
	}
}

func TestDialect_Rebind(t *testing.T) {
	q := `SELECT a FROM t WHERE b = ? AND c IN (?, ?)`
	if got := migrate.Postgres.Rebind(q); got != `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)` {
		t.Fatalf("postgres: %s", got)
	}
	if got := migrate.SQLite.Rebind(q); got != q {
		t.Fatalf("sqlite: %s", got)
	}
}

func exists(t *testing.T, db *sql.DB, d migrate.Dialect, table string) bool {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	ok, err := migrate.TableExists(context.Background(), tx, d, table)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
