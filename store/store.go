// Package store opens the store a configuration names. Store drivers register themselves by
// name, as connectors do: store/sqlite registers "sqlite" (the embedded store in the data dir,
// one process), store/postgres registers "postgres" (shared by any number of processes); a
// binary imports the drivers it offers, and Open picks one by the configuration's driver.
package store

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"erasure"
	"erasure/store/sqlstore"
)

// Config is what a driver needs to open a store.
type Config struct {
	// Driver names the driver; empty means "sqlite".
	Driver string
	// DSN is the driver's data source name (PostgreSQL: postgres://…); secrets may be in it,
	// so it is never logged or shown in errors.
	DSN string
	// DataDir is the server's data directory (SQLite keeps its database there).
	DataDir string
	// Hasher and Chain key the store's hashes and seal its audit trail (required).
	Hasher erasure.Hasher
	Chain  erasure.AuditChain
	// Completion, Suppression and Escrow say what completed requests leave behind (see
	// sqlstore.Options).
	Completion  erasure.Completion
	Suppression erasure.Hasher
	Escrow      erasure.EscrowCipher
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Driver is a kind of store.
type Driver struct {
	// Open opens (and migrates) the store; errors are *erasure.Error values where they can be
	// (EINVALID for a bad DSN, EUNAVAILABLE for a database that does not answer).
	Open func(ctx context.Context, c Config) (*sqlstore.DB, error)
	// Shared reports whether several processes may share the store (leases taken over by
	// expiry, a leader elected among them); a store that is not shared is owned by one process,
	// which locks its data dir and takes over every lease at start.
	Shared bool
}

var (
	mu      sync.RWMutex
	drivers = map[string]Driver{}
)

// Register makes a driver available under name. It panics when name is taken or d has no Open
// (a programming error, found at start).
func Register(name string, d Driver) {
	mu.Lock()
	defer mu.Unlock()
	if d.Open == nil {
		panic("store: driver " + name + " has no Open")
	}
	if _, ok := drivers[name]; ok {
		panic("store: driver " + name + " registered twice")
	}
	drivers[name] = d
}

// Lookup returns the driver registered under name ("" is "sqlite"); EINVALID when this binary
// has none.
func Lookup(name string) (Driver, error) {
	if name == "" {
		name = "sqlite"
	}
	mu.RLock()
	defer mu.RUnlock()
	d, ok := drivers[name]
	if !ok {
		return Driver{}, erasure.Errorf(erasure.EINVALID, "store driver %q is not available in this build (available: %s)", name, strings.Join(names(), ", "))
	}
	return d, nil
}

// Open opens the store c names with its driver. Errors as Lookup and the driver's Open.
func Open(ctx context.Context, c Config) (*sqlstore.DB, Driver, error) {
	d, err := Lookup(c.Driver)
	if err != nil {
		return nil, Driver{}, err
	}
	db, err := d.Open(ctx, c)
	if err != nil {
		return nil, Driver{}, err
	}
	return db, d, nil
}

// Drivers returns the names of the registered drivers, sorted.
func Drivers() []string {
	mu.RLock()
	defer mu.RUnlock()
	return names()
}

func names() []string {
	out := make([]string, 0, len(drivers))
	for n := range drivers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
