package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"erasure"
	"erasure/audit"
)

// auditWriter appends events within one transaction, keeping the chain head in memory so
// that a batch of events reads the head once.
type auditWriter struct {
	db   *DB
	tx   *sql.Tx
	seq  int64
	hash string
	read bool
}

func (a *auditWriter) head(ctx context.Context) error {
	if a.read {
		return nil
	}
	err := a.db.queryRow(ctx, a.tx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&a.seq, &a.hash)
	if errors.Is(err, sql.ErrNoRows) {
		a.seq, a.hash = 0, audit.Genesis
	} else if err != nil {
		return err
	}
	a.read = true
	return nil
}

// seal chains ev after the head and makes it the head.
func (a *auditWriter) seal(ev *erasure.AuditEvent) {
	ev.Seq = a.seq + 1
	ev.Time = ev.Time.Truncate(1e6).UTC()
	audit.Seal(a.hash, ev)
	a.seq, a.hash = ev.Seq, ev.Hash
}

const auditInsert = `INSERT INTO audit_events (seq, at, actor, type, request_id, task_id, dataset, data, prev_hash, hash) VALUES `
const auditRow = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

var auditInsertChunk = auditInsert + strings.TrimSuffix(strings.Repeat(auditRow+", ", inChunk), ", ")

func (a *auditWriter) append(ctx context.Context, ev *erasure.AuditEvent) error {
	if err := a.head(ctx); err != nil {
		return err
	}
	a.seal(ev)
	_, err := a.db.exec(ctx, a.tx, auditInsert+auditRow, ev.Seq, ms(ev.Time), ev.Actor, ev.Type, ev.RequestID, ev.TaskID, ev.Dataset, string(ev.Data), ev.PrevHash, ev.Hash)
	return err
}

// appendAll appends evs in order, inChunk rows per statement.
func (a *auditWriter) appendAll(ctx context.Context, evs []erasure.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if err := a.head(ctx); err != nil {
		return err
	}
	i := 0
	for ; i+inChunk <= len(evs); i += inChunk {
		args := make([]any, 0, 10*inChunk)
		for j := i; j < i+inChunk; j++ {
			ev := &evs[j]
			a.seal(ev)
			args = append(args, ev.Seq, ms(ev.Time), ev.Actor, ev.Type, ev.RequestID, ev.TaskID, ev.Dataset, string(ev.Data), ev.PrevHash, ev.Hash)
		}
		if _, err := a.db.exec(ctx, a.tx, auditInsertChunk, args...); err != nil {
			return err
		}
	}
	for ; i < len(evs); i++ {
		if err := a.append(ctx, &evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// auditWriter returns an audit writer for tx.
func (db *DB) auditWriter(tx *sql.Tx) *auditWriter { return &auditWriter{db: db, tx: tx} }

// AppendAudit appends ev to the audit trail inside tx (a transaction of SQL()), setting its
// Seq, PrevHash and Hash. ev.Time must be set. It is how other packages sharing the database
// (the record store) audit their changes in the same transaction as the changes.
func (db *DB) AppendAudit(ctx context.Context, tx *sql.Tx, ev *erasure.AuditEvent) error {
	return db.auditWriter(tx).append(ctx, ev)
}

// Audit returns audit events in sequence order.
func (db *DB) Audit(ctx context.Context, f erasure.AuditFilter) ([]erasure.AuditEvent, error) {
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
	rows, err := db.r.QueryContext(ctx, q, args...)
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
