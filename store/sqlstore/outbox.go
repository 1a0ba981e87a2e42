package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"erasure"
)

// The outbox (migration 006b_outbox.sql): messages of subscribers waiting to be POSTed, and the
// notifier's cursor in the audit trail. A leased message stays pending, with its next_at moved
// to the end of the lease, so that the lease query needs only the due index; the lease takes a
// message only when no older message of its subscriber and key is undelivered (pending or
// dead), which keeps each key's messages one at a time and in order.

var _ erasure.OutboxStore = (*DB)(nil)

const outboxColumns = `id, subscriber, key, event, url, body, state, attempts, next_at, last_error, lease_owner, created_at, delivered_at, audit_seq`

// Limits of the outbox listing.
const (
	defaultOutboxLimit = 100
	maxOutboxLimit     = 1000
	maxOutboxError     = 1000
)

func scanOutbox(sc interface{ Scan(...any) error }) (erasure.OutboxMessage, string, error) {
	var m erasure.OutboxMessage
	var body, owner string
	var next, created int64
	var delivered sql.NullInt64
	if err := sc.Scan(&m.ID, &m.Subscriber, &m.Key, &m.Event, &m.URL, &body, &m.State, &m.Attempts, &next, &m.LastError, &owner, &created, &delivered, &m.AuditSeq); err != nil {
		return m, "", err
	}
	m.Body, m.NextAt, m.CreatedAt, m.DeliveredAt = json.RawMessage(body), fromMS(next), fromMS(created), fromNullMS(delivered)
	return m, owner, nil
}

// NotifyCursor implements erasure.OutboxStore.
func (db *DB) NotifyCursor(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.readRow(ctx, `SELECT seq FROM notify_cursor WHERE id = 1`).Scan(&seq); err != nil {
		return 0, unavailable(err)
	}
	return seq, nil
}

// EnqueueOutbox implements erasure.OutboxStore. EINVALID for a cursor that would go back, or a
// message that is incomplete, is not JSON, or was not caused by an event in (from, to].
func (db *DB) EnqueueOutbox(ctx context.Context, from, to int64, msgs []erasure.OutboxMessage) error {
	if to < from || from < 0 {
		return erasure.Errorf(erasure.EINVALID, "the notify cursor cannot move from %d to %d", from, to)
	}
	for i, m := range msgs {
		switch {
		case m.Subscriber == "" || m.Key == "" || m.Event == "" || m.URL == "":
			return erasure.Errorf(erasure.EINVALID, "outbox message %d needs a subscriber, key, event and url", i)
		case !json.Valid(m.Body):
			return erasure.Errorf(erasure.EINVALID, "outbox message %d: the body is not JSON", i)
		case m.AuditSeq <= from || m.AuditSeq > to:
			return erasure.Errorf(erasure.EINVALID, "outbox message %d: audit event %d is not between %d and %d", i, m.AuditSeq, from+1, to)
		}
	}
	now := db.Now()
	return db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, `UPDATE notify_cursor SET seq = ?, updated_at = ? WHERE id = 1 AND seq = ?`, to, ms(now), from)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return erasure.Errorf(erasure.ECONFLICT, "the notify cursor is no longer at %d: another notifier ran", from)
		}
		for _, m := range msgs {
			next := m.NextAt
			if next.IsZero() {
				next = now
			}
			if _, err := db.exec(ctx, tx, `INSERT INTO outbox (subscriber, key, event, url, body, state, next_at, created_at, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				m.Subscriber, m.Key, m.Event, m.URL, string(m.Body), string(erasure.OutboxPending), ms(next), ms(now), m.AuditSeq); err != nil {
				return err
			}
		}
		return nil
	})
}

// LeaseOutbox implements erasure.OutboxStore.
func (db *DB) LeaseOutbox(ctx context.Context, owner string, n int, lease time.Duration) ([]erasure.OutboxMessage, error) {
	if owner == "" || n <= 0 || lease <= 0 {
		return nil, erasure.Errorf(erasure.EINVALID, "a lease needs an owner, a count and a duration")
	}
	var out []erasure.OutboxMessage
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		now := db.Now()
		rows, err := db.query(ctx, tx, `SELECT `+outboxColumns+` FROM outbox o
			WHERE o.state = 'pending' AND o.next_at <= ?
			  AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subscriber = o.subscriber AND p.key = o.key AND p.state <> 'delivered' AND p.id < o.id)
			ORDER BY o.next_at, o.id LIMIT `+limitParam+db.skipLocked(), ms(now), n)
		if err != nil {
			return err
		}
		for rows.Next() {
			m, _, err := scanOutbox(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		until := now.Add(lease)
		for i := range out {
			if _, err := db.exec(ctx, tx, `UPDATE outbox SET attempts = attempts + 1, lease_owner = ?, lease_until = ?, next_at = ? WHERE id = ?`,
				owner, ms(until), ms(until), out[i].ID); err != nil {
				return err
			}
			out[i].Attempts++
			out[i].NextAt = fromMS(ms(until))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinishOutbox implements erasure.OutboxStore. EINVALID when both delivered and dead are set.
func (db *DB) FinishOutbox(ctx context.Context, id int64, owner string, delivered, dead bool, nextAt time.Time, errMsg string) error {
	if delivered && dead {
		return erasure.Errorf(erasure.EINVALID, "an outbox message is delivered or dead, not both")
	}
	now := db.Now()
	state, delivAt := erasure.OutboxPending, sql.NullInt64{}
	switch {
	case delivered:
		state, delivAt, errMsg, nextAt = erasure.OutboxDelivered, sql.NullInt64{Int64: ms(now), Valid: true}, "", now
	case dead:
		state, nextAt = erasure.OutboxDead, now
	case nextAt.IsZero():
		nextAt = now
	}
	errMsg = oneLineError(errMsg)
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, `UPDATE outbox SET state = ?, next_at = ?, last_error = ?, delivered_at = ?, lease_owner = '', lease_until = 0
			WHERE id = ? AND lease_owner = ? AND state = 'pending'`, string(state), ms(nextAt), errMsg, delivAt, id, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return erasure.Errorf(erasure.ENOTFOUND, "outbox message %d is not leased by %s", id, owner)
	}
	return nil
}

// ReleaseOutboxLeases makes every leased outbox message due now and returns how many were: a
// single-node server starting up owns the deliveries the process before it had in flight.
func (db *DB) ReleaseOutboxLeases(ctx context.Context) (int, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, tx, `UPDATE outbox SET next_at = ?, lease_owner = '', lease_until = 0 WHERE state = 'pending' AND lease_owner <> ''`, ms(db.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// oneLineError keeps an attempt's error on one line, at most maxOutboxError bytes.
func oneLineError(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxOutboxError {
		s = strings.ToValidUTF8(s[:maxOutboxError], "")
	}
	return s
}

// OutboxMessages implements erasure.OutboxStore. EINVALID for an unknown state.
func (db *DB) OutboxMessages(ctx context.Context, f erasure.OutboxFilter) ([]erasure.OutboxMessage, error) {
	switch f.State {
	case "", erasure.OutboxPending, erasure.OutboxDelivered, erasure.OutboxDead:
	default:
		return nil, erasure.Errorf(erasure.EINVALID, "unknown outbox state %q: pending, delivered or dead", f.State)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultOutboxLimit
	}
	limit = min(limit, maxOutboxLimit)
	q := `SELECT ` + outboxColumns + ` FROM outbox WHERE 1 = 1`
	var args []any
	if f.Subscriber != "" {
		q += ` AND subscriber = ?`
		args = append(args, f.Subscriber)
	}
	if f.Key != "" {
		q += ` AND key = ?`
		args = append(args, f.Key)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.After > 0 {
		q += ` AND id < ?`
		args = append(args, f.After)
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit)
	rows, err := db.readQuery(ctx, q, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	out := []erasure.OutboxMessage{}
	for rows.Next() {
		m, _, err := scanOutbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RetryOutbox implements erasure.OutboxStore.
func (db *DB) RetryOutbox(ctx context.Context, id int64, actor string) (*erasure.OutboxMessage, error) {
	var out erasure.OutboxMessage
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		m, _, err := scanOutbox(db.queryRow(ctx, tx, `SELECT `+outboxColumns+` FROM outbox WHERE id = ?`+db.forUpdate(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return erasure.Errorf(erasure.ENOTFOUND, "outbox message %d not found", id)
		} else if err != nil {
			return err
		}
		if m.State != erasure.OutboxDead {
			return erasure.Errorf(erasure.ECONFLICT, "outbox message %d is %s, not dead: only a dead message is retried", id, m.State)
		}
		now := db.Now()
		if _, err := db.exec(ctx, tx, `UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, lease_owner = '', lease_until = 0 WHERE id = ?`, ms(now), id); err != nil {
			return err
		}
		m.State, m.Attempts, m.NextAt = erasure.OutboxPending, 0, fromMS(ms(now))
		ev := erasure.AuditEvent{Time: now.UTC().Truncate(time.Millisecond), Actor: actor, Type: erasure.EventOutboxRetried,
			Data: erasure.EventData(map[string]any{"outbox": m.ID, "subscriber": m.Subscriber, "event": m.Event, "key": m.Key})}
		if strings.HasPrefix(m.Key, "r_") {
			ev.RequestID = m.Key
		}
		a := db.auditWriter(tx)
		a.append(ev)
		out = m
		return a.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
