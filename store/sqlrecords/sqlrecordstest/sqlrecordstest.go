// Package sqlrecordstest opens SQL record stores for tests and benchmarks: a SQLite database
// in WAL mode (modernc, busy_timeout, one write connection with BEGIN IMMEDIATE and a read
// pool, as store/sqlite does) with a small hash-chained audit table of its own, so that the
// record store's tests do not depend on the server's store package.
package sqlrecordstest

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver

	"erasure"
	"erasure/audit"
	"erasure/store/sqlrecords"
)

// DB is an open test database.
type DB struct {
	W, R *sql.DB
}

// OpenDB opens (creating if needed) the SQLite database at path.
func OpenDB(path string) (*DB, error) {
	dsn := func(extra string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		// A larger page cache and memory-mapped reads: without them every page read is a
		// syscall, which dominates scans and moves.
		q.Add("_pragma", "cache_size(-65536)")
		q.Add("_pragma", "mmap_size(1073741824)")
		return "file:" + path + "?" + q.Encode() + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		w.Close()
		return nil, err
	}
	// Readers keep their connections (and the memory map each holds) as store/sqlite's do:
	// a pool that closes idle connections reopens them under load.
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	r.SetConnMaxIdleTime(0)
	if _, err := w.Exec(`CREATE TABLE IF NOT EXISTS test_audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, type TEXT NOT NULL, data TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	return &DB{W: w, R: r}, nil
}

// Close closes both pools.
func (db *DB) Close() error { return errors.Join(db.W.Close(), db.R.Close()) }

// AppendAudit appends ev to the test audit table inside tx, chained with audit.LegacySeal.
func (db *DB) AppendAudit(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error {
	prev := audit.Genesis
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM test_audit ORDER BY seq DESC LIMIT 1`).Scan(&ev.Seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	ev.Seq++
	ev.Time = ev.Time.Truncate(time.Millisecond).UTC()
	audit.LegacySeal(prev, ev)
	_, err = tx.ExecContext(ctx, `INSERT INTO test_audit (seq, at, actor, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		ev.Seq, ev.Time.UnixMilli(), ev.Actor, ev.Type, string(ev.Data), ev.PrevHash, ev.Hash)
	return err
}

// Events returns the audit events of the given type, in order.
func (db *DB) Events(ctx context.Context, typ string) ([]erasure.AuditEvent, error) {
	rows, err := db.R.QueryContext(ctx, `SELECT seq, at, actor, type, data, prev_hash, hash FROM test_audit WHERE type = ? ORDER BY seq`, typ)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.AuditEvent
	for rows.Next() {
		var ev erasure.AuditEvent
		var at int64
		var data string
		if err := rows.Scan(&ev.Seq, &at, &ev.Actor, &ev.Type, &data, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, err
		}
		ev.Time, ev.Data = time.UnixMilli(at).UTC(), []byte(data)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// Open opens a record store on the database at path, closed when t ends. opts' AppendAudit
// and ReadDB are set here.
func Open(t testing.TB, path string, opts sqlrecords.Options) (*sqlrecords.Store, *DB) {
	t.Helper()
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.AppendAudit, opts.ReadDB = db.AppendAudit, db.R
	s, err := sqlrecords.Open(context.Background(), db.W, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}
