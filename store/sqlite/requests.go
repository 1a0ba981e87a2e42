package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"erasure"
)

// CreateRequest implements erasure.Store.
func (db *DB) CreateRequest(ctx context.Context, nr erasure.NewRequest) (*erasure.Request, bool, error) {
	var id string
	created := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if nr.IdempotencyKey != "" {
			var fp string
			err := tx.QueryRowContext(ctx, `SELECT id, fingerprint FROM requests WHERE idempotency_key = ?`, nr.IdempotencyKey).Scan(&id, &fp)
			if err == nil {
				if fp != nr.Fingerprint {
					return erasure.Errorf(erasure.ECONFLICT, "idempotency key already used for a different request (%s)", id)
				}
				return nil
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		id, created = nr.ID, true
		return db.insertRequest(ctx, tx, nr)
	})
	if err != nil {
		return nil, false, err
	}
	r, err := db.request(ctx, db.w, id)
	return r, created, err
}

func (db *DB) insertRequest(ctx context.Context, tx *sql.Tx, nr erasure.NewRequest) error {
	now := db.Now()
	var key any
	if nr.IdempotencyKey != "" {
		key = nr.IdempotencyKey
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO requests (id, status, reason, deadline, submitted_by, idempotency_key, fingerprint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nr.ID, erasure.RequestPending, nr.Reason, ms(nr.Deadline), nr.SubmittedBy, key, nr.Fingerprint, ms(now), ms(now)); err != nil {
		return err
	}
	hashes, err := db.insertIdentifiers(ctx, tx, nr.ID, nr.Subject, "submitted", now)
	if err != nil {
		return err
	}
	// Tasks are inserted blocked (erase) or pending (lookup), then the runnable ones promoted.
	tasks := make([]erasure.Task, len(nr.Tasks))
	ins, err := tx.PrepareContext(ctx, `INSERT INTO tasks (request_id, dataset, kind, method, state, keys, after, due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	type planned struct {
		Dataset string           `json:"dataset"`
		Kind    erasure.TaskKind `json:"kind"`
		Method  erasure.Method   `json:"method"`
	}
	plan := make([]planned, len(nr.Tasks))
	for i, ts := range nr.Tasks {
		state := erasure.TaskBlocked
		if ts.Kind == erasure.TaskLookup {
			state = erasure.TaskPending
		}
		res, err := ins.ExecContext(ctx, nr.ID, ts.Dataset, ts.Kind, ts.Method, state, strings.Join(ts.Keys, ","), strings.Join(ts.After, ","), ms(now), ms(now), ms(now))
		if err != nil {
			return err
		}
		tid, _ := res.LastInsertId()
		tasks[i] = erasure.Task{ID: tid, Dataset: ts.Dataset, Kind: ts.Kind, State: state, After: ts.After}
		plan[i] = planned{ts.Dataset, ts.Kind, ts.Method}
	}
	if err := promote(ctx, tx, tasks, now); err != nil {
		return err
	}
	a := &auditWriter{tx: tx}
	defer a.close()
	return a.append(ctx, &erasure.AuditEvent{
		Time: now, Actor: nr.SubmittedBy, Type: erasure.EventRequestSubmitted, RequestID: nr.ID,
		Data: eventData(map[string]any{"reason": nr.Reason, "deadline": nr.Deadline.UTC(), "subject": hashes, "tasks": plan}),
	})
}

// insertIdentifiers stores the identifiers not yet known for the request and returns the keyed
// hashes of those it inserted.
func (db *DB) insertIdentifiers(ctx context.Context, tx *sql.Tx, requestID string, ids []erasure.Identifier, foundBy string, now time.Time) ([]string, error) {
	var out []string
	for _, id := range ids {
		h := db.hasher.Identifier(id)
		res, err := tx.ExecContext(ctx, `INSERT INTO identifiers (request_id, type, value, hash, found_by, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			requestID, id.Type, id.Value, h, foundBy, ms(now))
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			out = append(out, h)
		}
	}
	return out, nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Request implements erasure.Store.
func (db *DB) Request(ctx context.Context, id string) (*erasure.Request, error) {
	return db.request(ctx, db.r, id)
}

const requestColumns = `id, status, reason, deadline, submitted_by, cancelled, created_at, updated_at, finished_at`

func (db *DB) scanRequest(sc interface{ Scan(...any) error }) (*erasure.Request, error) {
	var r erasure.Request
	var deadline, created, updated int64
	var cancelled int
	var finished sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Status, &r.Reason, &deadline, &r.SubmittedBy, &cancelled, &created, &updated, &finished); err != nil {
		return nil, err
	}
	r.Deadline, r.CreatedAt, r.UpdatedAt, r.FinishedAt = fromMS(deadline), fromMS(created), fromMS(updated), fromNullMS(finished)
	r.Overdue = !r.Status.Ended() && db.Now().After(r.Deadline)
	return &r, nil
}

func (db *DB) request(ctx context.Context, q querier, id string) (*erasure.Request, error) {
	r, err := db.scanRequest(q.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
	} else if err != nil {
		return nil, err
	}
	if r.Tasks, err = tasksOf(ctx, q, id); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT type, value, hash FROM identifiers WHERE request_id = ? ORDER BY hash`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []erasure.Identifier
	for rows.Next() {
		var typ, hash string
		var val sql.NullString
		if err := rows.Scan(&typ, &val, &hash); err != nil {
			return nil, err
		}
		r.SubjectHashes = append(r.SubjectHashes, hash)
		if val.Valid {
			ids = append(ids, erasure.Identifier{Type: typ, Value: val.String})
		}
	}
	r.Subject = erasure.NewSubject(ids...)
	return r, rows.Err()
}

const taskColumns = `id, request_id, dataset, kind, method, state, keys, after, attempts, last_error, removed, note, verified_at, due_at, lease_owner, sweep_id, created_at, updated_at, finished_at`

func scanTask(sc interface{ Scan(...any) error }) (erasure.Task, error) {
	var t erasure.Task
	var keys, after string
	var verified, finished sql.NullInt64
	var due, created, updated int64
	err := sc.Scan(&t.ID, &t.RequestID, &t.Dataset, &t.Kind, &t.Method, &t.State, &keys, &after, &t.Attempts, &t.LastError, &t.Removed, &t.Note, &verified, &due, &t.LeaseOwner, &t.SweepID, &created, &updated, &finished)
	if err != nil {
		return t, err
	}
	t.Keys, t.After = splitList(keys), splitList(after)
	t.VerifiedAt, t.FinishedAt = fromNullMS(verified), fromNullMS(finished)
	t.DueAt, t.CreatedAt, t.UpdatedAt = fromMS(due), fromMS(created), fromMS(updated)
	return t, nil
}

func tasksOf(ctx context.Context, q querier, requestID string) ([]erasure.Task, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE request_id = ? ORDER BY id`, requestID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Requests implements erasure.Store. The cursor is the id of the last request of the previous
// page; ids sort by creation time.
func (db *DB) Requests(ctx context.Context, f erasure.RequestFilter) (erasure.RequestPage, error) {
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	var where []string
	var args []any
	if f.Status != "" {
		where = append(where, `status = ?`)
		args = append(args, f.Status)
	}
	if f.Overdue {
		where = append(where, `status NOT IN ('completed', 'cancelled') AND deadline < ?`)
		args = append(args, ms(db.Now()))
	}
	if f.Cursor != "" {
		where = append(where, `id < ?`)
		args = append(args, f.Cursor)
	}
	q := `SELECT ` + requestColumns + ` FROM requests`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit+1)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return erasure.RequestPage{}, err
	}
	defer rows.Close()
	var page erasure.RequestPage
	for rows.Next() {
		r, err := db.scanRequest(rows)
		if err != nil {
			return page, err
		}
		page.Requests = append(page.Requests, *r)
	}
	if err := rows.Err(); err != nil {
		return page, err
	}
	if len(page.Requests) > limit {
		page.Requests = page.Requests[:limit]
		page.Next = page.Requests[limit-1].ID
	}
	return page, nil
}

// CancelRequest implements erasure.Store.
func (db *DB) CancelRequest(ctx context.Context, id, actor string) (*erasure.Request, error) {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := db.request(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.Status.Ended() {
			return erasure.Errorf(erasure.ECONFLICT, "request %s is already %s", id, r.Status)
		}
		now := db.Now()
		a := &auditWriter{tx: tx}
		defer a.close()
		for _, t := range r.Tasks {
			if t.State.Final() {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE tasks SET state = ?, lease_owner = '', updated_at = ?, finished_at = ? WHERE id = ?`, erasure.TaskCancelled, ms(now), ms(now), t.ID); err != nil {
				return err
			}
			if err := a.append(ctx, &erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventTaskCancelled, RequestID: id, TaskID: t.ID, Dataset: t.Dataset,
				Data: eventData(map[string]any{"from": t.State})}); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET cancelled = 1 WHERE id = ?`, id); err != nil {
			return err
		}
		return db.settle(ctx, tx, a, id, actor, now)
	})
	if err != nil {
		return nil, err
	}
	return db.request(ctx, db.r, id)
}

// RetryRequest implements erasure.Store.
func (db *DB) RetryRequest(ctx context.Context, id, actor string) (*erasure.Request, error) {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := db.request(ctx, tx, id)
		if err != nil {
			return err
		}
		if r.Status.Ended() {
			return erasure.Errorf(erasure.ECONFLICT, "request %s is already %s", id, r.Status)
		}
		now := db.Now()
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET state = ?, attempts = 0, due_at = ?, updated_at = ?, finished_at = NULL WHERE request_id = ? AND state = ?`,
			erasure.TaskPending, ms(now), ms(now), id, erasure.TaskFailed)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return erasure.Errorf(erasure.ECONFLICT, "request %s has no failed task to retry", id)
		}
		a := &auditWriter{tx: tx}
		defer a.close()
		if err := a.append(ctx, &erasure.AuditEvent{Time: now, Actor: actor, Type: erasure.EventRequestRetried, RequestID: id, Data: eventData(map[string]any{"tasks": n})}); err != nil {
			return err
		}
		return db.settle(ctx, tx, a, id, actor, now)
	})
	if err != nil {
		return nil, err
	}
	return db.request(ctx, db.r, id)
}

// OverdueRequests implements erasure.Store.
func (db *DB) OverdueRequests(ctx context.Context) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM requests WHERE status NOT IN ('completed', 'cancelled') AND deadline < ?`, ms(db.Now())).Scan(&n)
	return n, err
}

// DatasetStats implements erasure.Store.
func (db *DB) DatasetStats(ctx context.Context) ([]erasure.DatasetStats, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT dataset, state, count(*), max(finished_at) FROM tasks GROUP BY dataset, state ORDER BY dataset`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.DatasetStats
	for rows.Next() {
		var ds string
		var state erasure.TaskState
		var n int
		var last sql.NullInt64
		if err := rows.Scan(&ds, &state, &n, &last); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Dataset != ds {
			out = append(out, erasure.DatasetStats{Dataset: ds, ByState: map[string]int{}})
		}
		s := &out[len(out)-1]
		s.ByState[string(state)] = n
		if state.Active() || state == erasure.TaskBlocked {
			s.Backlog += n
		}
		if state == erasure.TaskFailed {
			s.Failures += n
		}
		if t := fromNullMS(last); t != nil && (s.LastDone == nil || t.After(*s.LastDone)) {
			s.LastDone = t
		}
	}
	return out, rows.Err()
}
