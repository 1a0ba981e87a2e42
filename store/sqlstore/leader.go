package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"time"

	"erasure/store/migrate"
)

// LeaderLock is the store's leader lock, held by one process at a time among those sharing
// the store: the process that holds it runs the work done once per deployment.
//
// On PostgreSQL it is a session advisory lock keyed by the schema (so that deployments in
// other schemas of the database elect their own leaders), held on a connection of its own:
// it needs no clock and no renewal, and it is released the moment the holder's session ends
// (the process died, or lost the database), so that another process takes it at its next try.
// The holder pings its connection every PingEvery; a failed ping means the lock may be gone:
// Lost is closed and the connection dropped. On SQLite one process owns the store (its data
// dir is locked): the lock is always granted and never lost.
type LeaderLock struct {
	conn *sql.Conn
	lost chan struct{}
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

// PingEvery is how often the holder of a leader lock on PostgreSQL checks its connection.
const PingEvery = time.Second

// leaderKey is the advisory lock's key: the schema's, so that two deployments in two schemas
// of one database have their own leaders.
const leaderKey = `hashtextextended('erasure.leader:' || current_schema(), 0)`

// TryLead takes the leader lock when no other process holds it, and returns nil, nil when
// one does. Errors are for a store that does not answer.
func (db *DB) TryLead(ctx context.Context) (*LeaderLock, error) {
	l := &LeaderLock{lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if db.dialect != migrate.Postgres {
		close(l.done)
		return l, nil
	}
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+leaderKey+`)`).Scan(&got); err != nil {
		conn.Close()
		return nil, unavailable(err)
	}
	if !got {
		conn.Close()
		return nil, nil
	}
	l.conn = conn
	go l.watch()
	return l, nil
}

// watch pings the lock's connection until Release; a failed ping loses the lock.
func (l *LeaderLock) watch() {
	defer close(l.done)
	t := time.NewTicker(PingEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), PingEvery)
		err := l.conn.PingContext(ctx)
		cancel()
		if err != nil {
			// The session may be gone, and the lock with it: stop leading now. Closing the
			// connection ends the session if it still runs, so that the lock is free.
			// (Raw returning ErrBadConn makes database/sql discard the connection.)
			l.conn.Raw(func(any) error { return driver.ErrBadConn })
			l.conn.Close()
			l.conn = nil
			close(l.lost)
			return
		}
	}
}

// Lost is closed when the lock is lost (PostgreSQL: the lock's connection failed).
func (l *LeaderLock) Lost() <-chan struct{} { return l.lost }

// Release gives the lock up (another process may take it at once) and closes its connection.
// Calling it again does nothing.
func (l *LeaderLock) Release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		if l.conn == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+leaderKey+`)`)
		// The connection goes back to no pool: a session lock left by a failed unlock ends
		// with it.
		l.conn.Raw(func(any) error { return driver.ErrBadConn })
		l.conn.Close()
	})
}
