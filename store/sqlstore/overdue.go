package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"erasure"
)

var (
	_ erasure.OverdueStore   = (*DB)(nil)
	_ erasure.RequestIDStore = (*DB)(nil)
	_ erasure.WriteProbe     = (*DB)(nil)
)

// MarkOverdue implements erasure.OverdueStore (migration 006c_overdue.sql). On PostgreSQL the
// requests are selected FOR UPDATE SKIP LOCKED: a request another transaction is changing is
// marked at the next call, and two watchers never mark one request twice.
func (db *DB) MarkOverdue(ctx context.Context, limit int) ([]string, error) {
	if limit <= 0 {
		limit = 100
	}
	var ids []string
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		now := db.Now()
		rows, err := db.query(ctx, tx, `SELECT id, status, deadline FROM requests
			WHERE overdue_at IS NULL AND status NOT IN ('completed', 'cancelled') AND deadline < ?
			ORDER BY deadline, id LIMIT `+limitParam+db.skipLocked(), ms(now), limit)
		if err != nil {
			return err
		}
		var evs []erasure.AuditEvent
		for rows.Next() {
			var id string
			var status erasure.RequestStatus
			var deadline int64
			if err := rows.Scan(&id, &status, &deadline); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			evs = append(evs, erasure.OverdueEvent(id, status, fromMS(deadline), now))
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		a := db.auditWriter(tx)
		for i, id := range ids {
			if _, err := db.exec(ctx, tx, `UPDATE requests SET overdue_at = ? WHERE id = ? AND overdue_at IS NULL`, ms(now), id); err != nil {
				return err
			}
			a.append(evs[i])
		}
		return a.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// RequestIDsWithPrefix implements erasure.RequestIDStore: a range of the primary key.
func (db *DB) RequestIDsWithPrefix(ctx context.Context, prefix string, limit int) ([]string, error) {
	if prefix == "" || strings.ContainsAny(prefix, "\x00") {
		return nil, erasure.Errorf(erasure.EINVALID, "an id prefix must not be empty")
	}
	if limit <= 0 {
		limit = 10
	}
	// Request ids are printable ASCII: every id starting with prefix sorts between prefix and
	// prefix followed by the highest printable character.
	rows, err := db.readQuery(ctx, fmt.Sprintf(`SELECT id FROM requests WHERE id >= ? AND id < ? ORDER BY id LIMIT %d`, limit), prefix, prefix+"\x7f")
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	return out, rows.Err()
}

// ProbeWrite implements erasure.WriteProbe (migration 006d_probe.sql): it commits an update of
// one row, so that it fails as every write fails (a full disk, a read-only database, a lost
// lock). EUNAVAILABLE when the commit fails.
func (db *DB) ProbeWrite(ctx context.Context) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := db.exec(ctx, tx, `UPDATE store_probe SET at = ?, writes = writes + 1 WHERE id = 1`, ms(db.Now()))
		return err
	})
	if err != nil && erasure.ErrorCode(err) != erasure.EUNAVAILABLE {
		return &erasure.Error{Code: erasure.EUNAVAILABLE, Message: "the store cannot write: " + strings.Join(strings.Fields(err.Error()), " ")}
	}
	return err
}
