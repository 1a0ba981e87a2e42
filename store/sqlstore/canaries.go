package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"erasure"
)

var _ erasure.CanaryStore = (*DB)(nil)

// RecordCanary implements erasure.CanaryStore: the run's row and its canary.passed or
// canary.failed event, in one transaction. EINVALID for a result without a dataset.
func (db *DB) RecordCanary(ctx context.Context, r erasure.CanaryResult) error {
	if r.Dataset == "" {
		return erasure.Errorf(erasure.EINVALID, "a canary result needs a dataset")
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		ok := 0
		if r.OK {
			ok = 1
		}
		if _, err := db.exec(ctx, tx, `INSERT INTO canary_runs (dataset, request_id, started, finished, ok, stage, reason, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Dataset, r.RequestID, ms(r.Started), ms(r.Finished), ok, string(r.Stage), r.Reason, r.Actor); err != nil {
			return err
		}
		ev := erasure.AuditEvent{Time: db.Now().Truncate(time.Millisecond).UTC(), Actor: r.Actor, Type: erasure.EventCanaryPassed, Dataset: r.Dataset,
			RequestID: r.RequestID, Data: erasure.EventData(map[string]any{"started": r.Started.UTC(), "finished": r.Finished.UTC()})}
		if !r.OK {
			ev.Type = erasure.EventCanaryFailed
			ev.Data = erasure.EventData(map[string]any{"started": r.Started.UTC(), "finished": r.Finished.UTC(), "stage": r.Stage, "reason": r.Reason})
		}
		a := db.auditWriter(tx)
		a.append(ev)
		return a.flush(ctx)
	})
}

// LastCanaries implements erasure.CanaryStore.
func (db *DB) LastCanaries(ctx context.Context) ([]erasure.CanaryResult, error) {
	rows, err := db.readQuery(ctx, `SELECT c.dataset, c.request_id, c.started, c.finished, c.ok, c.stage, c.reason, c.actor FROM canary_runs c
		JOIN (SELECT dataset, max(id) AS id FROM canary_runs GROUP BY dataset) last ON last.id = c.id
		ORDER BY c.dataset`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []erasure.CanaryResult
	for rows.Next() {
		var r erasure.CanaryResult
		var started, finished int64
		var ok int
		if err := rows.Scan(&r.Dataset, &r.RequestID, &started, &finished, &ok, &r.Stage, &r.Reason, &r.Actor); err != nil {
			return nil, err
		}
		r.Started, r.Finished, r.OK = fromMS(started), fromMS(finished), ok == 1
		out = append(out, r)
	}
	return out, rows.Err()
}
