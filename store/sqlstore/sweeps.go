package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"erasure"
)

var _ erasure.SweepStore = (*DB)(nil)

const sweepColumns = `id, dataset, state, mode, actor, tasks, started, finished, partitions, rows_scanned, rows_removed, bytes, error, lease_owner, lease_until, plan`

func scanSweep(sc interface{ Scan(...any) error }) (*erasure.Sweep, error) {
	var s erasure.Sweep
	var started, leaseUntil int64
	var finished sql.NullInt64
	if err := sc.Scan(&s.ID, &s.Dataset, &s.State, &s.Mode, &s.Actor, &s.Tasks, &started, &finished,
		&s.Partitions, &s.Scanned, &s.Removed, &s.Bytes, &s.Error, &s.Owner, &leaseUntil, &s.Plan); err != nil {
		return nil, err
	}
	s.Started, s.Finished = fromMS(started), fromNullMS(finished)
	if s.Owner != "" {
		t := fromMS(leaseUntil)
		s.LeaseUntil = &t
	}
	return &s, nil
}

// StartSweep implements erasure.SweepStore. The sweep takes, in one transaction, every erase
// task of dataset that is queued and in no sweep; an internal sweep starts running, an
// external one exported. EINVALID for an empty id or an unknown mode.
func (db *DB) StartSweep(ctx context.Context, dataset, id string, mode erasure.SweepMode, actor string) (*erasure.Sweep, []erasure.SweepSubject, error) {
	return db.startSweep(ctx, dataset, id, mode, actor, "", 0)
}

// startSweep starts a sweep, held by owner until now+lease when owner is set.
func (db *DB) startSweep(ctx context.Context, dataset, id string, mode erasure.SweepMode, actor, owner string, lease time.Duration) (*erasure.Sweep, []erasure.SweepSubject, error) {
	if id == "" || dataset == "" {
		return nil, nil, erasure.Errorf(erasure.EINVALID, "a sweep needs an id and a dataset")
	}
	state := erasure.SweepRunning
	switch mode {
	case erasure.SweepInternal:
	case erasure.SweepExternal:
		state = erasure.SweepExported
	default:
		return nil, nil, erasure.Errorf(erasure.EINVALID, "sweep mode %q is not internal or external", mode)
	}
	var sw *erasure.Sweep
	var subjects []erasure.SweepSubject
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		now := db.Now().Truncate(time.Millisecond).UTC()
		sw = &erasure.Sweep{ID: id, Dataset: dataset, State: state, Mode: mode, Actor: actor, Started: now}
		var until int64
		if owner != "" {
			u := now.Add(lease)
			sw.Owner, sw.LeaseUntil, until = owner, &u, ms(u)
		}
		subjects = nil
		var open string
		err := db.queryRow(ctx, tx, `SELECT id FROM sweeps WHERE dataset = ? AND state IN ('running', 'exported')`, dataset).Scan(&open)
		if err == nil {
			return erasure.Errorf(erasure.ECONFLICT, "dataset %s already has sweep %s open", dataset, open)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// The last term restates tasks_dataset_open's predicate so that the index is used.
		rows, err := db.query(ctx, tx, `SELECT id, request_id, keys, guard FROM tasks WHERE dataset = ? AND state = 'queued' AND sweep_id = '' AND kind = 'erase'
			AND state NOT IN ('done', 'skipped', 'cancelled') ORDER BY id`+db.forUpdate(), dataset)
		if err != nil {
			return err
		}
		type queued struct {
			id        int64
			requestID string
			keys      []string
			guard     erasure.GuardStatus
		}
		var tasks []queued
		for rows.Next() {
			var q queued
			var keys string
			if err := rows.Scan(&q.id, &q.requestID, &keys, &q.guard); err != nil {
				rows.Close()
				return err
			}
			q.keys = splitList(keys)
			tasks = append(tasks, q)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(tasks) == 0 {
			return err
		}
		sw.Tasks = len(tasks)
		if _, err := db.exec(ctx, tx, `INSERT INTO sweeps (`+sweepColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0, 0, 0, 0, '', ?, ?, '')`,
			id, dataset, state, mode, actor, len(tasks), ms(now), owner, until); uniqueViolation(err) {
			// Another process opened a sweep of the dataset since the check above.
			return erasure.Errorf(erasure.ECONFLICT, "dataset %s already has a sweep open", dataset)
		} else if err != nil {
			return err
		}
		ids := make([]int64, len(tasks))
		subjectOf := map[string]erasure.Subject{}
		for i, q := range tasks {
			ids[i] = q.id
			if _, err := db.exec(ctx, tx, `UPDATE tasks SET sweep_id = ?, updated_at = ? WHERE id = ? AND state = 'queued' AND sweep_id = ''`, id, ms(now), q.id); err != nil {
				return err
			}
			s, ok := subjectOf[q.requestID]
			if !ok {
				if s, _, _, err = db.subjectOf(ctx, tx, q.requestID); err != nil {
					return err
				}
				subjectOf[q.requestID] = s
			}
			if len(q.keys) > 0 {
				s = s.Only(q.keys)
			}
			subjects = append(subjects, erasure.SweepSubject{TaskID: q.id, Subject: s, OverrideGuard: q.guard == erasure.GuardOverridden})
		}
		return db.AppendAudit(ctx, tx, &erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventSweepStarted, Dataset: dataset,
			Data: erasure.EventData(map[string]any{"sweep": id, "mode": mode, "state": state, "tasks": ids})})
	})
	if err != nil {
		return nil, nil, err
	}
	return sw, subjects, nil
}

// SweepSubjects implements erasure.SweepStore: the subjects of every task of the sweep that is
// still queued, as StartSweep returned them (a task cancelled since is left out).
func (db *DB) SweepSubjects(ctx context.Context, id string) ([]erasure.SweepSubject, error) {
	if _, err := db.Sweep(ctx, id); err != nil {
		return nil, err
	}
	var out []erasure.SweepSubject
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := db.query(ctx, tx, `SELECT id, request_id, keys, guard FROM tasks WHERE sweep_id = ? AND state = 'queued' ORDER BY id`, id)
		if err != nil {
			return err
		}
		type ref struct {
			id        int64
			requestID string
			keys      string
			guard     erasure.GuardStatus
		}
		var refs []ref
		for rows.Next() {
			var r ref
			if err := rows.Scan(&r.id, &r.requestID, &r.keys, &r.guard); err != nil {
				rows.Close()
				return err
			}
			refs = append(refs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range refs {
			s, _, _, err := db.subjectOf(ctx, tx, r.requestID)
			if err != nil {
				return err
			}
			if keys := splitList(r.keys); len(keys) > 0 {
				s = s.Only(keys)
			}
			out = append(out, erasure.SweepSubject{TaskID: r.id, Subject: s, OverrideGuard: r.guard == erasure.GuardOverridden})
		}
		return nil
	})
	return out, err
}

// FinishSweep implements erasure.SweepStore. The sweep's end is decided by Sweep.Finish and,
// for each request with tasks in the sweep, by the Machine (CommitSweep or FailSweep, then
// Settle); the store writes both with a sweep.committed or sweep.failed event.
func (db *DB) FinishSweep(ctx context.Context, id string, res erasure.SweepResult, sweepErr error, actor string) (*erasure.Sweep, error) {
	var out *erasure.Sweep
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		sw, err := scanSweep(db.queryRow(ctx, tx, `SELECT `+sweepColumns+` FROM sweeps WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "sweep %s not found", id)
		} else if err != nil {
			return err
		}
		now := db.Now()
		if err := sw.Finish(res, sweepErr, now); err != nil {
			return err
		}
		if _, err := db.exec(ctx, tx, `UPDATE sweeps SET state = ?, finished = ?, partitions = ?, rows_scanned = ?, rows_removed = ?, bytes = ?, error = ?, lease_owner = '', lease_until = 0 WHERE id = ?`,
			sw.State, ms(*sw.Finished), res.Partitions, res.Scanned, res.Removed, res.Bytes, sw.Error, id); err != nil {
			return err
		}
		sw.Owner, sw.LeaseUntil = "", nil
		// Units no worker finished are left to no one.
		if _, err := db.exec(ctx, tx, `UPDATE sweep_units SET state = 'cancelled', lease_owner = '', finished_at = ? WHERE sweep_id = ? AND state IN ('pending', 'running')`,
			ms(now), id); err != nil {
			return err
		}
		rows, err := db.query(ctx, tx, `SELECT id, request_id FROM tasks WHERE sweep_id = ? AND state = 'queued' ORDER BY id`, id)
		if err != nil {
			return err
		}
		var ids []int64
		var requests []string
		seen := map[string]bool{}
		for rows.Next() {
			var tid int64
			var rid string
			if err := rows.Scan(&tid, &rid); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, tid)
			if !seen[rid] {
				seen[rid] = true
				requests = append(requests, rid)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		a := db.auditWriter(tx)
		w := db.changeWriter(tx, a)
		states, err := db.loadStates(ctx, tx, requests)
		if err != nil {
			return err
		}
		for _, rid := range requests {
			m := db.machine(states[rid], now)
			if sw.State == erasure.SweepCommitted {
				m.CommitSweep(sw, actor)
			} else {
				m.FailSweep(sw, sweepErr)
			}
			m.Settle(actor)
			w.add(rid, m.Changes())
		}
		if err := w.flush(ctx); err != nil {
			return err
		}
		ev := erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventSweepCommitted, Dataset: sw.Dataset,
			Data: erasure.EventData(map[string]any{"sweep": id, "result": res, "done": ids})}
		if sw.State == erasure.SweepFailed {
			ev.Type, ev.Data = erasure.EventSweepFailed, erasure.EventData(map[string]any{"sweep": id, "error": sw.Error, "result": res, "requeued": ids})
		}
		out = sw
		a.append(ev)
		return a.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Sweep implements erasure.SweepStore.
func (db *DB) Sweep(ctx context.Context, id string) (*erasure.Sweep, error) {
	sw, err := scanSweep(db.readRow(ctx, `SELECT `+sweepColumns+` FROM sweeps WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "sweep %s not found", id)
	}
	return sw, err
}

// Sweeps implements erasure.SweepStore. limit is taken between 1 and 500 (default 50).
func (db *DB) Sweeps(ctx context.Context, dataset string, limit int) ([]erasure.Sweep, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	q := `SELECT ` + sweepColumns + ` FROM sweeps`
	var args []any
	if dataset != "" {
		q += ` WHERE dataset = ?`
		args = append(args, dataset)
	}
	q += fmt.Sprintf(` ORDER BY started DESC, id DESC LIMIT %d`, limit)
	return db.sweeps(ctx, q, args...)
}

// OpenSweeps implements erasure.SweepStore, oldest first.
func (db *DB) OpenSweeps(ctx context.Context) ([]erasure.Sweep, error) {
	return db.sweeps(ctx, `SELECT `+sweepColumns+` FROM sweeps WHERE state IN ('running', 'exported') ORDER BY started, id`)
}

func (db *DB) sweeps(ctx context.Context, q string, args ...any) ([]erasure.Sweep, error) {
	rows, err := db.readQuery(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []erasure.Sweep{}
	for rows.Next() {
		sw, err := scanSweep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *sw)
	}
	return out, rows.Err()
}

// QueuedTasks implements erasure.SweepStore.
func (db *DB) QueuedTasks(ctx context.Context, dataset string) (int, time.Time, error) {
	var n int
	var earliest sql.NullInt64
	// The last term restates tasks_dataset_open's predicate so that the index is used.
	err := db.readRow(ctx, `SELECT count(*), min(r.deadline) FROM tasks t JOIN requests r ON r.id = t.request_id
		WHERE t.dataset = ? AND t.state = 'queued' AND t.sweep_id = '' AND t.kind = 'erase'
			AND t.state NOT IN ('done', 'skipped', 'cancelled')`, dataset).Scan(&n, &earliest)
	if err != nil {
		return 0, time.Time{}, err
	}
	if !earliest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMS(earliest.Int64), nil
}
