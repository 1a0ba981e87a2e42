package sqlstore

import (
	"context"
	"time"

	"erasure/store/migrate"
)

// When a request ends its identifiers are replaced by NULL in the same transaction (the keyed
// hashes stay). On SQLite that is not yet enough for nothing of them to remain on disk: the
// write-ahead log keeps the pages as they were until it is checkpointed and reset, and a page's
// freed space keeps old bytes unless secure_delete zeroes them (store/sqlite turns it on). So
// after a transaction that scrubbed identifiers, the store checkpoints the log and truncates it
// to nothing (wal_checkpoint(TRUNCATE)), ScrubDelay later so that a burst of ended requests
// costs one checkpoint. PostgreSQL's own files (WAL, dead tuples until vacuum) are the
// database's to manage.

// ScrubDelay is how long after a request ends its identifiers may remain in SQLite's
// write-ahead log, at most (while the store is open; closing the store checkpoints too).
const ScrubDelay = time.Second

// scrubbed notes that the transaction being committed scrubbed identifiers.
func (db *DB) scrubbed() {
	if db.dialect == migrate.SQLite {
		db.scrubPending.Store(true)
	}
}

// afterCommit schedules a checkpoint when the committed transaction scrubbed identifiers.
func (db *DB) afterCommit() {
	if db.scrubPending.Swap(false) {
		select {
		case db.scrub <- struct{}{}:
		default:
		}
	}
}

// scrubLoop checkpoints the write-ahead log after scrubs until the store is closed.
func (db *DB) scrubLoop() {
	defer close(db.scrubDone)
	for {
		select {
		case <-db.scrubStop:
			return
		case <-db.scrub:
		}
		select {
		case <-db.scrubStop:
			return
		case <-time.After(ScrubDelay):
		}
		for try := 0; try < 10; try++ {
			if done, err := db.CheckpointWAL(context.Background()); err != nil || done {
				break
			}
			select {
			case <-db.scrubStop:
				return
			case <-time.After(ScrubDelay):
			}
		}
	}
}

// CheckpointWAL copies SQLite's write-ahead log into the database and truncates it to zero
// bytes, so that no page as it was before the last transactions stays in it. It reports false
// when readers kept it from completing (it is then tried again later). PostgreSQL: nothing to
// do, true.
func (db *DB) CheckpointWAL(ctx context.Context) (bool, error) {
	if db.dialect != migrate.SQLite {
		return true, nil
	}
	var busy, logFrames, checkpointed int
	if err := db.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return false, err
	}
	return busy == 0, nil
}
