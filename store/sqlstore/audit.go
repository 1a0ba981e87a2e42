package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"erasure"
	"erasure/audit"
	"erasure/store/migrate"
)

// The audit trail is a chain of blocks (erasure.AuditBlock): every transaction that changes
// something appends one block holding its events, as its last statement, and moves the chain's
// head (the single row of audit_head). On PostgreSQL the head row is locked from that statement
// to the commit, which is what orders the chain; nothing else waits for it. audit_index says
// which blocks hold events of which request. Events written before blocks existed stay in
// audit_events (the legacy part of the trail) and the first block chains after the last of them.

// auditWriter gathers what one transaction appends at its end: the changes of the tasks-by-
// dataset counts and the audit events, written at flush (the counts, then one audit block).
type auditWriter struct {
	db     *DB
	tx     *sql.Tx
	events []erasure.AuditEvent
	counts map[countKey]*countDelta
	// last is the last event flushed, numbered.
	last erasure.AuditEvent
}

type countKey struct {
	dataset string
	state   erasure.TaskState
}

type countDelta struct {
	n    int64
	last int64
}

// count records that n tasks of dataset entered (n > 0) or left (n < 0) state at ms at.
func (a *auditWriter) count(dataset string, state erasure.TaskState, n int64, at int64) {
	if a.counts == nil {
		a.counts = map[countKey]*countDelta{}
	}
	k := countKey{dataset, state}
	d := a.counts[k]
	if d == nil {
		d = &countDelta{}
		a.counts[k] = d
	}
	d.n += n
	d.last = max(d.last, at)
}

// move records a task of dataset moving from one state to another at ms at.
func (a *auditWriter) move(dataset string, from, to erasure.TaskState, at int64) {
	if from == to {
		return
	}
	a.count(dataset, from, -1, at)
	a.count(dataset, to, 1, at)
}

// countShards is how many rows each count of dataset_tasks is spread over on PostgreSQL: a
// transaction adds its changes to one shard (012_count_shards), so that concurrent writers
// seldom wait for each other's commit on these rows. SQLite, with one writer, uses shard 0.
const countShards = 16

// flushCounts writes the count changes with one statement, to one shard, in key order (so
// that concurrent writers on PostgreSQL lock the rows in one order).
func (a *auditWriter) flushCounts(ctx context.Context) error {
	if len(a.counts) == 0 {
		return nil
	}
	keys := make([]countKey, 0, len(a.counts))
	for k, d := range a.counts {
		if d.n != 0 {
			keys = append(keys, k)
		}
	}
	counts := a.counts
	a.counts = nil
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].dataset != keys[j].dataset {
			return keys[i].dataset < keys[j].dataset
		}
		return keys[i].state < keys[j].state
	})
	shard := 0
	if a.db.dialect == migrate.Postgres {
		shard = rand.IntN(countShards)
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO dataset_tasks (dataset, state, shard, n, last_at) VALUES `)
	args := make([]any, 0, 5*len(keys))
	for i, k := range keys {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?)")
		d := counts[k]
		args = append(args, k.dataset, string(k.state), shard, d.n, d.last)
	}
	q.WriteString(` ON CONFLICT (dataset, state, shard) DO UPDATE SET n = dataset_tasks.n + excluded.n,
		last_at = CASE WHEN excluded.last_at > dataset_tasks.last_at THEN excluded.last_at ELSE dataset_tasks.last_at END`)
	_, err := a.db.exec(ctx, a.tx, q.String(), args...)
	return err
}

// auditWriter returns an audit writer for tx.
func (db *DB) auditWriter(tx *sql.Tx) *auditWriter { return &auditWriter{db: db, tx: tx} }

// append adds an event to the transaction's block.
func (a *auditWriter) append(ev erasure.AuditEvent) { a.events = append(a.events, ev) }

// flush writes the count changes, then appends the events gathered as one block, chained
// after the head, and empties a. It must be the transaction's last statement (it holds the head
// until the commit).
func (a *auditWriter) flush(ctx context.Context) error {
	if err := a.flushCounts(ctx); err != nil {
		return err
	}
	if len(a.events) == 0 {
		return nil
	}
	db, tx := a.db, a.tx
	var block, events int64
	var hash string
	if err := db.queryRow(ctx, tx, `SELECT block, events, hash FROM audit_head WHERE id = 1`+db.forUpdate()).Scan(&block, &events, &hash); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	b := audit.NewBlock(block+1, events+1, db.Now(), a.events)
	db.chain.Seal(hash, &b)
	if _, err := db.exec(ctx, tx, `INSERT INTO audit_blocks (seq, first_event, events, at, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		b.Seq, b.FirstEvent, b.Events, ms(b.Time), string(b.Body), b.PrevHash, b.Hash); err != nil {
		return err
	}
	requests := map[string]bool{}
	for _, ev := range a.events {
		if ev.RequestID != "" {
			requests[ev.RequestID] = true
		}
	}
	ids := make([]string, 0, len(requests))
	for id := range requests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for start := 0; start < len(ids); start += inChunk {
		chunk := ids[start:min(len(ids), start+inChunk)]
		args := make([]any, 0, 2*len(chunk))
		for _, id := range chunk {
			args = append(args, id, b.Seq)
		}
		q := `INSERT INTO audit_index (request_id, block) VALUES ` + rows(len(chunk), 2)
		if _, err := db.exec(ctx, tx, q, args...); err != nil {
			return err
		}
	}
	if _, err := db.exec(ctx, tx, `UPDATE audit_head SET block = ?, events = ?, hash = ? WHERE id = 1`, b.Seq, b.FirstEvent+int64(b.Events)-1, b.Hash); err != nil {
		return err
	}
	a.last = a.events[len(a.events)-1]
	a.events = a.events[:0]
	return nil
}

// rows returns n rows of k placeholders for a multi-row VALUES list.
func rows(n, k int) string {
	row := "(" + placeholders(k) + ")"
	out := make([]byte, 0, n*(len(row)+2))
	for i := 0; i < n; i++ {
		if i > 0 {
			out = append(out, ", "...)
		}
		out = append(out, row...)
	}
	return string(out)
}

// AppendAudit appends ev to the audit trail as a block inside tx (a transaction of SQL()), as
// the transaction's last statement, and sets its Seq and Block. It is how other packages
// sharing the database (the record store) audit their changes in the same transaction as the
// changes.
func (db *DB) AppendAudit(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error {
	a := db.auditWriter(tx)
	a.append(*ev)
	if err := a.flush(ctx); err != nil {
		return err
	}
	ev.Seq, ev.Block, ev.Time = a.last.Seq, a.last.Block, a.last.Time
	return nil
}

// Audit implements erasure.Store: the legacy events, then the events of the blocks, in order.
func (db *DB) Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
	out, err := db.legacyAudit(ctx, f)
	if err != nil || (f.Limit > 0 && len(out) >= f.Limit) {
		return out, err
	}
	var q string
	var args []any
	if f.RequestID != "" {
		q = `SELECT b.seq, b.first_event, b.events, b.at, b.body, b.prev_hash, b.hash FROM audit_index i JOIN audit_blocks b ON b.seq = i.block
			WHERE i.request_id = ? AND b.first_event + b.events > ? ORDER BY b.seq`
		args = []any{f.RequestID, f.After + 1}
	} else {
		// The first block to read is the last one starting at or before event After+1, found
		// by the first_event index (006b_outbox.sql): a reader that follows the trail (the
		// notifier) reads what is new, not the whole chain.
		q = `SELECT seq, first_event, events, at, body, prev_hash, hash FROM audit_blocks
			WHERE seq >= coalesce((SELECT seq FROM audit_blocks WHERE first_event <= ? ORDER BY first_event DESC LIMIT 1), 0)
			  AND first_event + events > ? ORDER BY seq`
		args = []any{f.After + 1, f.After + 1}
	}
	rows, err := db.readQuery(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		b, err := scanBlock(rows)
		if err != nil {
			return nil, err
		}
		evs, err := audit.Events(b)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if ev.Seq <= f.After || (f.RequestID != "" && ev.RequestID != f.RequestID) {
				continue
			}
			out = append(out, ev)
			if f.Limit > 0 && len(out) >= f.Limit {
				return out, nil
			}
		}
	}
	return out, rows.Err()
}

// legacyAudit returns the events of the legacy part of the trail selected by f.
func (db *DB) legacyAudit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
	q := `SELECT seq, at, actor, type, request_id, task_id, dataset, data, prev_hash, hash FROM audit_events WHERE seq > ?`
	args := []any{f.After}
	if f.RequestID != "" {
		q += ` AND request_id = ?`
		args = append(args, f.RequestID)
	}
	q += ` ORDER BY seq`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	rows, err := db.readQuery(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.AuditEvent
	for rows.Next() {
		var ev erasure.AuditEvent
		var at int64
		var data string
		if err := rows.Scan(&ev.Seq, &at, &ev.Actor, &ev.Type, &ev.RequestID, &ev.TaskID, &ev.Dataset, &data, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, err
		}
		ev.Time = fromMS(at)
		if data != "" {
			ev.Data = json.RawMessage(data)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

func scanBlock(sc interface{ Scan(...any) error }) (*erasure.AuditBlock, error) {
	var b erasure.AuditBlock
	var at int64
	var body string
	if err := sc.Scan(&b.Seq, &b.FirstEvent, &b.Events, &at, &body, &b.PrevHash, &b.Hash); err != nil {
		return nil, err
	}
	b.Time, b.Body = fromMS(at), json.RawMessage(body)
	return &b, nil
}

// AuditBlocks implements erasure.Store.
func (db *DB) AuditBlocks(ctx context.Context, after int64, limit int) ([]erasure.AuditBlock, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.readQuery(ctx, fmt.Sprintf(`SELECT seq, first_event, events, at, body, prev_hash, hash FROM audit_blocks WHERE seq > ? ORDER BY seq LIMIT %d`, limit), after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.AuditBlock
	for rows.Next() {
		b, err := scanBlock(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, rows.Err()
}

// AuditHead implements erasure.Store.
func (db *DB) AuditHead(ctx context.Context) (erasure.AuditHead, error) {
	var h erasure.AuditHead
	err := db.readRow(ctx, `SELECT block, events, hash FROM audit_head WHERE id = 1`).Scan(&h.Block, &h.Events, &h.Hash)
	return h, err
}
