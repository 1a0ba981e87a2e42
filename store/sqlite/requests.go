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

// createOp is one CreateRequest waiting for the group commit.
type createOp struct {
	ctx     context.Context
	nr      erasure.NewRequest
	req     *erasure.Request
	created bool
	err     error
	done    chan struct{}
}

// CreateRequest implements erasure.Store. Concurrent calls are committed together (group
// commit): one transaction, one fsync, a savepoint per request so that one failing request
// does not undo the others. Each call still returns only once its request is durable.
func (db *DB) CreateRequest(ctx context.Context, nr erasure.NewRequest) (*erasure.Request, bool, error) {
	op := &createOp{ctx: ctx, nr: nr, done: make(chan struct{})}
	select {
	case db.creates <- op:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	<-op.done
	if op.err != nil {
		return nil, false, op.err
	}
	if !op.created {
		r, err := db.request(ctx, db.r, op.req.ID)
		return r, false, err
	}
	return op.req, true, nil
}

// groupCommit runs the waiting CreateRequest calls in batches until Close.
func (db *DB) groupCommit() {
	defer close(db.done)
	for op := range db.creates {
		batch := []*createOp{op}
	more:
		for len(batch) < 128 {
			select {
			case op, ok := <-db.creates:
				if !ok {
					break more
				}
				batch = append(batch, op)
			default:
				break more
			}
		}
		err := db.inTx(context.Background(), func(tx *sql.Tx) error {
			for i, op := range batch {
				sp := fmt.Sprintf("create%d", i)
				if _, err := tx.ExecContext(op.ctx, `SAVEPOINT `+sp); err != nil {
					return err
				}
				op.req, op.created, op.err = db.createOne(op.ctx, tx, op.nr)
				if op.err != nil {
					if _, err := tx.ExecContext(context.Background(), `ROLLBACK TO `+sp); err != nil {
						return err
					}
				}
				if _, err := tx.ExecContext(context.Background(), `RELEASE `+sp); err != nil {
					return err
				}
			}
			return nil
		})
		for _, op := range batch {
			if err != nil && op.err == nil {
				op.err = err
			}
			close(op.done)
		}
	}
}

// createOne stores one request inside the group's transaction.
func (db *DB) createOne(ctx context.Context, tx *sql.Tx, nr erasure.NewRequest) (*erasure.Request, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if nr.IdempotencyKey != "" {
		var id, fp string
		err := db.queryRow(ctx, tx, `SELECT id, fingerprint FROM requests WHERE idempotency_key = ?`, nr.IdempotencyKey).Scan(&id, &fp)
		if err == nil {
			if fp != nr.Fingerprint {
				return nil, false, erasure.Errorf(erasure.ECONFLICT, "idempotency key already used for a different request (%s)", id)
			}
			return &erasure.Request{ID: id}, false, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, false, err
		}
	}
	r, err := db.insertRequest(ctx, tx, nr)
	return r, err == nil, err
}

// insertRequest stores a new request and returns it as stored.
func (db *DB) insertRequest(ctx context.Context, tx *sql.Tx, nr erasure.NewRequest) (*erasure.Request, error) {
	now := db.Now().Truncate(time.Millisecond).UTC()
	var key any
	if nr.IdempotencyKey != "" {
		key = nr.IdempotencyKey
	}
	if _, err := db.exec(ctx, tx, `INSERT INTO requests (id, status, reason, deadline, submitted_by, idempotency_key, fingerprint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		nr.ID, erasure.RequestPending, nr.Reason, ms(nr.Deadline), nr.SubmittedBy, key, nr.Fingerprint, ms(now), ms(now)); err != nil {
		return nil, err
	}
	hashes, err := db.insertIdentifiers(ctx, tx, nr.ID, nr.Subject, "submitted", now)
	if err != nil {
		return nil, err
	}
	r := &erasure.Request{ID: nr.ID, Status: erasure.RequestPending, Reason: nr.Reason, Subject: nr.Subject, SubjectHashes: hashes,
		Deadline: fromMS(ms(nr.Deadline)), SubmittedBy: nr.SubmittedBy, CreatedAt: now, UpdatedAt: now, Overdue: now.After(nr.Deadline)}
	r.Tasks = erasure.PlanTasks(nr.ID, nr.Tasks, now)
	if err := db.insertTasks(ctx, tx, r.Tasks, now); err != nil {
		return nil, err
	}
	ev := erasure.SubmittedEvent(nr, hashes, r.Tasks, now)
	return r, db.auditWriter(tx).append(ctx, &ev)
}

// insertTasks inserts tasks with multi-row statements (a statement costs more than a row) and
// sets their ids. (dataset, kind) is unique within a request.
func (db *DB) insertTasks(ctx context.Context, tx *sql.Tx, tasks []erasure.Task, now time.Time) error {
	const perStatement = 50
	for start := 0; start < len(tasks); start += perStatement {
		chunk := tasks[start:min(len(tasks), start+perStatement)]
		q := `INSERT INTO tasks (request_id, dataset, kind, method, state, keys, after, due_at, created_at, updated_at) VALUES ` +
			strings.TrimSuffix(strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?), `, len(chunk)), ", ") + ` RETURNING id, dataset, kind`
		args := make([]any, 0, 10*len(chunk))
		for _, t := range chunk {
			args = append(args, t.RequestID, t.Dataset, t.Kind, t.Method, t.State, strings.Join(t.Keys, ","), strings.Join(t.After, ","), ms(now), ms(now), ms(now))
		}
		rows, err := db.query(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		ids := map[string]int64{}
		for rows.Next() {
			var id int64
			var ds, kind string
			if err := rows.Scan(&id, &ds, &kind); err != nil {
				rows.Close()
				return err
			}
			ids[ds+"\x00"+kind] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range chunk {
			chunk[i].ID = ids[chunk[i].Dataset+"\x00"+string(chunk[i].Kind)]
		}
	}
	return nil
}

// insertIdentifiers stores the identifiers not yet known for the request and returns the keyed
// hashes of those it inserted.
func (db *DB) insertIdentifiers(ctx context.Context, tx *sql.Tx, requestID string, ids []erasure.Identifier, foundBy string, now time.Time) ([]string, error) {
	var out []string
	for _, id := range ids {
		h := db.hasher.Identifier(id)
		res, err := db.exec(ctx, tx, `INSERT INTO identifiers (request_id, type, value, hash, found_by, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
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

// scanTask scans taskColumns, then any extra destinations, into t.
func scanTask(sc interface{ Scan(...any) error }, t *erasure.Task, extra ...any) error {
	var keys, after string
	var verified, finished sql.NullInt64
	var due, created, updated int64
	dest := append([]any{&t.ID, &t.RequestID, &t.Dataset, &t.Kind, &t.Method, &t.State, &keys, &after, &t.Attempts, &t.LastError, &t.Removed, &t.Note, &verified, &due, &t.LeaseOwner, &t.SweepID, &created, &updated, &finished}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return err
	}
	t.Keys, t.After = splitList(keys), splitList(after)
	t.VerifiedAt, t.FinishedAt = fromNullMS(verified), fromNullMS(finished)
	t.DueAt, t.CreatedAt, t.UpdatedAt = fromMS(due), fromMS(created), fromMS(updated)
	return nil
}

// tasksTx returns the tasks of a request inside tx.
func (db *DB) tasksTx(ctx context.Context, tx *sql.Tx, requestID string) ([]erasure.Task, error) {
	rows, err := db.query(ctx, tx, `SELECT `+taskColumns+` FROM tasks WHERE request_id = ? ORDER BY id`, requestID)
	if err != nil {
		return nil, err
	}
	return collectTasks(rows)
}

func tasksOf(ctx context.Context, q querier, requestID string) ([]erasure.Task, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE request_id = ? ORDER BY id`, requestID)
	if err != nil {
		return nil, err
	}
	return collectTasks(rows)
}

func collectTasks(rows *sql.Rows) ([]erasure.Task, error) {
	defer rows.Close()
	var out []erasure.Task
	for rows.Next() {
		var t erasure.Task
		if err := scanTask(rows, &t); err != nil {
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
	return db.change(ctx, id, actor, (*erasure.Machine).Cancel)
}

// RetryRequest implements erasure.Store.
func (db *DB) RetryRequest(ctx context.Context, id, actor string) (*erasure.Request, error) {
	return db.change(ctx, id, actor, (*erasure.Machine).Retry)
}

// change applies an operator's action to a request through the Machine, settles it, writes
// the changes and returns the request as it is now.
func (db *DB) change(ctx context.Context, id, actor string, action func(*erasure.Machine, string) error) (*erasure.Request, error) {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rs, err := db.loadState(ctx, tx, id)
		if err != nil {
			return err
		}
		m := erasure.NewMachine(rs, db.hasher, db.Now())
		if err := action(m, actor); err != nil {
			return err
		}
		m.Settle(actor)
		return db.writeChanges(ctx, tx, db.auditWriter(tx), id, m.Changes())
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
