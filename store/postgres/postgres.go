// Package postgres is the shared store: requests, identifiers, tasks, sweeps and the audit
// trail in a PostgreSQL database (pgx through database/sql), through store/sqlstore, so that
// any number of `erasure serve` and `erasure worker` processes share the work.
//
// Leases select due tasks FOR UPDATE SKIP LOCKED; a change locks the rows of the requests it
// touches before reading their tasks; the audit chain's head is locked only by a transaction's
// last statement. Migrations take an advisory lock, so processes may start at once. The leader
// of the processes is elected with another advisory lock (sqlstore.LeaderLock), held on a
// connection of its own.
//
// Registered as store driver "postgres": `store: { dsn: "${ERASURE_STORE_DSN}" }` with a
// postgres:// URL selects it.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"erasure"
	"erasure/store"
	"erasure/store/migrate"
	"erasure/store/sqlstore"
)

func init() {
	store.Register("postgres", store.Driver{Open: openConfig, Shared: true})
}

// openConfig opens the store of a configuration: the database its DSN names.
func openConfig(ctx context.Context, c store.Config) (*DB, error) {
	if c.DSN == "" {
		return nil, erasure.Errorf(erasure.EINVALID, "store.dsn is required for the postgres store")
	}
	return Open(ctx, c.DSN, Options{Hasher: c.Hasher, Chain: c.Chain, Now: c.Now,
		Completion: c.Completion, Suppression: c.Suppression, Escrow: c.Escrow})
}

// DB is a PostgreSQL store: the SQL store on a PostgreSQL database.
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
	// MaxConns bounds the pool (default 16).
	MaxConns int
}

// Open connects to the database named by dsn (postgres://…) and migrates it.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, erasure.Errorf(erasure.EINVALID, "store dsn: %v", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	pool.SetMaxOpenConns(opts.MaxConns)
	pool.SetMaxIdleConns(opts.MaxConns)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, erasure.Errorf(erasure.EUNAVAILABLE, "store unavailable: %v", err)
	}
	db, err := sqlstore.Open(ctx, pool, pool, migrate.Postgres, sqlstore.Options{Hasher: opts.Hasher, Chain: opts.Chain, Now: opts.Now,
		Completion: opts.Completion, Suppression: opts.Suppression, Escrow: opts.Escrow})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return db, nil
}
