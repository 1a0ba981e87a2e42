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

// LeaseTasks implements erasure.Store. One statement picks the due tasks in a state of
// erasure.LeaseStates (oldest due first) and marks them running under owner, remembering the
// state each was leased from. On PostgreSQL the selection skips rows other leases hold (FOR
// UPDATE SKIP LOCKED), so that workers never wait for each other.
func (db *DB) LeaseTasks(ctx context.Context, owner string, n int, lease time.Duration) ([]erasure.Task, error) {
	var out []erasure.Task
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.Now()
		until := now.Add(lease)
		rows, err := db.query(ctx, tx, `UPDATE tasks SET leased_from = state, state = 'running', lease_owner = ?, due_at = ?, attempts = attempts + 1, updated_at = ?
			WHERE id IN (SELECT id FROM tasks WHERE state IN (`+leaseStates+`) AND due_at <= ? ORDER BY due_at LIMIT ?`+db.skipLocked()+`)
			RETURNING `+taskColumns+`, leased_from`, owner, ms(until), ms(now), ms(now), n)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t erasure.Task
			var from string
			if err := scanTask(rows, &t, &from); err != nil {
				rows.Close()
				return err
			}
			t.PrevState = erasure.TaskState(from)
			out = append(out, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		subjects := map[string]erasure.Subject{}
		deadlines := map[string]time.Time{}
		for i := range out {
			t := &out[i]
			if _, ok := subjects[t.RequestID]; !ok {
				s, deadline, err := db.subjectOf(ctx, tx, t.RequestID)
				if err != nil {
					return err
				}
				subjects[t.RequestID], deadlines[t.RequestID] = s, deadline
			}
			t.Subject, t.Deadline = subjects[t.RequestID], deadlines[t.RequestID]
		}
		return nil
	})
	return out, err
}

func (db *DB) subjectOf(ctx context.Context, tx *sql.Tx, requestID string) (erasure.Subject, time.Time, error) {
	var deadline int64
	if err := db.queryRow(ctx, tx, `SELECT deadline FROM requests WHERE id = ?`, requestID).Scan(&deadline); err != nil {
		return nil, time.Time{}, err
	}
	rows, err := db.query(ctx, tx, `SELECT type, value FROM identifiers WHERE request_id = ? AND value IS NOT NULL`, requestID)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	var ids []erasure.Identifier
	for rows.Next() {
		var id erasure.Identifier
		if err := rows.Scan(&id.Type, &id.Value); err != nil {
			return nil, time.Time{}, err
		}
		ids = append(ids, id)
	}
	return erasure.NewSubject(ids...), fromMS(deadline), rows.Err()
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

// FinishTasks implements erasure.Store: per request touched, the results are applied to its
// state by the domain's Machine, which settles it, and the changes are written.
func (db *DB) FinishTasks(ctx context.Context, results []erasure.TaskResult) ([]int64, error) {
	var dropped []int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		dropped = dropped[:0]
		now := db.Now()
		a := db.auditWriter(tx)
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
			return err
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
			m := db.machine(rs, now)
			for _, r := range byRequest[id] {
				if !m.Finish(r) {
					dropped = append(dropped, r.TaskID)
				}
			}
			m.Settle("pipeline")
			w.add(id, m.Changes())
		}
		if err := w.flush(ctx); err != nil {
			return err
		}
		return a.flush(ctx)
	})
	return dropped, err
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
		m := db.machine(rs, db.Now())
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
