// Package sqlite is the embedded store: requests, identifiers, tasks, sweeps and the audit trail
// in one SQLite database (modernc.org/sqlite, pure Go) in WAL mode, through store/sqlstore.
//
// Writes go through one connection and take the write lock when they begin (BEGIN IMMEDIATE),
// so transactions never deadlock on lock upgrades; reads use a separate pool and see the last
// committed state. synchronous=FULL makes every commit durable before it returns, so a request
// accepted with 2xx survives a kill -9 or a power loss.
//
// SQLite is the single-node store: one process owns the database (package server locks the
// data dir); PostgreSQL (store/postgres) is for several. Registered as store driver "sqlite":
// erasure.db in the configuration's data dir.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"erasure"
	"erasure/store"
	"erasure/store/migrate"
	"erasure/store/sqlstore"
)

func init() {
	store.Register("sqlite", store.Driver{Open: openConfig})
}

// openConfig opens the store of a configuration: erasure.db in its data dir.
func openConfig(ctx context.Context, c store.Config) (*DB, error) {
	if c.DSN != "" {
		return nil, erasure.Errorf(erasure.EINVALID, "store.dsn is for a shared store: SQLite keeps its database in server.data_dir")
	}
	return Open(ctx, filepath.Join(c.DataDir, "erasure.db"), Options{Hasher: c.Hasher, Chain: c.Chain, Now: c.Now,
		Completion: c.Completion, Suppression: c.Suppression, Escrow: c.Escrow})
}

// DB is a SQLite store: the SQL store on a SQLite database.
type DB = sqlstore.DB

// Options configure Open.
type Options struct {
	// Hasher computes the keyed hashes of identifiers (required).
	Hasher erasure.Hasher
	// Chain seals the audit trail (required).
	Chain erasure.AuditChain
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Completion, Suppression and Escrow say what completed requests leave behind (see
	// sqlstore.Options).
	Completion  erasure.Completion
	Suppression erasure.Hasher
	Escrow      erasure.EscrowCipher
	// Synchronous is the SQLite synchronous pragma: FULL (default) or NORMAL (faster; survives a
	// process crash but not a power loss).
	Synchronous string
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	syncMode := strings.ToUpper(opts.Synchronous)
	if syncMode == "" {
		syncMode = "FULL"
	} else if syncMode != "FULL" && syncMode != "NORMAL" {
		return nil, fmt.Errorf("sqlite: synchronous must be FULL or NORMAL")
	}
	w, err := sql.Open("sqlite", DSN(path, syncMode)+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", DSN(path, syncMode))
	if err != nil {
		w.Close()
		return nil, err
	}
	// Readers keep their connections (and the memory map each holds): a pool that closes idle
	// connections reopens them under load.
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	r.SetConnMaxIdleTime(0)
	db, err := sqlstore.Open(ctx, w, r, migrate.SQLite, sqlstore.Options{Hasher: opts.Hasher, Chain: opts.Chain, Now: opts.Now,
		Completion: opts.Completion, Suppression: opts.Suppression, Escrow: opts.Escrow})
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return db, nil
}

// DSN returns the data source name the store opens path with: WAL, the synchronous mode, a
// busy timeout, foreign keys, a 64 MiB page cache, memory-mapped reads (large scans —
// reindex, archive — otherwise spend their time in page-read system calls), secure_delete
// and in-memory temporary storage.
func DSN(path, synchronous string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+synchronous+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Add("_pragma", "mmap_size(1073741824)")
	// Deleted content is overwritten with zeros (identifiers scrubbed when their request
	// ends must not stay in freed space), and temporary tables and sorts stay in memory, not
	// in files outside the data dir.
	q.Add("_pragma", "secure_delete(1)")
	q.Add("_pragma", "temp_store(2)")
	q.Add("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode()
}
