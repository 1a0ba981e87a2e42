package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

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

func (a *auditWriter) append(ctx context.Context, ev *erasure.AuditEvent) error {
	if !a.read {
		err := a.db.queryRow(ctx, a.tx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&a.seq, &a.hash)
		if errors.Is(err, sql.ErrNoRows) {
			a.seq, a.hash = 0, audit.Genesis
		} else if err != nil {
			return err
		}
		a.read = true
	}
	ev.Seq = a.seq + 1
	ev.Time = ev.Time.Truncate(1e6).UTC()
	audit.Seal(a.hash, ev)
	if _, err := a.db.exec(ctx, a.tx, `INSERT INTO audit_events (seq, at, actor, type, request_id, task_id, dataset, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, ev.Seq, ms(ev.Time), ev.Actor, ev.Type, ev.RequestID, ev.TaskID, ev.Dataset, string(ev.Data), ev.PrevHash, ev.Hash); err != nil {
		return err
	}
	a.seq, a.hash = ev.Seq, ev.Hash
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

func eventData(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
}
