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

// createOp is one CreateRequest waiting for the group commit.
type createOp struct {
	ctx  context.Context
	nr   erasure.NewRequest
	res  erasure.CreateResult
	done chan struct{}
}

// CreateRequest implements erasure.Store. Concurrent calls are committed together (group
// commit: one transaction, one fsync, see CreateRequests). Each call still returns only once
// its request is durable.
func (db *DB) CreateRequest(ctx context.Context, nr erasure.NewRequest) (*erasure.Request, bool, error) {
	op := &createOp{ctx: ctx, nr: nr, done: make(chan struct{})}
	select {
	case db.creates <- op:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	<-op.done
	if op.res.Err != nil {
		return nil, false, op.res.Err
	}
	if !op.res.Created {
		r, err := db.request(ctx, db.reads(), op.res.Request.ID)
		return r, false, err
	}
	return op.res.Request, true, nil
}

// groupCommit runs the waiting CreateRequest calls in batches until Close. The calls that
// queue while the batch waits for the write lock join it once it holds the lock (drain).
func (db *DB) groupCommit() {
	defer close(db.done)
	var g gatherer
	for op := range db.creates {
		batch, _ := gather(&g, db.creates, op, 256)
		var nrs []erasure.NewRequest
		var live []*createOp
		take := func(ops []*createOp) {
			for _, op := range ops {
				if err := op.ctx.Err(); err != nil {
					op.res.Err = err
					close(op.done)
					continue
				}
				nrs = append(nrs, op.nr)
				live = append(live, op)
			}
		}
		take(batch)
		if len(nrs) == 0 {
			continue
		}
		res, err := db.createRequests(context.Background(), func() []erasure.NewRequest {
			take(drain(db.creates, 256-len(live)))
			return nrs
		})
		for i, op := range live {
			if err != nil {
				op.res.Err = err
			} else {
				op.res = res[i]
			}
			close(op.done)
		}
	}
}

// CreateRequests implements erasure.Store: the batch is written in one transaction (requests,
// identifiers and tasks with multi-row statements, one audit block). A request whose
// idempotency key is already used is answered without a write, before anything is written, so
// no savepoint is needed; should the batch still fail (another process inserting the same key
// at the same moment), each request is written again in a transaction of its own, so that one
// request's failure is only its own.
func (db *DB) CreateRequests(ctx context.Context, nrs []erasure.NewRequest) ([]erasure.CreateResult, error) {
	return db.createRequests(ctx, func() []erasure.NewRequest { return nrs })
}

// createRequests is CreateRequests of the batch that batch returns once the transaction holds
// the write lock (the group commit adds the calls that queued meanwhile).
func (db *DB) createRequests(ctx context.Context, batch func() []erasure.NewRequest) ([]erasure.CreateResult, error) {
	var out []erasure.CreateResult
	var nrs []erasure.NewRequest
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		nrs = batch()
		var err error
		out, err = db.createBatch(ctx, tx, nrs)
		return err
	})
	if err == nil || len(nrs) == 1 || erasure.ErrorCode(err) == erasure.EUNAVAILABLE || ctx.Err() != nil {
		return out, err
	}
	out = make([]erasure.CreateResult, len(nrs))
	for i := range nrs {
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			res, err := db.createBatch(ctx, tx, nrs[i:i+1])
			if err == nil {
				out[i] = res[0]
			}
			return err
		})
		if err != nil {
			out[i] = erasure.CreateResult{Err: err}
		}
	}
	return out, nil
}

// keyed is a request found by its idempotency key.
type keyed struct{ id, fingerprint string }

// idempotencyKeys returns the requests that already hold the idempotency keys of nrs, by key:
// one query per inChunk keys, however large the batch.
func (db *DB) idempotencyKeys(ctx context.Context, tx *sql.Tx, nrs []erasure.NewRequest) (map[string]keyed, error) {
	var keys []string
	seen := map[string]bool{}
	for _, nr := range nrs {
		if k := nr.IdempotencyKey; k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	out := map[string]keyed{}
	for start := 0; start < len(keys); start += inChunk {
		// Padded with "": stored keys are never empty (a request without one stores NULL).
		args := padded(keys[start:min(len(keys), start+inChunk)], "")
		rows, err := tx.QueryContext(ctx, db.q(`SELECT idempotency_key, id, fingerprint FROM requests WHERE idempotency_key IN (`+placeholders(inChunk)+`)`), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k string
			var r keyed
			if err := rows.Scan(&k, &r.id, &r.fingerprint); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = r
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// createBatch writes the requests of a batch in tx. Results that are errors or existing
// requests write nothing.
func (db *DB) createBatch(ctx context.Context, tx *sql.Tx, nrs []erasure.NewRequest) ([]erasure.CreateResult, error) {
	out := make([]erasure.CreateResult, len(nrs))
	now := db.Now().Truncate(time.Millisecond).UTC()
	existing, err := db.idempotencyKeys(ctx, tx, nrs)
	if err != nil {
		return nil, err
	}
	byKey := map[string]int{}
	var fresh []int
	for i, nr := range nrs {
		if nr.IdempotencyKey == "" {
			fresh = append(fresh, i)
			continue
		}
		if j, ok := byKey[nr.IdempotencyKey]; ok {
			// The same key twice in one batch: the second is the first's request.
			if nrs[j].Fingerprint != nr.Fingerprint {
				out[i].Err = erasure.Errorf(erasure.ECONFLICT, "idempotency key already used for a different request (%s)", nrs[j].ID)
			} else {
				out[i] = erasure.CreateResult{Request: &erasure.Request{ID: nrs[j].ID}}
			}
			continue
		}
		old, ok := existing[nr.IdempotencyKey]
		switch {
		case ok && old.fingerprint != nr.Fingerprint:
			out[i].Err = erasure.Errorf(erasure.ECONFLICT, "idempotency key already used for a different request (%s)", old.id)
		case ok:
			out[i] = erasure.CreateResult{Request: &erasure.Request{ID: old.id}}
		default:
			byKey[nr.IdempotencyKey] = i
			fresh = append(fresh, i)
		}
	}
	var tasks []erasure.Task
	var reqArgs, idArgs []any
	a := db.auditWriter(tx)
	var holds []erasure.Hold
	if len(fresh) > 0 {
		var err error
		if holds, err = db.activeHolds(ctx, tx); err != nil {
			return nil, err
		}
	}
	for _, i := range fresh {
		nr := nrs[i]
		var key, notBefore any
		if nr.IdempotencyKey != "" {
			key = nr.IdempotencyKey
		}
		if !nr.NotBefore.IsZero() {
			notBefore = ms(nr.NotBefore)
		}
		suppress := 1
		if nr.NoSuppress {
			suppress = 0
		}
		subject := erasure.NewSubject(nr.Subject...)
		hashes := make([]string, len(subject))
		for j, id := range subject {
			hashes[j] = db.hasher.Identifier(id)
			idArgs = append(idArgs, nr.ID, id.Type, id.Value, hashes[j], "submitted", ms(now))
		}
		r := &erasure.Request{ID: nr.ID, Reason: nr.Reason, Subject: subject, SubjectHashes: hashes,
			Deadline: fromMS(ms(nr.Deadline)), SubmittedBy: nr.SubmittedBy, CreatedAt: now, UpdatedAt: now, Overdue: now.After(nr.Deadline), Canary: nr.Canary}
		if !nr.NotBefore.IsZero() {
			nb := fromMS(ms(nr.NotBefore))
			r.NotBefore = &nb
		}
		r.Tasks = erasure.PlanRequest(nr, hashes, holds, now)
		r.Status = erasure.RequestStatusOf(false, r.Tasks)
		reqArgs = append(reqArgs, nr.ID, r.Status, nr.Reason, ms(nr.Deadline), nr.SubmittedBy, key, nr.Fingerprint, ms(now), ms(now), notBefore, suppress, nr.Canary)
		tasks = append(tasks, r.Tasks...)
		a.append(erasure.SubmittedEvent(nr, hashes, r.Tasks, now))
		out[i] = erasure.CreateResult{Request: r, Created: true}
	}
	if len(fresh) == 0 {
		return out, nil
	}
	if err := db.insertRows(ctx, tx, `INSERT INTO requests (id, status, reason, deadline, submitted_by, idempotency_key, fingerprint, created_at, updated_at, not_before, suppress, canary) VALUES `, 12, reqArgs); err != nil {
		return nil, err
	}
	if err := db.insertRows(ctx, tx, `INSERT INTO identifiers (request_id, type, value, hash, found_by, created_at) VALUES `, 6, idArgs); err != nil {
		return nil, err
	}
	ids, err := db.insertTasks(ctx, tx, tasks, now)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		a.count(t.Dataset, t.State, 1, ms(now))
	}
	for _, i := range fresh {
		r := out[i].Request
		for j := range r.Tasks {
			r.Tasks[j].ID = ids[taskKey{r.ID, r.Tasks[j].Dataset, r.Tasks[j].Kind}]
		}
	}
	return out, a.flush(ctx)
}

// rowsPerInsert is how many rows a multi-row INSERT writes; full chunks reuse one prepared
// statement per table.
const rowsPerInsert = 64

// insertRows inserts the rows of args (k values a row) with multi-row statements.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, prefix string, k int, args []any) error {
	n := len(args) / k
	for start := 0; start < n; start += rowsPerInsert {
		end := min(n, start+rowsPerInsert)
		if _, err := db.exec(ctx, tx, prefix+rows(end-start, k), args[start*k:end*k]...); err != nil {
			return err
		}
	}
	return nil
}

// taskKey names a task within a batch: (dataset, kind) is unique within a request.
type taskKey struct {
	request, dataset string
	kind             erasure.TaskKind
}

// insertTasks inserts tasks with multi-row statements and returns their ids.
func (db *DB) insertTasks(ctx context.Context, tx *sql.Tx, tasks []erasure.Task, now time.Time) (map[taskKey]int64, error) {
	ids := make(map[taskKey]int64, len(tasks))
	for start := 0; start < len(tasks); start += rowsPerInsert {
		chunk := tasks[start:min(len(tasks), start+rowsPerInsert)]
		q := `INSERT INTO tasks (request_id, dataset, kind, method, state, keys, after, due_at, created_at, updated_at) VALUES ` + rows(len(chunk), 10) +
			` RETURNING id, request_id, dataset, kind`
		args := make([]any, 0, 10*len(chunk))
		for _, t := range chunk {
			args = append(args, t.RequestID, t.Dataset, t.Kind, t.Method, t.State, strings.Join(t.Keys, ","), strings.Join(t.After, ","), ms(t.DueAt), ms(now), ms(now))
		}
		rows, err := db.query(ctx, tx, q, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var k taskKey
			if err := rows.Scan(&id, &k.request, &k.dataset, &k.kind); err != nil {
				rows.Close()
				return nil, err
			}
			ids[k] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// querier is what both *sql.DB and *sql.Tx offer, and reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reads is the read pool as a querier whose statements are kept prepared (readStmt).
type reads struct{ db *DB }

func (db *DB) reads() querier { return reads{db} }

func (r reads) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.db.readQuery(ctx, query, args...)
}

func (r reads) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.db.readRow(ctx, query, args...)
}

// Request implements erasure.Store.
func (db *DB) Request(ctx context.Context, id string) (*erasure.Request, error) {
	return db.request(ctx, db.reads(), id)
}

const requestColumns = `id, status, reason, deadline, submitted_by, cancelled, created_at, updated_at, finished_at, not_before, canary`

func (db *DB) scanRequest(sc interface{ Scan(...any) error }) (*erasure.Request, error) {
	var r erasure.Request
	var deadline, created, updated int64
	var cancelled int
	var finished, notBefore sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Status, &r.Reason, &deadline, &r.SubmittedBy, &cancelled, &created, &updated, &finished, &notBefore, &r.Canary); err != nil {
		return nil, err
	}
	r.Deadline, r.CreatedAt, r.UpdatedAt, r.FinishedAt = fromMS(deadline), fromMS(created), fromMS(updated), fromNullMS(finished)
	r.NotBefore = fromNullMS(notBefore)
	r.Overdue = !r.Status.Ended() && db.Now().After(r.Deadline)
	return &r, nil
}

func (db *DB) request(ctx context.Context, q querier, id string) (*erasure.Request, error) {
	r, err := db.scanRequest(q.QueryRowContext(ctx, db.q(`SELECT `+requestColumns+` FROM requests WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, erasure.Errorf(erasure.ENOTFOUND, "request %s not found", id)
	} else if err != nil {
		return nil, err
	}
	if r.Tasks, err = db.tasksOf(ctx, q, id); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, db.q(`SELECT type, value, hash FROM identifiers WHERE request_id = ? ORDER BY hash`), id)
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
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, t := range r.Tasks {
		if t.State == erasure.TaskHeld {
			holds, err := db.holdsIn(ctx, q, r.SubjectHashes)
			if err != nil {
				return nil, err
			}
			erasure.ExplainHeld(r, holds)
			break
		}
	}
	return r, nil
}

const taskColumns = `id, request_id, dataset, kind, method, state, keys, after, attempts, last_error, removed, note, verified_at, due_at, lease_owner, sweep_id, created_at, updated_at, finished_at, guard`

// scanTask scans taskColumns, then any extra destinations, into t.
func scanTask(sc interface{ Scan(...any) error }, t *erasure.Task, extra ...any) error {
	var keys, after string
	var verified, finished sql.NullInt64
	var due, created, updated int64
	dest := append([]any{&t.ID, &t.RequestID, &t.Dataset, &t.Kind, &t.Method, &t.State, &keys, &after, &t.Attempts, &t.LastError, &t.Removed, &t.Note, &verified, &due, &t.LeaseOwner, &t.SweepID, &created, &updated, &finished, &t.Guard}, extra...)
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

func (db *DB) tasksOf(ctx context.Context, q querier, requestID string) ([]erasure.Task, error) {
	rows, err := q.QueryContext(ctx, db.q(`SELECT `+taskColumns+` FROM tasks WHERE request_id = ? ORDER BY id`), requestID)
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
// page; ids sort by creation time. A clear Identifier in the filter is refused: the Service
// hashes it first.
func (db *DB) Requests(ctx context.Context, f erasure.RequestFilter) (erasure.RequestPage, error) {
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if f.Identifier != nil {
		return erasure.RequestPage{}, erasure.Errorf(erasure.EINVALID, "the store searches by keyed hash (SubjectHash), never by a clear identifier")
	}
	// Canary requests (synthetic erasures) are listed apart from real subjects' requests.
	where := []string{`canary = ''`}
	if f.Canary {
		where[0] = `canary <> ''`
	}
	var args []any
	if f.Status != "" {
		where = append(where, `status = ?`)
		args = append(args, f.Status)
	}
	if f.Overdue {
		where = append(where, `status NOT IN ('completed', 'cancelled') AND deadline < ?`)
		args = append(args, ms(db.Now()))
	}
	// The subqueries return few rows (one subject's requests, one dataset's unfinished tasks),
	// each read through its index (migration 006).
	if f.SubjectHash != "" {
		where = append(where, `id IN (SELECT request_id FROM identifiers WHERE hash = ?)`)
		args = append(args, f.SubjectHash)
	}
	if f.Dataset != "" {
		where = append(where, `id IN (SELECT request_id FROM tasks WHERE dataset = ? AND state NOT IN ('done', 'skipped', 'cancelled'))`)
		args = append(args, f.Dataset)
	}
	if f.Cursor != "" {
		where = append(where, `id < ?`)
		args = append(args, f.Cursor)
	}
	q := `SELECT ` + requestColumns + ` FROM requests WHERE ` + strings.Join(where, ` AND `)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit+1)
	rows, err := db.readQuery(ctx, q, args...)
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
func (db *DB) RetryRequest(ctx context.Context, id, actor string, o erasure.RetryOptions) (*erasure.Request, error) {
	return db.change(ctx, id, actor, func(m *erasure.Machine, actor string) error { return m.Retry(actor, o) })
}

// change applies an operator's action to a request through the Machine, settles it, writes
// the changes and returns the request as it is now.
func (db *DB) change(ctx context.Context, id, actor string, action func(*erasure.Machine, string) error) (*erasure.Request, error) {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rs, err := db.loadState(ctx, tx, id)
		if err != nil {
			return err
		}
		m := db.machine(rs, db.Now())
		if err := action(m, actor); err != nil {
			return err
		}
		m.Settle(actor)
		return db.writeChanges(ctx, tx, id, m.Changes())
	})
	if err != nil {
		return nil, err
	}
	return db.request(ctx, db.reads(), id)
}

// OverdueRequests implements erasure.Store.
func (db *DB) OverdueRequests(ctx context.Context) (int, error) {
	var n int
	err := db.readRow(ctx, `SELECT count(*) FROM requests WHERE status NOT IN ('completed', 'cancelled') AND deadline < ? AND canary = ''`, ms(db.Now())).Scan(&n)
	return n, err
}

// DatasetStats implements erasure.Store. The tasks of canary requests are left out: they are
// few, and the canary's own result is the dataset's health in that respect.
func (db *DB) DatasetStats(ctx context.Context) ([]erasure.DatasetStats, error) {
	// The counts are kept by every change of a task's state (dataset_tasks, in shards), not counted here;
	// the few canary tasks (synthetic erasures) are counted and taken out.
	rows, err := db.readQuery(ctx, `SELECT c.dataset, c.state, c.n - coalesce(k.n, 0), c.last_at
		FROM (SELECT dataset, state, sum(n) AS n, max(last_at) AS last_at FROM dataset_tasks GROUP BY dataset, state) c
		LEFT JOIN (SELECT t.dataset, t.state, count(*) AS n FROM requests r JOIN tasks t ON t.request_id = r.id
			WHERE r.canary <> '' GROUP BY t.dataset, t.state) k ON k.dataset = c.dataset AND k.state = c.state
		WHERE c.n - coalesce(k.n, 0) <> 0 ORDER BY c.dataset, c.state`)
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
		if state.Active() || state == erasure.TaskBlocked || state == erasure.TaskHeld || state == erasure.TaskScheduled {
			s.Backlog += n
		}
		if state == erasure.TaskFailed {
			s.Failures += n
		}
		if state.Final() || state == erasure.TaskFailed {
			if t := fromNullMS(last); t != nil && (s.LastDone == nil || t.After(*s.LastDone)) {
				s.LastDone = t
			}
		}
	}
	return out, rows.Err()
}
