package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"erasure"
)

// The store decides nothing about tasks: it loads requests' states in a transaction, lets the
// domain's erasure.Machine apply events to them, and writes the Machines' changes with their
// audit events in the same transaction (see machine.go in the root package). Loads and writes
// are batched: a statement costs more than the rows it touches.

// inChunk is how many ids one batched statement takes; shorter lists are padded with values
// that match nothing, so that each statement is prepared once.
const inChunk = 32

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// padded returns chunk as arguments, padded to inChunk with pad.
func padded[T any](chunk []T, pad T) []any {
	args := make([]any, inChunk)
	for i := range args {
		if i < len(chunk) {
			args[i] = chunk[i]
		} else {
			args[i] = pad
		}
	}
	return args
}

// loadStates reads the states of the requests ids inside tx; a request that does not exist
// is absent from the map.
func (db *DB) loadStates(ctx context.Context, tx *sql.Tx, ids []string) (map[string]*erasure.RequestState, error) {
	return db.loadStatesLocking(ctx, tx, ids, db.forUpdate())
}

// loadStatesLocking is loadStates with the requests' rows locked by lock (on PostgreSQL:
// " FOR UPDATE", or " FOR UPDATE SKIP LOCKED", which leaves out the requests another
// transaction holds, as if they did not exist).
func (db *DB) loadStatesLocking(ctx context.Context, tx *sql.Tx, ids []string, lock string) (map[string]*erasure.RequestState, error) {
	// Requests are locked in id order across chunks too, so that two transactions locking
	// more than a chunk's worth never take them in opposite orders (a deadlock on PostgreSQL).
	ids = slices.Sorted(slices.Values(ids))
	out := make(map[string]*erasure.RequestState, len(ids))
	var holds []erasure.Hold
	if len(ids) > 0 {
		var err error
		if holds, err = db.activeHolds(ctx, tx); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(ids); start += inChunk {
		args := padded(ids[start:min(len(ids), start+inChunk)], "")
		// On PostgreSQL the requests' rows are locked, in id order, before their tasks are read:
		// changes of one request are serialised, changes of others are not.
		rows, err := db.query(ctx, tx, `SELECT id, status, cancelled, not_before, suppress, submitted_by FROM requests WHERE id IN (`+placeholders(inChunk)+`) ORDER BY id`+lock, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			rs := &erasure.RequestState{Holds: holds}
			var notBefore sql.NullInt64
			if err := rows.Scan(&rs.ID, &rs.Status, &rs.Cancelled, &notBefore, &rs.Suppress, &rs.SubmittedBy); err != nil {
				rows.Close()
				return nil, err
			}
			if notBefore.Valid {
				rs.NotBefore = fromMS(notBefore.Int64)
			}
			out[rs.ID] = rs
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		// Only the requests read (and locked) are read further: one another transaction holds
		// (skipped) has its tasks locked by it too.
		var got []string
		for _, id := range ids[start:min(len(ids), start+inChunk)] {
			if out[id] != nil {
				got = append(got, id)
			}
		}
		if len(got) == 0 {
			continue
		}
		args = padded(got, "")
		// Their tasks are locked too: a lease (which takes task rows only, skipping locked ones)
		// cannot change a task between this read and the write of the decision.
		rows, err = db.query(ctx, tx, `SELECT `+taskColumns+` FROM tasks WHERE request_id IN (`+placeholders(inChunk)+`) ORDER BY id`+db.forUpdate(), args...)
		if err != nil {
			return nil, err
		}
		tasks, err := collectTasks(rows)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			if rs := out[t.RequestID]; rs != nil {
				rs.Tasks = append(rs.Tasks, t)
			}
		}
		rows, err = db.query(ctx, tx, `SELECT request_id, hash FROM identifiers WHERE request_id IN (`+placeholders(inChunk)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, h string
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return nil, err
			}
			if rs := out[id]; rs != nil {
				rs.Identifiers = append(rs.Identifiers, h)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadState reads one request's state inside tx; ENOTFOUND when it does not exist.
func (db *DB) loadState(ctx context.Context, tx *sql.Tx, id string) (*erasure.RequestState, error) {
	states, err := db.loadStates(ctx, tx, []string{id})
	if err != nil {
		return nil, err
	}
	rs := states[id]
	if rs == nil {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
	}
	return rs, nil
}

// changeWriter gathers the changes of several Machines and writes them at flush, in as few
// statements as it can, with their audit events in the order they were decided.
type changeWriter struct {
	db       *DB
	tx       *sql.Tx
	audit    *auditWriter
	tasks    []erasure.Task
	guards   []erasure.TaskGuard
	requests []requestChange
	found    []foundIdentifier
	events   []erasure.AuditEvent
}

type requestChange struct {
	id string
	ch erasure.Changes
}

type foundIdentifier struct {
	requestID string
	id        erasure.NewIdentifier
}

func (db *DB) changeWriter(tx *sql.Tx, a *auditWriter) *changeWriter {
	return &changeWriter{db: db, tx: tx, audit: a}
}

// add takes what a Machine decided for request id.
func (w *changeWriter) add(id string, ch erasure.Changes) {
	w.tasks = append(w.tasks, ch.Tasks...)
	w.guards = append(w.guards, ch.Guard...)
	if ch.Status != "" || ch.Cancelled || ch.FinishedAt != nil || len(ch.Suppress) > 0 || len(ch.Escrow) > 0 {
		w.requests = append(w.requests, requestChange{id, ch})
	}
	for _, n := range ch.Identifiers {
		w.found = append(w.found, foundIdentifier{id, n})
	}
	w.events = append(w.events, ch.Events...)
}

// taskUpdate writes up to inChunk tasks, each only if it still has the state and attempts it
// was loaded with (rows padded with id -1 match nothing). The casts type the VALUES columns
// for PostgreSQL; VALUES columns are named column1… in both dialects.
const taskUpdate = `UPDATE tasks SET state = v.column4, due_at = v.column5, attempts = v.column6, last_error = v.column7, removed = v.column8,
		note = v.column9, verified_at = v.column10, lease_owner = v.column11, sweep_id = v.column12, updated_at = v.column13, finished_at = v.column14,
		guard = v.column15
	FROM (VALUES %s) AS v
	WHERE tasks.id = v.column1 AND tasks.state = v.column2 AND tasks.attempts = v.column3`

const taskUpdateRow = `(CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS INTEGER), CAST(? AS TEXT),
	CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT))`

var taskUpdateChunk = fmt.Sprintf(taskUpdate, strings.TrimSuffix(strings.Repeat(taskUpdateRow+", ", inChunk), ", "))

// flush writes everything added; the events go to the audit writer, which the caller flushes
// last.
func (w *changeWriter) flush(ctx context.Context) error {
	db, tx := w.db, w.tx
	for i, t := range w.tasks {
		w.audit.move(t.Dataset, w.guards[i].State, t.State, ms(t.UpdatedAt))
	}
	for start := 0; start < len(w.tasks); start += inChunk {
		end := min(len(w.tasks), start+inChunk)
		args := make([]any, 0, 15*inChunk)
		for i := start; i < end; i++ {
			t, g := w.tasks[i], w.guards[i]
			args = append(args, t.ID, g.State, g.Attempts, t.State, ms(t.DueAt), t.Attempts, t.LastError, t.Removed, t.Note, nullMS(t.VerifiedAt),
				t.LeaseOwner, t.SweepID, ms(t.UpdatedAt), nullMS(t.FinishedAt), string(t.Guard))
		}
		for i := end - start; i < inChunk; i++ {
			args = append(args, -1, "", 0, "", 0, 0, "", 0, "", nil, "", "", 0, nil, "")
		}
		res, err := db.exec(ctx, tx, taskUpdateChunk, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != int64(end-start) {
			// The write lock is held from the load to here: this is a bug, not a race.
			return fmt.Errorf("%d of %d tasks changed under the write lock", int64(end-start)-n, end-start)
		}
	}
	now := ms(db.Now())
	for _, f := range w.found {
		if _, err := db.exec(ctx, tx, `INSERT INTO identifiers (request_id, type, value, hash, found_by, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			f.requestID, f.id.Type, f.id.Value, f.id.Hash, f.id.FoundBy, now); err != nil {
			return err
		}
	}
	if err := w.writeRequests(ctx, now); err != nil {
		return err
	}
	for _, ev := range w.events {
		w.audit.append(ev)
	}
	*w = changeWriter{db: db, tx: tx, audit: w.audit}
	return nil
}

// requestUpdate writes up to inChunk requests' changes (rows padded with id ” match nothing):
// the status when one is given, cancelled when set, finished_at when given.
const requestUpdate = `UPDATE requests SET status = coalesce(nullif(v.column2, ''), requests.status),
		cancelled = CASE WHEN v.column3 = 1 THEN 1 ELSE requests.cancelled END, updated_at = v.column4,
		finished_at = coalesce(v.column5, requests.finished_at)
	FROM (VALUES %s) AS v
	WHERE requests.id = v.column1`

const requestUpdateRow = `(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS INTEGER), CAST(? AS BIGINT), CAST(? AS BIGINT))`

var requestUpdateChunk = fmt.Sprintf(requestUpdate, strings.TrimSuffix(strings.Repeat(requestUpdateRow+", ", inChunk), ", "))

// scrubChunk forgets the clear identifiers of up to inChunk ended requests.
var scrubChunk = `UPDATE identifiers SET value = NULL WHERE request_id IN (` + placeholders(inChunk) + `) AND value IS NOT NULL`

// writeRequests writes the requests' changes, inChunk requests per statement: their rows, then
// what the ended ones leave behind (made of their clear identifiers), then the scrub of those
// identifiers. A request changed twice in one flush is written in two statements, in order.
func (w *changeWriter) writeRequests(ctx context.Context, now int64) error {
	db, tx := w.db, w.tx
	var chunk []requestChange
	inChunkAlready := map[string]bool{}
	write := func() error {
		if len(chunk) == 0 {
			return nil
		}
		args := make([]any, 0, 5*inChunk)
		var behind []requestChange
		var ended []string
		for _, r := range chunk {
			cancelled := 0
			if r.ch.Cancelled {
				cancelled = 1
			}
			args = append(args, r.id, string(r.ch.Status), cancelled, now, nullMS(r.ch.FinishedAt))
			if len(r.ch.Suppress) > 0 || len(r.ch.Escrow) > 0 {
				behind = append(behind, r)
			}
			if r.ch.FinishedAt != nil {
				ended = append(ended, r.id)
			}
		}
		for i := len(chunk); i < inChunk; i++ {
			args = append(args, "", "", 0, 0, nil)
		}
		if _, err := db.exec(ctx, tx, requestUpdateChunk, args...); err != nil {
			return err
		}
		// The clear values are still here: what the requests leave behind is made of them
		// before they are dropped, below.
		if err := db.leaveBehind(ctx, tx, behind); err != nil {
			return err
		}
		if len(ended) > 0 {
			if _, err := db.exec(ctx, tx, scrubChunk, padded(ended, "")...); err != nil {
				return err
			}
			db.scrubbed()
		}
		chunk = chunk[:0]
		clear(inChunkAlready)
		return nil
	}
	for _, r := range w.requests {
		if inChunkAlready[r.id] || len(chunk) == inChunk {
			if err := write(); err != nil {
				return err
			}
		}
		chunk = append(chunk, r)
		inChunkAlready[r.id] = true
	}
	return write()
}

// writeChanges persists what one Machine decided for request id, with its audit block, as the
// last statements of tx.
func (db *DB) writeChanges(ctx context.Context, tx *sql.Tx, id string, ch erasure.Changes) error {
	a := db.auditWriter(tx)
	w := db.changeWriter(tx, a)
	w.add(id, ch)
	if err := w.flush(ctx); err != nil {
		return err
	}
	return a.flush(ctx)
}
