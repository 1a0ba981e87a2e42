package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"erasure"
)

// LeaseTasks implements erasure.Store. One statement picks the due tasks (oldest due first)
// and marks them running under owner, remembering the state each was leased from; the
// PostgreSQL equivalent selects them with FOR UPDATE SKIP LOCKED.
func (db *DB) LeaseTasks(ctx context.Context, owner string, n int, lease time.Duration) ([]erasure.Task, error) {
	var out []erasure.Task
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.Now()
		until := now.Add(lease)
		rows, err := db.query(ctx, tx, `UPDATE tasks SET leased_from = state, state = 'running', lease_owner = ?, due_at = ?, attempts = attempts + 1, updated_at = ?
			WHERE id IN (SELECT id FROM tasks WHERE state IN ('pending', 'running', 'dispatched') AND due_at <= ? ORDER BY due_at LIMIT ?)
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
			if _, err := tx.ExecContext(ctx, `UPDATE tasks SET due_at = ? WHERE id = ? AND state = 'running' AND lease_owner = ?`, until, id, owner); err != nil {
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
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET due_at = ? WHERE state = 'running'`, ms(db.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// attemptData is the data of a task.attempt audit event.
type attemptData struct {
	Attempt  int               `json:"attempt"`
	Outcome  erasure.TaskState `json:"outcome"`
	Removed  int64             `json:"removed,omitempty"`
	Verified bool              `json:"verified,omitempty"`
	Error    string            `json:"error,omitempty"`
	Note     string            `json:"note,omitempty"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	DueAt    *time.Time        `json:"due_at,omitempty"`
	Found    []string          `json:"found,omitempty"`
}

// FinishTasks implements erasure.Store.
func (db *DB) FinishTasks(ctx context.Context, results []erasure.TaskResult) ([]int64, error) {
	var dropped []int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		dropped = dropped[:0]
		now := db.Now()
		upd, err := db.stmt(ctx, tx, `UPDATE tasks SET state = ?, due_at = ?, removed = removed + ?, last_error = ?, note = ?, verified_at = coalesce(?, verified_at), lease_owner = '', updated_at = ?, finished_at = ?
			WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?`)
		if err != nil {
			return err
		}
		a := db.auditWriter(tx)
		var touched []string
		seen := map[string]bool{}
		for _, r := range results {
			var verified, finished any
			if r.Verified {
				verified = ms(r.FinishedAt)
			}
			if r.State.Final() || r.State == erasure.TaskFailed {
				finished = ms(r.FinishedAt)
			}
			due := r.DueAt
			if due.IsZero() {
				due = now
			}
			res, err := upd.ExecContext(ctx, r.State, ms(due), r.Removed, r.Error, r.Note, verified, ms(now), finished, r.TaskID, r.Owner, r.Attempt)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				dropped = append(dropped, r.TaskID)
				continue
			}
			requestID, dataset := r.RequestID, r.Dataset
			d := attemptData{Attempt: r.Attempt, Outcome: r.State, Removed: r.Removed, Verified: r.Verified, Error: r.Error, Note: r.Note,
				Started: r.StartedAt.UTC(), Finished: r.FinishedAt.UTC()}
			if r.State == erasure.TaskPending || r.State == erasure.TaskDispatched {
				d.DueAt = &due
			}
			if len(r.Found) > 0 {
				added, err := db.insertIdentifiers(ctx, tx, requestID, r.Found, dataset, now)
				if err != nil {
					return err
				}
				d.Found = added
				if len(added) > 0 {
					if err := db.reopenLookups(ctx, tx, requestID, r.TaskID, r.Found, now); err != nil {
						return err
					}
				}
			}
			if err := a.append(ctx, &erasure.AuditEvent{Time: now, Actor: r.Owner, Type: erasure.EventTaskAttempt, RequestID: requestID, TaskID: r.TaskID, Dataset: dataset, Data: eventData(d)}); err != nil {
				return err
			}
			if r.Kind == erasure.TaskLookup && r.State.Succeeded() {
				if err := db.rerunIfOutdated(ctx, tx, r, now); err != nil {
					return err
				}
			}
			if !seen[requestID] {
				seen[requestID] = true
				touched = append(touched, requestID)
			}
		}
		for _, id := range touched {
			if err := db.settle(ctx, tx, a, id, "pipeline", now); err != nil {
				return err
			}
		}
		return nil
	})
	return dropped, err
}

// reopenLookups makes the finished lookups of a request that take one of the found identifier
// types run again, so that identity expansion reaches a fixpoint.
func (db *DB) reopenLookups(ctx context.Context, tx *sql.Tx, requestID string, except int64, found []erasure.Identifier, now time.Time) error {
	tasks, err := db.tasksTx(ctx, tx, requestID)
	if err != nil {
		return err
	}
	types := map[string]bool{}
	for _, id := range found {
		types[id.Type] = true
	}
	for _, t := range tasks {
		if t.Kind != erasure.TaskLookup || t.ID == except || !t.State.Succeeded() {
			continue
		}
		for _, k := range t.Keys {
			if types[k] {
				if _, err := tx.ExecContext(ctx, `UPDATE tasks SET state = 'pending', attempts = 0, due_at = ?, updated_at = ?, finished_at = NULL WHERE id = ?`, ms(now), ms(now), t.ID); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// rerunIfOutdated sets a finished lookup pending again when its request gained identifiers of
// the lookup's key types while it ran (found by another lookup committed meanwhile), so that
// identity expansion does not stop short.
func (db *DB) rerunIfOutdated(ctx context.Context, tx *sql.Tx, r erasure.TaskResult, now time.Time) error {
	var keys string
	if err := db.queryRow(ctx, tx, `SELECT keys FROM tasks WHERE id = ?`, r.TaskID).Scan(&keys); err != nil {
		return err
	}
	var have int
	for _, k := range splitList(keys) {
		var n int
		if err := db.queryRow(ctx, tx, `SELECT count(*) FROM identifiers WHERE request_id = ? AND type = ?`, r.RequestID, k).Scan(&n); err != nil {
			return err
		}
		have += n
	}
	if have <= r.Inputs {
		return nil
	}
	_, err := db.exec(ctx, tx, `UPDATE tasks SET state = 'pending', attempts = 0, due_at = ?, updated_at = ?, finished_at = NULL WHERE id = ?`, ms(now), ms(now), r.TaskID)
	return err
}

// promote makes runnable blocked tasks pending (see erasure.Runnable) and updates tasks.
func (db *DB) promote(ctx context.Context, tx *sql.Tx, tasks []erasure.Task, now time.Time) error {
	ids := erasure.Runnable(tasks)
	if len(ids) == 0 {
		return nil
	}
	set := map[int64]bool{}
	for _, id := range ids {
		set[id] = true
		if _, err := db.exec(ctx, tx, `UPDATE tasks SET state = 'pending', due_at = ?, updated_at = ? WHERE id = ? AND state = 'blocked'`, ms(now), ms(now), id); err != nil {
			return err
		}
	}
	for i := range tasks {
		if set[tasks[i].ID] {
			tasks[i].State = erasure.TaskPending
		}
	}
	return nil
}

// settle brings a request up to date after its tasks changed: promotes runnable tasks,
// derives the status, audits a change of status, and hashes the identifiers once it ended.
func (db *DB) settle(ctx context.Context, tx *sql.Tx, a *auditWriter, requestID, actor string, now time.Time) error {
	// The counts come from one aggregate query; the tasks themselves are read only when some
	// are blocked (to promote them) or the status changes (for the audit event).
	var status erasure.RequestStatus
	var cancelled bool
	var c erasure.TaskCounts
	err := db.queryRow(ctx, tx, `SELECT r.status, r.cancelled, count(t.id),
			coalesce(sum(t.state IN ('done', 'skipped')), 0), coalesce(sum(t.state = 'failed'), 0),
			coalesce(sum(t.state IN ('pending', 'running', 'dispatched', 'queued')), 0), coalesce(sum(t.state = 'blocked'), 0),
			coalesce(sum(t.attempts > 0 OR t.last_error <> '' OR t.removed > 0 OR t.state IN ('done', 'skipped')), 0)
		FROM requests r LEFT JOIN tasks t ON t.request_id = r.id WHERE r.id = ? GROUP BY r.id`, requestID).
		Scan(&status, &cancelled, &c.Total, &c.Succeeded, &c.Failed, &c.Active, &c.Blocked, &c.Started)
	if err != nil {
		return err
	}
	var tasks []erasure.Task
	if c.Blocked > 0 && !cancelled {
		if tasks, err = db.tasksTx(ctx, tx, requestID); err != nil {
			return err
		}
		if err := db.promote(ctx, tx, tasks, now); err != nil {
			return err
		}
		c = erasure.CountTasks(tasks)
	}
	next := c.Status(cancelled)
	if next == status {
		return nil
	}
	var finished any
	if next.Ended() {
		finished = ms(now)
	}
	if _, err := db.exec(ctx, tx, `UPDATE requests SET status = ?, updated_at = ?, finished_at = ? WHERE id = ?`, next, ms(now), finished, requestID); err != nil {
		return err
	}
	evType := map[erasure.RequestStatus]string{erasure.RequestCompleted: erasure.EventRequestCompleted, erasure.RequestFailed: erasure.EventRequestFailed, erasure.RequestCancelled: erasure.EventRequestCancelled}[next]
	if evType != "" {
		if tasks == nil {
			if tasks, err = db.tasksTx(ctx, tx, requestID); err != nil {
				return err
			}
		}
		counts := map[erasure.TaskState]int{}
		var removed int64
		for _, t := range tasks {
			counts[t.State]++
			removed += t.Removed
		}
		if err := a.append(ctx, &erasure.AuditEvent{Time: now, Actor: actor, Type: evType, RequestID: requestID,
			Data: eventData(map[string]any{"from": status, "tasks": counts, "removed": removed})}); err != nil {
			return err
		}
	}
	if next.Ended() {
		res, err := db.exec(ctx, tx, `UPDATE identifiers SET value = NULL WHERE request_id = ? AND value IS NOT NULL`, requestID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if err := a.append(ctx, &erasure.AuditEvent{Time: now, Actor: "pipeline", Type: erasure.EventSubjectHashed, RequestID: requestID,
			Data: eventData(map[string]any{"identifiers": n})}); err != nil {
			return err
		}
	}
	return nil
}

// Task implements erasure.Store.
func (db *DB) Task(ctx context.Context, id int64) (*erasure.Task, error) {
	var t erasure.Task
	err := scanTask(db.r.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id), &t)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "task %d not found", id)
	}
	return &t, err
}

// AckTask implements erasure.Store.
func (db *DB) AckTask(ctx context.Context, dataset string, ack erasure.Ack, actor string, onFailed func(erasure.Task) (erasure.TaskState, time.Time)) (*erasure.Task, error) {
	var out erasure.Task
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var t erasure.Task
		err := scanTask(tx.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, ack.TaskID), &t)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && t.Dataset != dataset) {
			return erasure.Errorf(erasure.ENOTFOUND, "task %d of dataset %s not found", ack.TaskID, dataset)
		} else if err != nil {
			return err
		}
		out = t
		if t.Method != erasure.MethodAsync {
			return erasure.Errorf(erasure.ECONFLICT, "task %d is not an async task", t.ID)
		}
		switch {
		case t.State == erasure.TaskCancelled:
			return erasure.Errorf(erasure.ECONFLICT, "task %d was cancelled", t.ID)
		case t.State == erasure.TaskDone || t.State == erasure.TaskSkipped:
			return nil // idempotent
		}
		now := db.Now()
		var next erasure.TaskState
		due := now
		switch ack.Status {
		case "done":
			next = erasure.TaskDone
		case "failed":
			if t.State != erasure.TaskDispatched {
				return nil // a newer attempt is under way
			}
			next, due = onFailed(t)
		default:
			return erasure.Errorf(erasure.EINVALID, "ack status must be done or failed")
		}
		var finished any
		if next == erasure.TaskDone || next == erasure.TaskFailed {
			finished = ms(now)
		}
		removed := ack.Removed
		if next != erasure.TaskDone {
			removed = 0
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET state = ?, due_at = ?, removed = removed + ?, last_error = ?, lease_owner = '', updated_at = ?, finished_at = ? WHERE id = ? AND state = ?`,
			next, ms(due), removed, truncate(ack.Error, 1000), ms(now), finished, t.ID, t.State); err != nil {
			return err
		}
		a := db.auditWriter(tx)
		if err := a.append(ctx, &erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventTaskAcked, RequestID: t.RequestID, TaskID: t.ID, Dataset: t.Dataset,
			Data: eventData(map[string]any{"status": ack.Status, "removed": ack.Removed, "error": truncate(ack.Error, 1000), "from": t.State, "outcome": next, "attempt": t.Attempts})}); err != nil {
			return err
		}
		if err := db.settle(ctx, tx, a, t.RequestID, actor, now); err != nil {
			return err
		}
		return scanTask(tx.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, t.ID), &out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
