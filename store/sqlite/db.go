// Package sqlite is the embedded store: requests, identifiers, tasks and the audit trail in one
// SQLite database (modernc.org/sqlite, pure Go) in WAL mode.
//
// Writes go through one connection and take the write lock when they begin (BEGIN IMMEDIATE),
// so transactions never deadlock on lock upgrades; reads use a separate pool and see the last
// committed state. synchronous=FULL makes every commit durable before it returns, so a request
// accepted with 2xx survives a kill -9 or a power loss.
//
// SQLite is the single-node store: one `erasure serve` owns the database. The lease queries are
// written so that a PostgreSQL store can run the same protocol with FOR UPDATE SKIP LOCKED.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"erasure"
	"erasure/audit"
	"erasure/store/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a SQLite store. It implements erasure.Store.
type DB struct {
	w, r   *sql.DB
	path   string
	hasher *audit.Hasher
	// Now returns the current time; tests replace it.
	Now func() time.Time

	stmts   sync.Map // query → *sql.Stmt prepared on w
	seen    sync.Map // queries used in a transaction, not yet prepared for good
	creates chan *createOp
	done    chan struct{}
}

var _ erasure.Store = (*DB)(nil)

// Options configure Open.
type Options struct {
	// Hasher computes the keyed hashes of identifiers (required).
	Hasher *audit.Hasher
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Synchronous is the SQLite synchronous pragma: FULL (default) or NORMAL (faster; survives a
	// process crash but not a power loss).
	Synchronous string
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.Hasher == nil {
		return nil, fmt.Errorf("sqlite: Options.Hasher is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	syncMode := strings.ToUpper(opts.Synchronous)
	if syncMode == "" {
		syncMode = "FULL"
	} else if syncMode != "FULL" && syncMode != "NORMAL" {
		return nil, fmt.Errorf("sqlite: synchronous must be FULL or NORMAL")
	}
	dsn := func(extra string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous("+syncMode+")")
		q.Add("_pragma", "foreign_keys(1)")
		// A 64 MiB page cache and memory-mapped reads: large scans (reindex, archive) otherwise
		// spend their time in page-read system calls.
		q.Add("_pragma", "cache_size(-65536)")
		q.Add("_pragma", "mmap_size(1073741824)")
		q.Add("_time_format", "sqlite")
		return "file:" + path + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	db := &DB{w: w, r: r, path: path, hasher: opts.Hasher, Now: opts.Now, creates: make(chan *createOp, 256), done: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	go db.groupCommit()
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	close(db.creates)
	<-db.done
	db.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	err := db.w.Close()
	if err2 := db.r.Close(); err == nil {
		err = err2
	}
	return err
}

// SQL returns the write pool (one connection, BEGIN IMMEDIATE), for packages that keep their
// own tables in the same database and must write audit events in their own transactions.
func (db *DB) SQL() *sql.DB { return db.w }

// ReadSQL returns the read pool.
func (db *DB) ReadSQL() *sql.DB { return db.r }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

// migrate applies the embedded migrations not yet applied, each in its own transaction
// (store/migrate). The set is named "migrations": the rows this store wrote before the shared
// runner existed are named by their embedded path, migrations/NNN_….sql, and stay valid.
func (db *DB) migrate(ctx context.Context) error {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	_, err = migrate.Apply(ctx, db.w, migrate.SQLite, migrate.Set{Name: "migrations", Files: files, Now: db.Now})
	return err
}

// stmt returns query prepared on the write connection, bound to tx. Parsing a statement costs
// more than running it, so statements are prepared once and kept: the write pool has a single
// connection, which tx holds now, so a statement seen for the first time is prepared inside tx
// and remembered; it is prepared for good once the connection is free again (prepareSeen).
func (db *DB) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	db.seen.Store(query, true)
	return tx.PrepareContext(ctx, query)
}

// prepareSeen prepares the statements first seen in a transaction; called when none is open.
func (db *DB) prepareSeen(ctx context.Context) {
	db.seen.Range(func(k, _ any) bool {
		q := k.(string)
		db.seen.Delete(q)
		if _, ok := db.stmts.Load(q); ok {
			return true
		}
		if st, err := db.w.PrepareContext(ctx, q); err == nil {
			db.stmts.Store(q, st)
		}
		return true
	})
}

// exec runs a cached statement in tx.
func (db *DB) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// query runs a cached statement in tx.
func (db *DB) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a cached statement in tx.
func (db *DB) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		// Surface the error through Scan, like database/sql does.
		return tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// inTx runs fn in a write transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	db.prepareSeen(ctx)
	return nil
}

// unavailable classifies a failure to reach the database itself.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &erasure.Error{Code: erasure.EUNAVAILABLE, Message: "store unavailable: " + err.Error()}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
