// Package migrate applies a package's embedded SQL migrations to SQLite or PostgreSQL. Every
// SQL store of erasure (store/sqlite, store/sqlrecords) migrates through it, so that one table
// says what a database holds:
//
//	schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)   -- unix milliseconds
//
// A set of migrations is a folder of files named NNN_what.sql (zero-padded, so that name order
// is the order to apply them), one folder per dialect when the SQL differs. Each file is
// applied whole (one Exec, so triggers and several statements are fine) in its own
// transaction together with its row in schema_migrations: a failing file leaves nothing of
// itself and is reported by name, the files before it stay applied, and a later start goes on
// from there. Rows are named "SET/FILE" (records/001_records.sql), so that several sets share
// the table.
//
// Several processes may start at once on one database. On PostgreSQL every migrating
// transaction first takes a transaction-scoped advisory lock keyed by the current schema
// (pg_advisory_xact_lock), then checks again whether its file is applied; on SQLite it writes
// first, which takes the database's write lock (the same effect as BEGIN IMMEDIATE, whatever
// the pool's _txlock), so that the check and the apply are never split by another writer.
//
// A database that records a migration of a set that this build does not know was migrated by
// a newer build: Apply refuses it rather than run old code on a newer schema.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"erasure"
)

// Dialect is the SQL dialect of a database.
type Dialect string

// Dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Valid returns EINVALID unless d is SQLite or Postgres.
func (d Dialect) Valid() error {
	switch d {
	case SQLite, Postgres:
		return nil
	}
	return erasure.Errorf(erasure.EINVALID, "unknown SQL dialect %q: use sqlite or postgres", string(d))
}

// Rebind rewrites the ? placeholders of query as $1, $2, … for PostgreSQL and returns it
// unchanged for SQLite. It does not look inside string literals: queries given to it hold no
// literal question mark.
func (d Dialect) Rebind(query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// Set is one package's migrations for one dialect.
type Set struct {
	// Name names the set in schema_migrations: its rows are "Name/FILE". Required, without a
	// slash.
	Name string
	// Files holds the migrations as *.sql at its root; each name starts with a digit.
	Files fs.FS
	// Adopted, when set, returns the files (names inside Files) that a tracking older than this
	// package applied: they are recorded as applied without running again. It runs under the
	// migration lock, in the transaction that creates schema_migrations.
	Adopted func(ctx context.Context, tx *sql.Tx) ([]string, error)
	// Now is the clock of applied_at (default time.Now).
	Now func() time.Time
}

// Table is the tracking table.
const Table = "schema_migrations"

// Apply applies the files of set not yet recorded in db, in name order, each in its own
// transaction, and returns the names (as recorded) of those it applied. EINVALID for a bad
// set, dialect or file name, or a database that records a migration of the set that Files
// lacks; a failing migration's error names its file, and nothing of that file stays.
func Apply(ctx context.Context, db *sql.DB, d Dialect, set Set) ([]string, error) {
	if err := d.Valid(); err != nil {
		return nil, err
	}
	if set.Name == "" || strings.ContainsAny(set.Name, "/ ") {
		return nil, erasure.Errorf(erasure.EINVALID, "migrations: set name %q must be non-empty, without '/' or spaces", set.Name)
	}
	if set.Files == nil {
		return nil, erasure.Errorf(erasure.EINVALID, "migrations %s: no files", set.Name)
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	files, err := fs.Glob(set.Files, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	known := make(map[string]bool, len(files))
	for _, f := range files {
		if f[0] < '0' || f[0] > '9' {
			return nil, erasure.Errorf(erasure.EINVALID, "migrations %s: file %s must be named NNN_what.sql", set.Name, f)
		}
		known[set.Name+"/"+f] = true
	}
	m := &migrator{db: db, d: d, set: set}
	if d == SQLite {
		// Outside any transaction and idempotent: from here on there is always a table for
		// lock to write to.
		if _, err := db.ExecContext(ctx, sqliteTable); err != nil {
			return nil, fmt.Errorf("migrations %s: %w", set.Name, err)
		}
	}

	// First the table, the adoption of an older tracking, and what is applied already.
	var applied map[string]bool
	if err := m.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		applied, err = m.prepare(ctx, tx, known)
		return err
	}); err != nil {
		return nil, fmt.Errorf("migrations %s: %w", set.Name, err)
	}
	for name := range applied {
		if !known[name] {
			return nil, erasure.Errorf(erasure.EINVALID, "migrations %s: the database has %s, which this build does not know: it was migrated by a newer version", set.Name, name)
		}
	}
	var done []string
	for _, f := range files {
		name := set.Name + "/" + f
		if applied[name] {
			continue
		}
		body, err := fs.ReadFile(set.Files, f)
		if err != nil {
			return done, err
		}
		ran := false
		if err := m.inTx(ctx, func(tx *sql.Tx) error {
			// Another process may have applied it since: check again, under the lock.
			var n int
			if err := tx.QueryRowContext(ctx, d.Rebind(`SELECT COUNT(*) FROM `+Table+` WHERE name = ?`), name).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			ran = true
			_, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+Table+` (name, applied_at) VALUES (?, ?)`), name, set.Now().UnixMilli())
			return err
		}); err != nil {
			return done, fmt.Errorf("migration %s: %w", name, err)
		}
		if ran {
			done = append(done, name)
		}
	}
	return done, nil
}

// Applied returns the names recorded in db's schema_migrations, in name order (none when the
// table does not exist yet).
func Applied(ctx context.Context, db *sql.DB, d Dialect) ([]string, error) {
	if err := d.Valid(); err != nil {
		return nil, err
	}
	var out []string
	err := func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ok, err := TableExists(ctx, tx, d, Table)
		if err != nil || !ok {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT name FROM `+Table+` ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			out = append(out, name)
		}
		return rows.Err()
	}()
	return out, err
}

// TableExists reports whether a table of that name is visible in tx: in the main database on
// SQLite, on the search path on PostgreSQL.
func TableExists(ctx context.Context, tx *sql.Tx, d Dialect, table string) (bool, error) {
	var n int
	var err error
	switch d {
	case Postgres:
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT to_regclass($1) AS t) x WHERE t IS NOT NULL`, table).Scan(&n)
	default:
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n)
	}
	return n > 0, err
}

type migrator struct {
	db  *sql.DB
	d   Dialect
	set Set
}

// inTx runs fn in a transaction that holds the migration lock.
func (m *migrator) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := m.lock(ctx, tx); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// lock takes the migration lock for the rest of tx.
func (m *migrator) lock(ctx context.Context, tx *sql.Tx) error {
	if m.d == Postgres {
		// Advisory locks are per database; the key is the schema, so that stores in other
		// schemas of the same database do not wait for each other.
		var schema sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		h := fnv.New64a()
		h.Write([]byte("erasure " + Table + " " + schema.String))
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64()))
		return err
	}
	// A write as the transaction's first statement takes SQLite's write lock now, before any
	// read: a deferred transaction that read first could not upgrade once another writer had
	// committed. It changes nothing (no row has an empty name).
	_, err := tx.ExecContext(ctx, `UPDATE `+Table+` SET applied_at = applied_at WHERE name = ''`)
	return err
}

// The tracking table on each dialect. SQLite's is the table store/sqlite created before this
// package existed, unchanged.
const (
	sqliteTable   = `CREATE TABLE IF NOT EXISTS ` + Table + ` (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`
	postgresTable = `CREATE TABLE IF NOT EXISTS ` + Table + ` (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`
)

// prepare creates the tracking table, records the adopted files and returns every name
// recorded.
func (m *migrator) prepare(ctx context.Context, tx *sql.Tx, known map[string]bool) (map[string]bool, error) {
	if m.d == Postgres {
		// Under the advisory lock: concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL.
		if _, err := tx.ExecContext(ctx, postgresTable); err != nil {
			return nil, err
		}
	}
	applied, err := m.recorded(ctx, tx)
	if err != nil {
		return nil, err
	}
	if m.set.Adopted != nil {
		files, err := m.set.Adopted(ctx, tx)
		if err != nil {
			return nil, fmt.Errorf("adopting an older tracking: %w", err)
		}
		for _, f := range files {
			name := m.set.Name + "/" + f
			if !known[name] {
				return nil, erasure.Errorf(erasure.EINVALID, "migrations %s: an older tracking records %s, which this build does not know", m.set.Name, f)
			}
			if applied[name] {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.d.Rebind(`INSERT INTO `+Table+` (name, applied_at) VALUES (?, ?)`), name, m.set.Now().UnixMilli()); err != nil {
				return nil, err
			}
			applied[name] = true
		}
	}
	return applied, nil
}

// recorded returns the names of the set recorded in tx.
func (m *migrator) recorded(ctx context.Context, tx *sql.Tx) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM `+Table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		if strings.HasPrefix(name, m.set.Name+"/") {
			out[name] = true
		}
	}
	return out, rows.Err()
}
