package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"erasure"
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
		WHERE id IN (SELECT id FROM tasks WHERE state IN (`+leaseStates+`) AND due_at <= ? ORDER BY due_at LIMIT ?`+db.skipLocked()+`)
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
	subjects, deadlines, err := db.subjectsOf(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Subject, out[i].Deadline = subjects[out[i].RequestID], deadlines[out[i].RequestID]
	}
	return out, nil
}

// subjectsOf reads the subjects (identifiers still in clear) and deadlines of requests.
func (db *DB) subjectsOf(ctx context.Context, tx *sql.Tx, ids []string) (map[string]erasure.Subject, map[string]time.Time, error) {
	subjects := make(map[string]erasure.Subject, len(ids))
	deadlines := make(map[string]time.Time, len(ids))
	byRequest := map[string][]erasure.Identifier{}
	for start := 0; start < len(ids); start += inChunk {
		args := padded(ids[start:min(len(ids), start+inChunk)], "")
		rows, err := db.query(ctx, tx, `SELECT id, deadline FROM requests WHERE id IN (`+placeholders(inChunk)+`)`, args...)
		if err != nil {
			return nil, nil, err
		}
		for rows.Next() {
			var id string
			var deadline int64
			if err := rows.Scan(&id, &deadline); err != nil {
				rows.Close()
				return nil, nil, err
			}
			deadlines[id] = fromMS(deadline)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		rows, err = db.query(ctx, tx, `SELECT request_id, type, value FROM identifiers WHERE request_id IN (`+placeholders(inChunk)+`) AND value IS NOT NULL`, args...)
		if err != nil {
			return nil, nil, err
		}
		for rows.Next() {
			var rid string
			var id erasure.Identifier
			if err := rows.Scan(&rid, &id.Type, &id.Value); err != nil {
				rows.Close()
				return nil, nil, err
			}
			byRequest[rid] = append(byRequest[rid], id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
	}
	for id, list := range byRequest {
		subjects[id] = erasure.NewSubject(list...)
	}
	return subjects, deadlines, nil
}

// subjectOf reads one request's subject and deadline.
func (db *DB) subjectOf(ctx context.Context, tx *sql.Tx, requestID string) (erasure.Subject, time.Time, error) {
	subjects, deadlines, err := db.subjectsOf(ctx, tx, []string{requestID})
	if err != nil {
		return nil, time.Time{}, err
	}
	d, ok := deadlines[requestID]
	if !ok {
		return nil, time.Time{}, sql.ErrNoRows
	}
	return subjects[requestID], d, nil
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
func (db *DB) FinishAndLease(ctx context.Context, results []erasure.TaskResult, owner string, n int, lease time.Duration) ([]int64, []erasure.Task, error) {
	var dropped []int64
	var leased []erasure.Task
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a := db.auditWriter(tx)
		var err error
		if dropped, err = db.finishTx(ctx, tx, a, results); err != nil {
			return err
		}
		if leased, err = db.leaseTx(ctx, tx, a, owner, n, lease); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	return dropped, leased, err
}

// finishTx applies results in tx: per request touched, the results are applied to its state by
// the domain's Machine, which settles it, and the changes written; the events go to a.
func (db *DB) finishTx(ctx context.Context, tx *sql.Tx, a *auditWriter, results []erasure.TaskResult) ([]int64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	var dropped []int64
	now := db.Now()
	var order []string
	byRequest := map[string][]erasure.TaskResult{}
	for _, r := range results {
		if _, ok := byRequest[r.RequestID]; !ok {
			order = append(order, r.RequestID)
		}
		byRequest[r.RequestID] = append(byRequest[r.RequestID], r)
	}
	states, err := db.loadStates(ctx, tx, order)
	if err != nil {
		return nil, err
	}
	w := db.changeWriter(tx, a)
	for _, id := range order {
		rs := states[id]
		if rs == nil {
			for _, r := range byRequest[id] {
				dropped = append(dropped, r.TaskID)
			}
			continue
		}
		m := erasure.NewMachine(rs, db.hasher, now)
		for _, r := range byRequest[id] {
			if !m.Finish(r) {
				dropped = append(dropped, r.TaskID)
			}
		}
		m.Settle("pipeline")
		w.add(id, m.Changes())
	}
	return dropped, w.flush(ctx)
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

// AckTask implements erasure.Store.
func (db *DB) AckTask(ctx context.Context, dataset string, d erasure.AckDecision, actor string) (*erasure.Task, error) {
	var out erasure.Task
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var requestID string
		err := db.queryRow(ctx, tx, `SELECT request_id FROM tasks WHERE id = ?`, d.Ack.TaskID).Scan(&requestID)
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "task %d of dataset %s not found", d.Ack.TaskID, dataset)
		} else if err != nil {
			return err
		}
		rs, err := db.loadState(ctx, tx, requestID)
		if err != nil {
			return err
		}
		m := erasure.NewMachine(rs, db.hasher, db.Now())
		if _, err := m.Ack(dataset, d, actor); err != nil {
			return err
		}
		m.Settle(actor)
		if err := db.writeChanges(ctx, tx, requestID, m.Changes()); err != nil {
			return err
		}
		for _, t := range rs.Tasks {
			if t.ID == d.Ack.TaskID {
				out = t
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
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
