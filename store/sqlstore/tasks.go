package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"erasure"
	"erasure/store/migrate"
)

// leaseStates is erasure.LeaseStates as an SQL list.
var leaseStates = func() string {
	var out []string
	for _, s := range erasure.LeaseStates {
		out = append(out, "'"+string(s)+"'")
	}
	return strings.Join(out, ", ")
}()

// LeaseTasks implements erasure.Store.
func (db *DB) LeaseTasks(ctx context.Context, owner string, n int, lease time.Duration) ([]erasure.Task, error) {
	var out []erasure.Task
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a := db.auditWriter(tx)
		var err error
		if out, err = db.leaseTx(ctx, tx, a, owner, n, lease); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	return out, err
}

// leaseTx leases up to n due tasks in tx. One statement picks the due tasks in a state of
// erasure.LeaseStates (oldest due first) and marks them running under owner, remembering the
// state each was leased from. On PostgreSQL the selection skips rows other leases hold (FOR
// UPDATE SKIP LOCKED), so that workers never wait for each other. The leased tasks' subjects
// and deadlines are read for all their requests at once.
func (db *DB) leaseTx(ctx context.Context, tx *sql.Tx, a *auditWriter, owner string, n int, lease time.Duration) ([]erasure.Task, error) {
	if n <= 0 {
		return nil, nil
	}
	now := db.Now()
	until := now.Add(lease)
	rows, err := db.query(ctx, tx, `UPDATE tasks SET leased_from = state, state = 'running', lease_owner = ?, due_at = ?, attempts = attempts + 1, updated_at = ?
		WHERE id IN (SELECT id FROM tasks WHERE state IN (`+leaseStates+`) AND due_at <= ? ORDER BY due_at, request_id LIMIT `+limitParam+db.skipLocked()+`)
		RETURNING `+taskColumns+`, leased_from`, owner, ms(until), ms(now), ms(now), n)
	if err != nil {
		return nil, err
	}
	var out []erasure.Task
	for rows.Next() {
		var t erasure.Task
		var from string
		if err := scanTask(rows, &t, &from); err != nil {
			rows.Close()
			return nil, err
		}
		t.PrevState = erasure.TaskState(from)
		a.move(t.Dataset, t.PrevState, erasure.TaskRunning, ms(now))
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return nil, err
	}
	var ids []string
	seen := map[string]bool{}
	for _, t := range out {
		if !seen[t.RequestID] {
			seen[t.RequestID] = true
			ids = append(ids, t.RequestID)
		}
	}
	subjects, deadlines, canaries, err := db.subjectsOf(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		rid := out[i].RequestID
		out[i].Subject, out[i].Deadline, out[i].Canary = subjects[rid], deadlines[rid], canaries[rid]
	}
	return out, nil
}

// subjectsOf reads the subjects (identifiers still in clear) and deadlines of requests, and
// which of them are canaries.
func (db *DB) subjectsOf(ctx context.Context, tx *sql.Tx, ids []string) (map[string]erasure.Subject, map[string]time.Time, map[string]bool, error) {
	subjects := make(map[string]erasure.Subject, len(ids))
	deadlines := make(map[string]time.Time, len(ids))
	canaries := map[string]bool{}
	byRequest := map[string][]erasure.Identifier{}
	for start := 0; start < len(ids); start += inChunk {
		args := padded(ids[start:min(len(ids), start+inChunk)], "")
		rows, err := db.query(ctx, tx, `SELECT id, deadline, canary FROM requests WHERE id IN (`+placeholders(inChunk)+`)`, args...)
		if err != nil {
			return nil, nil, nil, err
		}
		for rows.Next() {
			var id, canary string
			var deadline int64
			if err := rows.Scan(&id, &deadline, &canary); err != nil {
				rows.Close()
				return nil, nil, nil, err
			}
			deadlines[id] = fromMS(deadline)
			if canary != "" {
				canaries[id] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, nil, err
		}
		rows, err = db.query(ctx, tx, `SELECT request_id, type, value FROM identifiers WHERE request_id IN (`+placeholders(inChunk)+`) AND value IS NOT NULL`, args...)
		if err != nil {
			return nil, nil, nil, err
		}
		for rows.Next() {
			var rid string
			var id erasure.Identifier
			if err := rows.Scan(&rid, &id.Type, &id.Value); err != nil {
				rows.Close()
				return nil, nil, nil, err
			}
			byRequest[rid] = append(byRequest[rid], id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, nil, err
		}
	}
	for id, list := range byRequest {
		subjects[id] = erasure.NewSubject(list...)
	}
	return subjects, deadlines, canaries, nil
}

// subjectOf reads one request's subject and deadline, and whether it is a canary.
func (db *DB) subjectOf(ctx context.Context, tx *sql.Tx, requestID string) (erasure.Subject, time.Time, bool, error) {
	subjects, deadlines, canaries, err := db.subjectsOf(ctx, tx, []string{requestID})
	if err != nil {
		return nil, time.Time{}, false, err
	}
	d, ok := deadlines[requestID]
	if !ok {
		return nil, time.Time{}, false, sql.ErrNoRows
	}
	return subjects[requestID], d, canaries[requestID], nil
}

// ExtendLease implements erasure.Store.
func (db *DB) ExtendLease(ctx context.Context, owner string, ids []int64, lease time.Duration) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		until := ms(db.Now().Add(lease))
		for _, id := range ids {
			if _, err := db.exec(ctx, tx, `UPDATE tasks SET due_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?`, until, id, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReleaseLeases implements erasure.Store.
func (db *DB) ReleaseLeases(ctx context.Context) (int, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, `UPDATE tasks SET due_at = ? WHERE state = 'running'`, ms(db.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// FinishTasks implements erasure.Store.
func (db *DB) FinishTasks(ctx context.Context, results []erasure.TaskResult) ([]int64, error) {
	dropped, _, err := db.FinishAndLease(ctx, results, "", 0, 0)
	return dropped, err
}

// FinishAndLease implements erasure.Store: the results are applied, then the next tasks leased,
// then the audit block appended, in one transaction.
//
// On PostgreSQL, the results of requests another transaction holds (another worker finishing
// tasks of the same request, split between two leases) are not waited for in that transaction:
// they are applied in a second one once it committed. Waiting there, with this transaction's
// own requests locked, made the other workers wait in turn.
func (db *DB) FinishAndLease(ctx context.Context, results []erasure.TaskResult, owner string, n int, lease time.Duration) ([]int64, []erasure.Task, error) {
	var dropped []int64
	var leased []erasure.Task
	var busy []erasure.TaskResult
	skip := db.dialect == migrate.Postgres
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a := db.auditWriter(tx)
		var err error
		if dropped, busy, err = db.finishTx(ctx, tx, a, results, skip); err != nil {
			return err
		}
		if leased, err = db.leaseTx(ctx, tx, a, owner, n, lease); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	if err != nil {
		return nil, nil, err
	}
	if len(busy) == 0 {
		return dropped, leased, nil
	}
	// The lease above is committed: an error here is returned with it (the caller owns those
	// tasks), and a caller that tries the whole batch again finds the first transaction's
	// results applied already (dropped as stale: their tasks no longer run under that attempt).
	var more []int64
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		a := db.auditWriter(tx)
		var err error
		if more, _, err = db.finishTx(ctx, tx, a, busy, false); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	if err != nil {
		return dropped, leased, fmt.Errorf("results of %d tasks whose requests were held elsewhere: %w", len(busy), err)
	}
	return append(dropped, more...), leased, nil
}

// finishTx applies results in tx: per request touched, the results are applied to its state by
// the domain's Machine, which settles it, and the changes written; the events go to a. With
// skipLocked, the results of requests another transaction holds are returned as busy, not
// applied.
func (db *DB) finishTx(ctx context.Context, tx *sql.Tx, a *auditWriter, results []erasure.TaskResult, skipLocked bool) (dropped []int64, busy []erasure.TaskResult, err error) {
	if len(results) == 0 {
		return nil, nil, nil
	}
	now := db.Now()
	var order []string
	byRequest := map[string][]erasure.TaskResult{}
	for _, r := range results {
		if _, ok := byRequest[r.RequestID]; !ok {
			order = append(order, r.RequestID)
		}
		byRequest[r.RequestID] = append(byRequest[r.RequestID], r)
	}
	lock := db.forUpdate()
	if skipLocked {
		lock = db.skipLocked()
	}
	states, err := db.loadStatesLocking(ctx, tx, order, lock)
	if err != nil {
		return nil, nil, err
	}
	w := db.changeWriter(tx, a)
	for _, id := range order {
		rs := states[id]
		if rs == nil && skipLocked {
			busy = append(busy, byRequest[id]...)
			continue
		}
		if rs == nil {
			for _, r := range byRequest[id] {
				dropped = append(dropped, r.TaskID)
			}
			continue
		}
		m := db.machine(rs, now)
		for _, r := range byRequest[id] {
			if !m.Finish(r) {
				dropped = append(dropped, r.TaskID)
			}
		}
		m.Settle("pipeline")
		w.add(id, m.Changes())
	}
	return dropped, busy, w.flush(ctx)
}

// Task implements erasure.Store.
func (db *DB) Task(ctx context.Context, id int64) (*erasure.Task, error) {
	var t erasure.Task
	err := scanTask(db.readRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id), &t)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "task %d not found", id)
	}
	return &t, err
}

// ackOp is one AckTask waiting for the group commit.
type ackOp struct {
	ctx     context.Context
	dataset string
	d       erasure.AckDecision
	actor   string
	task    erasure.Task
	err     error
	done    chan struct{}
}

// AckTask implements erasure.Store. Concurrent calls are applied together (group commit: one
// transaction for every acknowledgement waiting, each decided by its request's Machine); each
// call returns once its own outcome is durable. An acknowledgement the Machine refuses (an
// unknown task, a stale decision) is refused alone.
func (db *DB) AckTask(ctx context.Context, dataset string, d erasure.AckDecision, actor string) (*erasure.Task, error) {
	op := &ackOp{ctx: ctx, dataset: dataset, d: d, actor: actor, done: make(chan struct{})}
	select {
	case db.acks <- op:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-op.done
	if op.err != nil {
		return nil, op.err
	}
	return &op.task, nil
}

// ackGroup applies the waiting AckTask calls in batches until Close.
func (db *DB) ackGroup() {
	defer close(db.acksDone)
	var g gatherer
	for op := range db.acks {
		batch, _ := gather(&g, db.acks, op, 256)
		var live []*ackOp
		take := func(ops []*ackOp) {
			for _, op := range ops {
				if err := op.ctx.Err(); err != nil {
					op.err = err
					close(op.done)
					continue
				}
				live = append(live, op)
			}
		}
		take(batch)
		if len(live) == 0 {
			continue
		}
		err := db.inTx(context.Background(), func(tx *sql.Tx) error {
			// The write lock is held: the acknowledgements that queued meanwhile join.
			take(drain(db.acks, 256-len(live)))
			return db.ackBatch(context.Background(), tx, live)
		})
		if err != nil && len(live) > 1 {
			// The batch failed as a whole (not one acknowledgement's refusal): each alone.
			for _, op := range live {
				op.err = db.inTx(op.ctx, func(tx *sql.Tx) error { return db.ackBatch(op.ctx, tx, []*ackOp{op}) })
			}
			err = nil
		}
		for _, op := range live {
			if err != nil && op.err == nil {
				op.err = err
			}
			close(op.done)
		}
	}
}

// ackBatch applies ops in tx: each request's acknowledgements go through its Machine in order,
// then the request is settled; an op the Machine refuses gets its error and changes nothing.
func (db *DB) ackBatch(ctx context.Context, tx *sql.Tx, ops []*ackOp) error {
	for _, op := range ops {
		op.err, op.task = nil, erasure.Task{}
	}
	requestOf := map[int64]string{}
	ids := make([]int64, 0, len(ops))
	for _, op := range ops {
		ids = append(ids, op.d.Ack.TaskID)
	}
	for start := 0; start < len(ids); start += inChunk {
		rows, err := db.query(ctx, tx, `SELECT id, request_id FROM tasks WHERE id IN (`+placeholders(inChunk)+`)`, padded(ids[start:min(len(ids), start+inChunk)], int64(-1))...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var rid string
			if err := rows.Scan(&id, &rid); err != nil {
				rows.Close()
				return err
			}
			requestOf[id] = rid
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var order []string
	seen := map[string]bool{}
	for _, op := range ops {
		rid, ok := requestOf[op.d.Ack.TaskID]
		if !ok {
			op.err = erasure.Errorf(erasure.ENOTFOUND, "task %d of dataset %s not found", op.d.Ack.TaskID, op.dataset)
			continue
		}
		if !seen[rid] {
			seen[rid] = true
			order = append(order, rid)
		}
	}
	states, err := db.loadStates(ctx, tx, order)
	if err != nil {
		return err
	}
	now := db.Now()
	machines := map[string]*erasure.Machine{}
	actors := map[string]string{}
	for _, op := range ops {
		rid, ok := requestOf[op.d.Ack.TaskID]
		if !ok {
			continue
		}
		m := machines[rid]
		if m == nil {
			m = db.machine(states[rid], now)
			machines[rid] = m
		}
		if _, err := m.Ack(op.dataset, op.d, op.actor); err != nil {
			op.err = err
			continue
		}
		actors[rid] = op.actor
	}
	a := db.auditWriter(tx)
	w := db.changeWriter(tx, a)
	for _, rid := range order {
		m := machines[rid]
		if actor, ok := actors[rid]; ok {
			m.Settle(actor)
		}
		w.add(rid, m.Changes())
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	for _, op := range ops {
		if op.err != nil {
			continue
		}
		for _, t := range states[requestOf[op.d.Ack.TaskID]].Tasks {
			if t.ID == op.d.Ack.TaskID {
				op.task = t
			}
		}
	}
	return a.flush(ctx)
}

// Deployment implements erasure.Store: the id generated by the migration that created the
// database.
func (db *DB) Deployment(ctx context.Context) (string, error) {
	var id string
	if err := db.readRow(ctx, `SELECT id FROM deployment`).Scan(&id); err != nil {
		return "", fmt.Errorf("store: deployment id: %w", err)
	}
	return id, nil
}
