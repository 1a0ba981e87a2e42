// Package sqlstore is the SQL implementation of erasure.Store and erasure.SweepStore, shared by
// the embedded SQLite store (store/sqlite) and the PostgreSQL store (store/postgres): one schema
// per dialect (migrations/), one set of queries written for both (placeholders rebound to $n on
// PostgreSQL), and the few places where the dialects differ named in Dialect.
//
// The store decides nothing about tasks (see machine.go in the root package): a change loads the
// requests it touches, applies the event to an erasure.Machine, and writes the Machine's changes
// with their audit block in the same transaction.
//
// Concurrency. On SQLite writes go through one connection and take the write lock when they
// begin (BEGIN IMMEDIATE): transactions are serial and never deadlock on lock upgrades; reads
// use a separate pool. On PostgreSQL any number of processes share the database: leases select
// due tasks FOR UPDATE SKIP LOCKED, a change locks the rows of the requests it touches (in id
// order) before it reads their tasks, and the audit chain's head row is locked only by the
// audit append, the last statement of a transaction, so writers are serialised only from their
// last statement to their commit. Deadlocks and serialisation failures are retried.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"erasure"
	"erasure/store/migrate"
)

//go:embed migrations
var migrations embed.FS

// Dialect is a database's SQL dialect (migrate.SQLite or migrate.Postgres).
type Dialect = migrate.Dialect

// DB is a SQL store. It implements erasure.Store and erasure.SweepStore.
type DB struct {
	w, r    *sql.DB
	dialect Dialect
	hasher  erasure.Hasher
	chain   erasure.AuditChain
	// Now returns the current time; tests replace it.
	Now func() time.Time

	// What completed requests leave behind (policies.go).
	completion  erasure.Completion
	suppression erasure.Hasher
	escrow      erasure.EscrowCipher

	stmts    sync.Map // SQLite: query → *sql.Stmt prepared on w
	rstmts   sync.Map // SQLite: query → *sql.Stmt prepared on r (up to maxReadStmts)
	nrstmts  atomic.Int64
	seen     sync.Map // SQLite: queries used in a transaction, not yet prepared for good
	rebound  sync.Map // PostgreSQL: query → query with $n placeholders
	creates  chan *createOp
	done     chan struct{}
	acks     chan *ackOp
	acksDone chan struct{}
	// restored are the audit triggers Open restored (RestoredTriggers).
	restored []string
	// SQLite: a transaction scrubbed identifiers; the WAL is checkpointed after it (scrub.go).
	scrubPending atomic.Bool
	scrub        chan struct{}
	scrubStop    chan struct{}
	scrubDone    chan struct{}
}

var (
	_ erasure.Store           = (*DB)(nil)
	_ erasure.SweepStore      = (*DB)(nil)
	_ erasure.CheckpointStore = (*DB)(nil)
)

// Options configure Open.
type Options struct {
	// Hasher computes the keyed hashes of identifiers, fingerprints and idempotency keys
	// (required).
	Hasher erasure.Hasher
	// Chain seals the audit trail's blocks (required).
	Chain erasure.AuditChain
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Completion says what a completed request leaves behind: its identifiers on the
	// suppression list (keyed with Suppression, required then) and in the replay escrow
	// (sealed with Escrow, required then). The zero value leaves nothing.
	Completion  erasure.Completion
	Suppression erasure.Hasher
	Escrow      erasure.EscrowCipher
}

// Open returns a store over w (the pool writes go through) and r (the pool reads go
// through; the same pool on PostgreSQL) in dialect d, and migrates the schema. It checks the
// append-only triggers of the audit trail and restores any that is missing, disabled or
// changed (RestoredTriggers); it refuses to open a store where it cannot. The store owns
// both pools: Close closes them.
func Open(ctx context.Context, w, r *sql.DB, d Dialect, opts Options) (*DB, error) {
	if opts.Hasher == nil || opts.Chain == nil {
		return nil, fmt.Errorf("sqlstore: Options.Hasher and Options.Chain are required")
	}
	if err := d.Valid(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Completion.Suppress && opts.Suppression == nil {
		return nil, fmt.Errorf("sqlstore: Options.Suppression is required when completed requests are suppressed")
	}
	if len(opts.Completion.Escrow) > 0 && opts.Escrow == nil {
		return nil, fmt.Errorf("sqlstore: Options.Escrow is required when datasets keep an escrow")
	}
	db := &DB{w: w, r: r, dialect: d, hasher: opts.Hasher, chain: opts.Chain, Now: opts.Now, creates: make(chan *createOp, 256), done: make(chan struct{}),
		acks: make(chan *ackOp, 256), acksDone: make(chan struct{}),
		completion: opts.Completion, suppression: opts.Suppression, escrow: opts.Escrow}
	if err := db.migrate(ctx); err != nil {
		return nil, err
	}
	restored, err := db.ensureAuditTriggers(ctx)
	if err != nil {
		return nil, err
	}
	db.restored = restored
	go db.groupCommit()
	go db.ackGroup()
	db.scrub, db.scrubStop, db.scrubDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go db.scrubLoop()
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	close(db.creates)
	<-db.done
	close(db.acks)
	<-db.acksDone
	close(db.scrubStop)
	<-db.scrubDone
	db.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	db.rstmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	err := db.w.Close()
	if db.r != db.w {
		if err2 := db.r.Close(); err == nil {
			err = err2
		}
	}
	return err
}

// Dialect returns the store's SQL dialect.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL returns the write pool, for packages that keep their own tables in the same database and
// must write audit events in their own transactions (AppendAudit).
func (db *DB) SQL() *sql.DB { return db.w }

// ReadSQL returns the read pool.
func (db *DB) ReadSQL() *sql.DB { return db.r }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.r.PingContext(ctx) }

// migrate applies the embedded migrations of the dialect not yet applied, each in its own
// transaction (store/migrate). The set is named "migrations": the rows the SQLite store wrote
// before the shared runner existed are named by their embedded path, migrations/NNN_….sql, and
// stay valid.
func (db *DB) migrate(ctx context.Context) error {
	files, err := fs.Sub(migrations, "migrations/"+string(db.dialect))
	if err != nil {
		return err
	}
	_, err = migrate.Apply(ctx, db.w, db.dialect, migrate.Set{Name: "migrations", Files: files, Now: db.Now})
	return err
}

// q returns query in the store's dialect.
func (db *DB) q(query string) string {
	if db.dialect != migrate.Postgres {
		return query
	}
	if r, ok := db.rebound.Load(query); ok {
		return r.(string)
	}
	r := db.dialect.Rebind(query)
	db.rebound.Store(query, r)
	return r
}

// forUpdate is the locking clause of a SELECT that a change must hold until it commits
// (PostgreSQL); SQLite's write lock already covers it.
func (db *DB) forUpdate() string {
	if db.dialect == migrate.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// limitParam is a LIMIT given as a parameter. SQLite (3.46 and later) reads a bare "LIMIT ?"
// as a constant of the statement and prepares the statement again each time the parameter is
// bound, which cost the lease 29 µs a call (measured: 49 µs against 20 µs); a cast is
// evaluated when the statement runs.
const limitParam = "CAST(? AS INTEGER)"

// skipLocked is the locking clause of the lease's selection: rows another transaction holds
// are skipped, not waited for.
func (db *DB) skipLocked() string {
	if db.dialect == migrate.Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// stmt returns query prepared on the write connection, bound to tx. Parsing a statement costs
// more than running it, so statements are prepared once and kept: the write pool has a single
// connection, which tx holds now, so a statement seen for the first time is prepared inside tx
// and remembered; it is prepared for good once the connection is free again (prepareSeen).
//
// On PostgreSQL statements are not prepared here: the driver caches them per connection.
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
	if db.dialect == migrate.Postgres {
		return tx.ExecContext(ctx, db.q(query), args...)
	}
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// query runs a cached statement in tx.
func (db *DB) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if db.dialect == migrate.Postgres {
		return tx.QueryContext(ctx, db.q(query), args...)
	}
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a cached statement in tx.
func (db *DB) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if db.dialect == migrate.Postgres {
		return tx.QueryRowContext(ctx, db.q(query), args...)
	}
	st, err := db.stmt(ctx, tx, query)
	if err != nil {
		// Surface the error through Scan, like database/sql does.
		return tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// readQuery runs a query on the read pool.
func (db *DB) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := db.readStmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.r.QueryContext(ctx, db.q(query), args...)
}

// readRow runs a one-row query on the read pool.
func (db *DB) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := db.readStmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.r.QueryRowContext(ctx, db.q(query), args...)
}

// maxReadStmts bounds the read statements kept prepared (each on up to 8 connections):
// queries are built from constants, placeholders and a few optional filters, so some dozens
// exist, but a query built otherwise must not grow the cache without end.
const maxReadStmts = 256

// readStmt returns query prepared on the SQLite read pool, kept for the next calls (a point
// lookup costs less than parsing its statement; database/sql prepares it once on each
// connection of the pool); nil on PostgreSQL (pgx keeps its own statement cache), when the
// cache is full, or when preparing fails (the caller's query then reports the error).
func (db *DB) readStmt(ctx context.Context, query string) *sql.Stmt {
	if db.dialect != migrate.SQLite {
		return nil
	}
	if st, ok := db.rstmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	if db.nrstmts.Load() >= maxReadStmts {
		return nil
	}
	st, err := db.r.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if prev, loaded := db.rstmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt)
	}
	db.nrstmts.Add(1)
	return st
}

// inTx runs fn in a write transaction, committing when it returns nil. On PostgreSQL a
// transaction that fails with a deadlock or a serialisation failure is run again (fn must only
// act on the database).
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for try := 1; ; try++ {
		err := db.tryTx(ctx, fn)
		if err == nil || try == 5 || !retryable(err) {
			return err
		}
		time.Sleep(time.Duration(try*try) * 5 * time.Millisecond)
	}
}

func (db *DB) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		if retryable(err) {
			return err
		}
		return unavailable(err)
	}
	if db.dialect == migrate.SQLite {
		db.prepareSeen(ctx)
		db.afterCommit()
	}
	return nil
}

// uniqueViolation reports an insert refused by a unique index (PostgreSQL 23505; SQLite's
// writers are serial, so the check before an insert there is never outrun).
func uniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}

// retryable reports a PostgreSQL deadlock or serialisation failure.
func retryable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40P01" || pg.Code == "40001")
}

// unavailable classifies a failure to reach the database itself.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || retryable(err) {
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
