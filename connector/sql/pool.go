package sqlconn

import (
	"database/sql"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Connection pools are shared by every dataset with the same driver and DSN (many datasets
// usually live in one database) and closed when the last connector using them closes.
var pools = struct {
	sync.Mutex
	m map[poolKey]*pool
}{m: map[poolKey]*pool{}}

type poolKey struct{ driver, dsn string }

type pool struct {
	db   *sql.DB
	refs int
}

// acquire returns the shared pool for (driver, dsn), opening it (without I/O) on first use.
func acquire(d dialect, dsn string) (*sql.DB, error) {
	pools.Lock()
	defer pools.Unlock()
	k := poolKey{d.driver, dsn}
	if p, ok := pools.m[k]; ok {
		p.refs++
		return p.db, nil
	}
	db, err := sql.Open(d.driver, dsn)
	if err != nil {
		return nil, err
	}
	if d.name == "sqlite" {
		// One writer at a time is all SQLite allows; more connections would only contend
		// for the lock inside this process.
		db.SetMaxOpenConns(1)
	} else {
		// As many idle as open: under load a pool that closes connections it will need again
		// at once spends its time reconnecting.
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	pools.m[k] = &pool{db: db, refs: 1}
	return db, nil
}

// release drops one reference to the pool for (driver, dsn) and closes it with the last one.
func release(d dialect, dsn string) error {
	pools.Lock()
	defer pools.Unlock()
	k := poolKey{d.driver, dsn}
	p, ok := pools.m[k]
	if !ok {
		return nil
	}
	p.refs--
	if p.refs > 0 {
		return nil
	}
	delete(pools.m, k)
	return p.db.Close()
}

// OpenPools returns the number of connection pools currently open, for tests of sharing.
func OpenPools() int {
	pools.Lock()
	defer pools.Unlock()
	return len(pools.m)
}
